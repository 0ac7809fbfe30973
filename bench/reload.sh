#!/usr/bin/env bash
# Reloads under full load: does reloading the config every 100 ms cost requests or
# throughput?
#
#   1. a throwaway PostgreSQL 15 primary and streaming replica (tests/pg.sh) with
#      BENCH_USERS users; the gateway with config/example.json's config (threads 2,
#      pool 16, its catalog) and an admin listener;
#   2. BENCH_RUNS rounds, each of two BENCH_SECONDS loads of point reads over h2c
#      (h2load -c10 -m10, GET /users/<random id>, a fresh file of random URIs each
#      round), in alternating order: one alone, one while POST /admin/reload is sent
#      every BENCH_RELOAD_MS (100) ms;
#   3. prints req/s of each (medians), the ratio with / without reloads (target at
#      least 0.9), every failed or non-2xx request (must be 0) and the reloads done.
#
# Settings: BENCH_USERS=100000 BENCH_SECONDS=20 BENCH_RUNS=2 BENCH_RELOAD_MS=100
# BENCH_CLIENTS=10 BENCH_STREAMS=10 BENCH_KEEP=1 (keep the work folder).
# Loopback only, bounded in time; it stops everything it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/lib.sh
source tests/pg.sh

USERS=${BENCH_USERS:-100000}
SECS=${BENCH_SECONDS:-20}
RUNS=${BENCH_RUNS:-2}
RELOAD_MS=${BENCH_RELOAD_MS:-100}
CLIENTS=${BENCH_CLIENTS:-10}
STREAMS=${BENCH_STREAMS:-10}
tg_positive_ints 'BENCH_' USERS SECS RUNS RELOAD_MS CLIENTS STREAMS

tg_bench_start

export TG_SAMPLE_USERS=$USERS
pg_start || tg_die "could not start PostgreSQL"
TG_HTTP_PORT=$(tg_pick_port 18480 "$TG_PG_PORT" "$TG_PG_REPLICA_PORT")
TG_ADMIN_PORT=$(tg_pick_port 18481 "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$TG_HTTP_PORT")
CONFIG=$WORK/config.json
tg_render_config config/example.json "$WORK/config.tmpl.json"
# keyless point reads, limits effectively off: the benchmark measures reloads, not the anonymous bucket
jq '.anonymous.rate = 1000000000 | .anonymous.burst = 1000000000' "$WORK/config.tmpl.json" >"$CONFIG"
tg_start_gateway "$GW_BIN" "$CONFIG" "$WORK/gateway.log" || tg_die "the gateway did not start"
tg_wait_http "http://127.0.0.1:$TG_HTTP_PORT/readyz" 15 200 || tg_die "the gateway is not ready"
tg_wait_backends "http://127.0.0.1:$TG_HTTP_PORT" || true
URL=http://127.0.0.1:$TG_HTTP_PORT
ADMIN=http://127.0.0.1:$TG_ADMIN_PORT

make_uris() { tg_random_user_uris "$1" "$2" "$URL" "$USERS"; }
load() { tg_h2load_uris "$1" "$SECS" "$CLIENTS" "$STREAMS" "$WORK/h2load.out"; }
# POST /admin/reload every RELOAD_MS for SECS; the answers ("ok not-ok") into $WORK/reloads.
reloader() { tg_curl_every POST "$ADMIN/admin/reload" "$RELOAD_MS" "$SECS" "$WORK" >"$WORK/reloads"; }

tg_log "warm-up (3 s)"
make_uris "$WORK/uris" 0
SECS=3 load "$WORK/uris" >/dev/null
: >"$WORK/results"
for ((r = 1; r <= RUNS; ++r)); do
    make_uris "$WORK/uris" "$r"
    for kind in $( ((r % 2)) && echo "alone reloading" || echo "reloading alone"); do
        tg_log "round $r: $kind, $SECS s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
        if [[ $kind == reloading ]]; then
            reloader &
            RPID=$!
            res=$(load "$WORK/uris")
            wait "$RPID" || true
            read -r rok rbad <"$WORK/reloads"
        else
            res=$(load "$WORK/uris")
            rok=- rbad=-
        fi
        echo "$kind $res $rok $rbad" >>"$WORK/results"
    done
done

median() { awk -v k="$1" -v c="$2" '$1 == k { print $c }' "$WORK/results" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
sum() { awk -v k="$1" -v c="$2" '$1 == k && $c != "-" { s += $c } END { print s + 0 }' "$WORK/results"; }

alone=$(median alone 2)
reloading=$(median reloading 2)
echo
echo "Point reads (h2load -c$CLIENTS -m$STREAMS, h2c, $SECS s each, $RUNS rounds, medians), reloading every $RELOAD_MS ms:"
printf '  %-28s %10s %14s %12s\n' "" "req/s" "failed/non-2xx" "reloads"
printf '  %-28s %10s %14s %12s\n' "alone" "$alone" "$(sum alone 4)" "-"
printf '  %-28s %10s %14s %12s\n' "while reloading" "$reloading" "$(sum reloading 4)" "$(sum reloading 5) ok, $(sum reloading 6) not"
echo "  ratio while reloading / alone: $(awk -v a="$alone" -v b="$reloading" 'BEGIN { printf "%.2f", b / a }') (target >= 0.9)"
echo "  per round:"
sed 's/^/    /' "$WORK/results"
echo "  load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
bad=$(($(sum alone 4) + $(sum reloading 4)))
((bad == 0)) || tg_die "$bad requests failed or were not 2xx"
want=$((SECS * 1000 / RELOAD_MS))
awk -v w="$want" '$1 == "reloading" && ($5 != w || $6 != 0) { bad = 1 } END { exit bad }' "$WORK/results" ||
    tg_die "a reloading round did not get $want reloads answered 200 (per round above)"
