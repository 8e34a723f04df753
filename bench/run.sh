#!/bin/bash
#
# `make bench`: requests/s and server CPU of ldseg against bare nginx, on
# loopback, in one run and side by side.
#
# One nginx (Debian's binary, one worker pinned to CPU 0) serves both
#
#   /bare/...  `return 200 '{"success":true}'`           (the baseline)
#   /v1/...    `ldseg on`, flush 1s, the default batch size (the module)
#   /sr/v1/... `ldseg on` with `ldseg_deliver /ld`: each request's events
#              POSTed through a subrequest and proxy_pass to an upstream
#              with keepalive, the answer after LaunchDarkly's
#
# and a second nginx, pinned to CPU 1 with wrk, stands in for LaunchDarkly
# (`return 202`), so that its CPU is not counted as the module's.
#
# Why `return 200` is the baseline: it is the least work nginx can do to
# answer a POST, and it still reads the whole body off the socket
# (ngx_http_discard_request_body, which keepalive requires); it only does
# not keep the bytes.  Alternatives that store the body cost more than the
# body copy they add: proxy_pass adds an upstream round trip, `mirror` a
# subrequest, and static files answer POST with 405 (an error_page 405 =200
# redirect adds an internal redirect and a file lookup).  Measured against
# the cheapest baseline, the ratios printed are upper bounds of ldseg's
# overhead.
#
# Last, LaunchDarkly goes down (the mock stops) and a second of track and
# one of batch traffic are queued, to read the queue's memory per event
# byte from the status with a queue that holds something.
#
# Server CPU is utime+stime of the master and its workers from
# /proc/PID/stat, read before a run and after it, once ldseg's queue has
# drained (status `queue.events` is 0), so that delivery counts too.
#
# Environment: BENCH_LDSEG_EXTRA (directives added to http{}, e.g.
# "ldseg_gzip off;"), BENCH_MAPPINGS (a subscriptions file for
# `ldseg_mappings` in the /v1/ location, e.g. t/conformance/presets.json:
# run once with it and once without to compare the presets as a file with
# the built-in ones), BENCH_DURATION (s, default 10), BENCH_WARMUP (s, 2),
# BENCH_CONNECTIONS (16), BENCH_PORT and BENCH_MOCK_PORT (free ports from
# 28480), BENCH_DRAIN_TIMEOUT (s, 60), NGINX (/usr/sbin/nginx),
# LDSEG_MODULE (build/ngx_http_ldseg_module.so), BENCH_DELIVER ("all":
# bare, queue and subrequest cases, the default; "queue": without the
# subrequest cases; "subrequest": bare and subrequest cases only).

# `make bench` runs it with sh
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"

set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${LDSEG_MODULE:-$ROOT/build/ngx_http_ldseg_module.so}
B=$ROOT/build/bench
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
PORT=${BENCH_PORT:-}
MOCK_PORT=${BENCH_MOCK_PORT:-}
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-60}
BATCH_MESSAGES=20
DELIVER=${BENCH_DELIVER:-all}

case $DELIVER in
all|queue|subrequest) ;;
*) echo "BENCH_DELIVER must be all, queue or subrequest" >&2; exit 1 ;;
esac

HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

BENCH_NAME=bench
BENCH_SAY_FD=1
BENCH_KEEPALIVE_REQUESTS=10000
BENCH_BODY_BUFFER=64k
. "$ROOT/bench/lib.sh"


# --- tools -------------------------------------------------------------------

if ! command -v wrk >/dev/null 2>&1; then
    say "installing wrk"
    sh .ci/deps.sh wrk
fi

for tool in curl perl taskset; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing"
done

if [ -f "$MODULE" ]; then
    HAVE_LDSEG=1
else
    HAVE_LDSEG=0
    say "$MODULE is not built: measuring bare nginx only"
fi

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
    say "one CPU only: nginx and wrk share it, figures are rough"
fi


# --- configuration -----------------------------------------------------------


MAPPINGS_DIRECTIVE=
if [ -n "${BENCH_MAPPINGS:-}" ]; then
    [ -f "$BENCH_MAPPINGS" ] || fail "BENCH_MAPPINGS: $BENCH_MAPPINGS is not a file"
    MAPPINGS_DIRECTIVE="ldseg_mappings $(realpath "$BENCH_MAPPINGS");"
    say "/v1/ with $MAPPINGS_DIRECTIVE"
fi

PORT=${PORT:-$(free_port 28480)}
MOCK_PORT=${MOCK_PORT:-$(free_port $(( PORT + 1 )))}

rm -rf "$B"
mkdir -p "$B/server/logs" "$B/server/tmp" "$B/mock/logs" "$B/mock/tmp"
chmod 755 "$B" "$B/server" "$B/mock" "$B/server/tmp" "$B/mock/tmp"


{
    if [ "$HAVE_LDSEG" = 1 ]; then
        # a copy: `make` rewrites the module in place, which would crash
        # an nginx that has it mapped
        cp "$MODULE" "$B/ngx_http_ldseg_module.so"
        echo "load_module $B/ngx_http_ldseg_module.so;"
    fi
    common_main
    echo "$SERVER_AFFINITY"
    echo "events { worker_connections 1024; }"
    echo "http {"
    common_http
    if [ "$HAVE_LDSEG" = 1 ]; then
        cat << END
    ldseg_zone ldseg 64m;
    ldseg_client_side_id benchbenchbenchbench0001;
    ldseg_events_url http://127.0.0.1:$MOCK_PORT;
    ldseg_flush_interval 1s;
    ${BENCH_LDSEG_EXTRA:-}

    upstream ld {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 16;
    }
END
    fi
    cat << END
    server {
        listen 127.0.0.1:$PORT;

        location /bare/ {
            default_type application/json;
            return 200 '{"success":true}';
        }
END
    if [ "$HAVE_LDSEG" = 1 ]; then
        cat << END

        location /v1/ {
            ldseg on;
            $MAPPINGS_DIRECTIVE
        }

        location /sr/v1/ {
            ldseg on;
            ldseg_deliver /ld;
        }

        location = /ld {
            internal;
            proxy_pass http://ld\$ldseg_events_path;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }

        location = /status {
            ldseg_status;
        }
END
    fi
    echo "    }"
    echo "}"
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
        client_max_body_size 16m;

        location /events/bulk/ {
            return 202;
        }
    }
}
END
} > "$B/mock/nginx.conf"


# --- servers -----------------------------------------------------------------


trap cleanup EXIT


start_nginx "$B/mock" "$CLIENT_CPU"
start_nginx "$B/server" "$SERVER_CPU"

for i in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/bare/" && break
    sleep 0.1
done

MASTER=$(cat "$B/server/logs/nginx.pid")


# --- measurements ------------------------------------------------------------

server_ticks() {
    # utime + stime (clock ticks) of the master and its workers
    local pid total=0 stat rest
    for pid in $MASTER $(pgrep -P "$MASTER"); do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        set -- $rest
        # fields 14 and 15 of stat are the 12th and 13th after "comm"
        total=$(( total + ${12} + ${13} ))
    done
    echo "$total"
}

STATUS_FLAT=$B/status.flat

status_read() {
    # flatten the status JSON into "a.b=value" lines in $STATUS_FLAT
    curl -sf "http://127.0.0.1:$PORT/status" | perl -MJSON::PP -e '
        my $j = eval { decode_json(join "", <STDIN>) } or exit 1;
        sub f {
            my ($p, $v) = @_;
            if (ref $v eq "HASH") {
                f($p eq "" ? $_ : "$p.$_", $v->{$_}) for sort keys %$v;
            } elsif (ref $v eq "ARRAY") {
                f("$p.$_", $v->[$_]) for 0 .. $#$v;
            } else {
                print "$p=", (defined $v ? $v : ""), "\n";
            }
        }
        f("", $j);' > "$STATUS_FLAT"
}

status_get() {
    # status_get NAME...: the value of the first of these keys present
    local k v
    for k in "$@"; do
        v=$(awk -F= -v k="$k" '$1 == k { print $2; exit }' "$STATUS_FLAT")
        if [ -n "$v" ]; then
            echo "$v"
            return 0
        fi
    done
    echo ""
}

K_QUEUE="queue.events queue_events queue.length"
K_QUEUED="queued events.queued"
K_DELIVERED="delivered events.delivered"
K_DROPPED="dropped events.dropped"
K_FAILED="failed events.failed"
K_POSTS="posts.succeeded posts_succeeded"
K_ACCEPTED="accepted messages.accepted"

status_snapshot() {
    # status_snapshot PREFIX: set PREFIX_queued, PREFIX_delivered, ...
    local p=$1
    status_read || fail "cannot read http://127.0.0.1:$PORT/status as JSON"
    printf -v "${p}_queue" '%s' "$(status_get $K_QUEUE)"
    printf -v "${p}_queued" '%s' "$(status_get $K_QUEUED)"
    printf -v "${p}_delivered" '%s' "$(status_get $K_DELIVERED)"
    printf -v "${p}_dropped" '%s' "$(status_get $K_DROPPED)"
    printf -v "${p}_failed" '%s' "$(status_get $K_FAILED)"
    printf -v "${p}_posts" '%s' "$(status_get $K_POSTS)"
    printf -v "${p}_accepted" '%s' "$(status_get $K_ACCEPTED)"
}

wait_drained() {
    # until the queue is empty; without a queue gauge, until everything
    # queued has been delivered or dropped
    local max=$(( DRAIN_TIMEOUT * 5 ))
    for _ in $(seq "$max"); do
        status_snapshot D
        if [ -n "$D_queue" ]; then
            [ "$D_queue" -eq 0 ] && return 0
        elif [ -n "$D_queued" ] && [ -n "$D_delivered" ]; then
            [ "$D_queued" -le $(( D_delivered + ${D_dropped:-0} )) ] \
                && return 0
        else
            say "status has no queue gauge; waiting 3 s for delivery"
            sleep 3
            return 0
        fi
        sleep 0.2
    done
    say "warning: queue not drained after ${DRAIN_TIMEOUT}s" \
        "(queue ${D_queue:-?})"
    return 1
}

mem_poll() {
    # mem_poll FILE: "memory bytes" of the queue every 0.5 s, until killed
    while :; do
        curl -sf "http://127.0.0.1:$PORT/status" | perl -MJSON::PP -ne '
            my $q = eval { decode_json($_)->{queue} } or exit;
            print "$q->{memory} $q->{bytes}\n" if $q->{bytes};' >> "$1"
        sleep 0.5
    done
}

run_wrk() {
    # run_wrk SECONDS URL BODYFILE: wrk on the client CPU; sets WRK_* vars
    local out
    out=$(BENCH_BODY=$3 taskset -c "$CLIENT_CPU" \
          wrk -t1 -c"$CONNECTIONS" -d"$1"s --latency -s bench/post.lua "$2")
    echo "$out" > "$B/wrk.last"
    local line
    line=$(grep '^WRKRESULT ' <<< "$out") \
        || fail "no result from wrk: $out"
    local kv
    for kv in ${line#WRKRESULT }; do
        printf -v "WRK_${kv%%=*}" '%s' "${kv#*=}"
    done
}

check_answer() {
    # check_answer URL BODYFILE: one request; fail unless it is a 2xx
    local code
    code=$(curl -s -o "$B/answer" -w '%{http_code}' \
           -H 'Content-Type: application/json' \
           --data-binary @"$2" "$1")
    case $code in
    2??) ;;
    *)   fail "$1 answered $code: $(head -c 300 "$B/answer")" ;;
    esac
}

declare -A R

measure() {
    # measure NAME KIND(bare|ldseg) PATH BODYFILE MESSAGES_PER_REQUEST
    local name=$1 kind=$2 url="http://127.0.0.1:$PORT$3" body=$4 msgs=$5
    local t0 t1 ticks reqs secs

    check_answer "$url" "$body"

    say "$name: warm-up ${WARMUP}s, then ${DURATION}s," \
        "$CONNECTIONS connections"
    # the queue's memory is sampled during the warm-up, not the measured
    # run: a status request every 0.5 s during the run made its p99 latency
    # 4-7 ms instead of about 0.5 ms (the worker serves the status too)

    local poller=""
    : > "$B/mem.samples"
    if [ "$kind" = ldseg ]; then
        mem_poll "$B/mem.samples" &
        poller=$!
        # on the client's CPU: curl and perl on the server's would take
        # its CPU from nginx
        taskset -pc "$CLIENT_CPU" "$poller" > /dev/null
    fi

    run_wrk "$WARMUP" "$url" "$body"

    if [ -n "$poller" ]; then
        kill "$poller" 2>/dev/null || true
        wait "$poller" 2>/dev/null || true
    fi

    if [ "$kind" = ldseg ]; then
        wait_drained || true
        status_snapshot S0
    fi

    t0=$(server_ticks)
    run_wrk "$DURATION" "$url" "$body"
    reqs=$WRK_requests

    # the queue's zone memory per event byte, over the warm-up's samples
    R[$name,mem]=$(awk '{ m += $1; b += $2 }
        END { if (b > 0) printf "%.2f", m / b; else print "-" }' \
        "$B/mem.samples")
    secs=$(awk -v d="$WRK_duration_us" 'BEGIN { print d / 1e6 }')

    local events=$(( reqs * msgs )) epp="" drain=""
    if [ "$kind" = ldseg ]; then
        local d0 d1
        d0=$(date +%s.%N)
        wait_drained || true
        d1=$(date +%s.%N)
        drain=$(awk -v a="$d0" -v b="$d1" 'BEGIN { printf "%.1f", b - a }')
        t1=$(server_ticks)
        status_snapshot S1
        if [ -n "$S1_queued" ]; then
            events=$(( S1_queued - S0_queued ))
        elif [ -n "$S1_accepted" ]; then
            events=$(( S1_accepted - S0_accepted ))
        fi
        if [ -n "$S1_posts" ] && [ $(( S1_posts - S0_posts )) -gt 0 ]; then
            epp=$(awk -v d=$(( S1_delivered - S0_delivered )) \
                      -v p=$(( S1_posts - S0_posts )) \
                      'BEGIN { printf "%.1f", d / p }')
        fi
        R[$name,dropped]=$(( ${S1_dropped:-0} - ${S0_dropped:-0} ))
        R[$name,failed]=$(( ${S1_failed:-0} - ${S0_failed:-0} ))
    else
        t1=$(server_ticks)
    fi

    ticks=$(( t1 - t0 ))
    R[$name,rps]=$(awk -v n="$reqs" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
    R[$name,cpu]=$(awk -v t="$ticks" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
    R[$name,us_req]=$(awk -v t="$ticks" -v hz="$HZ" -v n="$reqs" \
        'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    R[$name,events]=$events
    R[$name,us_event]=$(awk -v t="$ticks" -v hz="$HZ" -v n="$events" \
        'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "-" }')
    R[$name,epp]=${epp:--}
    R[$name,drain]=${drain:--}
    R[$name,non2xx]=$WRK_status_errors
    R[$name,p99]=$(awk -v u="$WRK_p99_us" 'BEGIN { printf "%.2f", u / 1000 }')
    R[$name,busy]=$(awk -v t="$ticks" -v hz="$HZ" -v s="$secs" \
        -v d="${drain:-0}" 'BEGIN { printf "%.0f", t / hz * 100 / (s + d) }')

    if [ "$WRK_status_errors" -gt 0 ]; then
        say "warning: $name: $WRK_status_errors non-2xx answers"
    fi
}

CASES=()

bench_case() {
    CASES+=("$1")
    measure "$@"
}

say "nginx: $("$NGINX" -v 2>&1 | sed 's/.*: //'), 1 worker on CPU" \
    "$SERVER_CPU; wrk -t1 -c$CONNECTIONS on CPU $CLIENT_CPU"

QUEUE=0
SUBREQ=0
if [ "$HAVE_LDSEG" = 1 ]; then
    [ "$DELIVER" != subrequest ] && QUEUE=1
    [ "$DELIVER" != queue ] && SUBREQ=1
fi

bench_case "bare track" bare /bare/track bench/track.json 1
if [ "$QUEUE" = 1 ]; then
    bench_case "ldseg track" ldseg /v1/track bench/track.json 1
fi
if [ "$SUBREQ" = 1 ]; then
    # nothing to drain: the answer comes after LaunchDarkly's
    bench_case "subreq track" bare /sr/v1/track bench/track.json 1
fi
bench_case "bare batch" bare /bare/batch bench/batch.json "$BATCH_MESSAGES"
if [ "$QUEUE" = 1 ]; then
    bench_case "ldseg batch" ldseg /v1/batch bench/batch.json \
        "$BATCH_MESSAGES"
fi
if [ "$SUBREQ" = 1 ]; then
    bench_case "subreq batch" bare /sr/v1/batch bench/batch.json \
        "$BATCH_MESSAGES"
fi

# The queue's memory per event, with a queue that holds something: under
# load the queue holds little more than the open payload (its last chunk
# half empty), which says nothing about how many events the zone keeps
# when LaunchDarkly is down.  So LaunchDarkly goes down (the mock stops:
# every POST is refused and retried later), bounded traffic is queued, and
# the status is read.  Last, because the mock does not come back.

OUTAGE_MEM=-
OUTAGE_EVENTS=-
if [ "$QUEUE" = 1 ]; then
    stop_nginx "$B/mock"
    say "LaunchDarkly down: 1s of track and batch traffic, queued"
    run_wrk 1 "http://127.0.0.1:$PORT/v1/track" bench/track.json
    run_wrk 1 "http://127.0.0.1:$PORT/v1/batch" bench/batch.json
    status_read || fail "cannot read http://127.0.0.1:$PORT/status as JSON"
    OUTAGE_EVENTS=$(status_get queue.events)
    OUTAGE_MEM=$(awk -v m="$(status_get queue.memory)" \
                     -v b="$(status_get queue.bytes)" \
        'BEGIN { if (b > 0) printf "%.2f", m / b; else print "-" }')
fi


# --- report ------------------------------------------------------------------

echo
fmt='%-12s %8s %6s %5s %7s %9s %9s %8s %7s %7s %7s\n'
printf "$fmt" case 'req/s' 'CPU s' busy 'us/req' events 'us/event' \
    'ev/POST' 'drain s' 'p99 ms' 'non-2xx'
for c in "${CASES[@]}"; do
    printf "$fmt" \
        "$c" "${R[$c,rps]}" "${R[$c,cpu]}" "${R[$c,busy]}%" \
        "${R[$c,us_req]}" "${R[$c,events]}" "${R[$c,us_event]}" \
        "${R[$c,epp]}" "${R[$c,drain]}" "${R[$c,p99]}" "${R[$c,non2xx]}"
done
cat << END

CPU s: server (master + worker) CPU over the run and, for ldseg, until its
queue drained; busy: that CPU over the same wall time.  A case below ~95%
busy was limited by wrk, not by nginx: compare us/req, not req/s, there.

END

if [ "$HAVE_LDSEG" != 1 ]; then
    echo "(ldseg not built: no ratios)"
    exit 0
fi

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}

if [ "$SUBREQ" = 1 ]; then
    printf '%-44s %8s\n' 'ldseg_deliver (subrequest) figure' value
    printf '%-44s %8s\n' \
        "track: subreq/bare req/s" \
        "$(ratio "${R[subreq track,rps]}" "${R[bare track,rps]}")" \
        "track: subreq/bare CPU per request" \
        "$(ratio "${R[subreq track,us_req]}" "${R[bare track,us_req]}")" \
        "track: subreq CPU us per event" "${R[subreq track,us_event]}" \
        "batch: subreq/bare req/s" \
        "$(ratio "${R[subreq batch,rps]}" "${R[bare batch,rps]}")" \
        "batch: subreq CPU us per event" "${R[subreq batch,us_event]}"
    if [ "$QUEUE" = 1 ]; then
        printf '%-44s %8s\n' \
            "track: subreq/queue CPU per event" \
            "$(ratio "${R[subreq track,us_event]}" \
                     "${R[ldseg track,us_event]}")" \
            "batch: subreq/queue CPU per event" \
            "$(ratio "${R[subreq batch,us_event]}" \
                     "${R[ldseg batch,us_event]}")"
    fi
    echo
fi

if [ "$QUEUE" != 1 ]; then
    exit 0
fi

verdict() {
    # verdict VALUE OP LIMIT
    if awk -v v="$1" -v l="$3" "BEGIN { exit !(v $2 l) }"; then
        echo ok
    else
        echo MISSED
    fi
}

rps_t=$(ratio "${R[ldseg track,rps]}" "${R[bare track,rps]}")
cpu_t=$(ratio "${R[ldseg track,us_req]}" "${R[bare track,us_req]}")
rps_b=$(ratio "${R[ldseg batch,rps]}" "${R[bare batch,rps]}")
cpu_b=$(ratio "${R[ldseg batch,us_req]}" "${R[bare batch,us_req]}")
ev_b=${R[ldseg batch,us_event]}
extra_b=$(awk -v l="${R[ldseg batch,us_req]}" -v b="${R[bare batch,us_req]}" \
              -v n="$BATCH_MESSAGES" 'BEGIN { printf "%.2f", (l - b) / n }')
epp_t=${R[ldseg track,epp]}
epp_b=${R[ldseg batch,epp]}

p99_t=$(awk -v l="${R[ldseg track,p99]}" -v b="${R[bare track,p99]}" \
            'BEGIN { printf "%.2f", l - b }')
p99_b=$(awk -v l="${R[ldseg batch,p99]}" -v b="${R[bare batch,p99]}" \
            'BEGIN { printf "%.2f", l - b }')

printf '%-44s %8s   %-14s %s\n' ratio/figure value target verdict
printf '%-44s %8s   %-14s %s\n' \
    "track: ldseg/bare req/s" "$rps_t" ">= 0.75" "$(verdict "$rps_t" '>=' 0.75)" \
    "track: ldseg/bare CPU per request" "$cpu_t" "<= 1.10" "$(verdict "$cpu_t" '<=' 1.10)" \
    "track: p99 ms added over bare" "$p99_t" "<= 1" "$(verdict "$p99_t" '<=' 1)" \
    "batch: ldseg/bare req/s" "$rps_b" "" "" \
    "batch: ldseg/bare CPU per request" "$cpu_b" "" "" \
    "batch: ldseg CPU us per event" "$ev_b" "<= 2.0" "$(verdict "$ev_b" '<=' 2.0)" \
    "batch: ldseg CPU us per event above bare" "$extra_b" "" "" \
    "batch: p99 ms added over bare" "$p99_b" "<= 1" "$(verdict "$p99_b" '<=' 1)" \
    "track: events per POST" "$epp_t" ">= 90" "$(verdict "${epp_t/-/0}" '>=' 90)" \
    "batch: events per POST" "$epp_b" ">= 90" "$(verdict "${epp_b/-/0}" '>=' 90)" \
    "track: queue memory per event byte, under load" "${R[ldseg track,mem]}" \
        "" "" \
    "batch: queue memory per event byte, under load" "${R[ldseg batch,mem]}" \
        "" "" \
    "queue memory per event byte, $OUTAGE_EVENTS queued" "$OUTAGE_MEM" \
        "<= 1.3" "$(verdict "${OUTAGE_MEM/-/9}" '<=' 1.3)"

for c in "ldseg track" "ldseg batch"; do
    if [ "${R[$c,dropped]:-0}" -gt 0 ] || [ "${R[$c,failed]:-0}" -gt 0 ]; then
        say "warning: $c: ${R[$c,dropped]} events dropped," \
            "${R[$c,failed]} failed"
    fi
done
