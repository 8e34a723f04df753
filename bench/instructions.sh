#!/bin/bash
#
# `make bench-instructions`: instructions the server executes per request,
# ldseg against bare nginx, counted by valgrind's callgrind.
#
# bench/run.sh measures CPU time, which on a shared or virtual machine
# moves by tens of percent from one run to the next.  The number of
# instructions nginx executes for a fixed set of requests does not: it is
# the same, to a fraction of a percent, on a loaded machine, so two builds
# (LDSEG_MODULE=...) can be compared, one after the other, without a quiet
# machine.  It is not a time: a cache miss and an instruction count the
# same.  Use it to see whether a change adds work to the request path, and
# bench/run.sh for what that work costs in time.
#
# One nginx (master_process off, so that the process callgrind watches is
# the one that serves) runs under callgrind; for each case its counts are
# zeroed (callgrind_control -z), N requests are sent one after the other
# on one keep-alive connection, ldseg's queue is
# left to drain to a second nginx standing in for LaunchDarkly, and the
# counts are dumped (callgrind_control -d).  Delivery (the flush timer,
# libcurl, the POSTs) is therefore counted, as bench/run.sh counts it.
#
# Only user-space instructions are counted: the kernel's work for a
# request (socket reads and writes, epoll), most of a bare request's time,
# is not, so the ratios here are larger than bench/run.sh's CPU ratios.
#
# Cases: /bare/track and /v1/track with bench/track.json, /bare/batch and
# /v1/batch with bench/batch.json (20 messages).  Printed: instructions
# per request and per event, and ldseg over bare.
#
# Environment: BENCH_REQUESTS (per case, default 2000), BENCH_TOP (functions
# listed per case, 12), BENCH_MAPPINGS (a subscriptions file, e.g.
# t/conformance/presets.json: track and batch are measured a second time
# through a location with `ldseg_mappings` and that file, and compared
# with the built-in presets), BENCH_LDSEG_EXTRA
# (directives added to http{}), BENCH_PORT and BENCH_MOCK_PORT, NGINX
# (/usr/sbin/nginx), LDSEG_MODULE (build/ngx_http_ldseg_module.so).

# `make bench-instructions` runs it with sh
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"

set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${LDSEG_MODULE:-$ROOT/build/ngx_http_ldseg_module.so}
B=$ROOT/build/bench-instructions
REQUESTS=${BENCH_REQUESTS:-2000}
PORT=${BENCH_PORT:-}
MOCK_PORT=${BENCH_MOCK_PORT:-}
BATCH_MESSAGES=20

NCPU=$(nproc)

BENCH_NAME=bench-instructions
BENCH_SAY_FD=1
BENCH_KEEPALIVE_REQUESTS=100000
BENCH_BODY_BUFFER=64k
. "$ROOT/bench/lib.sh"

for tool in valgrind callgrind_control curl perl; do
    command -v "$tool" >/dev/null 2>&1 \
        || fail "$tool is missing (apt-get install valgrind curl perl)"
done

[ -f "$MODULE" ] || fail "$MODULE is not built (make)"

MAPPINGS=
if [ -n "${BENCH_MAPPINGS:-}" ]; then
    [ -f "$BENCH_MAPPINGS" ] \
        || fail "BENCH_MAPPINGS: $BENCH_MAPPINGS is not a file"
    MAPPINGS=$(realpath "$BENCH_MAPPINGS")
fi


# --- configuration -----------------------------------------------------------

PORT=${PORT:-$(free_port 28580)}
MOCK_PORT=${MOCK_PORT:-$(free_port $(( PORT + 1 )))}

rm -rf "$B"
mkdir -p "$B/server/logs" "$B/server/tmp" "$B/mock/logs" "$B/mock/tmp"
chmod 755 "$B" "$B/server" "$B/mock" "$B/server/tmp" "$B/mock/tmp"

# a copy: `make` rewrites the module in place
cp "$MODULE" "$B/ngx_http_ldseg_module.so"

{
    echo "load_module $B/ngx_http_ldseg_module.so;"
    common_main
    echo "master_process off;"
    echo "daemon off;"
    echo "events { worker_connections 64; }"
    echo "http {"
    common_http
    cat << END
    ldseg_zone ldseg 16m;
    ldseg_client_side_id benchbenchbenchbench0001;
    ldseg_events_url http://127.0.0.1:$MOCK_PORT;
    ldseg_flush_interval 1s;
    ${BENCH_LDSEG_EXTRA:-}

    server {
        listen 127.0.0.1:$PORT;

        location /bare/ {
            default_type application/json;
            return 200 '{"success":true}';
        }

        location /v1/ {
            ldseg on;
        }

        location /file/v1/ {
            ldseg on;
            ${MAPPINGS:+ldseg_mappings $MAPPINGS;}
        }

        location = /status {
            ldseg_status;
        }
    }
}
END
} > "$B/server/nginx.conf"

{
    common_main
    echo "events { worker_connections 64; }"
    echo "http {"
    common_http
    cat << END
    server {
        listen 127.0.0.1:$MOCK_PORT;
        client_max_body_size 16m;

        location /events/bulk/ {
            return 202;
        }
    }
}
END
} > "$B/mock/nginx.conf"


# --- servers -----------------------------------------------------------------

VG_PID=

cleanup() {
    if [ -n "$VG_PID" ]; then
        kill -QUIT "$VG_PID" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$VG_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$VG_PID" 2>/dev/null || true
    fi
    stop_nginx "$B/mock"
}

trap cleanup EXIT

"$NGINX" -p "$B/server/" -c nginx.conf -t -q \
    || fail "$B/server/nginx.conf does not pass nginx -t"
start_nginx "$B/mock" 0

valgrind --tool=callgrind \
    --callgrind-out-file="$B/callgrind.out" \
    "$NGINX" -p "$B/server/" -c nginx.conf \
    > "$B/valgrind.log" 2>&1 &
VG_PID=$!

for _ in $(seq 300); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/bare/" && break
    kill -0 "$VG_PID" 2>/dev/null \
        || fail "nginx under valgrind exited (see $B/valgrind.log)"
    sleep 0.2
done


# --- measurements ------------------------------------------------------------

send() {
    # send PATH BODYFILE N: N POSTs on one keep-alive connection, one at a
    # time; fails unless every answer is a 2xx
    perl -MIO::Socket::INET -e '
        my ($port, $path, $file, $n) = @ARGV;
        open my $f, "<", $file or die "$file: $!\n";
        local $/;
        my $body = <$f>;
        $body =~ s/\s+\z//;
        my $req = "POST $path HTTP/1.1\r\nHost: bench\r\n"
            . "Content-Type: application/json\r\n"
            . "User-Agent: analytics-node/6.2.0 (ldseg bench)\r\n"
            . "Content-Length: " . length($body) . "\r\n\r\n" . $body;
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
                                      PeerPort => $port, Timeout => 60)
            or die "connect: $!\n";
        my $buf = "";
        for my $i (1 .. $n) {
            print $s $req;
            while ($buf !~ /\r\n\r\n/) {
                sysread($s, $buf, 65536, length $buf) or die "eof\n";
            }
            $buf =~ /\AHTTP\/1\.1 (\d+)/ or die "bad answer\n";
            my $code = $1;
            die "answer $code\n" unless $code =~ /^2/;
            my ($len) = $buf =~ /Content-Length: (\d+)/i;
            my $need = index($buf, "\r\n\r\n") + 4 + ($len // 0);
            while (length $buf < $need) {
                sysread($s, $buf, 65536, length $buf) or die "eof\n";
            }
            substr($buf, 0, $need) = "";
        }' "$PORT" "$1" "$2" "$3"
}

queue_events() {
    curl -sf "http://127.0.0.1:$PORT/status" | perl -MJSON::PP -e '
        my $j = decode_json(join "", <STDIN>);
        print $j->{queue}{events} // 0, "\n";'
}

wait_drained() {
    # the flush timer runs every second; under valgrind a flush is slow
    for _ in $(seq 600); do
        [ "$(queue_events)" = 0 ] && return 0
        sleep 0.5
    done
    fail "the queue did not drain in 300 s"
}

DUMP=0
declare -A R

measure() {
    # measure NAME KIND PATH BODYFILE MESSAGES_PER_REQUEST
    local name=$1 kind=$2 path=$3 body=$4 msgs=$5 file ir

    send "$path" "$4" 20         # warm-up: connections, pools, caches
    [ "$kind" = ldseg ] && wait_drained

    say "$name: $REQUESTS requests"
    callgrind_control -z "$VG_PID" > /dev/null 2>&1
    send "$path" "$body" "$REQUESTS"
    if [ "$kind" = ldseg ]; then
        sleep 1.5
        wait_drained
    fi
    callgrind_control -d "$name" "$VG_PID" > /dev/null 2>&1

    DUMP=$(( DUMP + 1 ))
    file=$(ls -t "$B"/callgrind.out* | head -1)
    ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$file")
    [ -n "$ir" ] || fail "no instruction count in $file"

    R[$name,ir]=$ir
    R[$name,file]=$file
    R[$name,req]=$(( ir / REQUESTS ))
    R[$name,event]=$(( ir / (REQUESTS * msgs) ))
}

say "nginx: $("$NGINX" -v 2>&1 | sed 's/.*: //'), one process under" \
    "callgrind; $REQUESTS requests per case"

measure "bare track" bare /bare/track bench/track.json 1
measure "ldseg track" ldseg /v1/track bench/track.json 1
measure "bare batch" bare /bare/batch bench/batch.json "$BATCH_MESSAGES"
measure "ldseg batch" ldseg /v1/batch bench/batch.json "$BATCH_MESSAGES"
CASES=("bare track" "ldseg track" "bare batch" "ldseg batch")

if [ -n "$MAPPINGS" ]; then
    measure "file track" ldseg /file/v1/track bench/track.json 1
    measure "file batch" ldseg /file/v1/batch bench/batch.json \
        "$BATCH_MESSAGES"
    CASES+=("file track" "file batch")
fi


# --- report ------------------------------------------------------------------

echo
fmt='%-12s %14s %12s %12s\n'
printf "$fmt" case instructions 'per request' 'per event'
for c in "${CASES[@]}"; do
    printf "$fmt" "$c" "${R[$c,ir]}" "${R[$c,req]}" "${R[$c,event]}"
done

top() {
    # top FILE N: the N functions with the most instructions of their own
    perl -e '
        my ($file, $n) = @ARGV;
        my (%name, %self, $fn, $skip, $total);
        open my $f, "<", $file or die "$file: $!\n";
        while (<$f>) {
            if (/^(c?fn)=\((\d+)\)(?: (.*))?$/) {
                $name{$2} = $3 if defined $3;
                $fn = $name{$2} if $1 eq "fn";
                next;
            }
            if (/^calls=/) { $skip = 1; next; }
            next unless /^[0-9+*-]\S*\s+(\d+)/;
            if ($skip) { $skip = 0; next; }
            $self{$fn} += $1;
            $total += $1;
        }
        my @top = (sort { $self{$b} <=> $self{$a} } keys %self)[0 .. $n - 1];
        printf "    %5.1f%%  %s\n", 100 * $self{$_} / $total, $_
            for grep { defined } @top;' "$1" "$2"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

echo
printf '%-44s %10s\n' "track: ldseg/bare instructions per request" \
    "$(ratio "${R[ldseg track,req]}" "${R[bare track,req]}")"
printf '%-44s %10s\n' "batch: ldseg/bare instructions per request" \
    "$(ratio "${R[ldseg batch,req]}" "${R[bare batch,req]}")"
printf '%-44s %10s\n' "batch: ldseg instructions per event above bare" \
    "$(( R[ldseg batch,event] - R[bare batch,event] ))"

if [ -n "$MAPPINGS" ]; then
    echo
    echo "file: /file/v1/ with ldseg_mappings $MAPPINGS"
    printf '%-44s %10s\n' "track: file/built-in instructions per request" \
        "$(ratio "${R[file track,req]}" "${R[ldseg track,req]}")"
    printf '%-44s %10s\n' "batch: file/built-in instructions per request" \
        "$(ratio "${R[file batch,req]}" "${R[ldseg batch,req]}")"
fi

# where they go (functions nginx's binary names only by address are
# stripped: nginx and the libraries without debug symbols)
for c in "ldseg track" "ldseg batch"; do
    echo
    echo "$c: functions with the most instructions of their own"
    top "${R[$c,file]}" "${BENCH_TOP:-12}"
done
