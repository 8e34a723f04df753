#!/bin/bash
#
# `make bench-adversarial`: the cost per input byte of adversarial bodies
# (bench/adversarial/gen.pl) against the benchmark's track body
# (bench/track.json).  Issue 6 asks for at most 5x the track body's cost
# per byte for every one of them.
#
#   (a) core: ldseg_process() alone, built with -O2 (bench/core_adversarial.c),
#       ns per input byte and the ratio to track.json;
#   (b) nginx: Debian's nginx with build/ngx_http_ldseg_module.so, one
#       worker on CPU 0, a second nginx on CPU 1 standing in for
#       LaunchDarkly (return 202); each body is POSTed over one keepalive
#       connection by curl (on CPU 1) until the worker has used
#       ADV_CPU_TICKS clock ticks, then the queue is left to drain, so
#       delivery counts too.  Worker CPU is utime+stime from
#       /proc/PID/stat.  Printed: us of worker CPU per KB of input and the
#       ratio to track.json.
#
# For the gzip body both figures are given per inflated byte and per wire
# byte.
#
# Environment: ADV_CPU_TICKS (per body, default 300 = 3 s at 100 Hz),
# ADV_MAX_SECONDS (per body, 60), ADV_CORE_ONLY=1 (skip nginx), ADV_BODIES
# (names, default all), NGINX, LDSEG_MODULE, ADV_PORT, ADV_MOCK_PORT.

[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"

set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${LDSEG_MODULE:-$ROOT/build/ngx_http_ldseg_module.so}
B=$ROOT/build/bench-adversarial
D=$ROOT/build/bench/adversarial
CPU_TICKS=${ADV_CPU_TICKS:-300}
MAX_SECONDS=${ADV_MAX_SECONDS:-60}
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

BENCH_NAME=bench-adversarial
BENCH_SAY_FD=2
BENCH_KEEPALIVE_REQUESTS=1000000
BENCH_BODY_BUFFER=1m
. "$ROOT/bench/lib.sh"

BODIES=${ADV_BODIES:-"track.json tiny.json deep.json deep-id.json
    objects.json numbers.json numbers-alone.json numbers-cap.json
    numbers-exp.json numbers-ids.json gzip.json.gz"}


for tool in cc curl perl taskset gzip; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing"
done

perl bench/adversarial/gen.pl "$D"

mkdir -p "$B"
cc -std=c99 -D_DEFAULT_SOURCE -O2 -Isrc -o "$B/core_adversarial" \
    bench/core_adversarial.c src/ldseg.c src/ldseg_*.c -lcjson -lz -lm


# --- (a) core ----------------------------------------------------------------

echo
echo "(a) core: ldseg_process() per input byte (inflate included for .gz)"
echo
# shellcheck disable=SC2086
"$B/core_adversarial" "$D" $BODIES | tee "$B/core.txt"

if [ "${ADV_CORE_ONLY:-0}" = 1 ]; then
    exit 0
fi

[ -f "$MODULE" ] || fail "$MODULE is not built (make)"


# --- (b) nginx ---------------------------------------------------------------

if [ "$NCPU" -ge 2 ]; then
    SERVER_CPU=0
    CLIENT_CPU=1
    SERVER_AFFINITY="worker_cpu_affinity 01;"
    MOCK_AFFINITY="worker_cpu_affinity 10;"
else
    SERVER_CPU=0
    CLIENT_CPU=0
    SERVER_AFFINITY=""
    MOCK_AFFINITY=""
    say "one CPU only: nginx and curl share it, figures are rough"
fi


PORT=${ADV_PORT:-$(free_port 28580)}
MOCK_PORT=${ADV_MOCK_PORT:-$(free_port $(( PORT + 1 )))}

rm -rf "$B/server" "$B/mock"
mkdir -p "$B/server/logs" "$B/server/tmp" "$B/mock/logs" "$B/mock/tmp"
chmod 755 "$B" "$B/server" "$B/mock" "$B/server/tmp" "$B/mock/tmp"


# a copy: `make` rewrites the module in place under a running nginx
cp "$MODULE" "$B/ngx_http_ldseg_module.so"

{
    echo "load_module $B/ngx_http_ldseg_module.so;"
    common_main
    echo "$SERVER_AFFINITY"
    echo "events { worker_connections 1024; }"
    echo "http {"
    common_http
    cat << END
    ldseg_zone ldseg 256m;
    ldseg_client_side_id benchbenchbenchbench0001;
    ldseg_events_url http://127.0.0.1:$MOCK_PORT;
    ldseg_flush_interval 1s;
    ldseg_batch_size 100;

    server {
        listen 127.0.0.1:$PORT;

        location /v1/ {
            ldseg on;
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
    echo "$MOCK_AFFINITY"
    echo "events { worker_connections 1024; }"
    echo "http {"
    common_http
    cat << END
    server {
        listen 127.0.0.1:$MOCK_PORT;
        client_max_body_size 64m;

        location /events/bulk/ {
            return 202;
        }
    }
}
END
} > "$B/mock/nginx.conf"


trap cleanup EXIT


start_nginx "$B/mock" "$CLIENT_CPU"
start_nginx "$B/server" "$SERVER_CPU"

for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/status" && break
    sleep 0.1
done

MASTER=$(cat "$B/server/logs/nginx.pid")
WORKER=$(pgrep -P "$MASTER" | head -1)
[ -n "$WORKER" ] || fail "no worker process"

worker_ticks() {
    local stat rest
    stat=$(cat "/proc/$WORKER/stat")
    rest=${stat##*) }
    set -- $rest
    echo $(( ${12} + ${13} ))
}

queue_events() {
    curl -sf "http://127.0.0.1:$PORT/status" | perl -MJSON::PP -e '
        my $j = decode_json(join "", <STDIN>);
        my $q = $j->{queue};
        print ref $q eq "HASH" ? ($q->{events} // 0) : 0, "\n";'
}

wait_drained() {
    local i
    for i in $(seq 600); do
        [ "$(queue_events)" = 0 ] && return 0
        sleep 0.1
    done
    say "warning: queue not drained after 60 s"
}

post() {
    # post BODY N: N requests on one connection; prints the status codes
    local body=$1 n=$2 path=/v1/batch i enc=()
    case $body in
    track.json) path=/v1/track ;;
    esac
    case $body in
    *.gz) enc=(-H 'Content-Encoding: gzip') ;;
    esac
    for (( i = 0; i < n; i++ )); do
        echo "url = \"http://127.0.0.1:$PORT$path\""
        echo "output = \"/dev/null\""
    done > "$B/urls"
    taskset -c "$CLIENT_CPU" curl -s -K "$B/urls" \
        -w '%{http_code}\n' -H 'Content-Type: application/json' \
        -H 'Expect:' "${enc[@]}" --data-binary @"$D/$body"
}

size_of() {
    stat -c %s "$1"
}

declare -A R

measure() {
    local body=$1 wire inflated t0 t1 s0 n reqs=0 codes ticks
    wire=$(size_of "$D/$body")
    inflated=$wire
    case $body in
    *.gz) inflated=$(gzip -dc "$D/$body" | wc -c) ;;
    esac

    # warm-up, and the answer this body gets
    codes=$(post "$body" 3 | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')
    wait_drained

    # requests per round: about 16 MB of input, at least 1, so that the
    # status polls between rounds stay negligible
    n=$(( 16000000 / inflated ))
    [ "$n" -ge 1 ] || n=1
    [ "$n" -le 20000 ] || n=20000

    t0=$(worker_ticks)
    s0=$(date +%s)
    while :; do
        post "$body" "$n" > "$B/codes"
        reqs=$(( reqs + n ))
        wait_drained
        t1=$(worker_ticks)
        [ $(( t1 - t0 )) -ge "$CPU_TICKS" ] && break
        [ $(( $(date +%s) - s0 )) -ge "$MAX_SECONDS" ] && break
    done
    ticks=$(( t1 - t0 ))

    R[$body,reqs]=$reqs
    R[$body,codes]=$codes
    R[$body,us_kb]=$(awk -v t="$ticks" -v hz="$HZ" -v n="$reqs" \
        -v b="$inflated" 'BEGIN { printf "%.2f", t / hz * 1e6 / (n * b / 1024) }')
    R[$body,us_kbw]=$(awk -v t="$ticks" -v hz="$HZ" -v n="$reqs" \
        -v b="$wire" 'BEGIN { printf "%.2f", t / hz * 1e6 / (n * b / 1024) }')
    R[$body,us_req]=$(awk -v t="$ticks" -v hz="$HZ" -v n="$reqs" \
        'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    R[$body,bytes]=$inflated
    R[$body,wire]=$wire
    say "$body: $reqs requests, $ticks ticks, answers $codes"
}

for body in $BODIES; do
    measure "$body"
done

base=${R[track.json,us_kb]:-}

echo
echo "(b) nginx: worker CPU (parse, queue and delivery) per KB of input"
echo
fmt='%-18s %8s %7s %10s %9s %7s %9s %7s  %s\n'
printf "$fmt" body bytes reqs 'us/req' 'us/KB' ratio 'us/wireKB' ratio answers
for body in $BODIES; do
    r=$(awk -v a="${R[$body,us_kb]}" -v b="$base" \
        'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    w=""
    wr=""
    if [ "${R[$body,wire]}" != "${R[$body,bytes]}" ]; then
        w=${R[$body,us_kbw]}
        wr=$(awk -v a="$w" -v b="$base" \
            'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    fi
    printf "$fmt" "$body" "${R[$body,bytes]}" "${R[$body,reqs]}" \
        "${R[$body,us_req]}" "${R[$body,us_kb]}" "$r" "$w" "$wr" \
        "${R[$body,codes]}"
done | tee "$B/nginx.txt"
