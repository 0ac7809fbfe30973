#!/usr/bin/env bash
# The Debian package end to end, on this machine: builds it (debian/build.sh),
# installs it with dpkg -i, checks what it installed (the command, the config
# check as root and as the tollgate user, the user, the unit with systemd-analyze
# verify, the conffiles, logrotate's rules), serves the installed config's catalog
# as the tollgate user (the access log written in /var/log/tollgate, rotated by
# the installed logrotate rules, whose SIGUSR1 makes the gateway start a new
# file; SIGHUP reloads; SIGTERM exits 0), runs lintian on the .deb, then removes
# and purges the package and checks that everything it brought is gone.
#
# One line per check, "PASS name" or "FAIL name: why", then a Criterion-style
# "Synthesis: Tested: N | Passing: N | Failing: N | Crashing: 0" line that
# tests/run.sh counts. Exits 0 if every check passed, 1 otherwise, and 77 (with a
# SKIP line) when it cannot run here: not root, or tollgate already installed (or a
# tollgate user that the package did not make, which its purge would remove).
# Whatever happens, the package is purged and the gateway stopped before exit.
#
#   tests/package.sh [--no-build]     (--no-build: package bazel-bin/gateway/tollgate as it is)
#
# Environment: TG_HTTP_PORT=18180 TG_ADMIN_PORT=18181 (next free ones if taken),
# TG_KEEP=1 keeps the work folder, TG_BAZEL_STARTUP / TG_BAZEL_FLAGS (debian/build.sh).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh

BUILD_ARGS=()
case ${1:-} in
    "") ;;
    --no-build) BUILD_ARGS=(--no-build) ;;
    *) echo "usage: tests/package.sh [--no-build]" >&2; exit 2 ;;
esac

skip() { echo "SKIP package: $*"; exit 77; }
((EUID == 0)) || skip "not root: dpkg -i needs root (run it as root to test the package)"

PASSED=0 FAILED=0 GW_PID=
pass() { PASSED=$((PASSED + 1)); echo "PASS $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $1: $2"; }
check() { # NAME WHY COMMAND...: passes when COMMAND succeeds
    local name=$1 why=$2
    shift 2
    if "$@"; then pass "$name"; else fail "$name" "$why"; fi
}

# dpkg has no lock timeout: another apt-get or dpkg (a concurrent package install)
# holds its lock for a while, so wait for it rather than fail.
dpkg_retry() {
    local i out
    for ((i = 0; i < 60; i++)); do
        if out=$(dpkg "$@" 2>&1); then
            printf '%s\n' "$out" >>"$WORK/dpkg.log"
            return 0
        fi
        printf '%s\n' "$out" >>"$WORK/dpkg.log"
        [[ $out == *"lock"* ]] || { printf '%s\n' "$out" >&2; return 1; }
        sleep 2
    done
    return 1
}

package_status() { dpkg-query -W -f='${db:Status-Status}' tollgate 2>/dev/null || true; }

# Whatever dpkg has of tollgate (installed, half-configured, config files), purged.
purge_package() {
    local st
    st=$(package_status)
    [[ -z $st || $st == not-installed ]] && return 0
    dpkg_retry --purge tollgate || tg_warn "could not purge tollgate: dpkg --purge tollgate (log: $WORK/dpkg.log)"
}

stop_gateway() {
    [[ -n $GW_PID ]] || return 0
    kill -TERM "$GW_PID" 2>/dev/null || true
    local rc=0
    wait "$GW_PID" 2>/dev/null || rc=$?
    GW_PID=
    return "$rc"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_gateway >/dev/null 2>&1 || true
    purge_package
    exec 9>&- # the lock
    tg_finish_work "$WORK" "${TG_KEEP:-0}" "$rc"
}

# One run at a time on this machine (the package, its user and its paths are global).
exec 9>/tmp/tollgate-package.lock
flock -w 600 9 || skip "another tests/package.sh has held /tmp/tollgate-package.lock for 10 minutes"
st=$(package_status)
[[ -z $st || $st == not-installed ]] || skip "tollgate is installed on this machine already ($st; dpkg -s tollgate): not touching it"
getent passwd tollgate >/dev/null && skip "a user tollgate exists already, which the package's purge would remove"
[[ -e /etc/tollgate || -e /var/log/tollgate ]] && skip "/etc/tollgate or /var/log/tollgate exists already"
# From here on the package is ours: the trap purges whatever dpkg has of it.
WORK=$(mktemp -d /tmp/tollgate-package.XXXXXX)
chmod 0755 "$WORK" # the tollgate user reads the config copy in here
tg_trap_cleanup cleanup

# Tools the checks use, installed when missing; without them those checks are skipped
# (with a message), not counted.
optional_tools() {
    local missing=() p
    for p in lintian logrotate; do _tg_pkg_installed "$p" || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    tg_log "installing ${missing[*]} for the package checks"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >"$WORK/apt.log" 2>&1 ||
        { DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$WORK/apt.log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$WORK/apt.log" 2>&1; } ||
        tg_warn "could not install ${missing[*]} (log: $WORK/apt.log)"
}
optional_tools

# ---------------------------------------------------------------------------------
# Build and install

DEB=
if DEB=$(debian/build.sh "${BUILD_ARGS[@]}" --out "$WORK/dist" 2>"$WORK/build.log" | tail -n 1) && [[ -f $DEB ]]; then
    pass build
else
    sed 's/^/    /' "$WORK/build.log"
    fail build "debian/build.sh failed (log above)"
    echo "Synthesis: Tested: $((PASSED + FAILED)) | Passing: $PASSED | Failing: $FAILED | Crashing: 0"
    exit 1
fi
VERSION=$(dpkg-deb -f "$DEB" Version)
ARCH=$(dpkg-deb -f "$DEB" Architecture)
check control "Package/Version/Architecture are not tollgate/TOLLGATE_VERSION/$(dpkg --print-architecture)" \
    test "$(dpkg-deb -f "$DEB" Package) $VERSION $ARCH" == "tollgate $(sed -n 's/^#define TOLLGATE_VERSION "\(.*\)"$/\1/p' include/tollgate.h) $(dpkg --print-architecture)"
depends=$(dpkg-deb -f "$DEB" Depends)
missing_deps=()
for p in libh2o-evloop0.13 libpq5 libjansson4 libjemalloc2 libssl3 adduser; do
    [[ ", $depends," == *", $p "* || ", $depends," == *", $p,"* ]] || missing_deps+=("$p")
done
check depends "Depends lacks ${missing_deps[*]:-} ($depends)" test ${#missing_deps[@]} -eq 0
owners=$(dpkg-deb -c "$DEB" | awk '$2 != "root/root"' | head -n 3 || true)
check root-owned "files not owned by root: $owners" test -z "$owners"

if dpkg_retry -i "$DEB"; then
    pass install
else
    fail install "dpkg -i $DEB failed (log: $WORK/dpkg.log)"
fi

# ---------------------------------------------------------------------------------
# What it installed

out=$(/usr/bin/tollgate --version 2>&1) || true
check version "tollgate --version printed '$out'" test "$out" == "tollgate $VERSION"

check_config() { # AS_USER(root|tollgate)
    local out rc=0
    if [[ $1 == root ]]; then
        out=$(/usr/bin/tollgate --config /etc/tollgate/config.json --check 2>&1) || rc=$?
    else
        out=$(runuser -u tollgate -- /usr/bin/tollgate --config /etc/tollgate/config.json --check 2>&1) || rc=$?
    fi
    [[ $rc == 0 && $out == *"/etc/tollgate/config.json: ok ("*" queries)"* ]] && return 0
    printf '%s\n' "$out" | sed 's/^/    /'
    return 1
}
check config-check "tollgate --config /etc/tollgate/config.json --check failed (above)" check_config root
check config-check-as-tollgate "the tollgate user cannot read the config, the catalog or the log folder (above)" check_config tollgate

user_ok() {
    local entry uid shell
    entry=$(getent passwd tollgate) || return 1
    uid=$(cut -d: -f3 <<<"$entry") shell=$(cut -d: -f7 <<<"$entry")
    getent group tollgate >/dev/null && ((uid < 1000)) && [[ $shell == */nologin || $shell == /bin/false ]]
}
check user "no system user tollgate (uid < 1000, no login shell) and group: $(getent passwd tollgate || echo none)" user_ok
perms=$(stat -c '%U:%G %a' /etc/tollgate/config.json /var/log/tollgate 2>&1 | tr '\n' ' ' || true)
check permissions "config.json and /var/log/tollgate are $perms (want root:tollgate 640, tollgate:tollgate 750)" \
    test "$perms" == "root:tollgate 640 tollgate:tollgate 750 "

unit=/lib/systemd/system/tollgate.service
unit_ok() {
    [[ -f $unit ]] || return 1
    local want
    # shellcheck disable=SC2016 # $MAINPID is the unit's, not ours
    for want in 'Type=exec' 'ExecStart=/usr/bin/tollgate --config /etc/tollgate/config.json' 'ExecReload=/bin/kill -HUP $MAINPID' \
        'User=tollgate' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'LogsDirectory=tollgate' \
        'Restart=on-failure' 'KillSignal=SIGTERM'; do
        grep -qxF "$want" "$unit" || { echo "    $unit has no line $want"; return 1; }
    done
    # The stop timeout must outlast the graceful stop of the packaged config.
    local grace_ms stop_s
    grace_ms=$(sed -n 's/.*"shutdown_grace_ms": *\([0-9]*\).*/\1/p' /etc/tollgate/config.json)
    stop_s=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$unit")
    if [[ -z $grace_ms || -z $stop_s ]] || ((stop_s * 1000 <= grace_ms)); then
        echo "    TimeoutStopSec=${stop_s:-?} is not above shutdown_grace_ms=${grace_ms:-?}"
        return 1
    fi
}
check unit "the unit file is missing or lacks a setting (above)" unit_ok
if command -v systemd-analyze >/dev/null; then
    verify() {
        # Without a running systemd, verify still parses the unit and checks its
        # commands; it may only note what it cannot look at, which is no error here.
        local out rc=0
        out=$(systemd-analyze verify "$unit" 2>&1) || rc=$?
        ((rc == 0)) && return 0
        printf '%s\n' "$out" | sed 's/^/    /'
        return 1
    }
    check systemd-analyze-verify "systemd-analyze verify $unit failed (above)" verify
else
    echo "SKIP systemd-analyze-verify: no systemd-analyze on this machine (apt-get install systemd)"
fi

conffiles=$(dpkg-query -W -f='${Conffiles}' tollgate 2>/dev/null | awk '{ print $1 }' | sort | tr '\n' ' ' || true)
want_conffiles="/etc/logrotate.d/tollgate /etc/tollgate/catalog/debug.json /etc/tollgate/catalog/orders.json /etc/tollgate/catalog/users.json /etc/tollgate/config.json "
check conffiles "conffiles are '$conffiles'" test "$conffiles" == "$want_conffiles"
docs_ok() {
    local f
    for f in /usr/share/doc/tollgate/{README.md,reference.md,copyright,changelog.gz} /usr/share/man/man1/tollgate.1.gz; do
        [[ -s $f ]] || { echo "    no $f"; return 1; }
    done
    cmp -s /usr/share/doc/tollgate/copyright LICENSE
}
check docs "documentation missing (above) or copyright is not LICENSE" docs_ok
check not-started "the package started a gateway" test -z "$(pgrep -u tollgate -x tollgate || true)"

# ---------------------------------------------------------------------------------
# Serving as the tollgate user, with the installed catalog, log folder and logrotate rules

HTTP_PORT=$(tg_pick_port "${TG_HTTP_PORT:-18180}")
ADMIN_PORT=$(tg_pick_port "${TG_ADMIN_PORT:-18181}" "$HTTP_PORT")
# The installed config on free ports (8080 and 9090 may be taken on a shared machine).
sed -e "s/\"port\": 8080/\"port\": $HTTP_PORT/" -e "s/\"port\": 9090/\"port\": $ADMIN_PORT/" \
    /etc/tollgate/config.json >"$WORK/config.json" || fail config-copy "cannot read /etc/tollgate/config.json"
chmod 0644 "$WORK/config.json"
GW_LOG=$WORK/gateway.log
# setpriv execs the gateway (runuser would stay its parent and take the signals).
setpriv --reuid=tollgate --regid=tollgate --init-groups -- /usr/bin/tollgate --config "$WORK/config.json" >"$GW_LOG" 2>&1 &
GW_PID=$!
ACCESS=/var/log/tollgate/access.log

if tg_wait_http "http://127.0.0.1:$HTTP_PORT/healthz" 15 200; then
    pass serve
else
    fail serve "the installed gateway did not answer /healthz as user tollgate (log: $(tail -n 5 "$GW_LOG" | tr '\n' ' '))"
fi

wait_for_line() { # FILE PATTERN SECONDS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
curl -s -o /dev/null -H 'X-Request-Id: pkg-before-rotate' "http://127.0.0.1:$HTTP_PORT/healthz" || true
check access-log "no line for the request in $ACCESS" wait_for_line "$ACCESS" pkg-before-rotate 5
owner=$(stat -c %U "$ACCESS" 2>/dev/null || echo none)
check access-log-owner "$ACCESS belongs to $owner, not tollgate" test "$owner" == tollgate

if command -v logrotate >/dev/null; then
    rotate() {
        logrotate -f -s "$WORK/logrotate.state" /etc/logrotate.d/tollgate >"$WORK/logrotate.log" 2>&1 ||
            { sed 's/^/    /' "$WORK/logrotate.log"; return 1; }
        grep -q pkg-before-rotate "$ACCESS.1" || { echo "    the old lines are not in $ACCESS.1"; return 1; }
        # The postrotate's SIGUSR1: the gateway opens the new file at once and its
        # writer takes it within about 20 ms.
        wait_for_line "$GW_LOG" "access log reopened: $ACCESS" 5 ||
            { echo "    the gateway did not log 'access log reopened' (no SIGUSR1 from the postrotate?)"; return 1; }
        sleep 0.2
        curl -s -o /dev/null -H 'X-Request-Id: pkg-after-rotate' "http://127.0.0.1:$HTTP_PORT/healthz" || true
        wait_for_line "$ACCESS" pkg-after-rotate 5 ||
            { echo "    no line in the new $ACCESS after the rotation (the gateway did not reopen it)"; return 1; }
        ! grep -q pkg-after-rotate "$ACCESS.1"
    }
    check logrotate "the installed logrotate rules did not rotate the access log into a new file (above)" rotate
else
    echo "SKIP logrotate: logrotate is not installed and could not be"
fi

reload_ok() {
    kill -HUP "$GW_PID"
    wait_for_line "$GW_LOG" 'SIGHUP: reloading' 5 && kill -0 "$GW_PID"
}
check reload "SIGHUP (ExecReload) did not reload the gateway" reload_ok
stop_rc=0
stop_gateway || stop_rc=$?
check stop "SIGTERM ended the gateway with status $stop_rc, not 0" test "$stop_rc" == 0

# ---------------------------------------------------------------------------------
# lintian

if command -v lintian >/dev/null; then
    lintian --pedantic --display-info "$DEB" >"$WORK/lintian.log" 2>&1 || true
    grep -v '^running with root privileges' "$WORK/lintian.log" | sed 's/^/    lintian: /' || true
    errors=$(grep -c '^E: ' "$WORK/lintian.log" || true)
    warnings=$(grep -c '^W: ' "$WORK/lintian.log" || true)
    echo "    lintian: $errors error(s), $warnings warning(s)"
    check lintian "lintian reports $errors error(s) (above)" test "$errors" == 0
else
    echo "SKIP lintian: lintian is not installed and could not be"
fi

# ---------------------------------------------------------------------------------
# Remove, then purge

if dpkg_retry -r tollgate; then pass remove; else fail remove "dpkg -r tollgate failed (log: $WORK/dpkg.log)"; fi
removed_ok() {
    local f
    for f in /usr/bin/tollgate "$unit" /usr/share/doc/tollgate /usr/share/man/man1/tollgate.1.gz; do
        [[ ! -e $f ]] || { echo "    $f is still there"; return 1; }
    done
    # Removing keeps what the admin may have changed, until a purge.
    [[ -f /etc/tollgate/config.json ]] || { echo "    dpkg -r removed the conffiles"; return 1; }
}
check removed "dpkg -r left files behind or removed the config (above)" removed_ok

if dpkg_retry --purge tollgate; then pass purge; else fail purge "dpkg --purge tollgate failed (log: $WORK/dpkg.log)"; fi
purged_ok() {
    local f
    for f in /etc/tollgate /etc/logrotate.d/tollgate /var/log/tollgate; do
        [[ ! -e $f ]] || { echo "    $f is still there"; return 1; }
    done
    ! getent passwd tollgate >/dev/null || { echo "    the user tollgate is still there"; return 1; }
    ! getent group tollgate >/dev/null || { echo "    the group tollgate is still there"; return 1; }
    local st
    st=$(package_status)
    [[ -z $st || $st == not-installed ]] || { echo "    dpkg still has tollgate ($st)"; return 1; }
}
check purged "dpkg --purge left something behind (above)" purged_ok

echo "Synthesis: Tested: $((PASSED + FAILED)) | Passing: $PASSED | Failing: $FAILED | Crashing: 0"
((FAILED == 0))
