#!/bin/sh
#
# `make deb`: build the Debian package libnginx-mod-http-ldseg from debian/
# (debhelper with dh_nginx from nginx-dev, as Debian builds its own
# libnginx-mod-* packages) into
#
#     build/libnginx-mod-http-ldseg_<version>_<arch>.deb
#
# dpkg-buildpackage writes its results to the parent of the tree it builds,
# so the sources the package needs are copied to build/deb/<name>-<version>/
# and built there: nothing is written to the source tree or above it.  The
# build log is build/deb/build.log; the debug symbols package, .buildinfo
# and .changes stay in build/deb/.

set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)

PKG=libnginx-mod-http-ldseg
OUT=$ROOT/build/deb
LOG=$OUT/build.log

say() {
    echo "deb: $*"
}

fail() {
    echo "deb: error: $*" >&2
    exit 1
}

for c in dpkg-buildpackage dpkg-parsechangelog dh dh_nginx; do
    if ! command -v "$c" >/dev/null 2>&1; then
        fail "$c not found; install the build dependencies with" \
             "\`make deps\` (as root) or:
       apt-get install dpkg-dev debhelper nginx-dev libcjson-dev libcurl4-openssl-dev zlib1g-dev"
    fi
done

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
arch=$(dpkg --print-architecture)

# the package's version is the module's (User-Agent, status page)
src_version=$(sed -n 's/^#define LDSEG_VERSION  *"\(.*\)"$/\1/p' src/ldseg.h)
case "$version" in
    "$src_version" | "$src_version"-*) ;;
    *) fail "debian/changelog says $version, src/ldseg.h $src_version" ;;
esac

stage=$OUT/$PKG-$version
rm -rf "$OUT"
mkdir -p "$stage"

# what the package is built from: the module's sources, debian/ and the
# files it installs (README.md, conf/); not build/ or the tests
cp -R config ngx_http_ldseg_module.c src debian README.md conf docs "$stage/"

cd "$stage"

if ! dpkg-checkbuilddeps > "$LOG" 2>&1; then
    cat "$LOG" >&2
    fail "missing build dependencies; \`make deps\` (as root) installs them"
fi

say "dpkg-buildpackage -b in $stage (log: $LOG)"
if ! nice dpkg-buildpackage -b -us -uc >> "$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    fail "dpkg-buildpackage failed; the whole log is $LOG"
fi

deb=${PKG}_${version}_${arch}.deb
[ -f "$OUT/$deb" ] || fail "dpkg-buildpackage made no $OUT/$deb"
mv -f "$OUT/$deb" "$ROOT/build/$deb"

say "built build/$deb"
dpkg-deb --info "$ROOT/build/$deb" | sed -n 's/^ \(Depends\|Version\):/    \1:/p'
