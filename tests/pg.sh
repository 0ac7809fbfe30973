#!/usr/bin/env bash
# A throwaway PostgreSQL 15 primary and a streaming replica on 127.0.0.1, for tests,
# benchmarks and the demo. Both live in one `mktemp -d` folder owned by `postgres`
# (the server refuses to run as root); nothing touches Debian's own cluster
# (/var/lib/postgresql/15/main, port 5432).
#
# Sourced (the scripts do this):
#     source tests/pg.sh
#     pg_start            # primary + sample data + replica; exports TG_PRIMARY_DSN ...
#     pg_stop_replica / pg_start_replica / pg_stop_primary / pg_start_primary
#     pg_promote_replica / pg_rebuild_replica   (failover, and back)
#     pg_stop             # stops both and removes the folder
#
# Standalone:
#     eval "$(tests/pg.sh start)"        # prints export lines; servers keep running
#     tests/pg.sh stop-replica | start-replica | stop-primary | start-primary | status
#                  promote-replica | rebuild-replica
#     tests/pg.sh stop                   # these find the servers through TG_PG_DIR
#     tests/pg.sh run CMD ARGS...        # start, run CMD with the env, stop
#
# Environment (inputs):
#     TG_PG_PORT=55432 TG_PG_REPLICA_PORT=55433   preferred ports (next free if taken)
#     TG_SAMPLE_USERS=1000000   rows in users for config/sample (orders: twice that);
#                               0 loads the schema only; "none" loads nothing
#     TG_PG_REPLICA=1           0: primary only (TG_REPLICA_DSN is then empty)
#     TG_PG_BIN=/usr/lib/postgresql/15/bin
# Exported by pg_start:
#     TG_PG_DIR  TG_PG_PORT  TG_PG_REPLICA_PORT  TG_PRIMARY_DSN  TG_REPLICA_DSN
#     (DSNs like "host=127.0.0.1 port=55432 dbname=app user=tollgate")

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TG_PG_BIN=${TG_PG_BIN:-/usr/lib/postgresql/15/bin}
TG_PG_USER=tollgate # the role the gateway connects as
TG_PG_DB=app

# Runs a server-side command as `postgres` when we are root (initdb, pg_ctl and
# pg_basebackup refuse root), from inside the temp folder so that it never needs to
# read the current directory (which may be the repo, unreadable to postgres).
_pg_as_owner() {
    if ((EUID == 0)); then
        (cd "$TG_PG_DIR" && runuser -u postgres -- "$@")
    else
        (cd "$TG_PG_DIR" && "$@")
    fi
}

# psql as the superuser over TCP; SQL comes on stdin or with -c. Runs as the calling
# user (trust authentication), so it may read files the server could not.
_pg_psql() {
    local port=$1
    shift
    PGCONNECT_TIMEOUT=5 "$TG_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" \
        -U postgres -d "${TG_PG_PSQL_DB:-$TG_PG_DB}" "$@"
}

# One value from a query: _pg_value PORT SQL
_pg_value() { _pg_psql "$1" -At -c "$2" 2>/dev/null; }

_pg_primary_dir() { echo "$TG_PG_DIR/primary"; }
_pg_replica_dir() { echo "$TG_PG_DIR/replica"; }

# Writes the export lines for the current state (also kept in $TG_PG_DIR/env.sh so
# that the standalone commands find the servers again).
_pg_write_env() {
    TG_PRIMARY_DSN="host=127.0.0.1 port=$TG_PG_PORT dbname=$TG_PG_DB user=$TG_PG_USER"
    TG_REPLICA_DSN=
    if [[ ${TG_PG_REPLICA:-1} != 0 ]]; then
        TG_REPLICA_DSN="host=127.0.0.1 port=$TG_PG_REPLICA_PORT dbname=$TG_PG_DB user=$TG_PG_USER"
    fi
    export TG_PG_DIR TG_PG_PORT TG_PG_REPLICA_PORT TG_PRIMARY_DSN TG_REPLICA_DSN
    {
        printf 'export TG_PG_DIR=%q\n' "$TG_PG_DIR"
        printf 'export TG_PG_PORT=%q\n' "$TG_PG_PORT"
        printf 'export TG_PG_REPLICA_PORT=%q\n' "$TG_PG_REPLICA_PORT"
        printf 'export TG_PG_REPLICA=%q\n' "${TG_PG_REPLICA:-1}"
        printf 'export TG_PRIMARY_DSN=%q\n' "$TG_PRIMARY_DSN"
        printf 'export TG_REPLICA_DSN=%q\n' "$TG_REPLICA_DSN"
    } >"$TG_PG_DIR/env.sh"
}

# pg_ctl start for one data dir; waits until it accepts connections.
_pg_ctl_start() {
    local dir=$1 name=$2
    if ! _pg_as_owner "$TG_PG_BIN/pg_ctl" start -D "$dir" -l "$TG_PG_DIR/$name.log" \
        -w -t 60 >/dev/null; then
        tg_warn "PostgreSQL ($name) did not start; the end of $TG_PG_DIR/$name.log:"
        tail -n 20 "$TG_PG_DIR/$name.log" | sed 's/^/    /' >&2
        return 1
    fi
}

# pg_ctl stop for one data dir (mode fast or immediate); no error if it is not running.
_pg_ctl_stop() {
    local dir=$1 mode=${2:-fast}
    [[ -f $dir/postmaster.pid ]] || return 0
    _pg_as_owner "$TG_PG_BIN/pg_ctl" stop -D "$dir" -m "$mode" -w -t 30 >/dev/null 2>&1 && return 0
    _pg_as_owner "$TG_PG_BIN/pg_ctl" stop -D "$dir" -m immediate -w -t 30 >/dev/null 2>&1 && return 0
    # last resort: the postmaster's own pid (first line of postmaster.pid)
    local pid
    pid=$(head -n 1 "$dir/postmaster.pid" 2>/dev/null) || return 0
    [[ $pid =~ ^[0-9]+$ ]] && kill -KILL "$pid" 2>/dev/null
    return 0
}

# Waits until the primary reports a streaming replica and the replica answers
# queries in recovery.
_pg_wait_streaming() {
    local deadline=$((SECONDS + ${1:-60}))
    while ((SECONDS < deadline)); do
        if [[ $(_pg_value "$TG_PG_PORT" \
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") -ge 1 ]] &&
            [[ $(_pg_value "$TG_PG_REPLICA_PORT" "SELECT pg_is_in_recovery()") == t ]]; then
            return 0
        fi
        sleep 0.2
    done
    tg_warn "the replica is not streaming; the end of $TG_PG_DIR/replica.log:"
    tail -n 20 "$TG_PG_DIR/replica.log" | sed 's/^/    /' >&2
    return 1
}

# Waits until the replica has replayed everything the primary has written so far.
pg_wait_replica_caught_up() {
    [[ ${TG_PG_REPLICA:-1} != 0 ]] || return 0
    local lsn deadline=$((SECONDS + ${1:-120}))
    lsn=$(_pg_value "$TG_PG_PORT" "SELECT pg_current_wal_lsn()") || return 1
    while ((SECONDS < deadline)); do
        [[ $(_pg_value "$TG_PG_REPLICA_PORT" \
            "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn") == t ]] && return 0
        sleep 0.2
    done
    tg_warn "the replica did not catch up to $lsn"
    return 1
}

# Loads config/sample/schema.sql and, with TG_SAMPLE_USERS users (0: none), the
# generated data (config/sample/data.sql) into the primary. The files are piped
# through psql's stdin: the server never reads the repo.
pg_load_sample() {
    local users=${TG_SAMPLE_USERS:-1000000} t0=$SECONDS
    [[ $users == none ]] && return 0
    [[ $users =~ ^[0-9]+$ ]] || tg_die "TG_SAMPLE_USERS must be a number or none, not '$users'"
    _pg_psql "$TG_PG_PORT" <"$TG_ROOT/config/sample/schema.sql" >/dev/null || return 1
    if ((users > 0)); then
        tg_log "loading sample data: $users users, $((2 * users)) orders"
        _pg_psql "$TG_PG_PORT" -v users="$users" <"$TG_ROOT/config/sample/data.sql" >/dev/null ||
            return 1
    fi
    tg_log "sample loaded in $((SECONDS - t0)) s"
}

# Starts the primary (initdb on first use), creates role and database, loads the
# sample, then makes and starts the replica. Exports the TG_* variables above.
pg_start() {
    [[ -x $TG_PG_BIN/initdb ]] || tg_die "no PostgreSQL 15 in $TG_PG_BIN (run tg_ensure_packages)"
    if ((EUID == 0)) && ! id postgres >/dev/null 2>&1; then
        tg_die "no 'postgres' user to run the server as (install the postgresql package)"
    fi
    TG_PG_DIR=$(mktemp -d "${TG_PG_PARENT:-/tmp}/tollgate-pg.XXXXXX") || tg_die "mktemp failed"
    chmod 700 "$TG_PG_DIR"
    ((EUID == 0)) && chown postgres: "$TG_PG_DIR"
    mkdir -p "$TG_PG_DIR/sock" && ((EUID == 0)) && chown postgres: "$TG_PG_DIR/sock"

    TG_PG_PORT=$(tg_pick_port "${TG_PG_PORT:-55432}")
    TG_PG_REPLICA_PORT=$(tg_pick_port "${TG_PG_REPLICA_PORT:-55433}" "$TG_PG_PORT")
    _pg_write_env

    local primary replica
    primary=$(_pg_primary_dir) replica=$(_pg_replica_dir)
    local where="primary on port $TG_PG_PORT"
    [[ ${TG_PG_REPLICA:-1} != 0 ]] && where+=", replica on port $TG_PG_REPLICA_PORT"
    tg_log "PostgreSQL in $TG_PG_DIR: $where"

    _pg_as_owner "$TG_PG_BIN/initdb" -D "$primary" -A trust -U postgres -E UTF8 \
        --locale=C.UTF-8 >"$TG_PG_DIR/initdb.log" 2>&1 ||
        { cat "$TG_PG_DIR/initdb.log" >&2; tg_warn "initdb failed"; return 1; }
    # Throwaway servers: fsync off (a crash of the machine loses them anyway).
    cat >>"$primary/postgresql.conf" <<EOF

# --- tollgate test server (tests/pg.sh) ---
listen_addresses = '127.0.0.1'
port = $TG_PG_PORT
unix_socket_directories = '$TG_PG_DIR/sock'
max_connections = 200
shared_buffers = 256MB
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 1GB
max_wal_size = 4GB
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
fsync = off
synchronous_commit = off
full_page_writes = off
cluster_name = 'tg_primary'
log_min_messages = warning
log_checkpoints = off
EOF
    _pg_ctl_start "$primary" primary || return 1

    TG_PG_PSQL_DB=postgres _pg_psql "$TG_PG_PORT" >/dev/null <<EOF || return 1
CREATE ROLE $TG_PG_USER LOGIN;
GRANT pg_monitor TO $TG_PG_USER;
CREATE DATABASE $TG_PG_DB OWNER $TG_PG_USER;
EOF
    pg_load_sample || { tg_warn "loading the sample failed"; return 1; }

    if [[ ${TG_PG_REPLICA:-1} != 0 ]]; then
        _pg_make_replica || return 1
    fi

    tg_log "primary: $TG_PRIMARY_DSN"
    [[ -n $TG_REPLICA_DSN ]] && tg_log "replica: $TG_REPLICA_DSN"
    return 0
}

# Makes the replica from a base backup of the running primary, starts it and waits
# until it streams.
_pg_make_replica() {
    local replica
    replica=$(_pg_replica_dir)
    tg_log "making the replica (pg_basebackup)"
    _pg_as_owner "$TG_PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$TG_PG_PORT" -U postgres \
        -D "$replica" -c fast -R -X stream >"$TG_PG_DIR/basebackup.log" 2>&1 ||
        { cat "$TG_PG_DIR/basebackup.log" >&2; tg_warn "pg_basebackup failed"; return 1; }
    # later lines win over the primary's settings copied with the backup
    cat >>"$replica/postgresql.conf" <<EOF
port = $TG_PG_REPLICA_PORT
cluster_name = 'tg_replica'
EOF
    _pg_ctl_start "$replica" replica || return 1
    _pg_wait_streaming 60
}

# Stops both servers and removes the temp folder (only a folder pg_start made).
pg_stop() {
    [[ -n ${TG_PG_DIR:-} && -d $TG_PG_DIR ]] || return 0
    case $TG_PG_DIR in
        */tollgate-pg.*) ;;
        *) tg_warn "not removing $TG_PG_DIR: not a folder made by pg_start"; return 1 ;;
    esac
    _pg_ctl_stop "$(_pg_replica_dir)" fast
    _pg_ctl_stop "$(_pg_primary_dir)" fast
    rm -rf "$TG_PG_DIR"
    tg_log "PostgreSQL stopped, $TG_PG_DIR removed"
    TG_PG_DIR=
}

# Failover helpers: an immediate stop (as a crash), and a restart on the same port
# and data folder.
pg_stop_primary() { _pg_ctl_stop "$(_pg_primary_dir)" immediate; }
pg_start_primary() { _pg_ctl_start "$(_pg_primary_dir)" primary; }
pg_stop_replica() { _pg_ctl_stop "$(_pg_replica_dir)" immediate; }
pg_start_replica() {
    _pg_ctl_start "$(_pg_replica_dir)" replica || return 1
    # it streams again only once the primary is up; don't wait for that otherwise
    if "$TG_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$TG_PG_PORT"; then
        _pg_wait_streaming 60
    fi
}

# Failover as an HA tool does it: the replica becomes a primary (the old primary must
# be stopped first). rebuild-replica undoes it: the old primary runs again and the
# replica is made afresh from it (what the promoted server wrote is gone).
pg_promote_replica() { _pg_as_owner "$TG_PG_BIN/pg_ctl" promote -D "$(_pg_replica_dir)" -w -t 60 >/dev/null; }
pg_rebuild_replica() {
    _pg_ctl_stop "$(_pg_replica_dir)" immediate
    if ! "$TG_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$TG_PG_PORT"; then
        pg_start_primary || return 1
    fi
    rm -rf "$(_pg_replica_dir)"
    _pg_make_replica
}

# One line per server: port, running or not, in recovery or not.
pg_status() {
    local name port
    for name in primary replica; do
        [[ $name == replica && ${TG_PG_REPLICA:-1} == 0 ]] && continue
        port=$TG_PG_PORT
        [[ $name == replica ]] && port=$TG_PG_REPLICA_PORT
        if "$TG_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; then
            echo "$name port=$port up in_recovery=$(_pg_value "$port" 'SELECT pg_is_in_recovery()')"
        else
            echo "$name port=$port down"
        fi
    done
}

# ---------------------------------------------------------------------------------
# Standalone use

_pg_load_env() {
    [[ -n ${TG_PG_DIR:-} && -f $TG_PG_DIR/env.sh ]] ||
        tg_die "set TG_PG_DIR to the folder printed by 'tests/pg.sh start'"
    # shellcheck disable=SC1091
    source "$TG_PG_DIR/env.sh"
}

_pg_main() {
    local cmd=${1:-}
    shift || true
    case $cmd in
        start)
            pg_start >&2 || { pg_stop >&2; exit 1; }
            cat "$TG_PG_DIR/env.sh"
            ;;
        stop) _pg_load_env && pg_stop ;;
        stop-primary) _pg_load_env && pg_stop_primary ;;
        start-primary) _pg_load_env && pg_start_primary ;;
        stop-replica) _pg_load_env && pg_stop_replica ;;
        start-replica) _pg_load_env && pg_start_replica ;;
        promote-replica) _pg_load_env && pg_promote_replica ;;
        rebuild-replica) _pg_load_env && pg_rebuild_replica ;;
        status) _pg_load_env && pg_status ;;
        run)
            (($# > 0)) || tg_die "usage: tests/pg.sh run CMD [ARGS...]"
            trap 'pg_stop' EXIT
            trap 'exit 130' INT TERM
            pg_start || exit 1
            "$@"
            ;;
        *)
            echo "usage: tests/pg.sh start|stop|status|stop-primary|start-primary|stop-replica|start-replica|run CMD..." >&2
            exit 2
            ;;
    esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    _pg_main "$@"
fi
