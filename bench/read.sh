#!/usr/bin/env bash
# Point-read benchmark: tollgate's GET /users/{id} against pgbench running the same
# SELECT straight on PostgreSQL, all on this machine (127.0.0.1), in one run.
#
#   1. a throwaway PostgreSQL 15 (tests/pg.sh; primary only) with BENCH_USERS users,
#      the gateway (//gateway:tollgated) in front of it;
#   2. warm-up (BENCH_WARMUP seconds of each load, discarded);
#   3. BENCH_RUNS rounds, each of (BENCH_SECONDS seconds apiece):
#        pgbench   -M prepared -c10 -j2, bench/get_user.sql (random id in 1..N)
#        h2load    -c10 -m10 over h2c (prior knowledge), GET /users/<random id>
#                  (a fresh file of random URIs each round, h2load -i)
#        wrk       -t1 -c10 over HTTP/1.1, bench/random_id.lua
#        h2load    -c10 -m10 GET /healthz: the gateway's own HTTP ceiling
#   4. a table of the medians over the rounds: req/s, p50, p99 (p50/p99 are the
#      medians of each round's percentiles; h2load and pgbench percentiles come from
#      their per-request logs, wrk's from --latency), and req/s relative to pgbench;
#      the same as a Markdown table;
#   5. when tollgate falls below 0.8x pgbench over h2c or 0.6x over HTTP/1.1 (or
#      BENCH_PROFILE=1), a system-wide `perf record` during one more h2c run and the
#      gateway's top functions.
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
#   BENCH_POOL=16             the gateway's "pool": {"size"} (split across threads)
#   TOLLGATE_PIPELINE_DEPTH   calls in flight per backend connection (gateway default 32)
#   BENCH_CLIENTS=10          connections of every client tool (pgbench, h2load, wrk)
#   BENCH_STREAMS=10          h2load -m (concurrent streams per connection)
#   BENCH_URIS=200000         random URIs per h2load input file
#   BENCH_MAX_ERROR_FRACTION=0.001   tolerated share of failed / non-2xx requests
#   BENCH_PROFILE=auto        1: always profile, 0: never, auto: below the ratios above
#   BENCH_KEEP=1              keep the work folder (logs, config, perf data)
#   TG_PG_PORT=57432 TG_HTTP_PORT=58080 TG_ADMIN_PORT=58081   ports (next free if taken)
#   TG_BAZEL_STARTUP / TG_BAZEL_FLAGS   extra bazel startup / build options
#   TG_BAZEL_BIN              where the build outputs are (default: bazel-bin)
#   TG_SKIP_BUILD=1           don't build; use TG_GATEWAY_BIN (default bazel-bin's)
#
# The benchmark config is config/example.json (tg_render_config) with threads, pool
# size, no replicas, anonymous rate limits out of the way, and a catalog holding only
# get_user from config/catalog, uncached, so every request reaches PostgreSQL like
# pgbench's. The script checks that bench/get_user.sql runs the catalog's SQL.

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
CLIENTS=${BENCH_CLIENTS:-10}
STREAMS=${BENCH_STREAMS:-10}
NURIS=${BENCH_URIS:-200000}
MAX_ERR=${BENCH_MAX_ERROR_FRACTION:-0.001}
PROFILE=${BENCH_PROFILE:-auto}
for v in USERS SECS RUNS THREADS POOL CLIENTS STREAMS NURIS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || tg_die "$v must be a positive integer, not '${!v}'"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || tg_die "BENCH_WARMUP must be a number of seconds"
[[ -z ${TOLLGATE_PIPELINE_DEPTH:-} || $TOLLGATE_PIPELINE_DEPTH =~ ^[1-9][0-9]*$ ]] ||
    tg_die "TOLLGATE_PIPELINE_DEPTH must be a positive integer"
[[ $PROFILE =~ ^(auto|0|1)$ ]] || tg_die "BENCH_PROFILE must be auto, 0 or 1"

# Our own ports by default, away from tests/run.sh's and the demo's.
export TG_PG_PORT=${TG_PG_PORT:-57432} TG_PG_REPLICA_PORT=${TG_PG_REPLICA_PORT:-57433}
export TG_PG_REPLICA=0 TG_SAMPLE_USERS=$USERS
# The per-request tools, with a hard bound on each.
TOOL_TIMEOUT=$((SECS + WARMUP + 60))

read -r -a BAZEL_STARTUP <<<"${TG_BAZEL_STARTUP:-}"
read -r -a BAZEL_FLAGS <<<"${TG_BAZEL_FLAGS:-}"
BAZEL_BIN=${TG_BAZEL_BIN:-$TG_ROOT/bazel-bin}
GW_BIN=${TG_GATEWAY_BIN:-$BAZEL_BIN/gateway/tollgated}

WORK=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
PERF_PID=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n $PERF_PID ]] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null
    tg_stop_gateway >/dev/null 2>&1 || true
    pg_stop >/dev/null 2>&1 || true
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        tg_log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

# The median of column COL of $WORK/results' rows for KIND.
median() { # KIND COL
    awk -v k="$1" -v c="$2" '$1 == k { print $c }' "$WORK/results" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
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

# The gateway's CPU time so far (user + system), in clock ticks.
gw_ticks() { awk '{ print $14 + $15 }' "/proc/$TG_GATEWAY_PID/stat"; }
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------
# The loads. Each measurement prints "REQ_PER_S P50_MS P99_MS".

pgbench_run() { # SECONDS LOGPREFIX(empty: no log)
    local secs=$1 prefix=$2 out=$WORK/pgbench.out log=()
    [[ -n $prefix ]] && log=(-l "--log-prefix=$prefix")
    timeout -k 5 "$TOOL_TIMEOUT" "$TG_PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j 2 -T "$secs" \
        -D users="$USERS" -f "$TG_ROOT/bench/get_user.sql" "${log[@]}" \
        -h 127.0.0.1 -p "$TG_PG_PORT" -U "$TG_PG_USER" "$TG_PG_DB" >"$out" 2>&1 ||
        { sed 's/^/    /' "$out" >&2; tg_die "pgbench failed"; }
    [[ -n $prefix ]] || return 0
    local tps ndone failed
    tps=$(awk '/^tps = / { print $3 }' "$out")
    ndone=$(awk -F': ' '/^number of transactions actually processed/ { split($2, a, "/"); print a[1] + 0 }' "$out")
    failed=$(awk -F': ' '/^number of failed transactions/ { print $2 + 0 }' "$out")
    check_errors pgbench "${failed:-0}" "${ndone:-0}" "$out"
    echo "$tps $(percentiles 3 "$prefix".*)"
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
    echo "$rps $(percentiles 3 "$reqlog")"
}

wrk_run() { # SECONDS PARSE(0|1)
    local secs=$1 parse=$2 out=$WORK/wrk.out
    timeout -k 5 "$TOOL_TIMEOUT" wrk -t1 -c "$CLIENTS" -d "${secs}s" --latency \
        -s "$TG_ROOT/bench/random_id.lua" "$BASE_URL" -- "$USERS" >"$out" 2>&1 ||
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

# A file of NURIS random /users/<id> URIs for h2load -i.
make_uris() { # FILE SEED
    awk -v n="$USERS" -v k="$NURIS" -v seed="$2" -v base="$BASE_URL" \
        'BEGIN { srand(seed); for (i = 0; i < k; i++) printf "%s/users/%d\n", base, 1 + int(rand() * n) }' >"$1"
}

# Runs one measurement KIND (pg|h2c|h1|health) for round RUN; appends its numbers
# (and the gateway's CPU use) to $WORK/results.
measure() {
    local kind=$1 run=$2 r t0 t1 cpu rps p50 p99
    t0=$(gw_ticks)
    case $kind in
        pg) r=$(pgbench_run "$SECS" "$WORK/pgb.$run") ;;
        h2c)
            make_uris "$WORK/uris" "$((run * 7919 + $$))"
            r=$(h2load_run "$SECS" "$WORK/h2c.$run.log" -i "$WORK/uris")
            ;;
        h1) r=$(wrk_run "$SECS" 1) ;;
        health) r=$(h2load_run "$SECS" "$WORK/health.$run.log" "$BASE_URL/healthz") ;;
    esac
    t1=$(gw_ticks)
    cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v s="$SECS" 'BEGIN { printf "%.0f", (b - a) / hz / s * 100 }')
    echo "$kind $run $r $cpu" >>"$WORK/results"
    read -r rps p50 p99 <<<"$r"
    tg_log "$(printf 'round %d %-7s %10.1f req/s  p50 %7.3f ms  p99 %7.3f ms  gateway CPU %4s%%  load %s' \
        "$run" "$kind" "$rps" "$p50" "$p99" "$cpu" "$(loadavg)")"
}

# ---------------------------------------------------------------------------------
# Profiling

profile_gateway() {
    local reason=$1 data=$WORK/perf.data
    echo
    echo "Profile ($reason): perf record -a -g during one more ${SECS} s h2c run"
    if ! command -v perf >/dev/null; then
        local TG_PACKAGES=(linux-perf) # tg_ensure_packages installs this list
        tg_ensure_packages || true
    fi
    if ! command -v perf >/dev/null || ! perf record -e cpu-clock -o "$WORK/perf.probe" -- true >/dev/null 2>&1; then
        echo "  perf is not available or not supported on this machine; no profile"
        return 0
    fi
    make_uris "$WORK/uris" "$$"
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
    total=$("${rep[@]}" --sort comm 2>/dev/null | awk '$2 == "tollgated" { sub("%", "", $1); print $1 }')
    gateway_share() { # ROWS: the gateway's rows of a comm,... report, as % of its samples
        awk -v t="${total:-0}" -v n="$1" 't > 0 && $2 == "tollgated" && shown < n {
            p = $1; sub("%", "", p); $1 = ""; $2 = ""; sub(/^ +/, ""); sub(/( -)+$/, "")
            printf "  %6.2f%%  %s\n", p * 100 / t, $0; shown++ }'
    }
    echo
    echo "CPU by process (% of all samples, both cores):"
    "${rep[@]}" --sort comm --percent-limit 1 2>/dev/null | awk '/^[^#]/ && NF && ++n <= 12 { print "  " $0 }'
    echo
    echo "tollgated by library (% of the gateway's ${total:-0}% of the samples):"
    "${rep[@]}" --sort comm,dso 2>/dev/null | gateway_share 10
    echo
    echo "tollgated top functions (self, % of the gateway's samples):"
    "${rep[@]}" --sort comm,dso,symbol 2>/dev/null | gateway_share 30
    return 0
}

# ---------------------------------------------------------------------------------
# Setup

TG_PACKAGES+=(jq)
tg_ensure_packages
for t in h2load wrk jq curl; do command -v "$t" >/dev/null || tg_die "$t is missing"; done
[[ -x $TG_PG_BIN/pgbench ]] || tg_die "no pgbench in $TG_PG_BIN"

if [[ ${TG_SKIP_BUILD:-0} == 1 ]]; then
    tg_log "TG_SKIP_BUILD=1: using $GW_BIN as it is"
else
    tg_log "building //gateway:tollgated"
    bazel "${BAZEL_STARTUP[@]}" --batch build "${BAZEL_FLAGS[@]}" //gateway:tollgated >"$WORK/build.log" 2>&1 ||
        { grep -E -A5 '^ERROR' "$WORK/build.log" | head -n 60 >&2 || tail -n 40 "$WORK/build.log" >&2; tg_die "build failed"; }
fi
[[ -x $GW_BIN ]] || tg_die "no gateway binary at $GW_BIN"

# The catalog's get_user (its SQL must be bench/get_user.sql's), without its cache.
GET_USER=$(jq -c '.queries[]? | select(.name == "get_user")' "$TG_ROOT"/config/catalog/*.json)
[[ -n $GET_USER ]] || tg_die "no query get_user in config/catalog"
[[ $(jq -r .route <<<"$GET_USER") == 'GET /users/{id}' ]] || tg_die "get_user's route is not GET /users/{id}"
norm() { tr -s ' \t\n' ' ' | sed 's/^ //; s/ *;* *$//'; }
CATALOG_SQL=$(jq -r '.sql | if type == "array" then join(" ") else . end' <<<"$GET_USER" | norm)
# shellcheck disable=SC2016 # a literal $1
BENCH_SQL=$(grep -v -e '^[[:space:]]*--' -e '^[[:space:]]*[\]' bench/get_user.sql | sed 's/:id\b/$1/g' | norm)
[[ $CATALOG_SQL == "$BENCH_SQL" ]] ||
    tg_die "bench/get_user.sql no longer runs get_user's SQL: catalog: $CATALOG_SQL / bench: $BENCH_SQL"
mkdir -p "$WORK/catalog"
jq '{queries: [.queries[]? | select(.name == "get_user") | del(.cache)]}' "$TG_ROOT"/config/catalog/*.json |
    jq -s '{queries: map(.queries[])}' >"$WORK/catalog/users.json"

tg_log "load average at start: $(loadavg) ($(nproc) CPUs)"
LOAD_START=$(uptime)

pg_start || tg_die "could not start PostgreSQL"
tg_log "VACUUM ANALYZE and pg_prewarm of users"
_pg_psql "$TG_PG_PORT" >/dev/null <<'EOF' || tg_warn "VACUUM / pg_prewarm failed; the warm-up has to do"
VACUUM ANALYZE users;
CREATE EXTENSION IF NOT EXISTS pg_prewarm;
SELECT pg_prewarm('users'), pg_prewarm('users_pkey');
EOF

TG_HTTP_PORT=$(tg_pick_port "${TG_HTTP_PORT:-58080}" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT")
TG_ADMIN_PORT=$(tg_pick_port "${TG_ADMIN_PORT:-58081}" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$TG_HTTP_PORT")
BASE_URL=http://127.0.0.1:$TG_HTTP_PORT
CONFIG=$WORK/config.json
# no replica here (its DSN is only a placeholder for the template; "replicas" becomes [])
TG_REPLICA_DSN=${TG_REPLICA_DSN:-unused} tg_render_config config/example.json "$WORK/config.tmpl.json"
jq --argjson threads "$THREADS" --argjson pool "$POOL" --arg catalog "$WORK/catalog/" \
    '.threads = $threads | .pool.size = $pool | .replicas = [] | .catalog = [$catalog]
     | .access_log = null | .max_in_flight = 0
     | .anonymous = {rate: 1000000000, burst: 1000000000}' "$WORK/config.tmpl.json" >"$CONFIG"
"$GW_BIN" --config "$CONFIG" --check >"$WORK/check.log" 2>&1 ||
    { sed 's/^/    /' "$WORK/check.log" >&2; tg_die "tollgated --check rejected the benchmark config"; }

tg_log "starting the gateway on $BASE_URL"
tg_start_gateway "$GW_BIN" "$CONFIG" "$WORK/gateway.log" || tg_die "the gateway did not start"
tg_wait_http "$BASE_URL/readyz" 15 200 || tg_die "GET /readyz is not 200 after 15 s"
for id in 1 "$USERS"; do
    body=$(curl -sS --max-time 5 -w ' %{http_code}' "$BASE_URL/users/$id")
    [[ ${body##* } == 200 && $body == *"\"id\":$id,"* ]] || tg_die "GET /users/$id: unexpected answer: $body"
done

DEPTH=${TOLLGATE_PIPELINE_DEPTH:-32}
PER_THREAD=$(((POOL + THREADS - 1) / THREADS))
SHAPE="threads $THREADS, pool size $POOL ($PER_THREAD connections per thread), pipeline depth $DEPTH$([[ -n ${TOLLGATE_PIPELINE_DEPTH:-} ]] || echo ' (default)')"
tg_log "gateway: $SHAPE"

if ((WARMUP > 0)); then
    tg_log "warm-up: ${WARMUP} s each of pgbench, h2load, wrk (discarded)"
    make_uris "$WORK/uris" "$$"
    pgbench_run "$WARMUP" ""
    h2load_run "$WARMUP" "" -i "$WORK/uris"
    wrk_run "$WARMUP" 0
fi

# ---------------------------------------------------------------------------------
# Measure: the kinds interleaved, round after round, so that noise from the rest of
# the machine spreads over all of them.

: >"$WORK/results"
KINDS=(pg h2c h1 health)
for ((run = 1; run <= RUNS; run++)); do
    for kind in "${KINDS[@]}"; do
        measure "$kind" "$run"
    done
done
kill -0 "$TG_GATEWAY_PID" 2>/dev/null || tg_die "the gateway died during the benchmark"
LOAD_END=$(uptime)

declare -A RPS P50 P99 CPU
for kind in "${KINDS[@]}"; do
    RPS[$kind]=$(median "$kind" 3)
    P50[$kind]=$(median "$kind" 4)
    P99[$kind]=$(median "$kind" 5)
    CPU[$kind]=$(median "$kind" 6)
done
ratio() { awk -v a="$1" -v b="${RPS[pg]}" 'BEGIN { printf "%.2f", a / b }'; }

declare -A LABEL=(
    [pg]="pgbench -M prepared -c$CLIENTS -j2 (direct)"
    [h2c]="tollgate h2c (h2load -c$CLIENTS -m$STREAMS)"
    [h1]="tollgate HTTP/1.1 (wrk -t1 -c$CLIENTS)"
    [health]="tollgate GET /healthz (h2load -c$CLIENTS -m$STREAMS)"
)

echo
echo "tollgate point reads: GET /users/{id}, random ids over $USERS users"
echo "  SQL:      $CATALOG_SQL"
echo "  gateway:  $SHAPE; catalog: get_user only, uncached"
echo "  machine:  $(nproc) CPUs; $SECS s per measurement, median of $RUNS round(s), ${WARMUP} s warm-up"
echo "  load:     start: ${LOAD_START#*load average: } / end: ${LOAD_END#*load average: }"
echo
echo "Per round (req/s, p50 ms, p99 ms, gateway CPU %):"
awk '{ printf "  round %s  %-7s %10.1f %8.3f %8.3f %5s%%\n", $2, $1, $3, $4, $5, $6 }' "$WORK/results"
echo
declare -A INFLIGHT=([pg]=$CLIENTS [h2c]=$((CLIENTS * STREAMS)) [h1]=$CLIENTS [health]=$((CLIENTS * STREAMS)))
printf '%-52s %14s %8s %8s %11s %10s %7s\n' "what" "req/s (median)" "p50 ms" "p99 ms" "vs pgbench" "in flight" "gw CPU"
for kind in "${KINDS[@]}"; do
    printf '%-52s %14.1f %8.3f %8.3f %11s %10s %6s%%\n' "${LABEL[$kind]}" "${RPS[$kind]}" "${P50[$kind]}" \
        "${P99[$kind]}" "$(ratio "${RPS[$kind]}")" "${INFLIGHT[$kind]}" \
        "$([[ $kind == pg ]] && echo - || echo "${CPU[$kind]}")"
done
echo
echo "tollgate h2c / pgbench:      $(ratio "${RPS[h2c]}")"
echo "tollgate HTTP/1.1 / pgbench: $(ratio "${RPS[h1]}")"
echo
echo "Markdown:"
echo
echo "| what | req/s (median of $RUNS) | p50 ms | p99 ms | vs pgbench |"
echo "|---|---:|---:|---:|---:|"
for kind in "${KINDS[@]}"; do
    printf '| %s | %.0f | %.2f | %.2f | %s |\n' "${LABEL[$kind]}" "${RPS[$kind]}" "${P50[$kind]}" \
        "${P99[$kind]}" "$(ratio "${RPS[$kind]}")"
done
echo
echo "($USERS users, $(nproc) CPUs shared by PostgreSQL, the gateway and the load tool; $SHAPE; load average ${LOAD_END#*load average: })"

ERRORS=$(grep -c -E '\b(error|fatal)\b' "$WORK/gateway.log" || true)
((ERRORS == 0)) || tg_warn "the gateway logged $ERRORS error line(s); see $WORK/gateway.log (BENCH_KEEP=1 keeps it)"

reason=
if [[ $PROFILE == 1 ]]; then
    reason="BENCH_PROFILE=1"
elif [[ $PROFILE == auto ]]; then
    if awk -v h="$(ratio "${RPS[h2c]}")" -v w="$(ratio "${RPS[h1]}")" 'BEGIN { exit !(h < 0.8 || w < 0.6) }'; then
        reason="h2c below 0.8x or HTTP/1.1 below 0.6x pgbench"
    fi
fi
[[ -z $reason ]] || profile_gateway "$reason"
