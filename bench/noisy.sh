#!/usr/bin/env bash
# Noisy-neighbour benchmark: does one tenant flooding the gateway, and another one
# flooding it with slow low-priority queries, hurt a well-behaved tenant? And what
# does the rate limiter itself cost? All on this machine (127.0.0.1), in one run.
#
#   1. a throwaway PostgreSQL 15 (tests/pg.sh) with BENCH_USERS users, primary and a
#      streaming replica (reads go to the replica); one gateway (//gateway:tollgate,
#      threads 2, pool size 16) with four tenants and anonymous access:
#        A "noisy"     rate BENCH_A_RATE (500)/s, burst BENCH_A_BURST (500), max_in_flight 64
#        B "steady"    rate BENCH_B_RATE (400)/s, burst BENCH_B_BURST (400), max_in_flight 64
#        C "batch"     priority low, rate/burst 100000 (generous), no in-flight cap
#        "unlimited"   rate/burst 1e9, no in-flight cap (the limiter never says no)
#        anonymous     rate/burst 1e9 (keyless requests: no key to hash or look up)
#      and a catalog of config/catalog (get_user without its cache, so that every
#      request reaches PostgreSQL; BENCH_CACHE=1 keeps it) + tests/integration/catalog
#      (GET /limits/low: pg_sleep at priority low);
#   2. the loads (h2load over h2c, prior knowledge):
#        B  GET /users/<random id>, fixed rate: h2load -c2 -m10 --rps=R with R such
#           that B sends BENCH_B_RPS (default half its rate: 200 req/s) in all;
#           per-request log (--log-file), p50/p99 computed here
#        A  GET /users/<random id> as fast as it can: h2load -c10 -m10 (many times its rate)
#        C  GET /limits/low?seconds=BENCH_C_SLEEP (0.05): h2load -c8 -m4
#   3. the phases, BENCH_SECONDS (10) each, after a BENCH_WARMUP (3) s warm-up of B:
#        alone       B alone
#        noisy       B with A and C (they start 1 s before B and end 1 s after it)
#        anon        B's load without a key: served as anonymous, limits effectively off
#        alone2      B alone again: how far two identical measurements differ here
#        then BENCH_SAT_ROUNDS (2) x (unlimited key, anonymous), BENCH_SAT_SECONDS (5)
#        each, closed loop h2load -c10 -m10 GET /users/<id>: the limiter at saturation
#      and around each phase the gateway's CPU time: utime+stime of /proc/PID/stat
#      (clock ticks) and, finer, the sum of /proc/PID/task/*/schedstat (ns);
#   4. the table: B's success rate (2xx / requests sent), p50/p99/max, per phase;
#      A's share of 429s and its 2xx/s; C's completed/s; the verdicts:
#        B's success rate with neighbours          100 %
#        p99(B with A and C) / p99(B alone)        <= BENCH_MAX_P99_RATIO (2)
#        limiter cost, as % of the request time    <  BENCH_MAX_LIMITER_PCT (1):
#          the difference in median latency and in gateway CPU time per request
#          between B (key, real limits) and the same load as anonymous (limits off),
#          next to the difference between "alone" and "alone2" (the noise floor).
#
# Exit status: 0 when the run completed (missed targets are printed as MISSED; with
# BENCH_STRICT=1 they exit 1), 1 when it could not run (setup, a tool failing, B not
# 100 % successful while alone: the measurement would mean nothing).
#
# Usage: bench/noisy.sh
#   quick check: BENCH_SECONDS=3 BENCH_WARMUP=1 BENCH_SAT_SECONDS=2 BENCH_SAT_ROUNDS=1 bench/noisy.sh
#
# Environment:
#   BENCH_USERS=100000        users in the sample data (TG_SAMPLE_USERS if set)
#   BENCH_SECONDS=10          length of each phase
#   BENCH_WARMUP=3            seconds of B's load before measuring (0: none)
#   BENCH_SAT_SECONDS=5 BENCH_SAT_ROUNDS=2   saturated limiter-cost runs (rounds 0: none)
#   BENCH_THREADS=2 BENCH_POOL=16 BENCH_LOW_SHARE=0.5   the gateway's shape
#   BENCH_A_RATE=500 BENCH_A_BURST=500 BENCH_B_RATE=400 BENCH_B_BURST=400
#   BENCH_B_RPS               B's total request rate (default: BENCH_B_RATE / 2); must
#                             divide by BENCH_B_CLIENTS (2)
#   BENCH_C_SLEEP=0.05        seconds of pg_sleep per C request
#   BENCH_CACHE=0             1: keep get_user's cache
#   BENCH_MAX_P99_RATIO=2 BENCH_MAX_LIMITER_PCT=1   the targets
#   BENCH_STRICT=0            1: exit 1 when a target is missed
#   BENCH_KEEP=1              keep the work folder (logs, configs)
#   TG_PG_PORT=59532 TG_PG_REPLICA_PORT=59533 TG_HTTP_PORT=59580 TG_ADMIN_PORT=59581
#                             ports (next free if taken)
#   TG_BAZEL_STARTUP / TG_BAZEL_FLAGS   extra bazel startup / build options
#   TG_BAZEL_BIN              where the build outputs are (default: bazel-bin)
#   TG_SKIP_BUILD=1           don't build; use TG_GATEWAY_BIN (default bazel-bin's)

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh
# shellcheck source=tests/pg.sh
source tests/pg.sh

USERS=${BENCH_USERS:-${TG_SAMPLE_USERS:-100000}}
SECS=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-3}
SAT_SECS=${BENCH_SAT_SECONDS:-5}
SAT_ROUNDS=${BENCH_SAT_ROUNDS:-2}
THREADS=${BENCH_THREADS:-2}
POOL=${BENCH_POOL:-16}
LOW_SHARE=${BENCH_LOW_SHARE:-0.5}
A_RATE=${BENCH_A_RATE:-500}
A_BURST=${BENCH_A_BURST:-500}
B_RATE=${BENCH_B_RATE:-400}
B_BURST=${BENCH_B_BURST:-400}
B_CLIENTS=${BENCH_B_CLIENTS:-2}
B_STREAMS=10
B_RPS=${BENCH_B_RPS:-$((B_RATE / 2))}
A_CLIENTS=10 A_STREAMS=10
C_CLIENTS=8 C_STREAMS=4
C_SLEEP=${BENCH_C_SLEEP:-0.05}
SAT_CLIENTS=10 SAT_STREAMS=10
CACHE=${BENCH_CACHE:-0}
MAX_P99_RATIO=${BENCH_MAX_P99_RATIO:-2}
MAX_LIMITER_PCT=${BENCH_MAX_LIMITER_PCT:-1}
STRICT=${BENCH_STRICT:-0}
tg_positive_ints '' USERS SECS THREADS POOL A_RATE A_BURST B_RATE B_BURST B_CLIENTS B_RPS SAT_SECS
[[ $WARMUP =~ ^[0-9]+$ && $SAT_ROUNDS =~ ^[0-9]+$ ]] || tg_die "BENCH_WARMUP and BENCH_SAT_ROUNDS must be whole numbers"
((B_RPS % B_CLIENTS == 0)) || tg_die "BENCH_B_RPS ($B_RPS) must divide by BENCH_B_CLIENTS ($B_CLIENTS): h2load's --rps is per client"
B_RPS_PER=$((B_RPS / B_CLIENTS))
[[ $C_SLEEP =~ ^[0-9]*\.?[0-9]+$ ]] || tg_die "BENCH_C_SLEEP must be a number of seconds"
[[ $CACHE =~ ^[01]$ && $STRICT =~ ^[01]$ ]] || tg_die "BENCH_CACHE and BENCH_STRICT must be 0 or 1"

export TG_PG_PORT=${TG_PG_PORT:-59532} TG_PG_REPLICA_PORT=${TG_PG_REPLICA_PORT:-59533}
export TG_PG_REPLICA=1 TG_SAMPLE_USERS=$USERS
TOOL_TIMEOUT=$((SECS + SAT_SECS + WARMUP + 60)) # hard bound on every h2load

read -r -a BAZEL_STARTUP <<<"${TG_BAZEL_STARTUP:-}"
read -r -a BAZEL_FLAGS <<<"${TG_BAZEL_FLAGS:-}"
BAZEL_BIN=${TG_BAZEL_BIN:-$TG_ROOT/bazel-bin}
GW_BIN=${TG_GATEWAY_BIN:-$BAZEL_BIN/gateway/tollgate}

WORK=$(mktemp -d /tmp/tollgate-noisy.XXXXXX)
GW_PID=
BG_PIDS=()

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in ${BG_PIDS[@]+"${BG_PIDS[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
    for p in ${BG_PIDS[@]+"${BG_PIDS[@]}"}; do wait "$p" 2>/dev/null || true; done
    if [[ -n $GW_PID ]]; then
        TG_GATEWAY_PID=$GW_PID
        tg_stop_gateway >/dev/null 2>&1 || true
    fi
    pg_stop >/dev/null 2>&1 || true
    tg_finish_work "$WORK" "${BENCH_KEEP:-0}" "$rc"
}
tg_trap_cleanup cleanup

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
fmt() { awk -v f="$1" -v x="$2" 'BEGIN { printf f, x }'; }
calc() { awk -v f="$1" "BEGIN { printf f, ($2) }"; } # calc FORMAT EXPRESSION: calc %.2f '1 / 3'
ctest() { awk "BEGIN { exit !($1) }"; }              # ctest EXPRESSION: true when it holds

# ---------------------------------------------------------------------------------
# Numbers

# The gateway's CPU time so far: "TICKS NS" (utime + stime from /proc/PID/stat, and
# the sum of its threads' run time from schedstat, "-" where that is not available).
CLK_TCK=$(getconf CLK_TCK)
gw_cpu() {
    local ticks ns
    ticks=$(awk '{ print $14 + $15 }' "/proc/$GW_PID/stat")
    ns=$(cat /proc/"$GW_PID"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { if (NR) printf "%.0f", s; else print "-" }') || ns=-
    echo "$ticks ${ns:--}"
}

# From an h2load per-request log (start us, status, duration us):
# "N N2XX N429 NOTHER P50_MS P99_MS MAX_MS" (percentiles over every logged request)
log_stats() {
    awk '{ n++; if ($2 >= 200 && $2 < 300) ok++; else if ($2 == 429) rl++; else other++; print $3 > "/dev/stderr" }
         END { printf "%d %d %d %d", n, ok, rl, other }' "$1" 2>"$1.dur"
    printf ' '
    sort -n "$1.dur" | awk 'function at(p,  i) { i = int(NR * p); if (i < NR * p) i++; if (i < 1) i = 1; return v[i] }
        { v[NR] = $1 }
        END { if (NR == 0) print "nan nan nan"; else printf "%.3f %.3f %.3f\n", at(0.50) / 1000, at(0.99) / 1000, v[NR] / 1000 }'
    rm -f "$1.dur"
}

# From an h2load summary: "STARTED DONE ERRORED SECONDS" (errored: requests h2load
# counts as errored or timed out, no HTTP status; its "failed" also counts 4xx/5xx).
h2_summary() {
    awk '/^finished in/ { s = $3; sub("s,", "", s); sub("s$", "", s); if (s ~ /ms$/) { sub("ms", "", s); s /= 1000 } }
         /^requests:/ { started = $4; done = $6; bad = $12 + $14 }
         END { printf "%d %d %d %s\n", started, done, bad, s }' "$1"
}

# A file of random /users/<id> URIs for h2load -i.
make_uris() { # FILE SEED COUNT
    awk -v n="$USERS" -v k="$3" -v seed="$2" -v base="$BASE" \
        'BEGIN { srand(seed); for (i = 0; i < k; i++) printf "%s/users/%d\n", base, 1 + int(rand() * n) }' >"$1"
}

# h2load NAME SECONDS CLIENTS STREAMS RPS_PER_CLIENT(0: closed loop) KEY(-: none) URI|-i FILE
# Output in $WORK/NAME.out, per-request log in $WORK/NAME.log. h2load_run waits for
# it; h2load_bg starts it in the background (H2_PID: timeout's pid, which passes a
# SIGTERM on to h2load) and h2load_wait NAME PID waits for it.
h2load_cmd() {
    local name=$1 secs=$2 c=$3 m=$4 rps=$5 key=$6
    shift 6
    H2_CMD=(timeout -k 5 "$TOOL_TIMEOUT" h2load -c "$c" -m "$m" -D "$secs" --log-file="$WORK/$name.log")
    ((rps > 0)) && H2_CMD+=("--rps=$rps")
    [[ $key == - ]] || H2_CMD+=(-H "x-api-key: $key")
    H2_CMD+=("$@")
}
h2load_run() {
    h2load_cmd "$@"
    "${H2_CMD[@]}" >"$WORK/$1.out" 2>&1 || { sed 's/^/    /' "$WORK/$1.out" >&2; tg_die "h2load ($1) failed"; }
}
h2load_bg() {
    h2load_cmd "$@"
    "${H2_CMD[@]}" >"$WORK/$1.out" 2>&1 &
    H2_PID=$!
    BG_PIDS+=("$H2_PID")
}
h2load_wait() { # NAME PID
    wait "$2" || { sed 's/^/    /' "$WORK/$1.out" >&2; tg_die "h2load ($1) failed"; }
}

# ---------------------------------------------------------------------------------
# Phases. Each appends to $WORK/phases:
# "NAME SENT DONE SOCKFAIL SECS N N2XX N429 NOTHER P50 P99 MAX CPU_TICKS CPU_NS LOAD1"

B_KEY=bench-noisy-tenant-b-$$-$RANDOM
A_KEY=bench-noisy-tenant-a-$$-$RANDOM
C_KEY=bench-noisy-tenant-c-$$-$RANDOM
U_KEY=bench-noisy-unlimited-$$-$RANDOM

record() { # NAME CPU0 CPU1
    local name=$1 t0 n0 t1 n1 dns
    read -r t0 n0 <<<"$2"
    read -r t1 n1 <<<"$3"
    dns=-
    [[ $n0 != - && $n1 != - ]] && dns=$((n1 - n0))
    echo "$name $(h2_summary "$WORK/$name.out") $(log_stats "$WORK/$name.log") $((t1 - t0)) $dns $(cut -d' ' -f1 /proc/loadavg)" \
        >>"$WORK/phases"
    local f
    read -r -a f <<<"$(tail -n 1 "$WORK/phases")"
    tg_log "$(printf '%-8s sent %6d  2xx %6d  429 %6d  other %4d  p50 %7.3f ms  p99 %7.3f ms  gw CPU %5.2f s  load %s' \
        "$name" "${f[1]}" "${f[6]}" "${f[7]}" "${f[8]}" "${f[9]}" "${f[10]}" \
        "$(calc %.2f "${f[12]} / $CLK_TCK")" "$(loadavg)")"
}

# B's fixed-rate load, alone (or with whatever runs in the background): NAME KEY
phase_b() {
    local name=$1 key=$2 c0 c1
    make_uris "$WORK/uris.$name" "$((RANDOM * 7 + ${#name}))" 20000
    c0=$(gw_cpu)
    h2load_run "$name" "$SECS" "$B_CLIENTS" "$B_STREAMS" "$B_RPS_PER" "$key" -i "$WORK/uris.$name"
    c1=$(gw_cpu)
    record "$name" "$c0" "$c1"
}

# B with A and C in the background (from 1 s before B until 1 s after it).
phase_noisy() {
    local pa pc c0 c1 nsecs=$((SECS + 2))
    make_uris "$WORK/uris.a" 4242 200000
    h2load_bg noisy_a "$nsecs" "$A_CLIENTS" "$A_STREAMS" 0 "$A_KEY" -i "$WORK/uris.a"
    pa=$H2_PID
    h2load_bg noisy_c "$nsecs" "$C_CLIENTS" "$C_STREAMS" 0 "$C_KEY" "$BASE/limits/low?seconds=$C_SLEEP"
    pc=$H2_PID
    sleep 1
    c0=$(gw_cpu)
    phase_b noisy "$B_KEY"
    c1=$(gw_cpu)
    # the load generators' CPU so far (h2load is timeout's child): for reading B's numbers
    GEN_CPU=$(for p in "$pa" "$pc"; do
        awk '{ t += $14 + $15 } END { print t + 0 }' /proc/"$(pgrep -P "$p" | head -n 1)"/stat 2>/dev/null || echo 0
    done | paste -sd' ')
    h2load_wait noisy_a "$pa"
    h2load_wait noisy_c "$pc"
    BG_PIDS=()
    record noisy_a "$c0" "$c1"
    record noisy_c "$c0" "$c1"
}

# Closed loop, the limiter at saturation: NAME KEY
phase_sat() {
    local name=$1 key=$2 c0 c1
    make_uris "$WORK/uris.$name" "$((RANDOM * 11 + ${#name}))" 200000
    c0=$(gw_cpu)
    h2load_run "$name" "$SAT_SECS" "$SAT_CLIENTS" "$SAT_STREAMS" 0 "$key" -i "$WORK/uris.$name"
    c1=$(gw_cpu)
    record "$name" "$c0" "$c1"
}

# ---------------------------------------------------------------------------------
# Setup

TG_PACKAGES+=(jq)
tg_ensure_packages
for t in h2load jq curl timeout; do command -v "$t" >/dev/null || tg_die "$t is missing"; done

if [[ ${TG_SKIP_BUILD:-0} == 1 ]]; then
    tg_log "TG_SKIP_BUILD=1: using $GW_BIN as it is"
else
    tg_log "building //gateway:tollgate"
    bazel "${BAZEL_STARTUP[@]}" --batch build "${BAZEL_FLAGS[@]}" //gateway:tollgate >"$WORK/build.log" 2>&1 ||
        { grep -E -A5 '^ERROR' "$WORK/build.log" | head -n 60 >&2 || tail -n 40 "$WORK/build.log" >&2; tg_die "build failed"; }
fi
[[ -x $GW_BIN ]] || tg_die "no gateway binary at $GW_BIN"

# Catalog: config/catalog (get_user uncached unless BENCH_CACHE=1) + the integration
# catalog, which has GET /limits/low.
mkdir -p "$WORK/catalog"
for f in "$TG_ROOT"/config/catalog/*.json; do
    if ((CACHE)); then cp "$f" "$WORK/catalog/"; else
        jq '.queries |= map(if .name == "get_user" then del(.cache) else . end
                            | if has("invalidates") then .invalidates |= map(select(. != "get_user")) else . end)' "$f" >"$WORK/catalog/${f##*/}"
    fi
done
jq -s -e '[.[].queries[]? | select(.route == "GET /users/{id}")] | length == 1' "$WORK"/catalog/*.json >/dev/null ||
    tg_die "config/catalog has no GET /users/{id}"
jq -e '[.queries[] | select(.route == "GET /limits/low")] | length == 1' "$TG_ROOT/tests/integration/catalog/limits.json" \
    >/dev/null || tg_die "tests/integration/catalog/limits.json has no GET /limits/low"

tg_log "load average at start: $(loadavg) ($(nproc) CPUs)"
LOAD_START=$(loadavg)

# Ports here are in the kernel's ephemeral range: a client connection may hold one
# that looked free (tg_pick_port sees listeners only); then try the next ones.
for attempt in 1 2 3; do
    pg_start && break
    pg_stop >/dev/null 2>&1 || true
    ((attempt < 3)) || tg_die "could not start PostgreSQL"
    tg_warn "PostgreSQL did not start on ports $TG_PG_PORT/$TG_PG_REPLICA_PORT; trying the next ones"
    export TG_PG_PORT=$((TG_PG_PORT + 2)) TG_PG_REPLICA_PORT=$((TG_PG_REPLICA_PORT + 2))
done
# tables the integration catalog refers to
_pg_psql "$TG_PG_PORT" <tests/integration/schema.sql >/dev/null || tg_die "could not load tests/integration/schema.sql"
_pg_psql "$TG_PG_PORT" >/dev/null <<'EOF' || tg_warn "VACUUM / pg_prewarm failed; the warm-up has to do"
VACUUM ANALYZE users;
CREATE EXTENSION IF NOT EXISTS pg_prewarm;
SELECT pg_prewarm('users'), pg_prewarm('users_pkey');
EOF
pg_wait_replica_caught_up 120 || tg_die "the replica did not catch up"
_pg_psql "$TG_PG_REPLICA_PORT" -c "SELECT pg_prewarm('users'), pg_prewarm('users_pkey')" >/dev/null ||
    tg_warn "pg_prewarm on the replica failed; the warm-up has to do"

key_hash() { "$GW_BIN" --hash-key "$1"; }
CONFIG=$WORK/config.json
# The config: config/example.json's, with our ports, shape, catalog and tenants.
make_config() { # HTTP_PORT ADMIN_PORT
    TG_HTTP_PORT=$1 TG_ADMIN_PORT=$2 tg_render_config config/example.json "$WORK/config.tmpl.json"
    local http=$1 admin=$2
    jq --argjson threads "$THREADS" --argjson pool "$POOL" --argjson share "$LOW_SHARE" \
        --arg cat1 "$WORK/catalog/" --arg cat2 "$TG_ROOT/tests/integration/catalog/" \
        --argjson http "$http" --argjson admin "$admin" \
        --arg ka "$(key_hash "$A_KEY")" --arg kb "$(key_hash "$B_KEY")" --arg kc "$(key_hash "$C_KEY")" --arg ku "$(key_hash "$U_KEY")" \
        --argjson ar "$A_RATE" --argjson ab "$A_BURST" --argjson br "$B_RATE" --argjson bb "$B_BURST" \
        '.threads = $threads | .pool.size = $pool | .pool.low_priority_share = $share
         | .catalog = [$cat1, $cat2]
         | .listen = [.listen[0] | .port = $http] | .admin_listen.port = $admin
         | .access_log = null | .max_in_flight = 0
         | .tenants = [
             {name: "noisy", keys: [$ka], rate: $ar, burst: $ab, max_in_flight: 64, priority: "high"},
             {name: "steady", keys: [$kb], rate: $br, burst: $bb, max_in_flight: 64, priority: "high"},
             {name: "batch", keys: [$kc], rate: 100000, burst: 100000, max_in_flight: 0, priority: "low"},
             {name: "unlimited", keys: [$ku], rate: 1000000000, burst: 1000000000, max_in_flight: 0, priority: "high"}]
         | .anonymous = {rate: 1000000000, burst: 1000000000}' "$WORK/config.tmpl.json" >"$CONFIG"
    "$GW_BIN" --config "$CONFIG" --check >"$WORK/check.log" 2>&1 ||
        { sed 's/^/    /' "$WORK/check.log" >&2; tg_die "tollgate --check rejected the benchmark config $CONFIG"; }
}
HTTP_PORT=${TG_HTTP_PORT:-59580} ADMIN_PORT=${TG_ADMIN_PORT:-59581}
for attempt in 1 2 3; do
    HTTP_PORT=$(tg_pick_port "$HTTP_PORT" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT")
    ADMIN_PORT=$(tg_pick_port "$ADMIN_PORT" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$HTTP_PORT")
    make_config "$HTTP_PORT" "$ADMIN_PORT"
    TG_HTTP_PORT=$HTTP_PORT tg_start_gateway "$GW_BIN" "$CONFIG" "$WORK/gateway.log" && break
    ((attempt < 3)) || tg_die "the gateway did not start"
    tg_warn "the gateway did not start on ports $HTTP_PORT/$ADMIN_PORT; trying the next ones"
    HTTP_PORT=$((HTTP_PORT + 2)) ADMIN_PORT=$((ADMIN_PORT + 2))
done
BASE=http://127.0.0.1:$HTTP_PORT
GW_PID=$TG_GATEWAY_PID
TG_GATEWAY_PID=
tg_wait_http "$BASE/readyz" 15 200 || tg_die "GET /readyz is not 200 after 15 s"
tg_wait_backends "$BASE" || true

# Smoke checks: each key is known, B gets its policy header, C's query answers.
probe() { # KEY(-: none) PATH -> "STATUS POLICY"
    local h=()
    [[ $1 == - ]] || h=(-H "X-API-Key: $1")
    curl -sS --max-time 5 -o /dev/null -D "$WORK/probe.h" -w '%{http_code}' "${h[@]}" "$BASE$2" || true
    printf ' %s\n' "$(tr -d '\r' <"$WORK/probe.h" | awk -F': ' 'tolower($1) == "ratelimit-policy" { print $2 }')"
}
for k in "B:$B_KEY:/users/1" "A:$A_KEY:/users/$USERS" "unlimited:$U_KEY:/users/2" "anonymous:-:/users/3" \
    "C:$C_KEY:/limits/low?seconds=0"; do
    IFS=: read -r who key path <<<"$k"
    r=$(probe "$key" "$path")
    [[ ${r%% *} == 200 ]] || tg_die "tenant $who: GET $path answered ${r%% *}, not 200 (see $WORK/gateway.log)"
    [[ $who == B ]] && B_POLICY=${r#* }
done
tg_log "gateway on $BASE (pid $GW_PID); B's RateLimit-Policy: ${B_POLICY:-(none)}"

# ---------------------------------------------------------------------------------
# Measure

: >"$WORK/phases"
if ((WARMUP > 0)); then
    tg_log "warm-up: $WARMUP s of B's load (discarded), then one of C's and A's"
    make_uris "$WORK/uris.warm" 99 20000
    h2load_run warmup "$WARMUP" "$B_CLIENTS" "$B_STREAMS" "$B_RPS_PER" "$B_KEY" -i "$WORK/uris.warm"
    h2load_run warmup "$WARMUP" "$C_CLIENTS" "$C_STREAMS" 0 "$C_KEY" "$BASE/limits/low?seconds=$C_SLEEP"
    sleep 1
fi
TIMED_START=$SECONDS
tg_log "phase alone: B ($B_RPS req/s, h2load -c$B_CLIENTS -m$B_STREAMS --rps=$B_RPS_PER) for $SECS s"
phase_b alone "$B_KEY"
sleep 1
tg_log "phase noisy: B with A (h2load -c$A_CLIENTS -m$A_STREAMS) and C (h2load -c$C_CLIENTS -m$C_STREAMS, low priority)"
phase_noisy
sleep 2 # A's bucket and in-flight drain; C's sleeps end
tg_log "phase anon: B's load without a key (anonymous, limits effectively off)"
phase_b anon -
sleep 1
tg_log "phase alone2: B alone again (the noise floor)"
phase_b alone2 "$B_KEY"
for ((r = 1; r <= SAT_ROUNDS; r++)); do
    sleep 1
    tg_log "saturated round $r: h2load -c$SAT_CLIENTS -m$SAT_STREAMS, key 'unlimited' then anonymous, $SAT_SECS s each"
    phase_sat "sat_key$r" "$U_KEY"
    sleep 1
    phase_sat "sat_anon$r" -
done
kill -0 "$GW_PID" 2>/dev/null || tg_die "the gateway died during the benchmark"
LOAD_END=$(loadavg)
TIMED=$((SECONDS - TIMED_START))

# ---------------------------------------------------------------------------------
# Report

declare -A SENT DONE SOCK SEC N OK RL OTHER P50 P99 MAX TICKS NS LOAD1
while read -r name sent ndone sock sec n ok rl other p50 p99 max ticks ns l1; do
    SENT[$name]=$sent DONE[$name]=$ndone SOCK[$name]=$sock SEC[$name]=$sec N[$name]=$n OK[$name]=$ok
    RL[$name]=$rl OTHER[$name]=$other P50[$name]=$p50 P99[$name]=$p99 MAX[$name]=$max TICKS[$name]=$ticks
    NS[$name]=$ns LOAD1[$name]=$l1
done <"$WORK/phases"

# Success: 2xx of the requests h2load saw to an end (answered, failed, errored or
# timed out); requests still open when -D ran out are shown apart ("open").
success() { calc %.2f "${DONE[$1]} > 0 ? 100 * ${OK[$1]} / ${DONE[$1]} : 0"; }
all_ok() { ((DONE[$1] > 0 && OK[$1] == DONE[$1] && SOCK[$1] == 0)); }
# gateway CPU per request (us), from schedstat when there is one, else from ticks
cpu_us() {
    if [[ ${NS[$1]} != - ]]; then calc %.1f "${DONE[$1]} > 0 ? ${NS[$1]} / 1000 / ${DONE[$1]} : 0"
    else cpu_us_ticks "$1"; fi
}
cpu_us_ticks() { calc %.1f "${DONE[$1]} > 0 ? ${TICKS[$1]} * 1e6 / $CLK_TCK / ${DONE[$1]} : 0"; }
cpu_pct() { calc %.0f "${SEC[$1]} > 0 ? 100 * ${TICKS[$1]} / $CLK_TCK / ${SEC[$1]} : 0"; }
per_s() { calc %.1f "${SEC[$1]} > 0 ? $2 / ${SEC[$1]} : 0"; } # PHASE COUNT
abs() { calc "$1" "($2) < 0 ? -($2) : ($2)"; }

BAD_ALONE=0
for p in alone anon alone2; do all_ok "$p" || BAD_ALONE=1; done

declare -A LABEL=(
    [alone]="B alone"
    [noisy]="B with A + C"
    [anon]="B's load as anonymous (limits off)"
    [alone2]="B alone again"
)
echo
echo "tollgate noisy neighbour: $USERS users; gateway threads $THREADS, pool size $POOL per backend,"
echo "  low_priority_share $LOW_SHARE, reads to the replica; get_user $( ((CACHE)) && echo cached || echo 'uncached (every request reaches PostgreSQL)')"
echo "  tenants:  A noisy   rate $A_RATE/s burst $A_BURST max_in_flight 64 high: h2load -c$A_CLIENTS -m$A_STREAMS GET /users/<random id>, as fast as it can"
echo "            B steady  rate $B_RATE/s burst $B_BURST max_in_flight 64 high: h2load -c$B_CLIENTS -m$B_STREAMS --rps=$B_RPS_PER ($B_RPS req/s) GET /users/<random id>"
echo "            C batch   priority low, rate 100000: h2load -c$C_CLIENTS -m$C_STREAMS GET /limits/low?seconds=$C_SLEEP"
echo "  machine:  $(nproc) CPUs shared by PostgreSQL (primary + replica), the gateway and the h2loads;"
echo "            $SECS s per phase ($TIMED s of phases in all); load average start $LOAD_START, end $LOAD_END"
echo
printf '%-36s %6s %6s %5s %9s %8s %8s %8s %8s %7s %10s %6s\n' "tenant B, phase" "done" "2xx" "open" "success" "2xx/s" \
    "p50 ms" "p99 ms" "max ms" "gw CPU" "CPU us/req" "load1"
for p in alone noisy anon alone2; do
    printf '%-36s %6d %6d %5d %8s%% %8s %8.3f %8.3f %8.3f %6s%% %10s %6s\n' "${LABEL[$p]}" "${DONE[$p]}" "${OK[$p]}" \
        "$((SENT[$p] - DONE[$p]))" "$(success "$p")" "$(per_s "$p" "${OK[$p]}")" "${P50[$p]}" "${P99[$p]}" "${MAX[$p]}" \
        "$(cpu_pct "$p")" "$(cpu_us "$p")" "${LOAD1[$p]}"
done
echo "  (gw CPU: the gateway's CPU time over the phase, % of one CPU; CPU us/req: that time (schedstat, all"
echo "   threads) / B's requests; in the 'with A + C' row it includes A's and C's requests. open: sent,"
echo "   still unanswered when h2load's -D ran out, not counted)"
echo
echo "Neighbours during 'B with A + C' ($(calc %.1f "${SEC[noisy_a]}") s, from 1 s before B to 1 s after):"
printf '  A noisy: %d answered: %d 2xx (%s/s; rate %s/s, burst %s), %d 429 (%s%% of answered), %d other, %d errored;\n' \
    "${DONE[noisy_a]}" "${OK[noisy_a]}" "$(per_s noisy_a "${OK[noisy_a]}")" "$A_RATE" "$A_BURST" "${RL[noisy_a]}" \
    "$(calc %.2f "${DONE[noisy_a]} > 0 ? 100 * ${RL[noisy_a]} / ${DONE[noisy_a]} : 0")" "${OTHER[noisy_a]}" "${SOCK[noisy_a]}"
printf '           %s answered/s; p50 %.3f ms, p99 %.3f ms (429s included)\n' "$(per_s noisy_a "${DONE[noisy_a]}")" \
    "${P50[noisy_a]}" "${P99[noisy_a]}"
printf '  C batch: %d completed (%s/s), %d 429, %d other non-2xx, %d errored; p50 %.3f ms, p99 %.3f ms\n' \
    "${OK[noisy_c]}" "$(per_s noisy_c "${OK[noisy_c]}")" "${RL[noisy_c]}" "${OTHER[noisy_c]}" "${SOCK[noisy_c]}" \
    "${P50[noisy_c]}" "${P99[noisy_c]}"
read -r GEN_A GEN_C <<<"${GEN_CPU:-0 0}"
printf '  CPU during the phase: gateway %s%% of one CPU; load generators (from their start to the end of B,\n' \
    "$(cpu_pct noisy_a)"
printf '  %s s): h2load A %s%%, h2load C %s%% of one CPU, on the same %s CPUs\n' "$(calc %.1f "${SEC[noisy]} + 1")" \
    "$(calc %.0f "100 * ${GEN_A:-0} / $CLK_TCK / (${SEC[noisy]} + 1)")" \
    "$(calc %.0f "100 * ${GEN_C:-0} / $CLK_TCK / (${SEC[noisy]} + 1)")" "$(nproc)"

MISSED=() UNRESOLVED=()
verdict() { # NAME VALUE SHOWN_TARGET OK(1|0|noise: within the noise floor, neither)
    local ok=met
    if [[ $4 == noise ]]; then ok="UNRESOLVED (within the noise floor)"; UNRESOLVED+=("$1")
    elif [[ $4 != 1 ]]; then ok=MISSED; MISSED+=("$1"); fi
    printf '  %-58s %10s   target %-8s %s\n' "$1" "$2" "$3" "$ok"
}
info() { printf '  %-58s %10s\n' "$1" "$2"; }
# the baseline: the better of the two "alone" runs (a stall of the machine in one of
# them must not flatter the ratio)
P99_BASE=$(calc %.3f "${P99[alone]} < ${P99[alone2]} ? ${P99[alone]} : ${P99[alone2]}")
P99R=$(calc %.2f "${P99[noisy]} / $P99_BASE")
echo
echo "Noisy neighbour (B's baseline p99: the lower of 'alone' and 'alone again', $P99_BASE ms):"
verdict "B success rate with A + C" "$(success noisy)%" "100%" "$(all_ok noisy && echo 1 || echo 0)"
verdict "B p99 with A + C / p99 alone" "${P99R}x" "<= ${MAX_P99_RATIO}x" "$(ctest "$P99R <= $MAX_P99_RATIO" && echo 1 || echo 0)"
info "B p99 with A + C / p99 of 'alone' (first run)" "$(calc %.2fx "${P99[noisy]} / ${P99[alone]}")"
info "B p99 with A + C / p99 of 'alone again'" "$(calc %.2fx "${P99[noisy]} / ${P99[alone2]}")"
info "B p50 with A + C / p50 alone (mean of both)" "$(calc %.2fx "2 * ${P50[noisy]} / (${P50[alone]} + ${P50[alone2]})")"
info "B p99 'alone again' / 'alone' (noise floor)" "$(calc %.2fx "${P99[alone2]} / ${P99[alone]}")"
if ctest "${P99[alone]} > $MAX_P99_RATIO * ${P99[alone2]} || ${P99[alone2]} > $MAX_P99_RATIO * ${P99[alone]}"; then
    echo "  note: the two runs of B alone differ by more than the target ratio: on this machine p99 over"
    echo "  $((B_RPS * SECS)) requests is set by stalls of the machine more than by the neighbours (longer"
    echo "  BENCH_SECONDS, or a quieter machine, narrow it)"
fi

# Limiter cost: B (key, its limits) vs anonymous (limits off); the two "alone" runs
# (before and after) averaged against the anonymous run between them.
P50_B=$(calc %.4f "(${P50[alone]} + ${P50[alone2]}) / 2")
CPU_B=$(calc %.2f "($(cpu_us alone) + $(cpu_us alone2)) / 2")
CPU_A=$(cpu_us anon)
DP50=$(calc %.4f "$P50_B - ${P50[anon]}")
DP50_PCT=$(calc %.2f "100 * $DP50 / ${P50[anon]}")
NOISE_P50=$(abs %.4f "${P50[alone]} - ${P50[alone2]}")
NOISE_P50_PCT=$(calc %.2f "100 * $NOISE_P50 / $P50_B")
DCPU=$(calc %.2f "$CPU_B - $CPU_A")
DCPU_PCT=$(calc %.3f "100 * $DCPU / (${P50[anon]} * 1000)")
NOISE_CPU=$(abs %.2f "$(cpu_us alone) - $(cpu_us alone2)")
NOISE_CPU_PCT=$(calc %.3f "100 * $NOISE_CPU / (${P50[anon]} * 1000)")
echo
echo "Limiter cost at B's rate: B with its key and limits (mean of 'alone' and 'alone again') vs the same"
echo "load as anonymous (rate/burst 1e9, no key); noise floor: 'alone' vs 'alone again'"
printf '  %-26s %8s ms vs %8s ms: %+.4f ms = %+6.2f%%   (noise floor %.4f ms = %.2f%%)\n' \
    "median latency" "$P50_B" "${P50[anon]}" "$DP50" "$DP50_PCT" "$NOISE_P50" "$NOISE_P50_PCT"
printf '  %-26s %8s us vs %8s us: %+.2f us = %+.3f%% of the request time (p50 %s ms)   (noise floor %.2f us = %.3f%%)\n' \
    "gateway CPU per request" "$CPU_B" "$CPU_A" "$DCPU" "$DCPU_PCT" "${P50[anon]}" "$NOISE_CPU" "$NOISE_CPU_PCT"
printf '  %-26s %s / %s / %s us (alone / alone again / anonymous)\n' "(from /proc/PID/stat ticks" \
    "$(cpu_us_ticks alone)" "$(cpu_us_ticks alone2)" "$(cpu_us_ticks anon))"
# within the noise floor: this run cannot tell (neither met nor missed)
lim_ok() { # DIFF_PCT NOISE_PCT
    if ctest "$(abs %.4f "$1") <= $2"; then echo noise
    elif ctest "$1 < $MAX_LIMITER_PCT"; then echo 1
    else echo 0; fi
}
verdict "limiter: gateway CPU per request, % of request time" "${DCPU_PCT}%" "< ${MAX_LIMITER_PCT}%" \
    "$(lim_ok "$DCPU_PCT" "$NOISE_CPU_PCT")"
verdict "limiter: median latency difference" "${DP50_PCT}%" "< ${MAX_LIMITER_PCT}%" \
    "$(lim_ok "$DP50_PCT" "$NOISE_P50_PCT")"

if ((SAT_ROUNDS > 0)); then
    echo
    echo "Limiter cost at saturation (h2load -c$SAT_CLIENTS -m$SAT_STREAMS GET /users/<id>, closed loop, $SAT_SECS s each,"
    echo "key 'unlimited' (rate/burst 1e9: hashed, looked up, never limited) vs anonymous, interleaved):"
    printf '  %-28s %10s %8s %8s %10s %8s\n' "" "req/s" "p50 ms" "p99 ms" "CPU us/req" "non-2xx"
    declare -A SUM_RPS=([key]=0 [anon]=0) SUM_CPU=([key]=0 [anon]=0) LO_CPU=() HI_CPU=()
    for kind in key anon; do
        for ((r = 1; r <= SAT_ROUNDS; r++)); do
            p=sat_$kind$r
            printf '  %-28s %10s %8.3f %8.3f %10s %8d\n' \
                "$([[ $kind == key ]] && echo "key 'unlimited', round $r" || echo "anonymous, round $r")" \
                "$(per_s "$p" "${DONE[$p]}")" "${P50[$p]}" "${P99[$p]}" "$(cpu_us "$p")" "$((DONE[$p] - OK[$p]))"
            SUM_RPS[$kind]=$(calc %.3f "${SUM_RPS[$kind]} + $(per_s "$p" "${DONE[$p]}") / $SAT_ROUNDS")
            SUM_CPU[$kind]=$(calc %.3f "${SUM_CPU[$kind]} + $(cpu_us "$p") / $SAT_ROUNDS")
            c=$(cpu_us "$p")
            [[ -n ${LO_CPU[$kind]:-} ]] && ctest "${LO_CPU[$kind]} <= $c" || LO_CPU[$kind]=$c
            [[ -n ${HI_CPU[$kind]:-} ]] && ctest "${HI_CPU[$kind]} >= $c" || HI_CPU[$kind]=$c
        done
    done
    printf '  key vs anonymous (means): req/s %+.1f%%; CPU per request %+.2f us (%+.1f%%), which is %+.3f%% of B'"'"'s\n' \
        "$(calc %.3f "100 * (${SUM_RPS[key]} - ${SUM_RPS[anon]}) / ${SUM_RPS[anon]}")" \
        "$(calc %.3f "${SUM_CPU[key]} - ${SUM_CPU[anon]}")" \
        "$(calc %.3f "100 * (${SUM_CPU[key]} - ${SUM_CPU[anon]}) / ${SUM_CPU[anon]}")" \
        "$(calc %.4f "100 * (${SUM_CPU[key]} - ${SUM_CPU[anon]}) / ($P50_B * 1000)")"
    echo "  median request time at its rate ($P50_B ms); both pay for a bucket, the key also for its hash and lookup"
    if ((SAT_ROUNDS > 1)); then
        printf '  spread of CPU per request between rounds of the same kind: key %.1f us, anonymous %.1f us\n' \
            "$(calc %.2f "${HI_CPU[key]} - ${LO_CPU[key]}")" "$(calc %.2f "${HI_CPU[anon]} - ${LO_CPU[anon]}")"
    fi
fi

ERRORS=$(grep -c -E '\b(error|fatal)\b' "$WORK/gateway.log" || true)
((ERRORS == 0)) || tg_warn "the gateway logged $ERRORS error line(s); see $WORK/gateway.log (BENCH_KEEP=1 keeps it)"
((BAD_ALONE == 0)) || tg_die "B was not 100% successful without neighbours: the setup is wrong, not the gateway"
if ((${#UNRESOLVED[@]} > 0)); then
    echo
    echo "UNRESOLVED (the difference is within what two identical runs differ by): $(IFS=';'; echo "${UNRESOLVED[*]}")"
fi
if ((${#MISSED[@]} > 0)); then
    echo
    echo "MISSED: $(IFS=';'; echo "${MISSED[*]}")"
    ((STRICT == 0)) || exit 1
fi
exit 0
