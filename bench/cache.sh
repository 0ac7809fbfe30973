#!/usr/bin/env bash
# The result cache: what a hit costs against the gateway's own HTTP ceiling, and a
# miss storm that must reach the database once.
#
#   1. a throwaway PostgreSQL 15 primary and streaming replica (tests/pg.sh) with
#      BENCH_USERS users, and a function cache_probe(k) that leaves a WARNING in the
#      server log per execution; the gateway with config/example.json's settings
#      (threads 2, pool 16, anonymous limits out of the way) and a catalog of its own:
#      get_user as config/catalog has it (uncached), the same SQL cached
#      (get_user_cached, ttl 10 min), and storm (cache_probe($1) after pg_sleep(0.2),
#      cached);
#   2. the hits' keys warmed: one pass over BENCH_HOT (1000) ids;
#   3. BENCH_RUNS rounds, each of BENCH_SECONDS over h2c (h2load -c10 -m10) of:
#        GET /healthz                    the gateway's HTTP ceiling
#        GET /cached/users/<hot id>      cache hits
#        GET /users/<random id>          uncached point reads (every one a query)
#      and a table of the medians, with hits / healthz (target at least 0.6) and hits /
#      uncached;
#   4. the storm: for N in BENCH_STORMS (1000 10000), N concurrent callers of one cold
#      key (h2load -n N -c C -m N/C, all in flight at once), printing the statuses, the
#      database executions of that key counted in the servers' own logs (must be 1) and
#      the slowest caller.
#
# Settings: BENCH_USERS=100000 BENCH_SECONDS=10 BENCH_RUNS=3 BENCH_HOT=1000
# BENCH_STORMS="1000 10000" BENCH_KEEP=1. Loopback only, bounded in time (about
# 3 minutes); it stops everything it started.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/lib.sh
source tests/pg.sh

USERS=${BENCH_USERS:-100000}
SECS=${BENCH_SECONDS:-10}
RUNS=${BENCH_RUNS:-3}
HOT=${BENCH_HOT:-1000}
STORMS=${BENCH_STORMS:-1000 10000}
tg_positive_ints 'BENCH_' USERS SECS RUNS HOT
for n in $STORMS; do [[ $n =~ ^[1-9][0-9]*$ ]] || tg_die "BENCH_STORMS: '$n' is not a count"; done

tg_bench_start

# below the ephemeral range, away from the tests' and the demo's ports
export TG_PG_PORT=${TG_PG_PORT:-27632} TG_PG_REPLICA_PORT=${TG_PG_REPLICA_PORT:-27633}
export TG_SAMPLE_USERS=$USERS
pg_start || tg_die "could not start PostgreSQL"
_pg_psql "$TG_PG_PORT" <<'SQL' || tg_die "could not create cache_probe"
CREATE FUNCTION cache_probe(k text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN RAISE WARNING 'tollgate-cache-probe %', k; RETURN k; END $$;
GRANT EXECUTE ON FUNCTION cache_probe(text) TO tollgate;
SQL
pg_wait_replica_caught_up || true

SQL_GET_USER=$(jq -r '.queries[] | select(.name == "get_user") | .sql' config/catalog/users.json)
[[ -n $SQL_GET_USER ]] || tg_die "config/catalog/users.json has no get_user"
jq -n --arg sql "$SQL_GET_USER" '{queries: [
    {name: "get_user", route: "GET /users/{id}", sql: $sql, params: [{name: "id", type: "int8", min: 1}], returns: "one", access: "read"},
    {name: "get_user_cached", route: "GET /cached/users/{id}", sql: $sql, params: [{name: "id", type: "int8", min: 1}],
     returns: "one", access: "read", cache: {ttl_ms: 600000, stale_ms: 0}},
    {name: "storm", route: "GET /storm", sql: "SELECT cache_probe($1) AS k FROM pg_sleep(0.2)", params: [{name: "k", type: "text"}],
     returns: "one", access: "read", timeout_ms: 30000, cache: {ttl_ms: 600000, stale_ms: 0}}]}' >"$WORK/catalog.json"

TG_HTTP_PORT=$(tg_pick_port 18680 "$TG_PG_PORT" "$TG_PG_REPLICA_PORT")
TG_ADMIN_PORT=$(tg_pick_port 18681 "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$TG_HTTP_PORT")
tg_render_config config/example.json "$WORK/config.tmpl.json"
jq --arg cat "$WORK/catalog.json" '.anonymous.rate = 1000000000 | .anonymous.burst = 1000000000 | del(.anonymous.queries) | .catalog = [$cat]
    | .cache.max_bytes = 268435456' "$WORK/config.tmpl.json" >"$WORK/config.json"
tg_start_gateway "$GW_BIN" "$WORK/config.json" "$WORK/gateway.log" || tg_die "the gateway did not start"
URL=http://127.0.0.1:$TG_HTTP_PORT
tg_wait_http "$URL/readyz" 15 200 || tg_die "the gateway is not ready"
tg_wait_backends "$URL" || true

awk -v n="$HOT" -v base="$URL" 'BEGIN { for (i = 0; i < 200000; i++) printf "%s/cached/users/%d\n", base, 1 + i % n }' >"$WORK/uris-hits"
awk -v n="$HOT" -v base="$URL" 'BEGIN { for (i = 1; i <= n; i++) printf "%s/cached/users/%d\n", base, i }' >"$WORK/uris-warm"
for ((i = 0; i < 2000; ++i)); do echo "$URL/healthz"; done >"$WORK/uris-healthz"
tg_log "warming $HOT keys"
h2load -n "$HOT" -c4 -m4 -i "$WORK/uris-warm" >"$WORK/warm.out" 2>&1 || tg_die "warm-up failed"

load() { tg_h2load_uris "$1" "$SECS" 10 10 "$WORK/h2load.out"; }
: >"$WORK/results"
for ((r = 1; r <= RUNS; ++r)); do
    tg_random_user_uris "$WORK/uris-reads" "$r" "$URL" "$USERS"
    for kind in healthz hits reads; do
        tg_log "round $r: $kind, $SECS s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
        echo "$kind $r $(load "$WORK/uris-$kind")" >>"$WORK/results"
    done
done
median() { awk -v k="$1" '$1 == k { print $3 }' "$WORK/results" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
healthz=$(median healthz) hits=$(median hits) reads=$(median reads)
bad=$(awk '{ s += $5 } END { print s + 0 }' "$WORK/results")
hit_share=$(curl -s "http://127.0.0.1:$TG_ADMIN_PORT/metrics" |
    awk '/^tollgate_cache_requests_total\{query="get_user_cached"/ { split($1, a, "result=\""); r = substr(a[2], 1, index(a[2], "\"") - 1); n[r] = $2; t += $2 }
         END { printf "%.4f", (t > 0 ? n["hit"] / t : 0) }')

# The storm: every caller in flight at once on one cold key.
executions() { cat "$TG_PG_DIR"/primary.log "$TG_PG_DIR"/replica.log 2>/dev/null | grep -c "WARNING:  tollgate-cache-probe $1\$" || true; }
: >"$WORK/storms"
for n in $STORMS; do
    key="storm-$n-$RANDOM$RANDOM"
    c=$((n < 100 ? n : 100))
    m=$(((n + c - 1) / c))
    tg_log "storm: $n concurrent callers of one cold key (h2load -n$n -c$c -m$m)"
    timeout -k 5 120 h2load -n "$n" -c "$c" -m "$m" "$URL/storm?k=$key" >"$WORK/storm-$n.out" 2>&1 ||
        { sed 's/^/    /' "$WORK/storm-$n.out" >&2; tg_die "h2load failed in the storm"; }
    sleep 1 # the server writes its log a moment after the query
    ok=$(awk '/^status codes:/ { print $3 }' "$WORK/storm-$n.out")
    slowest=$(awk '/^time for request:/ { print $4 }' "$WORK/storm-$n.out")
    echo "$n $ok $(executions "$key") $slowest" >>"$WORK/storms"
done

echo
echo "Cache hits against the HTTP ceiling (h2load -c10 -m10, h2c, $SECS s each, $RUNS rounds, medians):"
printf '  %-44s %12s\n' "" "req/s"
printf '  %-44s %12s\n' "GET /healthz (the gateway's HTTP ceiling)" "$healthz"
printf '  %-44s %12s\n' "cache hits ($HOT hot keys)" "$hits"
printf '  %-44s %12s\n' "uncached point reads (random of $USERS)" "$reads"
echo "  hits / healthz: $(awk -v a="$hits" -v b="$healthz" 'BEGIN { printf "%.2f", a / b }') (target >= 0.6)"
echo "  hits / uncached reads: $(awk -v a="$hits" -v b="$reads" 'BEGIN { printf "%.2f", a / b }')"
echo "  share of get_user_cached calls answered as hits: $hit_share"
echo "  per round (kind round req/s done bad):"
sed 's/^/    /' "$WORK/results"
echo
echo "Miss storms (one cold key, every caller in flight at once):"
printf '  %-10s %-10s %-22s %s\n' callers 2xx "database executions" "slowest caller"
while read -r n ok ex slow; do printf '  %-10s %-10s %-22s %s\n' "$n" "$ok" "$ex (must be 1)" "$slow"; done <"$WORK/storms"
echo "  load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
((bad == 0)) || tg_die "$bad requests failed or were not 2xx"
awk '$3 != 1 || $2 != $1 { bad = 1 } END { exit bad }' "$WORK/storms" || tg_die "a storm reached the database more than once, or a caller failed"
