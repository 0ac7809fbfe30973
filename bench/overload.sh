#!/usr/bin/env bash
# Overload benchmark: offered load rising past what PostgreSQL can serve, against a
# query whose cost grows with its own concurrency, with tollgate's adaptive limit and
# with fixed caps instead, all in one run on this machine (127.0.0.1).
#
#   1. a throwaway PostgreSQL 15 (tests/pg.sh, primary only) with the tests' knob
#      table (tests/integration/schema.sql); the catalog's one read sleeps
#      BENCH_KNOB x n^(BENCH_POWER - 1) seconds, n the calls of its kind running
#      (pg_stat_activity): with BENCH_POWER 3 a call takes knob x n^2, so n at once
#      serve 1 / (knob x n) calls a second, fewer the more run at once (a lock or a
#      cache fought over; BENCH_POWER 2 is plain queueing: constant goodput);
#   2. three gateways in turn (threads BENCH_THREADS 2, pool.size BENCH_POOL 8):
#        adaptive   pool.overload {"tolerance": BENCH_TOLERANCE (1.5)}
#        cap1x      pool.overload false, the query's max_in_flight = pool.size
#        cap4x      pool.overload false, max_in_flight = 4 x pool.size
#   3. for each, closed-loop h2load (-m1) at BENCH_STEPS concurrency (8 16 32: 1x, 2x,
#      4x the pool), BENCH_SECONDS (6) each: goodput (2xx/s) and p99 of the 2xx
#      calls (per-request log), and the 503s a second (answered at once, so a closed
#      loop makes many);
#   4. the table, and per gateway goodput(2x) / its peak goodput. Target: >= 0.9 for
#      adaptive (BENCH_MIN_RATIO).
#
# A quiet machine gives steadier figures: the load average is printed before and after.
# Bounded: about 3 x (3 x BENCH_SECONDS + 10) s (under 2 minutes by default).
#
# Usage: bench/overload.sh        quick: BENCH_SECONDS=3 bench/overload.sh
# Environment: BENCH_KNOB=0.002 BENCH_POWER=3 BENCH_POOL=8 BENCH_THREADS=2 BENCH_STEPS="8 16 32"
#   BENCH_SECONDS=6 BENCH_TOLERANCE=1.5 BENCH_MIN_RATIO=0.9 BENCH_STRICT=0 (1: exit 1 when missed)
#   TG_PG_PORT / TG_PG_REPLICA_PORT (59542/59543), TG_HTTP_PORT (59590), TG_SKIP_BUILD=1, BENCH_KEEP=1

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh
# shellcheck source=tests/pg.sh
source tests/pg.sh

KNOB=${BENCH_KNOB:-0.002}
POWER=${BENCH_POWER:-3}
POOL=${BENCH_POOL:-8}
THREADS=${BENCH_THREADS:-2}
read -r -a STEPS <<<"${BENCH_STEPS:-8 16 32}"
SECS=${BENCH_SECONDS:-6}
TOLERANCE=${BENCH_TOLERANCE:-1.5}
MIN_RATIO=${BENCH_MIN_RATIO:-0.9}
STRICT=${BENCH_STRICT:-0}
tg_positive_ints '' POOL THREADS SECS POWER
((${#STEPS[@]} >= 2)) || tg_die "BENCH_STEPS needs at least two steps (the second is the 2x one)"

export TG_PG_PORT=${TG_PG_PORT:-59542} TG_PG_REPLICA_PORT=${TG_PG_REPLICA_PORT:-59543}
export TG_PG_REPLICA=0 TG_SAMPLE_USERS=${TG_SAMPLE_USERS:-100}
BAZEL_BIN=${TG_BAZEL_BIN:-$TG_ROOT/bazel-bin}
GW_BIN=${TG_GATEWAY_BIN:-$BAZEL_BIN/gateway/tollgate}
WORK=$(mktemp -d /tmp/tollgate-overload.XXXXXX)
GW_PID=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_gw
    pg_stop >/dev/null 2>&1 || true
    tg_finish_work "$WORK" "${BENCH_KEEP:-0}" "$rc"
}
stop_gw() {
    if [[ -n $GW_PID ]]; then
        TG_GATEWAY_PID=$GW_PID
        tg_stop_gateway >/dev/null 2>&1 || true
        GW_PID=
    fi
}
tg_trap_cleanup cleanup
TG_PACKAGES+=(nghttp2-client jq)
tg_ensure_packages

if [[ ${TG_SKIP_BUILD:-0} != 1 ]]; then
    tg_log "building //gateway:tollgate"
    bazel --batch build //gateway:tollgate >"$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log" >&2; tg_die "build failed"; }
fi
pg_start >"$WORK/pg.log" 2>&1 || { tail -n 20 "$WORK/pg.log" >&2; tg_die "could not start PostgreSQL"; }
_pg_psql "$TG_PG_PORT" <tests/integration/schema.sql >/dev/null || tg_die "could not load tests/integration/schema.sql"
_pg_psql "$TG_PG_PORT" <<<"UPDATE knob SET v = $KNOB WHERE id = 1;" >/dev/null

# The contended read: n^POWER / n knob-seconds, n its own calls running (itself included).
mkdir -p "$WORK/catalog"
catalog() { # MAX_IN_FLIGHT (0: none)
    jq -n --argjson m "$1" --argjson pw "$POWER" '{queries: [{name: "contended", route: "GET /overload/contended", access: "read",
        returns: "one", max_in_flight: $m,
        sql: ("SELECT pg_sleep(k.v * power((SELECT count(*) FROM pg_stat_activity WHERE state = '\''active'\'' AND query LIKE '\''%bench_contended%'\''), \($pw) - 1)) IS NOT NULL AS ok FROM knob k WHERE k.id = 1 /* bench_contended */")}]}' \
        >"$WORK/catalog/catalog.json"
}

HTTP_PORT=$(tg_pick_port "${TG_HTTP_PORT:-59590}" "$TG_PG_PORT")
start_gw() { # OVERLOAD_JSON MAX_IN_FLIGHT
    catalog "$2"
    jq -n --argjson port "$HTTP_PORT" --arg dsn "$TG_PRIMARY_DSN" --arg cat "$WORK/catalog" --argjson pool "$POOL" \
        --argjson threads "$THREADS" --argjson ov "$1" \
        '{listen: [{host: "127.0.0.1", port: $port}], primary: $dsn, catalog: [$cat], threads: $threads,
          pool: {size: $pool, acquire_timeout_ms: 1000, overload: $ov}, default_timeout_ms: 5000,
          anonymous: {rate: 1000000000, burst: 1000000000}}' >"$WORK/config.json"
    TG_HTTP_PORT=$HTTP_PORT tg_start_gateway "$GW_BIN" "$WORK/config.json" "$WORK/gateway.log" || tg_die "the gateway did not start"
    GW_PID=$TG_GATEWAY_PID
    TG_GATEWAY_PID=
    tg_wait_http "http://127.0.0.1:$HTTP_PORT/readyz" 15 200 || tg_die "GET /readyz is not 200 after 15 s"
}

# "GOODPUT P99_MS SHED_PCT" from an h2load per-request log (start us, status, duration us) over SECS
step_stats() {
    awk -v secs="$SECS" '{ n++; if ($2 >= 200 && $2 < 300) { ok++; print $3 > "/dev/stderr" } else if ($2 == 503) shed++ }
         END { printf "%.1f %.1f", ok / secs, shed / secs }' "$1" 2>"$1.ok"
    sort -n "$1.ok" | awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < NR * 0.99) i++; if (i < 1) i = 1;
        if (NR == 0) print " nan"; else printf " %.1f\n", v[i] / 1000 }'
}

declare -A GOOD P99 SHED
MODES=(adaptive cap1x cap4x)
tg_log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in "${MODES[@]}"; do
    case $mode in
    adaptive) start_gw "{\"adaptive\": true, \"tolerance\": $TOLERANCE}" 0 ;;
    cap1x) start_gw false "$POOL" ;;
    cap4x) start_gw false $((4 * POOL)) ;;
    esac
    # a quiet second first: the adaptive limit measures its floor
    timeout -k 5 30 h2load -c 1 -m 1 -D 2 "http://127.0.0.1:$HTTP_PORT/overload/contended" >/dev/null 2>&1 || true
    for c in "${STEPS[@]}"; do
        log=$WORK/$mode-$c.log
        timeout -k 5 $((SECS + 30)) h2load -c "$c" -m 1 -D "$SECS" --log-file="$log" "http://127.0.0.1:$HTTP_PORT/overload/contended" \
            >"$WORK/$mode-$c.out" 2>&1 || { sed 's/^/    /' "$WORK/$mode-$c.out" >&2; tg_die "h2load ($mode, -c$c) failed"; }
        read -r g s p <<<"$(step_stats "$log")"
        GOOD[$mode,$c]=$g SHED[$mode,$c]=$s P99[$mode,$c]=$p
        tg_log "$mode -c$c: ${g} ok/s, p99 ${p} ms, ${s} 503/s"
    done
    stop_gw
done
tg_log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "overload benchmark: knob $KNOB s, a call takes knob x n^$((POWER - 1)) s (n running); pool.size $POOL, threads $THREADS, ${SECS} s a step"
printf '%-9s' gateway
for c in "${STEPS[@]}"; do printf ' | %-27s' "c=$c ok/s  p99ms  503/s"; done
printf ' | goodput(2x)/peak\n'
missed=0
for mode in "${MODES[@]}"; do
    printf '%-9s' "$mode"
    peak=0
    for c in "${STEPS[@]}"; do
        printf ' | %8s %8s %8s  ' "${GOOD[$mode,$c]}" "${P99[$mode,$c]}" "${SHED[$mode,$c]}"
        awk -v a="${GOOD[$mode,$c]}" -v b="$peak" 'BEGIN { exit !(a > b) }' && peak=${GOOD[$mode,$c]}
    done
    ratio=$(awk -v a="${GOOD[$mode,${STEPS[1]}]}" -v p="$peak" 'BEGIN { printf "%.2f", (p > 0 ? a / p : 0) }')
    printf ' | %s\n' "$ratio"
    if [[ $mode == adaptive ]] && ! awk -v r="$ratio" -v m="$MIN_RATIO" 'BEGIN { exit !(r >= m) }'; then
        echo "MISSED: adaptive goodput(2x)/peak $ratio < $MIN_RATIO"
        missed=1
    fi
done
((STRICT == 0 || missed == 0))
