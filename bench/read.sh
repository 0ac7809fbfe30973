#!/usr/bin/env bash
# Point-read benchmark: tollgate's GET /users/{id} against pgbench running the same
# SELECT straight on PostgreSQL, through PgBouncer, and pipelined, and against a
# minimal h2o + libpq server (bench/control.c: one thread, one connection, pipeline
# depth 128), all on this machine (127.0.0.1), in one run; plus list reads (GET
# /orders?ids=... with BENCH_LIST_ROWS ids) against pgbench of the same SQL.
#
#   1. a throwaway PostgreSQL 15 (tests/pg.sh) with BENCH_USERS users, primary and a
#      streaming replica (BENCH_REPLICA=0: primary only); PgBouncer (transaction
#      pooling) in front of the primary; the gateway (//gateway:tollgate) in front of
#      primary + replica (with BENCH_NOPIPE=1 a second one with
#      TOLLGATE_PIPELINE_DEPTH=1, no pipelining); the control (//bench:control) on the
#      server the gateway reads from; with BENCH_CORUNNER=N, N busy-looping processes
#      beside the whole run (the "loaded" condition);
#   2. warm-up (BENCH_WARMUP seconds of each load, discarded); with
#      BENCH_PIPELINE_CLIENTS=auto, the warm-up also tries the pipelined pgbench with
#      1, 2 and 4 clients and keeps the count PostgreSQL serves the most queries with;
#   3. BENCH_RUNS rounds, each of (BENCH_SECONDS seconds apiece):
#        pgbench   -M prepared -c10 -j2, bench/get_user.sql (random id in 1..N), direct
#        pgbench   the same through PgBouncer (-M extended unless PgBouncer >= 1.21,
#                  whose max_prepared_statements allows -M prepared in transaction mode)
#        pgbench   -M prepared, BENCH_PIPELINE (16) SELECTs per \startpipeline ...
#                  \endpipeline, direct; counted in queries (tps x 16)
#        h2load    -c10 -m10 over h2c (prior knowledge), GET /users/<random id>
#                  (a fresh file of random URIs each round, h2load -i)
#        h2load    the same against the gateway with TOLLGATE_PIPELINE_DEPTH=1 (BENCH_NOPIPE=1)
#        wrk       -t1 -c10 over HTTP/1.1, bench/random_id.lua
#        h2load / wrk  the same two against the control
#        h2load    -c10 -m10 GET /healthz: the gateway's own HTTP ceiling
#        h2load    -c10 -m10 GET /orders?ids=... (BENCH_LIST_ROWS random ids): list reads, req/s and MB/s
#        pgbench   -M prepared -c10, orders_by_ids' SQL with the same number of random ids
#      and, around each gateway measurement, sum(xact_commit) of pg_stat_database on
#      the primary and the replica: which backend served the reads;
#   4. a table of the medians over the rounds: req/s, p50, p99 (p50/p99 are the
#      medians of each round's percentiles; h2load and pgbench percentiles come from
#      their per-request logs, wrk's from --latency), req/s relative to pgbench, the
#      share of each backend; the ratios against their targets (h2c >= 0.5x pipelined
#      pgbench and >= 1.25x pgbench direct, HTTP/1.1 >= 0.9x pgbench direct, h2c and
#      HTTP/1.1 >= 1x the control); p99 at half the peak: pgbench, tollgate and the
#      control again at half their median rate (h2load --rps, --h1 for HTTP/1.1;
#      pgbench -R); the same as Markdown tables;
#   5. with BENCH_SHAPES=1, a sweep of gateway shapes: for each pool size of
#      BENCH_SHAPE_POOLS (4 16 32) and pipeline depth 1 and the default, a gateway of
#      its own, one h2c and one HTTP/1.1 measurement of BENCH_SHAPE_SECONDS (5) each
#      (BENCH_SHAPE_RUNS rounds, default 1), as a second table;
#   6. when tollgate misses a target (or BENCH_PROFILE=1), a system-wide
#      `perf record` during one more h2c run and the gateway's top functions.
#
# Backend shares: PostgreSQL 15 flushes a session's counters at most once a second,
# and a session that goes idle keeps up to a second of them for up to 10 s; so a
# measurement's deltas may miss the end of its own work and include the end of the
# previous gateway measurement's. The shares are over the sums of all rounds, and
# "xacts/req" (backend transactions per request, 1.00 when nothing is missed) shows
# how exact they are. The benchmark's own probes (one transaction each) are
# subtracted; the gateway's health checks (a few per second) are not.
#
# Fails (exit 1) when more than BENCH_MAX_ERROR_FRACTION of the requests of any
# measurement are not 2xx or fail at the socket level.
#
# Usage: bench/read.sh
#
# Environment:
#   BENCH_USERS=1000000       users in the sample data (ids are drawn from 1..N)
#   BENCH_SECONDS=10          length of each measurement
#   BENCH_RUNS=3              rounds (the table shows medians)
#   BENCH_WARMUP=3            seconds of each load before measuring (0: none)
#   BENCH_THREADS=2           the gateway's "threads"
#   BENCH_POOL=16             the gateway's "pool": {"size"} (per backend, split across
#                             threads); also PgBouncer's default_pool_size
#   BENCH_REPLICA=1           0: primary only (no replica; every read on the primary)
#   TOLLGATE_PIPELINE_DEPTH   the main gateway's calls in flight per backend connection
#                             (gateway default 32); the second gateway always runs with 1
#   BENCH_CLIENTS=10          connections of every client tool (pgbench, h2load, wrk)
#   BENCH_STREAMS=10          h2load -m (concurrent streams per connection)
#   BENCH_PIPELINE=16         SELECTs per pgbench pipeline
#   BENCH_PIPELINE_CLIENTS=auto   pgbench clients of the pipelined run (auto: best of 1 2 4)
#   BENCH_SHAPES=0            1: also the shape sweep
#   BENCH_CORUNNER=0          busy-looping processes started beside the whole run (1: the "loaded" condition)
#   BENCH_NOPIPE=0            1: also the gateway without pipelining
#   BENCH_LIST_ROWS=100       ids (rows) per list read
#   BENCH_CONTROL_DEPTH=128   the control's pipeline depth
#   BENCH_SHAPE_POOLS="4 16 32" BENCH_SHAPE_SECONDS=5 BENCH_SHAPE_RUNS=1
#   BENCH_URIS=200000         random URIs per h2load input file
#   BENCH_MAX_ERROR_FRACTION=0.001   tolerated share of failed / non-2xx requests
#   BENCH_PROFILE=auto        1: always profile, 0: never, auto: when a target is missed
#   BENCH_KEEP=1              keep the work folder (logs, configs, perf data)
#   TG_PG_PORT=57432 TG_PG_REPLICA_PORT=57433 TG_HTTP_PORT=58080 TG_ADMIN_PORT=58081
#   BENCH_PGBOUNCER_PORT=57439   ports (next free if taken; the other gateways take the
#                             next free ports after TG_HTTP_PORT / TG_ADMIN_PORT)
#   TG_BAZEL_STARTUP / TG_BAZEL_FLAGS   extra bazel startup / build options
#   TG_BAZEL_BIN              where the build outputs are (default: bazel-bin)
#   TG_SKIP_BUILD=1           don't build; use TG_GATEWAY_BIN (default bazel-bin's)
#
# The benchmark config is config/example.json (tg_render_config) with threads, pool
# size, the replica (or none), anonymous rate limits out of the way, and a catalog
# holding only get_user from config/catalog, uncached, so every request reaches
# PostgreSQL like pgbench's. The script checks that bench/get_user.sql runs the
# catalog's SQL.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh
# shellcheck source=tests/pg.sh
source tests/pg.sh

USERS=${BENCH_USERS:-1000000}
SECS=${BENCH_SECONDS:-10}
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-3}
THREADS=${BENCH_THREADS:-2}
POOL=${BENCH_POOL:-16}
REPLICA=${BENCH_REPLICA:-1}
CLIENTS=${BENCH_CLIENTS:-10}
STREAMS=${BENCH_STREAMS:-10}
PIPE_N=${BENCH_PIPELINE:-16}
PIPE_CLIENTS=${BENCH_PIPELINE_CLIENTS:-auto}
SHAPES=${BENCH_SHAPES:-0}
SHAPE_POOLS=${BENCH_SHAPE_POOLS:-4 16 32}
SHAPE_SECS=${BENCH_SHAPE_SECONDS:-5}
SHAPE_RUNS=${BENCH_SHAPE_RUNS:-1}
NURIS=${BENCH_URIS:-200000}
MAX_ERR=${BENCH_MAX_ERROR_FRACTION:-0.001}
PROFILE=${BENCH_PROFILE:-auto}
CORUNNER=${BENCH_CORUNNER:-0}
NOPIPE=${BENCH_NOPIPE:-0}
LIST_N=${BENCH_LIST_ROWS:-100}
CONTROL_DEPTH=${BENCH_CONTROL_DEPTH:-128}
tg_positive_ints '' USERS SECS RUNS THREADS POOL CLIENTS STREAMS PIPE_N SHAPE_SECS SHAPE_RUNS NURIS LIST_N CONTROL_DEPTH
[[ $CORUNNER =~ ^[0-9]+$ && $NOPIPE =~ ^[01]$ ]] || tg_die "BENCH_CORUNNER must be a count, BENCH_NOPIPE 0 or 1"
for p in $SHAPE_POOLS; do [[ $p =~ ^[1-9][0-9]*$ ]] || tg_die "BENCH_SHAPE_POOLS: '$p' is not a pool size"; done
[[ $WARMUP =~ ^[0-9]+$ ]] || tg_die "BENCH_WARMUP must be a number of seconds"
[[ $REPLICA =~ ^[01]$ && $SHAPES =~ ^[01]$ ]] || tg_die "BENCH_REPLICA and BENCH_SHAPES must be 0 or 1"
[[ $PIPE_CLIENTS == auto || $PIPE_CLIENTS =~ ^[1-9][0-9]*$ ]] ||
    tg_die "BENCH_PIPELINE_CLIENTS must be auto or a positive integer"
USER_DEPTH=${TOLLGATE_PIPELINE_DEPTH:-}
[[ -z $USER_DEPTH || $USER_DEPTH =~ ^[1-9][0-9]*$ ]] ||
    tg_die "TOLLGATE_PIPELINE_DEPTH must be a positive integer"
unset TOLLGATE_PIPELINE_DEPTH # each gateway gets its own (start_gw)
[[ $PROFILE =~ ^(auto|0|1)$ ]] || tg_die "BENCH_PROFILE must be auto, 0 or 1"

# Our own ports by default, away from tests/run.sh's and the demo's.
export TG_PG_PORT=${TG_PG_PORT:-57432} TG_PG_REPLICA_PORT=${TG_PG_REPLICA_PORT:-57433}
export TG_PG_REPLICA=$REPLICA TG_SAMPLE_USERS=$USERS
# The per-request tools, with a hard bound on each.
TOOL_TIMEOUT=$((SECS + WARMUP + 60))

read -r -a BAZEL_STARTUP <<<"${TG_BAZEL_STARTUP:-}"
read -r -a BAZEL_FLAGS <<<"${TG_BAZEL_FLAGS:-}"
BAZEL_BIN=${TG_BAZEL_BIN:-$TG_ROOT/bazel-bin}
GW_BIN=${TG_GATEWAY_BIN:-$BAZEL_BIN/gateway/tollgate}
CONTROL_BIN=${BENCH_CONTROL_BIN:-$BAZEL_BIN/bench/control}
PGBOUNCER=${BENCH_PGBOUNCER_BIN:-/usr/sbin/pgbouncer}

WORK=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
PERF_PID=
PGB_PID=
CORUNNER_PIDS=()
declare -A GW_PID=() GW_URL=() GW_DESC=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n $PERF_PID ]] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null
    local name pid
    for pid in ${CORUNNER_PIDS[@]+"${CORUNNER_PIDS[@]}"}; do kill "$pid" 2>/dev/null || true; done
    for name in "${!GW_PID[@]}"; do stop_gw "$name" >/dev/null 2>&1 || true; done
    pgb_stop >/dev/null 2>&1 || true
    pg_stop >/dev/null 2>&1 || true
    tg_finish_work "$WORK" "${BENCH_KEEP:-0}" "$rc"
}
tg_trap_cleanup cleanup

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---------------------------------------------------------------------------------
# Numbers

# Prints "P50 P99" in ms from column COL (microseconds) of the FILEs; rows whose
# column is not a number (pgbench's "failed") are skipped.
percentiles() {
    local col=$1
    shift
    awk -v c="$col" '$c ~ /^[0-9]+(\.[0-9]+)?$/ { print $c }' "$@" | sort -n |
        awk 'function at(p,  i) { i = int(NR * p); if (i < NR * p) i++; if (i < 1) i = 1; return v[i] }
             { v[NR] = $1 }
             END { if (NR == 0) print "nan nan"; else printf "%.3f %.3f\n", at(0.50) / 1000, at(0.99) / 1000 }'
}

# The median of column COL of FILE's rows for KIND.
median() { # KIND COL [FILE]
    awk -v k="$1" -v c="$2" '$1 == k { print $c }' "${3:-$WORK/results}" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# "PRIMARY% REPLICA% XACTS_PER_REQUEST" over all of FILE's rows for KIND (columns:
# 3 req/s, 7 primary xacts, 8 replica xacts, 9 seconds); "- - -" without counts.
shares() { # KIND [FILE]
    awk -v k="$1" '$1 == k && $7 != "-" { p += $7; r += $8; n += $3 * $9 }
        END { if (p + r <= 0 || n <= 0) print "- - -"
              else printf "%.1f %.1f %.2f\n", 100 * p / (p + r), 100 * r / (p + r), (p + r) / n }' "${2:-$WORK/results}"
}

# Fails the benchmark when BAD of TOTAL requests is more than MAX_ERR of them.
check_errors() {
    local what=$1 bad=$2 total=$3 log=$4
    if ((total == 0)) || awk -v b="$bad" -v t="$total" -v m="$MAX_ERR" 'BEGIN { exit !(b > t * m) }'; then
        sed 's/^/    /' "$log" >&2
        tg_die "$what: $bad of $total requests failed or were not 2xx (tolerated: $MAX_ERR of them)"
    fi
    ((bad == 0)) || tg_warn "$what: $bad of $total requests failed or were not 2xx (within the tolerance)"
}

# A gateway's CPU time so far (user + system), in clock ticks.
gw_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

# Committed transactions so far on the server at PORT (all databases).
xacts() { _pg_value "$1" "SELECT sum(xact_commit) FROM pg_stat_database"; }

# ---------------------------------------------------------------------------------
# The loads. Each measurement prints "REQ_PER_S P50_MS P99_MS".

# pgbench at PORT with MODE (prepared|extended|simple), CLIENTS and SCRIPT; req/s is
# tps x MULT (queries per transaction). LOGPREFIX empty: no log, percentiles "nan".
pgbench_run() { # SECONDS LOGPREFIX PORT MODE CLIENTS SCRIPT MULT
    local secs=$1 prefix=$2 port=$3 mode=$4 clients=$5 script=$6 mult=$7
    local out=$WORK/pgbench.out log=() jobs=$((clients < 2 ? clients : 2))
    [[ -n $prefix ]] && log=(-l "--log-prefix=$prefix")
    timeout -k 5 "$TOOL_TIMEOUT" "$TG_PG_BIN/pgbench" -n -M "$mode" -c "$clients" -j "$jobs" -T "$secs" \
        -D users="$USERS" -f "$script" "${log[@]}" \
        -h 127.0.0.1 -p "$port" -U "$TG_PG_USER" "$TG_PG_DB" >"$out" 2>&1 ||
        { sed 's/^/    /' "$out" >&2; tg_die "pgbench ($port, -M $mode, -c$clients, $script) failed"; }
    local tps ndone failed pct="nan nan"
    tps=$(awk '/^tps = / { print $3 }' "$out")
    ndone=$(awk -F': ' '/^number of transactions actually processed/ { split($2, a, "/"); print a[1] + 0 }' "$out")
    failed=$(awk -F': ' '/^number of failed transactions/ { print $2 + 0 }' "$out")
    check_errors "pgbench ($port, -M $mode)" "${failed:-0}" "${ndone:-0}" "$out"
    [[ -n $prefix ]] && pct=$(percentiles 3 "$prefix".*)
    echo "$(awk -v t="${tps:-0}" -v m="$mult" 'BEGIN { printf "%.1f", t * m }') $pct"
}

h2load_run() { # SECONDS LOGFILE(empty: no log) URI | -i FILE
    local secs=$1 reqlog=$2 out=$WORK/h2load.out log=()
    shift 2
    [[ -n $reqlog ]] && log=("--log-file=$reqlog")
    timeout -k 5 "$TOOL_TIMEOUT" h2load -c "$CLIENTS" -m "$STREAMS" -D "$secs" "${log[@]}" "$@" \
        >"$out" 2>&1 || { sed 's/^/    /' "$out" >&2; tg_die "h2load failed"; }
    [[ -n $reqlog ]] || return 0
    local rps counts codes ndone bad
    rps=$(awk '/^finished in/ { print $4 }' "$out")
    # requests: T total, S started, D done, OK succeeded, F failed, E errored, TO timeout
    counts=$(awk '/^requests:/ { print $6, $10 + $12 + $14 }' "$out")
    # status codes: A 2xx, B 3xx, C 4xx, D 5xx
    codes=$(awk '/^status codes:/ { print $5 + $7 + $9 }' "$out")
    read -r ndone bad <<<"${counts:-0 0}"
    check_errors "h2load $*" $((bad + ${codes:-0})) "$ndone" "$out"
    awk '/^finished in/ { v = $6; sub(/MB\/s$/, "", v); print v + 0 }' "$out" >"$WORK/h2load.mbps"
    echo "$rps $(percentiles 3 "$reqlog")"
}

wrk_run() { # SECONDS PARSE(0|1) BASE_URL
    local secs=$1 parse=$2 base=$3 out=$WORK/wrk.out
    timeout -k 5 "$TOOL_TIMEOUT" wrk -t1 -c "$CLIENTS" -d "${secs}s" --latency \
        -s "$TG_ROOT/bench/random_id.lua" "$base" -- "$USERS" >"$out" 2>&1 ||
        { sed 's/^/    /' "$out" >&2; tg_die "wrk failed"; }
    ((parse)) || return 0
    local total bad
    total=$(awk '/ requests in / { print $1 }' "$out")
    bad=$(awk '/Non-2xx or 3xx responses:/ { n += $NF }
               /Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 }
               END { print n + 0 }' "$out")
    check_errors wrk "$bad" "${total:-0}" "$out"
    awk 'function ms(s) {
             if (s ~ /us$/) return substr(s, 1, length(s) - 2) / 1000
             if (s ~ /ms$/) return substr(s, 1, length(s) - 2) + 0
             if (s ~ /s$/) return substr(s, 1, length(s) - 1) * 1000
             if (s ~ /m$/) return substr(s, 1, length(s) - 1) * 60000
             return s + 0 }
         /^Requests\/sec:/ { rps = $2 }
         $1 == "50%" { p50 = ms($2) }
         $1 == "99%" { p99 = ms($2) }
         END { printf "%s %.3f %.3f\n", rps, p50, p99 }' "$out"
}

# A file of NURIS random /users/<id> URIs at BASE_URL for h2load -i.
make_uris() { # FILE SEED BASE_URL
    awk -v n="$USERS" -v k="$NURIS" -v seed="$2" -v base="$3" \
        'BEGIN { srand(seed); for (i = 0; i < k; i++) printf "%s/users/%d\n", base, 1 + int(rand() * n) }' >"$1"
}

# A file of NURIS / 10 random /orders?ids=... URIs (LIST_N random order ids each) at BASE_URL.
make_list_uris() { # FILE SEED BASE_URL
    awk -v n="$((2 * USERS))" -v k="$((NURIS / 10))" -v m="$LIST_N" -v seed="$2" -v base="$3" \
        'BEGIN { srand(seed); for (i = 0; i < k; i++) { printf "%s/orders?ids=%d", base, 1 + int(rand() * n)
                 for (j = 1; j < m; j++) printf "&ids=%d", 1 + int(rand() * n); printf "\n" } }' >"$1"
}

# Waits (up to 5 s) until no pgbench session is left on the primary: a session
# flushes its counters when it ends, so the next measurement's deltas don't get them.
settle_pgbench() {
    local deadline=$((SECONDS + 5))
    while ((SECONDS < deadline)); do
        [[ $(_pg_value "$TG_PG_PORT" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench'") == 0 ]] &&
            return 0
        sleep 0.1
    done
}

# Runs one measurement KIND for round RUN, SECS seconds, on gateway GW (for the
# gateway kinds: h2c, h1, health); appends "KIND RUN REQ/S P50 P99 GW_CPU% PRIMARY_XACTS
# REPLICA_XACTS SECONDS" to OUT.
#   pg: pgbench direct; pgb: through PgBouncer; pipe: pipelined pgbench, direct
measure() { # KIND RUN SECS OUT [GW]
    local kind=$1 run=$2 secs=$3 out=$4 gw=${5:-} r t0 t1 cpu=- rps p50 p99 x0p x0r x1p x1r dp=- dr=- tag
    tag=$kind${gw:+@$gw}
    if [[ $gw == control ]]; then
        settle_pgbench
        t0=$(gw_ticks "$CONTROL_PID")
    elif [[ -n $gw ]]; then
        settle_pgbench
        t0=$(gw_ticks "${GW_PID[$gw]}")
        x0p=$(xacts "$TG_PG_PORT") x0r=0
        ((REPLICA)) && x0r=$(xacts "$TG_PG_REPLICA_PORT")
    fi
    case $kind in
        pg) r=$(pgbench_run "$secs" "$WORK/pgb.$run" "$TG_PG_PORT" prepared "$CLIENTS" "$TG_ROOT/bench/get_user.sql" 1) ;;
        pgb)
            r=$(pgbench_run "$secs" "$WORK/pgbouncer.$run" "$PGB_PORT" "$PGB_MODE" "$CLIENTS" "$TG_ROOT/bench/get_user.sql" 1)
            pgb_drop_servers
            ;;
        pipe) r=$(pgbench_run "$secs" "$WORK/pipe.$run" "$TG_PG_PORT" prepared "$PIPE_CLIENTS" "$WORK/pipeline.sql" "$PIPE_N") ;;
        h2c)
            make_uris "$WORK/uris" "$((run * 7919 + $$))" "${GW_URL[$gw]}"
            r=$(h2load_run "$secs" "$WORK/h2c.$gw.$run.log" -i "$WORK/uris")
            ;;
        h1) r=$(wrk_run "$secs" 1 "${GW_URL[$gw]}") ;;
        list)
            make_list_uris "$WORK/list-uris" "$((run * 7919 + $$))" "${GW_URL[$gw]}"
            r=$(h2load_run "$secs" "$WORK/list.$gw.$run.log" -i "$WORK/list-uris")
            echo "$kind@$gw $run $(cat "$WORK/h2load.mbps")" >>"$WORK/mbps"
            ;;
        listpg) r=$(pgbench_run "$secs" "$WORK/listpg.$run" "$TG_PG_PORT" prepared "$CLIENTS" "$WORK/list.sql" 1) ;;
        health) r=$(h2load_run "$secs" "$WORK/health.$run.log" "${GW_URL[$gw]}/healthz") ;;
    esac
    if [[ -n $gw && $gw != control ]]; then
        x1p=$(xacts "$TG_PG_PORT") x1r=0
        ((REPLICA)) && x1r=$(xacts "$TG_PG_REPLICA_PORT")
        t1=$(gw_ticks "${GW_PID[$gw]}")
        cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v s="$secs" 'BEGIN { printf "%.0f", (b - a) / hz / s * 100 }')
        # minus our own first probe (one transaction on each server)
        dp=$((x1p - x0p - 1)) dr=0
        ((REPLICA)) && dr=$((x1r - x0r - 1))
    elif [[ $gw == control ]]; then
        t1=$(gw_ticks "$CONTROL_PID")
        cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v s="$secs" 'BEGIN { printf "%.0f", (b - a) / hz / s * 100 }')
    fi
    echo "$tag $run $r $cpu $dp $dr $secs" >>"$out"
    read -r rps p50 p99 <<<"$r"
    tg_log "$(printf 'round %d %-16s %10.1f req/s  p50 %7.3f ms  p99 %7.3f ms  gw CPU %4s%%  xacts primary %7s replica %7s  load %s' \
        "$run" "$tag" "$rps" "$p50" "$p99" "$cpu" "$dp" "$dr" "$(loadavg)")"
}

# ---------------------------------------------------------------------------------
# Gateways: start_gw NAME POOL DEPTH(empty: the gateway's default); each has its own
# ports and config.

CONFIG_TMPL=$WORK/config.tmpl.json
start_gw() {
    local name=$1 pool=$2 depth=$3 http admin cfg=$WORK/config.$1.json
    http=$(tg_pick_port "$NEXT_HTTP_PORT" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "${PGB_PORT:-0}" ${TAKEN_PORTS[@]+"${TAKEN_PORTS[@]}"})
    TAKEN_PORTS+=("$http")
    admin=$(tg_pick_port "$NEXT_ADMIN_PORT" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "${PGB_PORT:-0}" "${TAKEN_PORTS[@]}")
    TAKEN_PORTS+=("$admin")
    jq --argjson threads "$THREADS" --argjson pool "$pool" --arg catalog "$WORK/catalog/" \
        --argjson http "$http" --argjson admin "$admin" --argjson replica "$REPLICA" \
        '.threads = $threads | .pool.size = $pool | .catalog = [$catalog]
         | (if $replica == 1 then . else .replicas = [] end)
         | .listen = [.listen[0] | .port = $http] | .admin_listen.port = $admin
         | .access_log = null | .max_in_flight = 0
         | .anonymous = {rate: 1000000000, burst: 1000000000}' "$CONFIG_TMPL" >"$cfg"
    "$GW_BIN" --config "$cfg" --check >"$WORK/check.log" 2>&1 ||
        { sed 's/^/    /' "$WORK/check.log" >&2; tg_die "tollgate --check rejected the benchmark config $cfg"; }
    if [[ -n $depth ]]; then export TOLLGATE_PIPELINE_DEPTH=$depth; else unset TOLLGATE_PIPELINE_DEPTH; fi
    TG_HTTP_PORT=$http tg_start_gateway "$GW_BIN" "$cfg" "$WORK/gateway.$name.log" ||
        tg_die "the gateway $name did not start"
    unset TOLLGATE_PIPELINE_DEPTH
    GW_PID[$name]=$TG_GATEWAY_PID
    TG_GATEWAY_PID=
    GW_URL[$name]=http://127.0.0.1:$http
    local per=$((pool / THREADS)) # the first pool % threads threads take one more
    GW_DESC[$name]="pool size $pool ($per connections per thread per backend), pipeline depth ${depth:-32}$([[ -n $depth ]] || echo ' (default)')"
    tg_wait_http "${GW_URL[$name]}/readyz" 15 200 || tg_die "gateway $name: GET /readyz is not 200 after 15 s"
    tg_wait_backends "${GW_URL[$name]}" || true
    local id body
    for id in 1 "$USERS"; do
        body=$(curl -sS --max-time 5 -w ' %{http_code}' "${GW_URL[$name]}/users/$id")
        [[ ${body##* } == 200 && $body == *"\"id\":$id,"* ]] || tg_die "gateway $name: GET /users/$id: unexpected answer: $body"
    done
    tg_log "gateway $name on ${GW_URL[$name]}: ${GW_DESC[$name]}"
}

stop_gw() { # NAME
    local name=$1 rc=0
    [[ -n ${GW_PID[$name]:-} ]] || return 0
    kill -0 "${GW_PID[$name]}" 2>/dev/null || tg_warn "the gateway $name had died"
    TG_GATEWAY_PID=${GW_PID[$name]}
    unset "GW_PID[$name]"
    tg_stop_gateway || rc=$?
    return "$rc"
}

# ---------------------------------------------------------------------------------
# PgBouncer, as `postgres` (it refuses root), config and logs in $WORK/pgbouncer.

pgb_start() {
    local dir=$WORK/pgbouncer ver
    ver=$("$PGBOUNCER" --version | awk 'NR == 1 { print $2 }')
    PGB_VERSION=$ver
    mkdir -p "$dir"
    PGB_PORT=$(tg_pick_port "${BENCH_PGBOUNCER_PORT:-$((TG_PG_PORT + 7))}" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT")
    # prepared statements in transaction mode: PgBouncer >= 1.21's max_prepared_statements
    local prepared=
    if printf '%s\n%s\n' 1.21 "$ver" | sort -V -C; then
        PGB_MODE=prepared prepared="max_prepared_statements = 200"
    else
        PGB_MODE=extended
    fi
    printf '"%s" ""\n"postgres" ""\n' "$TG_PG_USER" >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
$TG_PG_DB = host=127.0.0.1 port=$TG_PG_PORT dbname=$TG_PG_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = $POOL
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
log_connections = 0
log_disconnections = 0
$prepared
EOF
    if ((EUID == 0)); then
        chown -R postgres: "$dir"
        chmod 711 "$WORK" # postgres passes through to its folder, sees nothing else
    fi
    local run=()
    ((EUID == 0)) && run=(setpriv --reuid=postgres --regid=postgres --init-groups)
    (cd "$dir" && exec "${run[@]}" "$PGBOUNCER" "$dir/pgbouncer.ini") >"$WORK/pgbouncer.out" 2>&1 &
    PGB_PID=$!
    local deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)); do
        kill -0 "$PGB_PID" 2>/dev/null ||
            { cat "$WORK/pgbouncer.out" "$dir/pgbouncer.log" >&2 2>/dev/null; tg_die "PgBouncer exited"; }
        PGCONNECT_TIMEOUT=2 "$TG_PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$PGB_PORT" -U "$TG_PG_USER" -d "$TG_PG_DB" \
            -c 'SELECT 1' >/dev/null 2>&1 && { tg_log "PgBouncer $ver on port $PGB_PORT (transaction pooling, pool $POOL)"; return 0; }
        sleep 0.2
    done
    tg_die "PgBouncer does not answer on port $PGB_PORT; see $dir/pgbouncer.log"
}

# Closes PgBouncer's server connections (their sessions flush their counters as they
# end, so the gateway measurements' deltas don't get them); clients reconnect later.
pgb_drop_servers() {
    "$TG_PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PGB_PORT" -U postgres -d pgbouncer \
        -c "KILL $TG_PG_DB" -c "RESUME $TG_PG_DB" >/dev/null 2>&1 || tg_warn "PgBouncer KILL/RESUME failed"
}

pgb_stop() {
    [[ -n $PGB_PID ]] || return 0
    kill -TERM "$PGB_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$PGB_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$PGB_PID" 2>/dev/null || true
    wait "$PGB_PID" 2>/dev/null || true
    PGB_PID=
}

# ---------------------------------------------------------------------------------
# Profiling

profile_gateway() {
    local reason=$1 data=$WORK/perf.data
    echo
    echo "Profile ($reason): perf record -a -g during one more ${SECS} s h2c run (gateway 'main')"
    if ! command -v perf >/dev/null; then
        local TG_PACKAGES=(linux-perf) # tg_ensure_packages installs this list
        tg_ensure_packages || true
    fi
    if ! command -v perf >/dev/null || ! perf record -e cpu-clock -o "$WORK/perf.probe" -- true >/dev/null 2>&1; then
        echo "  perf is not available or not supported on this machine; no profile"
        return 0
    fi
    make_uris "$WORK/uris" "$$" "${GW_URL[main]}"
    # cpu-clock: VMs often have no hardware cycle counter
    perf record -a -g -e cpu-clock -F 999 -o "$data" -- sleep "$SECS" >"$WORK/perf.out" 2>&1 &
    PERF_PID=$!
    h2load_run "$((SECS + 1))" "$WORK/h2c.profile.log" -i "$WORK/uris" >/dev/null
    wait "$PERF_PID" || true
    PERF_PID=
    [[ -s $data ]] || { echo "  perf recorded nothing:"; sed 's/^/    /' "$WORK/perf.out"; return 0; }
    # The gateway's shares are rescaled to its own samples. (perf's --comms with
    # --percentage relative drops kernel samples; keeping comm in the sort key doesn't.)
    local rep=(perf report -i "$data" --stdio --no-children -g none) total
    total=$("${rep[@]}" --sort comm 2>/dev/null | awk '$2 == "tollgate" { sub("%", "", $1); print $1 }')
    gateway_share() { # ROWS: the gateway's rows of a comm,... report, as % of its samples
        awk -v t="${total:-0}" -v n="$1" 't > 0 && $2 == "tollgate" && shown < n {
            p = $1; sub("%", "", p); $1 = ""; $2 = ""; sub(/^ +/, ""); sub(/( -)+$/, "")
            printf "  %6.2f%%  %s\n", p * 100 / t, $0; shown++ }'
    }
    echo
    echo "CPU by process (% of all samples, both cores):"
    "${rep[@]}" --sort comm --percent-limit 1 2>/dev/null | awk '/^[^#]/ && NF && ++n <= 12 { print "  " $0 }'
    echo
    echo "tollgate by library (% of the gateway's ${total:-0}% of the samples):"
    "${rep[@]}" --sort comm,dso 2>/dev/null | gateway_share 10
    echo
    echo "tollgate top functions (self, % of the gateway's samples):"
    "${rep[@]}" --sort comm,dso,symbol 2>/dev/null | gateway_share 30
    return 0
}

# ---------------------------------------------------------------------------------
# Setup

TG_PACKAGES+=(jq)
tg_ensure_packages
for t in h2load wrk jq curl setpriv; do command -v "$t" >/dev/null || tg_die "$t is missing"; done
[[ -x $TG_PG_BIN/pgbench ]] || tg_die "no pgbench in $TG_PG_BIN"
[[ -x $PGBOUNCER ]] || tg_die "no PgBouncer at $PGBOUNCER"

if [[ ${TG_SKIP_BUILD:-0} == 1 ]]; then
    tg_log "TG_SKIP_BUILD=1: using $GW_BIN as it is"
else
    tg_log "building //gateway:tollgate and //bench:control"
    bazel "${BAZEL_STARTUP[@]}" --batch build "${BAZEL_FLAGS[@]}" //gateway:tollgate //bench:control >"$WORK/build.log" 2>&1 ||
        { grep -E -A5 '^ERROR' "$WORK/build.log" | head -n 60 >&2 || tail -n 40 "$WORK/build.log" >&2; tg_die "build failed"; }
fi
[[ -x $GW_BIN ]] || tg_die "no gateway binary at $GW_BIN"
[[ -x $CONTROL_BIN ]] || tg_die "no control server at $CONTROL_BIN (bazel build //bench:control)"

# The catalog's get_user (its SQL must be bench/get_user.sql's), without its cache.
GET_USER=$(jq -c '.queries[]? | select(.name == "get_user")' "$TG_ROOT"/config/catalog/*.json)
[[ -n $GET_USER ]] || tg_die "no query get_user in config/catalog"
[[ $(jq -r .route <<<"$GET_USER") == 'GET /users/{id}' ]] || tg_die "get_user's route is not GET /users/{id}"
[[ $(jq -r .access <<<"$GET_USER") == read ]] || tg_warn "get_user is not a read: the replica will serve none of it"
norm() { tr -s ' \t\n' ' ' | sed 's/^ //; s/ *;* *$//'; }
CATALOG_SQL=$(jq -r '.sql | if type == "array" then join(" ") else . end' <<<"$GET_USER" | norm)
# shellcheck disable=SC2016 # a literal $1
BENCH_SQL=$(grep -v -e '^[[:space:]]*--' -e '^[[:space:]]*[\]' bench/get_user.sql | sed 's/:id\b/$1/g' | norm)
[[ $CATALOG_SQL == "$BENCH_SQL" ]] ||
    tg_die "bench/get_user.sql no longer runs get_user's SQL: catalog: $CATALOG_SQL / bench: $BENCH_SQL"
mkdir -p "$WORK/catalog"
jq '{queries: [.queries[]? | select(.name == "get_user" or .name == "orders_by_ids") | del(.cache)]}' "$TG_ROOT"/config/catalog/*.json |
    jq -s '{queries: map(.queries[])}' >"$WORK/catalog/users.json"

# The pipelined pgbench script: PIPE_N times get_user.sql's SELECT, each with its own id.
{
    echo "-- generated by bench/read.sh from bench/get_user.sql: $PIPE_N SELECTs per pipeline"
    for ((i = 1; i <= PIPE_N; i++)); do echo "\\set id$i random(1, :users)"; done
    echo '\startpipeline'
    sel=$(grep -v -e '^[[:space:]]*--' -e '^[[:space:]]*[\]' bench/get_user.sql | norm)
    for ((i = 1; i <= PIPE_N; i++)); do echo "${sel//:id/:id$i};"; done
    printf '%s\n' '\endpipeline'
} >"$WORK/pipeline.sql"

# The list read: orders_by_ids' SQL with LIST_N random order ids (pgbench binds each one; the catalog call one array).
LIST_SQL=$(jq -r '.queries[]? | select(.name == "orders_by_ids") | .sql | if type == "array" then join(" ") else . end' \
    "$TG_ROOT"/config/catalog/*.json | norm)
[[ $LIST_SQL == *'= ANY ($1)'* ]] || tg_die "orders_by_ids' SQL no longer reads 'id = ANY (\$1)': $LIST_SQL"
{
    echo "-- generated by bench/read.sh: orders_by_ids with $LIST_N random ids"
    for ((i = 1; i <= LIST_N; i++)); do echo "\\set i$i random(1, $((2 * USERS)))"; done
    arr=$(for ((i = 1; i <= LIST_N; i++)); do printf '%s:i%d' "$([[ $i == 1 ]] || echo ,)" "$i"; done)
    echo "${LIST_SQL//'$1'/ARRAY[$arr]::int8[]};"
} >"$WORK/list.sql"

tg_log "load average at start: $(loadavg) ($(nproc) CPUs)"
LOAD_START=$(uptime)

pg_start || tg_die "could not start PostgreSQL"
tg_log "VACUUM ANALYZE and pg_prewarm of users"
_pg_psql "$TG_PG_PORT" >/dev/null <<'EOF' || tg_warn "VACUUM / pg_prewarm failed; the warm-up has to do"
VACUUM ANALYZE users;
CREATE EXTENSION IF NOT EXISTS pg_prewarm;
SELECT pg_prewarm('users'), pg_prewarm('users_pkey');
EOF
if ((REPLICA)); then
    pg_wait_replica_caught_up 120 || tg_die "the replica did not catch up"
    _pg_psql "$TG_PG_REPLICA_PORT" -c "SELECT pg_prewarm('users'), pg_prewarm('users_pkey')" >/dev/null ||
        tg_warn "pg_prewarm on the replica failed; the warm-up has to do"
fi

pgb_start

NEXT_HTTP_PORT=${TG_HTTP_PORT:-58080}
NEXT_ADMIN_PORT=${TG_ADMIN_PORT:-58081}
TAKEN_PORTS=()
# the template's DSNs become ours; without the replica its DSN is a placeholder and
# "replicas" becomes [] (start_gw)
TG_HTTP_PORT=$NEXT_HTTP_PORT TG_ADMIN_PORT=$NEXT_ADMIN_PORT TG_REPLICA_DSN=${TG_REPLICA_DSN:-unused} \
    tg_render_config config/example.json "$CONFIG_TMPL"
start_gw main "$POOL" "$USER_DEPTH"
((NOPIPE)) && start_gw nopipe "$POOL" 1

# The control: one thread, one connection, to the server the gateway reads from.
CONTROL_PORT=$(tg_pick_port "$((NEXT_HTTP_PORT + 50))" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "${PGB_PORT:-0}" "${TAKEN_PORTS[@]}")
CONTROL_DSN="host=127.0.0.1 port=$( ((REPLICA)) && echo "$TG_PG_REPLICA_PORT" || echo "$TG_PG_PORT") dbname=$TG_PG_DB user=$TG_PG_USER"
"$CONTROL_BIN" "$CONTROL_PORT" "$CONTROL_DSN" "$CONTROL_DEPTH" >"$WORK/control.log" 2>&1 &
CONTROL_PID=$!
GW_URL[control]=http://127.0.0.1:$CONTROL_PORT
tg_wait_http "${GW_URL[control]}/users/1" 15 200 || { cat "$WORK/control.log" >&2; tg_die "the control server did not start"; }
tg_log "control on ${GW_URL[control]}: 1 thread, 1 connection, pipeline depth $CONTROL_DEPTH ($CONTROL_DSN)"

# A fixed co-runner beside everything measured: BENCH_CORUNNER busy-looping processes.
for ((i = 0; i < CORUNNER; i++)); do
    (while :; do :; done) &
    CORUNNER_PIDS+=($!)
done
((CORUNNER == 0)) || tg_log "co-runner: $CORUNNER busy-looping process(es) for the whole run"

# pgbench's own latency rows and tools' in-flight requests
if ((WARMUP > 0)); then
    tg_log "warm-up: ${WARMUP} s each of pgbench (direct, PgBouncer, pipelined), h2load (both gateways), wrk (discarded)"
    pgbench_run "$WARMUP" "" "$TG_PG_PORT" prepared "$CLIENTS" "$TG_ROOT/bench/get_user.sql" 1 >/dev/null
    pgbench_run "$WARMUP" "" "$PGB_PORT" "$PGB_MODE" "$CLIENTS" "$TG_ROOT/bench/get_user.sql" 1 >/dev/null
    pgb_drop_servers
    for gw in main $( ((NOPIPE)) && echo nopipe || true) control; do
        make_uris "$WORK/uris" "$$" "${GW_URL[$gw]}"
        h2load_run "$WARMUP" "" -i "$WORK/uris"
    done
    make_list_uris "$WORK/list-uris" "$$" "${GW_URL[main]}"
    h2load_run "$WARMUP" "" -i "$WORK/list-uris"
    pgbench_run "$WARMUP" "" "$TG_PG_PORT" prepared "$CLIENTS" "$WORK/list.sql" 1 >/dev/null
    wrk_run "$WARMUP" 0 "${GW_URL[main]}"
fi
if [[ $PIPE_CLIENTS == auto ]]; then
    best=0 PIPE_CLIENTS=1
    for c in 1 2 4; do
        r=$(pgbench_run "$((WARMUP > 2 ? WARMUP : 2))" "" "$TG_PG_PORT" prepared "$c" "$WORK/pipeline.sql" "$PIPE_N")
        tg_log "pipelined pgbench -c$c: ${r%% *} queries/s"
        if awk -v a="${r%% *}" -v b="$best" 'BEGIN { exit !(a > b) }'; then best=${r%% *} PIPE_CLIENTS=$c; fi
    done
    PIPE_PICK="the best of -c1/-c2/-c4 in the warm-up"
else
    PIPE_PICK="BENCH_PIPELINE_CLIENTS"
fi
tg_log "pipelined pgbench: -c$PIPE_CLIENTS ($PIPE_PICK)"

# ---------------------------------------------------------------------------------
# Measure: the kinds interleaved, round after round, so that noise from the rest of
# the machine spreads over all of them.

: >"$WORK/results"
KINDS=(pg pgb pipe h2c@main $( ((NOPIPE)) && echo h2c@nopipe || true) h1@main h2c@control h1@control health@main list@main listpg)
for ((run = 1; run <= RUNS; run++)); do
    for k in "${KINDS[@]}"; do
        if [[ $k == *@* ]]; then measure "${k%@*}" "$run" "$SECS" "$WORK/results" "${k#*@}"
        else measure "$k" "$run" "$SECS" "$WORK/results"; fi
    done
done
for gw in main $( ((NOPIPE)) && echo nopipe || true); do
    kill -0 "${GW_PID[$gw]}" 2>/dev/null || tg_die "the gateway $gw died during the benchmark"
done
kill -0 "$CONTROL_PID" 2>/dev/null || tg_die "the control server died during the benchmark"
LOAD_END=$(uptime)

declare -A RPS P50 P99 CPU SHP SHR XPR
for kind in "${KINDS[@]}"; do
    RPS[$kind]=$(median "$kind" 3)
    P50[$kind]=$(median "$kind" 4)
    P99[$kind]=$(median "$kind" 5)
    CPU[$kind]=$(median "$kind" 6)
    read -r "SHP[$kind]" "SHR[$kind]" "XPR[$kind]" <<<"$(shares "$kind")"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
vs() { ratio "$1" "${RPS[pg]}"; }
share_txt() { [[ ${SHP[$1]} == - ]] && echo - || echo "${SHP[$1]} / ${SHR[$1]}"; }

PGB_NOTE="-M $PGB_MODE"
[[ $PGB_MODE == prepared ]] || PGB_NOTE+=": PgBouncer $PGB_VERSION has no prepared statements in transaction mode (1.21+)"
declare -A LABEL=(
    [pg]="pgbench -M prepared -c$CLIENTS -j2 (direct)"
    [pgb]="pgbench -M $PGB_MODE -c$CLIENTS -j2 via PgBouncer (transaction)"
    [pipe]="pgbench -M prepared -c$PIPE_CLIENTS, $PIPE_N per pipeline (direct; queries/s)"
    [h2c@main]="tollgate h2c (h2load -c$CLIENTS -m$STREAMS)"
    [h2c@nopipe]="tollgate h2c, no pipelining (depth 1)"
    [h2c@control]="control h2c (1 thread, 1 connection, depth $CONTROL_DEPTH)"
    [h1@control]="control HTTP/1.1 (wrk -t1 -c$CLIENTS)"
    [list@main]="tollgate h2c list read, $LIST_N rows (h2load -c$CLIENTS -m$STREAMS)"
    [listpg]="pgbench -M prepared -c$CLIENTS, the same list read (direct)"
    [h1@main]="tollgate HTTP/1.1 (wrk -t1 -c$CLIENTS)"
    [health@main]="tollgate GET /healthz (h2load -c$CLIENTS -m$STREAMS)"
)
declare -A INFLIGHT=([pg]=$CLIENTS [pgb]=$CLIENTS [pipe]=$((PIPE_CLIENTS * PIPE_N)) [h2c@main]=$((CLIENTS * STREAMS))
    [h2c@nopipe]=$((CLIENTS * STREAMS)) [h1@main]=$CLIENTS [health@main]=$((CLIENTS * STREAMS))
    [h2c@control]=$((CLIENTS * STREAMS)) [h1@control]=$CLIENTS [list@main]=$((CLIENTS * STREAMS)) [listpg]=$CLIENTS)
BACKENDS="primary$( ((REPLICA)) && echo ' + replica (reads to the replica while it is usable)')"

echo
echo "tollgate point reads: GET /users/{id}, random ids over $USERS users"
echo "  SQL:       $CATALOG_SQL"
echo "  gateway:   threads $THREADS, ${GW_DESC[main]}; backends: $BACKENDS;"
echo "             catalog: get_user only, uncached; 'nopipe': the same with TOLLGATE_PIPELINE_DEPTH=1"
echo "  pgbench:   direct and pipelined on the primary; PgBouncer $PGB_VERSION, pool_mode transaction,"
echo "             default_pool_size $POOL, $PGB_NOTE"
echo "  machine:   $(nproc) CPUs; $SECS s per measurement, median of $RUNS round(s), ${WARMUP} s warm-up"
echo "  load:      start: ${LOAD_START#*load average: } / end: ${LOAD_END#*load average: }; co-runner: $( ((CORUNNER)) && echo "$CORUNNER busy loop(s)" || echo none)"
echo
echo "Per round (req/s, p50 ms, p99 ms, gateway CPU %, primary / replica transactions):"
awk '{ printf "  round %s  %-16s %10.1f %8.3f %8.3f %5s%% %9s %9s\n", $2, $1, $3, $4, $5, $6, $7, $8 }' "$WORK/results"
echo
printf '%-62s %14s %8s %8s %10s %9s %7s %15s %9s\n' "what" "req/s (median)" "p50 ms" "p99 ms" "vs direct" \
    "in flight" "gw CPU" "primary/replica" "xacts/req"
for kind in "${KINDS[@]}"; do
    printf '%-62s %14.1f %8.3f %8.3f %10s %9s %6s%% %15s %9s\n' "${LABEL[$kind]}" "${RPS[$kind]}" "${P50[$kind]}" \
        "${P99[$kind]}" "$(vs "${RPS[$kind]}")" "${INFLIGHT[$kind]}" "${CPU[$kind]}" "$(share_txt "$kind")" "${XPR[$kind]}"
done
echo "  (pipelined pgbench: p50/p99 are per pipeline of $PIPE_N; primary/replica: % of the backend transactions"
echo "   during the measurement; health checks included, /healthz itself touches no backend)"

# The targets: NAME NUMERATOR DENOMINATOR MIN
target() {
    local r ok
    r=$(ratio "$2" "$3")
    ok=$(awk -v r="$r" -v m="$4" 'BEGIN { print (r >= m) ? "met" : "MISSED" }')
    [[ $ok == met ]] || MISSED+=("$1 $r < $4")
    printf '  %-40s %6sx   target >= %sx   %s\n' "$1" "$r" "$4" "$ok"
}
MISSED=()
# NAME NUMERATOR-KIND DENOMINATOR-KIND MIN: the targets, printed and as Markdown
TARGETS=("tollgate h2c / pipelined pgbench|h2c@main|pipe|0.5"
    "tollgate h2c / pgbench direct|h2c@main|pg|1.25"
    "tollgate HTTP/1.1 / pgbench direct|h1@main|pg|0.9"
    "tollgate h2c / control h2c|h2c@main|h2c@control|1"
    "tollgate HTTP/1.1 / control HTTP/1.1|h1@main|h1@control|1")
echo
echo "Ratios:"
for t in "${TARGETS[@]}"; do
    IFS='|' read -r name a b min <<<"$t"
    target "$name" "${RPS[$a]}" "${RPS[$b]}" "$min"
done
printf '  %-40s %6sx\n' "tollgate list read / pgbench list read" "$(ratio "${RPS[list@main]}" "${RPS[listpg]}")"
if ((NOPIPE)); then printf '  %-40s %6sx\n' "tollgate h2c: pipelining / depth 1" "$(ratio "${RPS[h2c@main]}" "${RPS[h2c@nopipe]}")"; fi
printf '  %-40s %6sx\n' "tollgate h2c / pgbench via PgBouncer" "$(ratio "${RPS[h2c@main]}" "${RPS[pgb]}")"
printf '  %-40s %6sx\n' "PgBouncer / pgbench direct" "$(ratio "${RPS[pgb]}" "${RPS[pg]}")"
LIST_MBPS=$(median list@main 3 "$WORK/mbps")
echo "  list reads: tollgate $(printf '%.0f' "${RPS[list@main]}") calls/s ($LIST_N rows each), ${LIST_MBPS} MB/s of JSON (h2load's, median)"

# p99 at half the peak: each load again at half its median rate (h2load --rps per client, pgbench -R).
half_rate() { # KIND
    local kind=$1 rate secs=$SECS r
    rate=$(awk -v r="${RPS[$kind]}" 'BEGIN { printf "%d", r / 2 }')
    case $kind in
        pg) r=$(timeout -k 5 "$TOOL_TIMEOUT" "$TG_PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j 2 -T "$secs" -R "$rate" \
                -D users="$USERS" -f "$TG_ROOT/bench/get_user.sql" -l "--log-prefix=$WORK/half.pg" \
                -h 127.0.0.1 -p "$TG_PG_PORT" -U "$TG_PG_USER" "$TG_PG_DB" >"$WORK/half.out" 2>&1 &&
                percentiles 3 "$WORK"/half.pg.*) ;;
        h2c@*) make_uris "$WORK/uris" "$$" "${GW_URL[${kind#*@}]}"
            r=$(h2load_run "$secs" "$WORK/half.$kind.log" -i "$WORK/uris" --rps="$(awk -v r="$rate" -v c="$CLIENTS" 'BEGIN { printf "%.0f", r / c }')")
            r=${r#* } ;;
        h1@*) make_uris "$WORK/uris" "$$" "${GW_URL[${kind#*@}]}"
            r=$(STREAMS=1 h2load_run "$secs" "$WORK/half.$kind.log" --h1 -i "$WORK/uris" \
                --rps="$(awk -v r="$rate" -v c="$CLIENTS" 'BEGIN { printf "%.0f", r / c }')")
            r=${r#* } ;;
    esac
    HALF_RATE[$kind]=$rate
    HALF_P99[$kind]=$(awk '{ print $2 }' <<<"${r:-nan nan}")
}
declare -A HALF_RATE HALF_P99
HALF_KINDS=(pg h2c@main h1@main h2c@control h1@control)
for k in "${HALF_KINDS[@]}"; do half_rate "$k"; done
echo
echo "p99 at half the peak rate (the same load at half its median req/s):"
for k in "${HALF_KINDS[@]}"; do
    printf '  %-62s %8s req/s   p99 %8s ms   (at the peak: p99 %s ms)\n' "${LABEL[$k]}" "${HALF_RATE[$k]}" "${HALF_P99[$k]}" "${P99[$k]}"
done

echo
echo "Markdown:"
echo
echo "| what | req/s (median of $RUNS) | p50 ms | p99 ms | in flight | vs direct | primary / replica % |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for kind in "${KINDS[@]}"; do
    printf '| %s | %.0f | %.2f | %.2f | %s | %s | %s |\n' "${LABEL[$kind]}" "${RPS[$kind]}" "${P50[$kind]}" \
        "${P99[$kind]}" "${INFLIGHT[$kind]}" "$(vs "${RPS[$kind]}")" "$(share_txt "$kind")"
done
echo
echo "| ratio | measured | target |"
echo "|---|---:|---:|"
for t in "${TARGETS[@]}"; do
    IFS='|' read -r name a b min <<<"$t"
    echo "| $name | $(ratio "${RPS[$a]}" "${RPS[$b]}") | >= $min |"
done
echo
echo "| at half the peak | req/s | p99 ms | p99 ms at the peak |"
echo "|---|---:|---:|---:|"
for k in "${HALF_KINDS[@]}"; do echo "| ${LABEL[$k]} | ${HALF_RATE[$k]} | ${HALF_P99[$k]} | ${P99[$k]} |"; done
echo
echo "($USERS users, $(nproc) CPUs shared by PostgreSQL ($BACKENDS), PgBouncer, the gateway and the load tool;"
echo " threads $THREADS, ${GW_DESC[main]}; PgBouncer $PGB_NOTE; load average ${LOAD_END#*load average: })"

for gw in main $( ((NOPIPE)) && echo nopipe || true); do
    ERRORS=$(grep -c -E '\b(error|fatal)\b' "$WORK/gateway.$gw.log" || true)
    ((ERRORS == 0)) || tg_warn "the gateway $gw logged $ERRORS error line(s); see $WORK/gateway.$gw.log (BENCH_KEEP=1 keeps it)"
done

# ---------------------------------------------------------------------------------
# Shapes: pool sizes x pipelining, one gateway at a time.

if ((SHAPES)); then
    stop_gw nopipe || true
    stop_gw main || true
    pgb_stop
    : >"$WORK/shapes"
    SHAPE_NAMES=()
    tg_log "shape sweep: pool sizes $SHAPE_POOLS x depth 1 and default, ${SHAPE_SECS} s of h2c and HTTP/1.1 each, $SHAPE_RUNS round(s)"
    for ((run = 1; run <= SHAPE_RUNS; run++)); do
        for pool in $SHAPE_POOLS; do
            for depth in 1 "${USER_DEPTH:-32}"; do
                name=p${pool}d$depth
                d=$depth
                [[ -z $USER_DEPTH && $depth == 32 ]] && d= # the gateway's default
                start_gw "$name" "$pool" "$d"
                ((run == 1)) && SHAPE_NAMES+=("$name")
                make_uris "$WORK/uris" "$$" "${GW_URL[$name]}"
                h2load_run 1 "" -i "$WORK/uris" # warm the new connections
                measure h2c "$run" "$SHAPE_SECS" "$WORK/shapes" "$name"
                measure h1 "$run" "$SHAPE_SECS" "$WORK/shapes" "$name"
                stop_gw "$name" || tg_warn "the gateway $name did not stop cleanly"
            done
        done
    done
    echo
    echo "Shapes (threads $THREADS; $SHAPE_SECS s per measurement, median of $SHAPE_RUNS round(s); h2c: h2load -c$CLIENTS -m$STREAMS, HTTP/1.1: wrk -t1 -c$CLIENTS):"
    echo
    echo "| pool size | conns / thread / backend | pipeline depth | h2c req/s | h2c p99 ms | HTTP/1.1 req/s | HTTP/1.1 p99 ms | gw CPU h2c | primary / replica % (h2c) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for name in "${SHAPE_NAMES[@]}"; do
        pool=${name#p} pool=${pool%d*} depth=${name##*d}
        read -r sp sr _ <<<"$(shares "h2c@$name" "$WORK/shapes")"
        printf '| %s | %s | %s | %.0f | %.2f | %.0f | %.2f | %s%% | %s |\n' "$pool" "$(((pool + THREADS - 1) / THREADS))" \
            "$depth" "$(median "h2c@$name" 3 "$WORK/shapes")" "$(median "h2c@$name" 5 "$WORK/shapes")" \
            "$(median "h1@$name" 3 "$WORK/shapes")" "$(median "h1@$name" 5 "$WORK/shapes")" \
            "$(median "h2c@$name" 6 "$WORK/shapes")" "$([[ $sp == - ]] && echo - || echo "$sp / $sr")"
    done
    echo
    echo "(pgbench direct in the main comparison: $(printf '%.0f' "${RPS[pg]}") req/s; load average $(loadavg))"
    # the profile below needs the main gateway again
    [[ $PROFILE == 0 ]] || { ((${#MISSED[@]} == 0)) && [[ $PROFILE == auto ]]; } || start_gw main "$POOL" "$USER_DEPTH"
fi

reason=
if [[ $PROFILE == 1 ]]; then
    reason="BENCH_PROFILE=1"
elif [[ $PROFILE == auto ]] && ((${#MISSED[@]} > 0)); then
    reason="missed: $(IFS=';'; echo "${MISSED[*]}")"
fi
[[ -z $reason ]] || profile_gateway "$reason"
