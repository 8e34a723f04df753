#!/bin/sh
#
# Build nginx 1.22.1 from Debian's source package with ldseg compiled in
# (--add-module): `make static` installs it under build/static, `make asan`
# (SANITIZE=1) builds it with AddressSanitizer and UBSan under build/asan.
#
# The source is fetched once with `apt-get source nginx` into build/ and
# reused; configure runs again only when its arguments or the module's
# `config` change.  Compiler output goes to log files, whose tail is printed
# when a step fails.

set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)

export DEBIAN_FRONTEND=noninteractive

NGX_VERSION=1.22.1
SRC=$ROOT/build/nginx-$NGX_VERSION

if [ "${SANITIZE:-0}" = 1 ]; then
    NAME=asan
    CC_OPT='-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1'
    LD_OPT='-fsanitize=address,undefined'
else
    NAME=static
    CC_OPT='-g -O2'
    LD_OPT=''
fi

PREFIX=$ROOT/build/$NAME
OBJS=$ROOT/build/$NAME-objs
LOG=$ROOT/build/$NAME-build.log

mkdir -p "$ROOT/build"

say() {
    echo "static: $*"
}

fail() {
    echo "static: error: $*" >&2
    exit 1
}

run_logged() {
    # run_logged WHAT COMMAND...: append output to $LOG, tail it on failure
    what=$1
    shift
    echo "=== $what: $*" >> "$LOG"
    if ! "$@" >> "$LOG" 2>&1; then
        echo "static: $what failed; last lines of $LOG:" >&2
        tail -n 40 "$LOG" >&2
        exit 1
    fi
}

as_root() {
    if [ "$(id -u)" -ne 0 ]; then
        fail "need root to run: $*"
    fi
    "$@"
}

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null \
        | grep -q 'install ok installed'
}


# --- the source package ------------------------------------------------------

# Debian's deb822 entry carries Signed-By; a deb-src line for the same
# archive must name the same keyring or apt refuses all of its sources.
ensure_deb_src() {
    list=/etc/apt/sources.list.d/ldseg-src.list
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg

    if grep -rqsE '^[^#]*deb-src' /etc/apt/sources.list \
           /etc/apt/sources.list.d/*.sources \
           /etc/apt/sources.list.d/*.list \
       && apt-cache policy >/dev/null 2>&1
    then
        return 0
    fi

    for opt in "[signed-by=$keyring] " ""; do
        echo "deb-src ${opt}http://deb.debian.org/debian bookworm main" \
            | as_root tee "$list" > /dev/null
        if apt-cache policy >/dev/null 2>&1; then
            say "added $list"
            return 0
        fi
    done

    as_root rm -f "$list"
    fail "cannot add a deb-src entry apt accepts (see apt-cache policy)"
}

fetch_source() {
    if [ -x "$SRC/configure" ] && [ -f "$SRC/src/core/nginx.c" ]; then
        say "source: $SRC (cached)"
        return 0
    fi

    if ! installed dpkg-dev; then
        say "installing dpkg-dev"
        as_root apt-get update -qq
        as_root apt-get install -y -qq --no-install-recommends dpkg-dev
    fi

    ensure_deb_src

    if ! apt-cache showsrc nginx 2>/dev/null | grep -q "^Version: $NGX_VERSION"
    then
        say "apt-get update (source index)"
        as_root apt-get update -qq
    fi

    # The exact version of the installed nginx if the archive has its
    # source, else the newest 1.22.1 bookworm has.
    have=$(dpkg-query -W -f='${Version}' nginx 2>/dev/null || true)
    if [ -n "$have" ] \
       && apt-cache showsrc nginx 2>/dev/null | grep -qx "Version: $have"
    then
        pkg="nginx=$have"
    else
        pkg=nginx
    fi

    tmp=$ROOT/build/nginx-source.tmp
    rm -rf "$tmp"
    mkdir -p "$tmp"
    say "apt-get source $pkg"
    if ! (cd "$tmp" && apt-get source -qq "$pkg") >> "$LOG" 2>&1; then
        tail -n 20 "$LOG" >&2
        fail "apt-get source $pkg failed"
    fi

    [ -x "$tmp/nginx-$NGX_VERSION/configure" ] \
        || fail "no nginx-$NGX_VERSION in the source package"

    rm -rf "$SRC"
    mv "$tmp/nginx-$NGX_VERSION" "$SRC"
    rm -rf "$tmp"
    say "source: $SRC ($(dpkg-parsechangelog -l "$SRC/debian/changelog" \
        -S Version 2>/dev/null || echo "$NGX_VERSION"))"
}


# --- build -------------------------------------------------------------------

: > "$LOG"
start=$(date +%s)

fetch_source

set -- \
    --prefix="$PREFIX" \
    --builddir="$OBJS" \
    --with-debug \
    --with-threads \
    --with-pcre-jit \
    --with-http_ssl_module \
    --with-http_v2_module \
    --with-http_realip_module \
    --with-http_stub_status_module \
    --with-http_auth_request_module \
    --add-module="$ROOT" \
    --with-cc-opt="$CC_OPT" \
    ${LD_OPT:+--with-ld-opt="$LD_OPT"}

args="$*"
stamp=$OBJS/ldseg-configure-args

if [ -f "$OBJS/Makefile" ] && [ -f "$stamp" ] \
   && [ "$(cat "$stamp")" = "$args" ] \
   && [ -z "$(find "$ROOT/config" -newer "$OBJS/Makefile")" ]
then
    say "configure: up to date ($OBJS)"
else
    say "configure ($NAME)"
    rm -rf "$OBJS"
    run_logged configure sh -c 'cd "$1" && shift && ./configure "$@"' \
        sh "$SRC" "$@"
    echo "$args" > "$stamp"
fi

say "make ($LOG)"
run_logged make make -C "$SRC" -f "$OBJS/Makefile" -j"${JOBS:-2}"
run_logged install make -C "$SRC" -f "$OBJS/Makefile" install

BIN=$PREFIX/sbin/nginx
"$BIN" -V 2>&1 | grep -q -- "--add-module=$ROOT" \
    || fail "$BIN -V does not show --add-module=$ROOT"

say "built $BIN in $(( $(date +%s) - start ))s"
"$BIN" -V 2>&1 | sed 's/^/    /'
