#!/usr/bin/env bash
# A throwaway Redis (Debian's redis-server 7.0) on 127.0.0.1, for the tests, the
# benchmarks and the demo of shared_limits. It lives in one `mktemp -d` folder (its
# pid file, log and env file); nothing is persisted (--save '' --appendonly no), so
# a restart starts empty, as a Redis restarted without persistence does. Nothing
# touches Debian's own service (/etc/redis, port 6379). Root is fine for Redis.
#
# Sourced (the scripts do this):
#     source tests/redis.sh
#     redis_start          # exports TG_REDIS_PORT TG_REDIS_URL TG_REDIS_DIR
#     redis_kill           # SIGKILL: a crash (the folder stays, the port is free)
#     redis_restart        # starts it again on the same port (empty)
#     redis_cli ARGS...    # redis-cli against it
#     redis_stop           # shuts it down and removes the folder
#
# Standalone:
#     eval "$(tests/redis.sh start)"     # prints export lines; the server keeps running
#     tests/redis.sh kill | restart | status
#     tests/redis.sh stop                # these find the server through TG_REDIS_DIR
#     tests/redis.sh run CMD ARGS...     # start, run CMD with the env, stop
#
# Environment (inputs):
#     TG_REDIS_PORT=16379        preferred port (next free if taken)
#     TG_REDIS_BIN=/usr/bin/redis-server  TG_REDIS_CLI=/usr/bin/redis-cli
#     TG_REDIS_START_S=10        seconds to wait for PONG
# Exported by redis_start:
#     TG_REDIS_DIR  TG_REDIS_PORT  TG_REDIS_URL (redis://127.0.0.1:PORT/0)

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TG_REDIS_BIN=${TG_REDIS_BIN:-/usr/bin/redis-server}
TG_REDIS_CLI=${TG_REDIS_CLI:-/usr/bin/redis-cli}

# redis-cli against our server, every call bounded (a stopped server must not hang a script).
redis_cli() {
    timeout -k 1 5 "$TG_REDIS_CLI" -h 127.0.0.1 -p "$TG_REDIS_PORT" "$@"
}

_redis_write_env() {
    TG_REDIS_URL=redis://127.0.0.1:$TG_REDIS_PORT/0
    export TG_REDIS_DIR TG_REDIS_PORT TG_REDIS_URL
    {
        printf 'export TG_REDIS_DIR=%q\n' "$TG_REDIS_DIR"
        printf 'export TG_REDIS_PORT=%q\n' "$TG_REDIS_PORT"
        printf 'export TG_REDIS_URL=%q\n' "$TG_REDIS_URL"
    } >"$TG_REDIS_DIR/env.sh"
}

# The server's pid from its pid file, if that process is still our redis-server (a
# pid file left by a crash may name a pid reused since); nothing otherwise.
_redis_pid() {
    local pid
    pid=$(cat "$TG_REDIS_DIR/redis.pid" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -Eq "redis-server.*:$TG_REDIS_PORT( |$)" || return 1
    echo "$pid"
}

_redis_up() { [[ $(redis_cli ping 2>/dev/null) == PONG ]]; }

# Starts redis-server on TG_REDIS_PORT with the folder TG_REDIS_DIR; waits for PONG.
# Returns 2 when the port could not be bound: a port with no listener may still be
# held (a connection of the ephemeral range in TIME-WAIT on it, say).
_redis_launch() {
    rm -f "$TG_REDIS_DIR/redis.pid" "$TG_REDIS_DIR/redis.log"
    if ! (cd "$TG_REDIS_DIR" && "$TG_REDIS_BIN" --bind 127.0.0.1 --port "$TG_REDIS_PORT" \
        --protected-mode yes --unixsocket '' --dir "$TG_REDIS_DIR" --save '' --appendonly no \
        --daemonize yes --pidfile "$TG_REDIS_DIR/redis.pid" --logfile "$TG_REDIS_DIR/redis.log" \
        --loglevel warning) >"$TG_REDIS_DIR/start.out" 2>&1; then
        tg_warn "redis-server did not start:"
        sed 's/^/    /' "$TG_REDIS_DIR/start.out" "$TG_REDIS_DIR/redis.log" >&2 2>/dev/null
        return 1
    fi
    local deadline=$((SECONDS + ${TG_REDIS_START_S:-10}))
    while ((SECONDS < deadline)); do
        _redis_up && return 0
        grep -q 'Failed listening on port' "$TG_REDIS_DIR/redis.log" 2>/dev/null && return 2
        sleep 0.1
    done
    tg_warn "Redis does not answer PING on port $TG_REDIS_PORT after ${TG_REDIS_START_S:-10} s; the end of its log:"
    tail -n 20 "$TG_REDIS_DIR/redis.log" 2>/dev/null | sed 's/^/    /' >&2
    _redis_halt
    return 1
}

# Stops the server (SHUTDOWN NOSAVE, then SIGKILL by the pid file after 5 s); no
# error if it is not running. Keeps the folder.
_redis_halt() {
    local pid deadline
    pid=$(_redis_pid) || return 0
    redis_cli shutdown nosave >/dev/null 2>&1 || true
    deadline=$((SECONDS + 5))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        tg_warn "redis-server (pid $pid) did not shut down; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$TG_REDIS_DIR/redis.pid"
}

redis_start() {
    [[ -x $TG_REDIS_BIN && -x $TG_REDIS_CLI ]] ||
        tg_die "no redis-server / redis-cli ($TG_REDIS_BIN, $TG_REDIS_CLI): run tg_ensure_packages (package redis-server)"
    TG_REDIS_DIR=$(mktemp -d "${TG_REDIS_PARENT:-/tmp}/tollgate-redis.XXXXXX") || tg_die "mktemp failed"
    chmod 700 "$TG_REDIS_DIR"
    local tries=0 rc skip=()
    TG_REDIS_PORT=${TG_REDIS_PORT:-16379}
    while :; do
        TG_REDIS_PORT=$(tg_pick_port "$TG_REDIS_PORT" ${skip[@]+"${skip[@]}"})
        _redis_write_env
        _redis_launch && rc=0 || rc=$?
        ((rc == 2 && ++tries < 5)) || break
        tg_log "Redis could not bind port $TG_REDIS_PORT; trying the next one"
        skip+=("$TG_REDIS_PORT")
    done
    if ((rc == 2)); then
        tg_warn "Redis could not bind a port after $tries tries; the end of its log:"
        tail -n 5 "$TG_REDIS_DIR/redis.log" 2>/dev/null | sed 's/^/    /' >&2
    fi
    ((rc == 0)) || return 1
    tg_log "Redis $("$TG_REDIS_BIN" --version | awk '{ print $3 }' | sed 's/^v=//') on $TG_REDIS_URL (folder $TG_REDIS_DIR, no persistence)"
}

# Stops the server and removes the folder (only a folder redis_start made).
redis_stop() {
    [[ -n ${TG_REDIS_DIR:-} && -d $TG_REDIS_DIR ]] || return 0
    case $TG_REDIS_DIR in
        */tollgate-redis.*) ;;
        *) tg_warn "not removing $TG_REDIS_DIR: not a folder made by redis_start"; return 1 ;;
    esac
    _redis_halt
    rm -rf "$TG_REDIS_DIR"
    tg_log "Redis stopped, $TG_REDIS_DIR removed"
    TG_REDIS_DIR=
}

# A crash: SIGKILL, and wait until the process is gone (its port is then free).
redis_kill() {
    local pid deadline
    pid=$(_redis_pid) || return 0
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 5))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    rm -f "$TG_REDIS_DIR/redis.pid"
}

# Starts it again on the same port, stopping it first if it runs; it comes back empty.
redis_restart() {
    _redis_halt
    tg_port_free "$TG_REDIS_PORT" || { tg_warn "port $TG_REDIS_PORT is taken: cannot restart Redis there"; return 1; }
    _redis_launch
}

redis_status() {
    if _redis_up; then
        echo "redis port=$TG_REDIS_PORT up pid=$(_redis_pid || echo '?') keys=$(redis_cli dbsize)"
    else
        echo "redis port=$TG_REDIS_PORT down"
    fi
}

# ---------------------------------------------------------------------------------
# Standalone use

_redis_load_env() {
    [[ -n ${TG_REDIS_DIR:-} && -f $TG_REDIS_DIR/env.sh ]] ||
        tg_die "set TG_REDIS_DIR to the folder printed by 'tests/redis.sh start'"
    # shellcheck disable=SC1091
    source "$TG_REDIS_DIR/env.sh"
}

_redis_main() {
    local cmd=${1:-}
    shift || true
    case $cmd in
        start)
            redis_start >&2 || { redis_stop >&2; exit 1; }
            cat "$TG_REDIS_DIR/env.sh"
            ;;
        stop) _redis_load_env && redis_stop ;;
        kill) _redis_load_env && redis_kill ;;
        restart) _redis_load_env && redis_restart ;;
        status) _redis_load_env && redis_status ;;
        run)
            (($# > 0)) || tg_die "usage: tests/redis.sh run CMD [ARGS...]"
            trap 'redis_stop' EXIT
            trap 'exit 130' INT TERM
            redis_start || exit 1
            "$@"
            ;;
        *)
            echo "usage: tests/redis.sh start|stop|kill|restart|status|run CMD..." >&2
            exit 2
            ;;
    esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    _redis_main "$@"
fi
