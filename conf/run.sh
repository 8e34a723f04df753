#!/bin/sh
#
# `make run`: start Debian's nginx in the foreground with the freshly built
# module and conf/example.conf, under the runtime directory build/run/.
# The Makefile has built build/ngx_http_ldseg_module.so already; this
# script builds nothing.  Stop it with Ctrl-C.

set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)

NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=$ROOT/build/ngx_http_ldseg_module.so
RUN=$ROOT/build/run

if [ ! -f "$MODULE" ]; then
    echo "run: $MODULE is missing; use \`make run\`, which builds it" >&2
    exit 1
fi

mkdir -p "$RUN/logs" "$RUN/tmp" "$RUN/modules"
# A copy, not a link: `make` rewrites build/ngx_http_ldseg_module.so in
# place, and a running nginx that has the file mapped would crash.
rm -f "$RUN/modules/ngx_http_ldseg_module.so"
cp "$MODULE" "$RUN/modules/ngx_http_ldseg_module.so"
cp conf/example.conf "$RUN/nginx.conf"

# Workers run as "nobody" when started as root; they need to reach the
# runtime directory (temporary files).  Logs are opened by the master.
if [ "$(id -u)" -eq 0 ]; then
    chmod 755 "$RUN" "$RUN/tmp"
fi

if [ -s "$RUN/logs/nginx.pid" ] \
   && kill -0 "$(cat "$RUN/logs/nginx.pid")" 2>/dev/null
then
    echo "run: nginx already runs from $RUN" \
         "(pid $(cat "$RUN/logs/nginx.pid")); stop it with:" >&2
    echo "     $NGINX -p $RUN/ -c nginx.conf -s quit" >&2
    exit 1
fi

if ! "$NGINX" -p "$RUN/" -c nginx.conf -t -q; then
    echo "run: $RUN/nginx.conf does not pass nginx -t" >&2
    exit 1
fi

cat << END

ldseg runs on http://127.0.0.1:8080 (config: build/run/nginx.conf,
from conf/example.conf).  Send a Segment track call:

  curl -sS http://127.0.0.1:8080/v1/track -H 'Content-Type: application/json' -d '{"userId":"u1","event":"Signed Up","properties":{"value":1}}'

Events delivered to the stand-in LaunchDarkly endpoint (127.0.0.1:8081),
one POST per line, within about a second:

  tail -f build/run/ld-events.log

The status page (open it in a browser; it refreshes itself), and the same
counters as JSON, Prometheus, and the last events sent:

  http://127.0.0.1:8080/ldseg/status
  curl -sS http://127.0.0.1:8080/ldseg/status
  curl -sS 'http://127.0.0.1:8080/ldseg/status?format=prometheus'
  curl -sS 'http://127.0.0.1:8080/ldseg/status?recent=1'
  curl -sS -X POST 'http://127.0.0.1:8080/ldseg/status/test?client_side_id=0123456789abcdef01234567'

Errors: build/run/logs/error.log.  Ctrl-C stops nginx.

END

exec "$NGINX" -p "$RUN/" -c nginx.conf -g 'daemon off;'
