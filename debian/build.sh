#!/usr/bin/env bash
# Builds the Debian package of tollgate from this tree, with no network (Bazel is
# offline; see .bazelrc and bazel/): the binary (bazel build //gateway:tollgate),
# then a .deb assembled with dpkg-deb --build --root-owner-group from debian/.
# Prints the .deb's path as the last line of stdout.
#
#   debian/build.sh [--no-build] [--out DIR]
#
#   --no-build   package the binary as it is (TG_GATEWAY_BIN, default
#                bazel-bin/gateway/tollgate) instead of building it
#   --out DIR    where the .deb goes (default dist/)
#
# What goes where:
#   /usr/bin/tollgate                       the command (stripped)
#   /etc/tollgate/config.json               debian/config.json (conffile)
#   /etc/tollgate/catalog/*.json            config/catalog/ (conffiles)
#   /lib/systemd/system/tollgate.service    debian/tollgate.service
#   /etc/logrotate.d/tollgate               debian/logrotate (conffile)
#   /usr/share/man/man1/tollgate.1.gz       debian/tollgate.1
#   /usr/share/doc/tollgate/                README.md, docs/reference.md, LICENSE as
#                                           copyright, debian/changelog
# Version: TOLLGATE_VERSION of include/tollgate.h (debian/changelog must agree);
# Architecture: dpkg --print-architecture; Depends: adduser, procps and what
# dpkg-shlibdeps finds for the libraries the binary links.
#
# Environment: TG_BAZEL_STARTUP / TG_BAZEL_FLAGS (as tests/run.sh),
# TG_GATEWAY_BIN (with --no-build), SOURCE_DATE_EPOCH (file times; default the
# last commit's time), TG_KEEP=1 keeps the staging folder.

set -euo pipefail
CALLER_DIR=$PWD
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh

BUILD=1 OUT=$TG_ROOT/dist
while (($#)); do
    case $1 in
        --no-build) BUILD=0 ;;
        --out) OUT=${2:?--out needs a folder}; [[ $OUT == /* ]] || OUT=$CALLER_DIR/$OUT; shift ;;
        -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: debian/build.sh [--no-build] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done

# What building and packaging need (not the test tools of tests/run.sh).
# shellcheck disable=SC2034 # read by tg_ensure_packages
TG_PACKAGES=(bazel-bootstrap libh2o-evloop-dev libjansson-dev libjemalloc-dev libpq-dev dpkg-dev binutils)
tg_ensure_packages

VERSION=$(sed -n 's/^#define TOLLGATE_VERSION "\(.*\)"$/\1/p' include/tollgate.h)
[[ -n $VERSION ]] || tg_die "no TOLLGATE_VERSION in include/tollgate.h"
CHANGELOG_VERSION=$(sed -n '1s/^tollgate (\([^)]*\)).*/\1/p' debian/changelog)
[[ $CHANGELOG_VERSION == "$VERSION" ]] ||
    tg_die "debian/changelog starts at ${CHANGELOG_VERSION:-nothing}, include/tollgate.h says $VERSION: add a changelog entry"
ARCH=$(dpkg --print-architecture)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

WORK=$(mktemp -d /tmp/tollgate-deb.XXXXXX)
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    tg_finish_work "$WORK" "${TG_KEEP:-0}" "$rc"
}
tg_trap_cleanup cleanup

BIN=${TG_GATEWAY_BIN:-$TG_ROOT/bazel-bin/gateway/tollgate}
if ((BUILD)); then
    read -r -a BAZEL_STARTUP <<<"${TG_BAZEL_STARTUP:-}"
    read -r -a BAZEL_FLAGS <<<"${TG_BAZEL_FLAGS:-}"
    tg_log "building //gateway:tollgate (log: $WORK/build.log)"
    bazel "${BAZEL_STARTUP[@]}" --batch build "${BAZEL_FLAGS[@]}" //gateway:tollgate >"$WORK/build.log" 2>&1 ||
        { tail -n 30 "$WORK/build.log" >&2; tg_die "bazel build //gateway:tollgate failed"; }
fi
[[ -x $BIN ]] || tg_die "no gateway binary at $BIN"

# The staging tree is debian/tollgate, the folder dpkg-shlibdeps expects a package's files in.
umask 022
PKG=$WORK/debian/tollgate DOC=usr/share/doc/tollgate
install -d "$PKG/DEBIAN" "$PKG/usr/bin" "$PKG/etc/tollgate/catalog" "$PKG/etc/logrotate.d" \
    "$PKG/lib/systemd/system" "$PKG/usr/share/man/man1" "$PKG/$DOC"
install -m 0755 "$BIN" "$PKG/usr/bin/tollgate"
# As dh_strip does: no debug sections or comments in the installed binary.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$PKG/usr/bin/tollgate"
install -m 0644 debian/config.json "$PKG/etc/tollgate/config.json"
install -m 0644 config/catalog/*.json "$PKG/etc/tollgate/catalog/"
install -m 0644 debian/tollgate.service "$PKG/lib/systemd/system/tollgate.service"
install -m 0644 debian/logrotate "$PKG/etc/logrotate.d/tollgate"
sed "s/@VERSION@/$VERSION/" debian/tollgate.1 | gzip -9n >"$PKG/usr/share/man/man1/tollgate.1.gz"
install -m 0644 README.md docs/reference.md "$PKG/$DOC/"
install -m 0644 LICENSE "$PKG/$DOC/copyright"
gzip -9n <debian/changelog >"$PKG/$DOC/changelog.gz"
install -m 0755 debian/postinst debian/prerm debian/postrm "$PKG/DEBIAN/"

# Depends: the packages whose libraries the binary links, with the versions their
# symbols need. dpkg-shlibdeps reads a source control file from ./debian.
printf 'Source: tollgate\n\nPackage: tollgate\nArchitecture: any\n' >"$WORK/debian/control"
SHLIBS=$(cd "$WORK" && dpkg-shlibdeps -O -e debian/tollgate/usr/bin/tollgate 2>"$WORK/shlibdeps.log" |
    sed -n 's/^shlibs:Depends=//p') || true
[[ -n $SHLIBS ]] || { cat "$WORK/shlibdeps.log" >&2; tg_die "dpkg-shlibdeps found no dependencies"; }
for lib in libh2o-evloop0.13 libpq5 libjansson4 libjemalloc2 libssl3; do
    [[ $SHLIBS == *"$lib "* || $SHLIBS == *"$lib," || $SHLIBS == *"$lib" ]] ||
        tg_die "dpkg-shlibdeps did not list $lib (got: $SHLIBS)"
done

(cd "$PKG" && find etc -type f | sort | sed 's|^|/|') >"$PKG/DEBIAN/conffiles"
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$PKG/DEBIAN/md5sums"
SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" -e "s/@SHLIBS@/$SHLIBS/" \
    debian/control.in >"$PKG/DEBIAN/control"
chmod 0644 "$PKG/DEBIAN/control" "$PKG/DEBIAN/conffiles" "$PKG/DEBIAN/md5sums"
find "$PKG" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$OUT"
DEB=$OUT/tollgate_${VERSION}_$ARCH.deb
dpkg-deb --root-owner-group --build "$PKG" "$DEB" >&2
tg_log "built $DEB (Depends: adduser, procps, $SHLIBS)"
echo "$DEB"
