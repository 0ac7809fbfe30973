#!/usr/bin/env bash
# What hostile clients cost everyone else: a bounded load of normal calls alone, then
# the same load next to each kind of abusive client (tests/abuse.c), on one gateway.
#
#   1. a throwaway PostgreSQL 15 primary and streaming replica (tests/pg.sh, 1,000
#      users); the gateway (2 threads, pool.size 8, http.idle_timeout_ms 30000 so the
#      silent clients stay for the whole run, listen max_connections 20000);
#   2. normal calls: h2load over h2c, BENCH_REQUESTS (20000) uncached one-row reads,
#      8 clients, 8 streams each, BENCH_RUNS (3) times alone (the baseline);
#   3. for each abuse, its connections opened first (BENCH_CONNS connections, by mode:
#      slow-headers, idle, h2-idle 2000 each; slow-body 500; no-read 200 asking for
#      100 KB answers; ping-flood and rapid-reset 20, opening a new connection each
#      time one is closed), then the same load BENCH_RUNS
#      times while they run, then the gateway's resident memory;
#   4. a table: abusive connections, the normal calls' success (2xx of all sent), their
#      throughput as a share of the baseline's (medians), gateway RSS.
#
# Prints the machine's load before and after: a ratio is only worth as much as the
# machine was quiet. Loopback only, bounded (about 3 minutes); it stops everything it
# started. BENCH_ONLY="rapid-reset ping-flood" runs a subset.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/lib.sh
source tests/pg.sh

REQUESTS=${BENCH_REQUESTS:-20000}
RUNS=${BENCH_RUNS:-3}
MODES="slow-headers:2000 idle:2000 h2-idle:2000 slow-body:500 no-read:200 ping-flood:20 rapid-reset:20"
ONLY=${BENCH_ONLY:-}
tg_positive_ints 'BENCH_' REQUESTS RUNS

bench_cleanup() {
    [[ -n ${ABUSER:-} ]] && kill "$ABUSER" 2>/dev/null || true
}
tg_bench_start
bazel --batch build //tests:abuse_client >>"$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log" >&2; tg_die "build failed"; }
ABUSE_BIN=$TG_ROOT/bazel-bin/tests/abuse_client

export TG_SAMPLE_USERS=1000
pg_start || tg_die "could not start PostgreSQL"
TG_HTTP_PORT=$(tg_pick_port 18680 "$TG_PG_PORT" "$TG_PG_REPLICA_PORT")
ADMIN_PORT=$(tg_pick_port 18681 "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$TG_HTTP_PORT")
URL=http://127.0.0.1:$TG_HTTP_PORT
mkdir -p "$WORK/catalog"
cp config/catalog/*.json "$WORK/catalog/"
cp tests/integration/catalog/reads.json "$WORK/catalog/" 2>/dev/null || true
jq -n --argjson port "$TG_HTTP_PORT" --argjson admin "$ADMIN_PORT" --arg primary "host=127.0.0.1 port=$TG_PG_PORT dbname=$TG_PG_DB user=$TG_PG_USER" \
    --arg replica "host=127.0.0.1 port=$TG_PG_REPLICA_PORT dbname=$TG_PG_DB user=$TG_PG_USER" --arg catalog "$WORK/catalog" '{
    listen: [{host: "127.0.0.1", port: $port, max_connections: 20000}], admin_listen: {host: "127.0.0.1", port: $admin}, threads: 2, primary: $primary, replicas: [$replica],
    pool: {size: 8}, http: {idle_timeout_ms: 30000},
    anonymous: {rate: 1000000000, burst: 1000000000}, catalog: [$catalog]}' >"$WORK/config.json"
tg_start_gateway "$GW_BIN" "$WORK/config.json" "$WORK/gateway.log" || tg_die "the gateway did not start"
tg_wait_backends "$URL" >/dev/null

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# one run of normal calls: "<req/s> <2xx> <sent>"
normal() {
    local out
    out=$(h2load -n "$REQUESTS" -c 8 -m 8 "$URL/stream/rows?n=1" 2>&1 || true)
    awk '/^finished in/ { rps = $4 } /^status codes:/ { ok = $3 } /^requests:/ { sent = $2 } END { print rps + 0, ok + 0, sent + 0 }' <<<"$out"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
rss_mb() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$TG_GATEWAY_PID/status"; }

runs() { # LABEL: RUNS runs; prints "median_rps ok sent"
    local i r ok=0 sent=0 rates=()
    for ((i = 0; i < RUNS; ++i)); do
        read -r r o s < <(normal)
        rates+=("$r") ok=$((ok + o)) sent=$((sent + s))
    done
    echo "$(printf '%s\n' "${rates[@]}" | median) $ok $sent"
}

read -r BASE _ _ < <(runs baseline)
tg_log "baseline: $BASE req/s (median of $RUNS), RSS $(rss_mb) MB"
printf '\n| abusive clients | normal calls succeeded | throughput vs alone | gateway RSS |\n| --- | --- | --- | --- |\n' >"$WORK/table.md"
printf '| none (baseline, %s req/s) | - | 1.00 | %s MB |\n' "$BASE" "$(rss_mb)" >>"$WORK/table.md"
for m in $MODES; do
    mode=${m%%:*} conns=${m##*:}
    [[ -z $ONLY || " $ONLY " == *" $mode "* ]] || continue
    path=/stream/rows?n=1
    [[ $mode == no-read ]] && path='/stream/rows?n=900'
    # the floods reconnect when closed, as a persistent attacker would
    ABUSE_RECONNECT=$([[ $mode == ping-flood || $mode == rapid-reset ]] && echo 1 || echo 0) \
        "$ABUSE_BIN" "$mode" 127.0.0.1 "$TG_HTTP_PORT" "$conns" 40 "$path" >"$WORK/abuse-$mode.out" 2>&1 &
    ABUSER=$!
    sleep 3 # the connections open (and the floods start)
    read -r rps ok sent < <(runs "$mode")
    rss=$(rss_mb)
    kill "$ABUSER" 2>/dev/null || true
    wait "$ABUSER" 2>/dev/null || true
    ABUSER=
    share=$(awk -v a="$rps" -v b="$BASE" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    pct=$(awk -v o="$ok" -v s="$sent" 'BEGIN { printf "%.2f%%", (s > 0 ? 100 * o / s : 0) }')
    printf '| %s %s | %s | %s | %s MB |\n' "$conns" "$mode" "$pct" "$share" "$rss" >>"$WORK/table.md"
    tg_log "$conns $mode: $pct ok, $share of the baseline, RSS $rss MB"
    sleep 1
done
cat "$WORK/table.md"
echo "closed by the gateway: $(curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | grep '^tollgate_client_connections_closed_total' | tr '\n' ' ')"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
