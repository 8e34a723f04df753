#!/bin/sh
#
# Install what building and testing ldseg needs on Debian bookworm, and
# nothing that is already there.  Called by `make deps` (first step of
# `make test`).  Extra package names given as arguments are installed too
# (bench/run.sh passes "wrk").
#
# With --build first (`make deps-build`, first step of `make run`): only
# what `make` needs to build the module ($BUILD_PKGS), and the system's
# nginx service is left alone.  With --hint: only say how to install
# them (the Makefile, when the build finds them missing).
#
# Debian's nginx package starts a service on port 80 when it is installed;
# it is kept from starting, and stopped if it runs, so that tests own the
# machine's nginx processes.

set -eu

export DEBIAN_FRONTEND=noninteractive

# What `make` needs: a compiler, Debian's nginx and its nginx-dev (the
# source tree and configure flags the module is built against), and the
# libraries nginx's configure and the module check for.
BUILD_PKGS="
gcc
make
libc6-dev
nginx
nginx-dev
libcurl4-openssl-dev
libcjson-dev
zlib1g-dev
libpcre2-dev
libssl-dev
"

# Debian package, one per line, with what the project uses it for.
PKGS="
gcc
make
libc6-dev
nginx
nginx-dev
libcurl4-openssl-dev
libcjson-dev
zlib1g-dev
libpcre2-dev
libssl-dev
clang
libclang-rt-14-dev
perl
procps
curl
dpkg-dev
debhelper
fakeroot
lintian
"

# Commands the tests need, as command:Debian-package; t/500-analytics-node.t
# runs Segment's analytics-node library with them, t/510-browser.t
# analytics.js in headless Chromium and the reference oracle (t/oracle/),
# t/310-status-destinations.t checks the Prometheus output with promtool.
# A command already on PATH is enough, whatever package it came from
# (NodeSource's nodejs bundles npm and conflicts with Debian's npm package).
CMDS="
node:nodejs
npm:npm
chromium:chromium
promtool:prometheus
"

if [ "${1:-}" = --hint ]; then
    echo "  Install the build dependencies (Debian) with:"
    echo "      make deps-build      (as root: apt-get installs what is missing)"
    echo "  or: apt-get install" $BUILD_PKGS
    echo "  (make deps installs what make test needs as well)"
    exit 0
fi

build_only=no
if [ "${1:-}" = --build ]; then
    build_only=yes
    shift
    PKGS=$BUILD_PKGS
    CMDS=""
fi

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null \
        | grep -q 'install ok installed'
}

missing=""
for p in $PKGS "$@"; do
    if ! installed "$p"; then
        missing="$missing $p"
    fi
done
for c in $CMDS; do
    if ! command -v "${c%%:*}" >/dev/null 2>&1; then
        missing="$missing ${c#*:}"
    fi
done

stop_system_nginx() {
    # Debian's service uses /run/nginx.pid; our tests never do.
    if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null
    then
        echo "deps: stopping the system nginx service"
    fi

    if command -v systemctl >/dev/null 2>&1 \
       && [ -d /run/systemd/system ]
    then
        systemctl disable --now nginx >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1; then
        service nginx stop >/dev/null 2>&1 || true
    fi

    if [ -s /run/nginx.pid ]; then
        pid=$(cat /run/nginx.pid)
        if [ -r "/proc/$pid/cmdline" ] \
           && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q nginx
        then
            kill -QUIT "$pid" 2>/dev/null || true
            i=0
            while [ $i -lt 50 ] && kill -0 "$pid" 2>/dev/null; do
                sleep 0.1
                i=$((i + 1))
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
}

if [ -z "$missing" ]; then
    echo "deps: all packages present"
    if [ "$build_only" = no ]; then
        stop_system_nginx
    fi
    exit 0
fi

echo "deps: missing:$missing"

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: error: installing packages needs root; run as root or:" >&2
    echo "      apt-get install$missing" >&2
    exit 1
fi

# Keep package scripts from starting services (nginx on :80) during the
# install.  Leave an existing policy alone.
policy=/usr/sbin/policy-rc.d
own_policy=no
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# ldseg .ci/deps.sh: no service starts\nexit 101\n' \
        > "$policy"
    chmod 755 "$policy"
    own_policy=yes
fi
trap 'if [ "$own_policy" = yes ]; then rm -f "$policy"; fi' EXIT

# A one-line deb-src entry without the signed-by of Debian's deb822 entry
# makes apt refuse every source list; ours (.ci/static.sh) is rewritten there.
if ! apt-cache policy >/dev/null 2>&1 \
   && [ -f /etc/apt/sources.list.d/ldseg-src.list ]
then
    echo "deps: apt cannot read its sources; removing ldseg-src.list"
    rm -f /etc/apt/sources.list.d/ldseg-src.list
fi

apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing

if [ "$build_only" = no ]; then
    stop_system_nginx
fi

for p in $missing; do
    if ! installed "$p"; then
        echo "deps: error: $p did not install" >&2
        exit 1
    fi
done

echo "deps: installed:$missing"
