#!/bin/bash
#
# What bench/run.sh and bench/adversarial.sh share: messages, free ports,
# the common parts of their nginx configurations, and starting and
# stopping the nginx instances they run under $B/server and $B/mock.
# Sourced by them with BENCH_NAME (the prefix of messages), BENCH_SAY_FD
# (where say() writes, 1 or 2), BENCH_KEEPALIVE_REQUESTS and
# BENCH_BODY_BUFFER set, and NGINX and B defined.

say() {
    echo "$BENCH_NAME: $*" >&"${BENCH_SAY_FD:-1}"
}

fail() {
    echo "$BENCH_NAME: error: $*" >&2
    exit 1
}

port_in_use() {
    (exec 3<> "/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    # free_port FROM: the first port from FROM on nobody listens on
    local p=$1
    while port_in_use "$p"; do
        p=$(( p + 1 ))
    done
    echo "$p"
}

common_main() {
    cat << END
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
END
    if [ "$(id -u)" -eq 0 ]; then
        echo "user root;"
    fi
}

common_http() {
    cat << END
    access_log off;
    keepalive_requests $BENCH_KEEPALIVE_REQUESTS;
    client_max_body_size 1m;
    client_body_buffer_size $BENCH_BODY_BUFFER;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
END
}

stop_nginx() {
    # stop_nginx DIR: the nginx this script started under DIR, if running
    local pidf=$1/logs/nginx.pid pid i
    [ -s "$pidf" ] || return 0
    pid=$(cat "$pidf")
    kill -QUIT "$pid" 2>/dev/null || return 0

    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
}

cleanup() {
    stop_nginx "$B/server"
    stop_nginx "$B/mock"
}

start_nginx() {
    # start_nginx DIR CPU
    "$NGINX" -p "$1/" -c nginx.conf -t -q \
        || fail "$1/nginx.conf does not pass nginx -t"
    taskset -c "$2" "$NGINX" -p "$1/" -c nginx.conf \
        || fail "nginx under $1 did not start (see $1/logs/error.log)"
}
