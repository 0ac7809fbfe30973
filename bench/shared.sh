#!/usr/bin/env bash
# What shared_limits cost: point reads at full speed through ONE gateway, alternately
# with its tenant's limits local and shared through a real Redis, in one run.
#
#   1. a throwaway PostgreSQL 15 primary and streaming replica (tests/pg.sh) with
#      BENCH_USERS users, a throwaway Redis (tests/redis.sh), and the gateway with
#      config/example.json's settings (threads 2, pool 16), a catalog of get_user as
#      config/catalog has it but uncached (every request a query), and one tenant
#      "bench" at rate 1e7/s, burst 1e6: high enough that no call is refused, so the
#      comparison measures only the cost of the shared path;
#   2. BENCH_RUNS rounds, each of two measurements of BENCH_SECONDS, h2load -c10 -m10
#      over h2c, GET /users/<random id> with the tenant's API key (its bucket is what
#      is shared):
#        local    the config without shared_limits (its default, null)
#        shared   the same config with "shared_limits": {"redis": <the Redis>}
#      switched by rewriting the config and POST /admin/reload (the same process
#      throughout), each after BENCH_WARMUP seconds of the same load, discarded; the
#      order alternates (local first in odd rounds) so that drift cancels out;
#   3. per round req/s of both and shared / local; the median ratio (target >= 0.95);
#      Redis commands per request during the shared measurements (target <= 0.02):
#      the sum of every cmdstat_*'s calls in Redis's INFO commandstats over each
#      shared measurement, minus the script's own INFO, over the requests served then
#      (beside it, the gateway's own tollgate_shared_limits_redis_commands_total over
#      the same windows); the load average at the start and the end.
#
# Every measurement must be all 2xx (a refused call would mean the limits were in the
# way); a shared measurement must run in state "shared" from start to end. A gateway
# that refuses shared_limits (a build without them) fails the run at the first switch,
# saying so.
#
# Exit status: 0 when the run completed (missed targets are printed as MISSED; with
# BENCH_STRICT=1 they exit 1), 1 when it could not run.
#
# Usage: bench/shared.sh
#   quick check: BENCH_SECONDS=3 BENCH_RUNS=1 BENCH_WARMUP=1 bench/shared.sh
#
# Environment:
#   BENCH_USERS=100000 BENCH_SECONDS=10 BENCH_RUNS=3 BENCH_WARMUP=2
#   BENCH_CLIENTS=10 BENCH_STREAMS=10     h2load -c / -m
#   BENCH_STRICT=0            1: exit 1 when a target is missed
#   BENCH_KEEP=1              keep the work folder (logs, configs, h2load output)
#   BENCH_GATEWAY_BIN         run another build (default: bazel-bin's, built first)
#   TG_PG_PORT=27832 TG_PG_REPLICA_PORT=27833 TG_REDIS_PORT=27879
#   TG_HTTP_PORT=27880 TG_ADMIN_PORT=27881   ports (next free if taken)
# Loopback only; about 2 minutes with the defaults; it stops everything it started.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh
# shellcheck source=tests/pg.sh
source tests/pg.sh
# shellcheck source=tests/redis.sh
source tests/redis.sh

USERS=${BENCH_USERS:-100000}
SECS=${BENCH_SECONDS:-10}
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-2}
CLIENTS=${BENCH_CLIENTS:-10}
STREAMS=${BENCH_STREAMS:-10}
STRICT=${BENCH_STRICT:-0}
tg_positive_ints 'BENCH_' USERS SECS RUNS CLIENTS STREAMS
[[ $WARMUP =~ ^[0-9]+$ ]] || tg_die "BENCH_WARMUP must be a number of seconds"
[[ $STRICT =~ ^[01]$ ]] || tg_die "BENCH_STRICT must be 0 or 1"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# The gateway first, then Redis (tg_bench_start's cleanup stops PostgreSQL after).
# shellcheck disable=SC2317 # called by tg_bench_start's cleanup
bench_cleanup() {
    tg_stop_gateway >/dev/null 2>&1 || true
    redis_stop >/dev/null 2>&1 || true
}
tg_bench_start

# below the ephemeral range, away from the tests', the demo's and the other benchmarks' ports
export TG_PG_PORT=${TG_PG_PORT:-27832} TG_PG_REPLICA_PORT=${TG_PG_REPLICA_PORT:-27833}
export TG_SAMPLE_USERS=$USERS
pg_start || tg_die "could not start PostgreSQL"
TG_REDIS_PORT=$(tg_pick_port "${TG_REDIS_PORT:-27879}" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT")
redis_start || tg_die "could not start Redis"
TG_HTTP_PORT=$(tg_pick_port "${TG_HTTP_PORT:-27880}" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$TG_REDIS_PORT")
TG_ADMIN_PORT=$(tg_pick_port "${TG_ADMIN_PORT:-27881}" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$TG_REDIS_PORT" "$TG_HTTP_PORT")
URL=http://127.0.0.1:$TG_HTTP_PORT ADMIN=http://127.0.0.1:$TG_ADMIN_PORT

SQL_GET_USER=$(jq -r '.queries[] | select(.name == "get_user") | .sql' config/catalog/users.json)
[[ -n $SQL_GET_USER ]] || tg_die "config/catalog/users.json has no get_user"
jq -n --arg sql "$SQL_GET_USER" '{queries: [{name: "get_user", route: "GET /users/{id}", sql: $sql,
    params: [{name: "id", type: "int8", min: 1}], returns: "one", access: "read"}]}' >"$WORK/catalog.json"

KEY=bench-shared-$$-$RANDOM
tg_render_config config/example.json "$WORK/config.tmpl.json"
jq --arg cat "$WORK/catalog.json" --arg hash "$(tg_key_hash "$KEY")" \
    '.catalog = [$cat] | .access_log = null | .max_in_flight = 0
     | .tenants = [{name: "bench", keys: [$hash], rate: 10000000, burst: 1000000, max_in_flight: 0, priority: "high"}]
     | .anonymous = {rate: 1000000000, burst: 1000000000}' "$WORK/config.tmpl.json" >"$WORK/config.local.json"
jq --arg url "$TG_REDIS_URL" '.shared_limits = {redis: $url}' "$WORK/config.local.json" >"$WORK/config.shared.json"
CONFIG=$WORK/config.json
cp "$WORK/config.local.json" "$CONFIG"

tg_start_gateway "$GW_BIN" "$CONFIG" "$WORK/gateway.log" || tg_die "the gateway did not start"
tg_wait_http "$URL/readyz" 15 200 || tg_die "the gateway is not ready"
tg_wait_backends "$URL" || true
body=$(curl -sS --max-time 5 -H "Authorization: Bearer $KEY" -w ' %{http_code}' "$URL/users/1")
[[ ${body##* } == 200 ]] || tg_die "GET /users/1 with the tenant's key: unexpected answer: $body"

# ---------------------------------------------------------------------------------

status_shared() { curl -s --max-time 2 "$ADMIN/admin/status" | jq -c '.shared_limits'; }

# Rewrites the config for MODE (local|shared) and reloads; for shared, waits (10 s)
# until the limits are in state "shared".
switch_to() { # MODE
    local mode=$1 answer deadline state
    cp "$WORK/config.$mode.json" "$CONFIG"
    answer=$(curl -s --max-time 10 -X POST "$ADMIN/admin/reload") || tg_die "POST /admin/reload failed"
    if [[ $(jq -r '.reloaded' <<<"$answer" 2>/dev/null) != true ]]; then
        [[ $mode == shared && $answer == *shared_limits* ]] &&
            tg_die "the gateway refused shared_limits (a build without them?): $answer"
        tg_die "the gateway refused the $mode config: $answer"
    fi
    if [[ $mode == local ]]; then
        [[ $(status_shared) == null ]] || tg_die "shared_limits still on after reloading without them: $(status_shared)"
        return 0
    fi
    deadline=$((SECONDS + 10))
    while ((SECONDS < deadline)); do
        state=$(status_shared)
        [[ $(jq -r '.state' <<<"$state" 2>/dev/null) == shared ]] && return 0
        sleep 0.1
    done
    tg_die "shared_limits not in state \"shared\" 10 s after the reload: $state"
}

# Sums of every command's calls in Redis's INFO commandstats.
redis_calls() {
    redis_cli info commandstats | awk -F'[:=,]' '/^cmdstat_/ { n += $3 } END { print n + 0 }'
}
gw_redis_commands() {
    curl -s --max-time 2 "$ADMIN/metrics" | awk '/^tollgate_shared_limits_redis_commands_total / { print $2 + 0; f = 1 } END { if (!f) print "-" }'
}

# One measurement: "MODE ROUND REQ/S DONE BAD REDIS_CALLS GW_REDIS_COMMANDS" appended to results.
measure() { # MODE ROUND
    local mode=$1 run=$2 r0 r1 g0 g1 rc=- gc=- out
    tg_random_user_uris "$WORK/uris" "$((run * 7919 + $$))" "$URL" "$USERS"
    if ((WARMUP > 0)); then
        tg_h2load_uris "$WORK/uris" "$WARMUP" "$CLIENTS" "$STREAMS" "$WORK/warmup.out" -H "Authorization: Bearer $KEY" >/dev/null
    fi
    if [[ $mode == shared ]]; then
        g0=$(gw_redis_commands)
        r0=$(redis_calls)
    fi
    out=$(tg_h2load_uris "$WORK/uris" "$SECS" "$CLIENTS" "$STREAMS" "$WORK/h2load.$mode.$run.out" -H "Authorization: Bearer $KEY")
    if [[ $mode == shared ]]; then
        r1=$(redis_calls)
        g1=$(gw_redis_commands)
        rc=$((r1 - r0 - 1)) # minus our own first INFO, counted once it ran
        [[ $g0 == - || $g1 == - ]] || gc=$(awk -v a="$g0" -v b="$g1" 'BEGIN { print b - a }')
        [[ $(jq -r '.state' <<<"$(status_shared)") == shared ]] ||
            tg_die "round $run: shared_limits left state \"shared\" during the measurement: $(status_shared)"
    fi
    local rps ndone bad
    read -r rps ndone bad <<<"$out"
    ((bad == 0)) || { sed 's/^/    /' "$WORK/h2load.$mode.$run.out" >&2; tg_die "round $run, $mode: $bad of $ndone requests failed or were not 2xx"; }
    echo "$mode $run $rps $ndone $bad $rc $gc" >>"$WORK/results"
    tg_log "$(printf 'round %d %-6s %10.1f req/s  %8d requests  redis commands %s  load %s' \
        "$run" "$mode" "$rps" "$ndone" "$rc" "$(cut -d' ' -f1-3 /proc/loadavg)")"
}

: >"$WORK/results"
for ((r = 1; r <= RUNS; ++r)); do
    order=(local shared)
    ((r % 2)) || order=(shared local)
    for mode in "${order[@]}"; do
        switch_to "$mode"
        measure "$mode" "$r"
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------

col() { awk -v m="$1" -v r="$2" -v c="$3" '$1 == m && $2 == r { print $c }' "$WORK/results"; }
: >"$WORK/ratios"
echo
echo "Shared limits' cost: GET /users/<random id> with tenant bench's key (rate 1e7, burst 1e6), h2load -c$CLIENTS -m$STREAMS, h2c, $SECS s each, one gateway:"
printf '  %-6s %14s %14s %10s %16s\n' round "local req/s" "shared req/s" ratio "redis cmds (gw)"
for ((r = 1; r <= RUNS; ++r)); do
    l=$(col local "$r" 3) s=$(col shared "$r" 3)
    ratio=$(awk -v a="$s" -v b="$l" 'BEGIN { printf "%.3f", a / b }')
    echo "$ratio" >>"$WORK/ratios"
    printf '  %-6s %14.1f %14.1f %10s %16s\n' "$r" "$l" "$s" "$ratio" "$(col shared "$r" 6) ($(col shared "$r" 7))"
done
median_ratio=$(sort -g "$WORK/ratios" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
read -r calls requests gwcalls <<<"$(awk '$1 == "shared" { c += $6; n += $4; if ($7 == "-") g = "-"; else if (g != "-") g += $7 }
    END { print c + 0, n + 0, (g == "" ? 0 : g) }' "$WORK/results")"
per_req=$(awk -v c="$calls" -v n="$requests" 'BEGIN { printf "%.5f", c / n }')
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == ">=" ? v >= t : v <= t); print (ok ? "ok" : "MISSED") }'; }
MISSED=0
v1=$(verdict "$median_ratio" 0.95 '>=') v2=$(verdict "$per_req" 0.02 '<=')
[[ $v1 == ok && $v2 == ok ]] || MISSED=1
echo
echo "  median shared / local:        $median_ratio   (target >= 0.95: $v1)"
echo "  Redis commands per request:   $per_req   (target <= 0.02: $v2)"
echo "      $calls commands (INFO commandstats, the script's own INFO calls taken off) for $requests requests"
echo "      in the shared measurements (with the commands the Lua scripts run inside Redis);"
echo "      the gateway counted $gwcalls sent (tollgate_shared_limits_redis_commands_total)"
echo "  load average: $LOAD_START at the start, $LOAD_END at the end ($(nproc) CPUs)"
((MISSED == 0 || STRICT == 0)) || exit 1
exit 0
