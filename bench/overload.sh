#!/usr/bin/env bash
# Overload benchmark: open-loop offered load rising past what PostgreSQL can serve,
# against a query whose cost grows under contention, with tollgate's adaptive limit and
# with fixed caps instead, all in one run on this machine (127.0.0.1).
#
#   1. a throwaway PostgreSQL 15 (tests/pg.sh, primary only). The catalog's one read
#      sleeps t0 x max(1, (n / K)^P) seconds, n the calls of its kind running
#      (pg_stat_activity, itself included): t0 (BENCH_T0_MS, 10 ms) while at most K
#      (BENCH_KNEE, 4) run, longer past that. So n at once serve n / t0 calls a second
#      up to K / t0 at n = K (the knee), then K^2 / (t0 x n) with P = 2 (BENCH_POWER):
#      a lock or a cache fought over, throughput falling as 1/n. Sleep, not CPU: the
#      overload is the database's, not a core shared with the load generator.
#   2. the capacity C, measured first: a gateway capped at K (below), K closed-loop
#      callers for BENCH_SECONDS.
#   3. gateways in turn (BENCH_GATEWAYS), each with threads BENCH_THREADS (2) and
#      pool.size BENCH_POOL (32, well past the knee: n can reach it):
#        adaptive   pool.overload {"adaptive": true, "tolerance": BENCH_TOLERANCE (1.5)}
#        cap-pool   pool.overload false, the query's max_in_flight = pool.size
#        cap-4x     pool.overload false, max_in_flight = 4 x pool.size
#        cap-knee   pool.overload false, max_in_flight = K: the oracle, a cap tuned by
#                   hand to this query on this database (what the adaptive limit has
#                   to find by itself)
#   4. for each, open-loop h2load (--rps per client, BENCH_CLIENTS (16) connections of
#      up to 100 streams: a 503 is not followed by an instant retry, the rate holds;
#      the connections are made 20 ms apart, as each sends its first call at once and
#      a burst of 16 would start the step collapsed; the most calls h2load had in
#      flight is checked against the 16 x 100 it may have, past which it would delay
#      calls) at BENCH_LOADS x C (0.5 1 2 4), one gateway process through all the
#      steps (the limit carries what it learned, as when load rises). Each step sends
#      for BENCH_WARMUP (2 s) + BENCH_SECONDS (5 s) and waits for every answer; the
#      calls started in the BENCH_SECONDS window count. A caller gives up after
#      BENCH_DEADLINE_MS (1000): goodput is the 2xx answered within it a second, p99
#      is theirs; 2xx answered later are "late" (their callers have gone), 503s
#      "shed", anything else (504, errors) "other". The adaptive limit
#      (/admin/status backends[0].overload.limit, admin_listen on its own port) is
#      sampled every 0.2 s of the window: min/median/max.
#   5. the table, and goodput at the BENCH_TARGET load (2) over one common peak: the
#      best of C and every goodput of the run. Target: >= BENCH_MIN_RATIO (0.9) for
#      adaptive, where the fixed caps at pool.size and beyond collapse.
#
# A quiet machine gives steadier figures: the load average is printed before and after.
# Bounded: C's step plus 4 gateways x 4 steps x (BENCH_WARMUP + BENCH_SECONDS + the
# slowest answer: about 1 s, at most the gateway's 5 s timeout), plus starts: about
# 2.5 minutes by default.
#
# Usage: bench/overload.sh        quick: BENCH_SECONDS=3 BENCH_GATEWAYS="adaptive cap-pool" bench/overload.sh
# Environment: BENCH_T0_MS=10 BENCH_KNEE=4 BENCH_POWER=2 BENCH_POOL=32 BENCH_THREADS=2
#   BENCH_LOADS="0.5 1 2 4" BENCH_TARGET=2 BENCH_SECONDS=5 BENCH_WARMUP=2 BENCH_DEADLINE_MS=1000
#   BENCH_CLIENTS=16 BENCH_TOLERANCE=1.5 BENCH_GATEWAYS="adaptive cap-pool cap-4x cap-knee"
#   BENCH_MIN_RATIO=0.9 BENCH_STRICT=0 (1: exit 1 when missed)
#   TG_PG_PORT / TG_PG_REPLICA_PORT (59542/59543), TG_HTTP_PORT (59590; admin on the next
#   free port), TG_SKIP_BUILD=1, BENCH_KEEP=1 (keep the work folder: h2load logs, configs)

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh
# shellcheck source=tests/pg.sh
source tests/pg.sh

T0_MS=${BENCH_T0_MS:-10}
KNEE=${BENCH_KNEE:-4}
POWER=${BENCH_POWER:-2}
POOL=${BENCH_POOL:-32}
THREADS=${BENCH_THREADS:-2}
read -r -a LOADS <<<"${BENCH_LOADS:-0.5 1 2 4}"
TARGET=${BENCH_TARGET:-2}
SECS=${BENCH_SECONDS:-5}
WARM=${BENCH_WARMUP:-2}
DEADLINE_MS=${BENCH_DEADLINE_MS:-1000}
CLIENTS=${BENCH_CLIENTS:-16}
TOLERANCE=${BENCH_TOLERANCE:-1.5}
read -r -a MODES <<<"${BENCH_GATEWAYS:-adaptive cap-pool cap-4x cap-knee}"
MIN_RATIO=${BENCH_MIN_RATIO:-0.9}
STRICT=${BENCH_STRICT:-0}
tg_positive_ints BENCH_ T0_MS KNEE POWER POOL THREADS SECS WARM DEADLINE_MS CLIENTS
for m in "${MODES[@]}"; do
    [[ $m =~ ^(adaptive|cap-pool|cap-4x|cap-knee)$ ]] || tg_die "BENCH_GATEWAYS: unknown gateway '$m' (adaptive cap-pool cap-4x cap-knee)"
done
for f in "${LOADS[@]}"; do
    [[ $f =~ ^[0-9]+(\.[0-9]+)?$ ]] || tg_die "BENCH_LOADS: '$f' is not a number"
done
[[ " ${LOADS[*]} " == *" $TARGET "* ]] || tg_die "BENCH_TARGET $TARGET is not one of BENCH_LOADS (${LOADS[*]})"

export TG_PG_PORT=${TG_PG_PORT:-59542} TG_PG_REPLICA_PORT=${TG_PG_REPLICA_PORT:-59543}
export TG_PG_REPLICA=0 TG_SAMPLE_USERS=${TG_SAMPLE_USERS:-100}
BAZEL_BIN=${TG_BAZEL_BIN:-$TG_ROOT/bazel-bin}
GW_BIN=${TG_GATEWAY_BIN:-$BAZEL_BIN/gateway/tollgate}
WORK=$(mktemp -d /tmp/tollgate-overload.XXXXXX)
GW_PID=
SAMPLER_PID=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_sampler
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
stop_sampler() {
    if [[ -n $SAMPLER_PID ]]; then
        kill "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
        SAMPLER_PID=
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

# The contended read. n counts the statements running this query (the marker comment
# is in the text of each, and pg_stat_activity's scan is cheap at these numbers).
mkdir -p "$WORK/catalog"
catalog() { # MAX_IN_FLIGHT (0: none)
    jq -n --argjson m "$1" --arg t0 "$(awk -v t="$T0_MS" 'BEGIN { printf "%.6f", t / 1000 }')" --arg k "$KNEE" --arg pw "$POWER" \
        '{queries: [{name: "contended", route: "GET /overload/contended", access: "read", returns: "one", max_in_flight: $m,
        sql: ("SELECT pg_sleep(\($t0) * greatest(1, power((SELECT count(*) FROM pg_stat_activity WHERE state = '\''active'\'' AND query LIKE '\''%bench_contended%'\'')::float8 / \($k), \($pw)))) IS NOT NULL AS ok /* bench_contended */")}]}' \
        >"$WORK/catalog/catalog.json"
}

HTTP_PORT=$(tg_pick_port "${TG_HTTP_PORT:-59590}" "$TG_PG_PORT")
ADMIN_PORT=$(tg_pick_port $((HTTP_PORT + 1)) "$TG_PG_PORT" "$HTTP_PORT")
URL=http://127.0.0.1:$HTTP_PORT/overload/contended
start_gw() { # NAME OVERLOAD_JSON MAX_IN_FLIGHT
    catalog "$3"
    jq -n --argjson port "$HTTP_PORT" --argjson admin "$ADMIN_PORT" --arg dsn "$TG_PRIMARY_DSN" --arg cat "$WORK/catalog" \
        --argjson pool "$POOL" --argjson threads "$THREADS" --argjson ov "$2" \
        '{listen: [{host: "127.0.0.1", port: $port}], admin_listen: {host: "127.0.0.1", port: $admin},
          primary: $dsn, catalog: [$cat], threads: $threads,
          pool: {size: $pool, acquire_timeout_ms: 1000, overload: $ov}, default_timeout_ms: 5000,
          anonymous: {rate: 1000000000, burst: 1000000000}}' >"$WORK/config-$1.json"
    TG_HTTP_PORT=$HTTP_PORT tg_start_gateway "$GW_BIN" "$WORK/config-$1.json" "$WORK/gateway-$1.log" || tg_die "the gateway ($1) did not start"
    GW_PID=$TG_GATEWAY_PID
    TG_GATEWAY_PID=
    tg_wait_http "http://127.0.0.1:$HTTP_PORT/readyz" 15 200 || tg_die "GET /readyz is not 200 after 15 s"
}
start_mode() { # MODE
    case $1 in
    adaptive) start_gw "$1" "{\"adaptive\": true, \"tolerance\": $TOLERANCE}" 0 ;;
    cap-pool) start_gw "$1" false "$POOL" ;;
    cap-4x) start_gw "$1" false $((4 * POOL)) ;;
    cap-knee) start_gw "$1" false "$KNEE" ;;
    esac
}

# The backend's limit every 0.2 s for SECS, after WARM, into FILE (one a line)
start_sampler() { # FILE
    (
        sleep "$WARM"
        for ((i = 0; i < SECS * 5; i++)); do
            curl -s --max-time 1 "http://127.0.0.1:$ADMIN_PORT/admin/status" | jq -r '.backends[0].overload.limit // empty' 2>/dev/null || true
            sleep 0.2
        done
    ) >"$1" &
    SAMPLER_PID=$!
}
limit_stats() { # FILE: "min/median/max" or "-"
    sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else printf "%d/%d/%d\n", v[1], v[int((NR + 1) / 2)], v[NR] }'
}

# "OFFERED OK P99_MS LATE SHED OTHER" (a second each, p99 in ms) from an h2load
# per-request log (start us, status, duration us): the calls started in the window
# [first start + WARM, + SECS). h2load waits for every answer (-n), so every call of
# the window is in the log.
step_stats() { # LOG
    sort -n -k1,1 "$1" | awk -v warm="$WARM" -v secs="$SECS" -v dl="$DEADLINE_MS" -v okf="$1.ok" '
        NR == 1 { from = $1 + warm * 1e6; to = from + secs * 1e6 }
        $1 < from || $1 >= to { next }
        { n++ }
        $2 >= 200 && $2 < 300 { if ($3 <= dl * 1000) { ok++; print $3 > okf } else late++; next }
        $2 == 503 { shed++; next }
        { other++ }
        END { printf "%.1f %.1f %.1f %.1f %.1f", n / secs, ok / secs, late / secs, shed / secs, other / secs; close(okf) }' >"$1.sum"
    touch "$1.ok"
    read -r offered ok late shed other <"$1.sum"
    p99=$(sort -n "$1.ok" | awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < NR * 0.99) i++; if (i < 1) i = 1;
        if (NR == 0) print "-"; else printf "%.0f\n", v[i] / 1000 }')
    echo "$offered $ok $p99 $late $shed $other"
}
# the most calls the h2load of LOG had in flight at once (answered ones: it logs no others)
max_in_flight() { # LOG
    awk 'NR == 1 { b = $1 } { printf "%d 1\n%d -1\n", $1 - b, $1 - b + $3 }' "$1" | sort -n -k1,1 -k2,2n |
        awk '{ n += $2; if (n > m) m = n } END { print m + 0 }'
}

# One open-loop step at RATE calls a second in all, into WORK/MODE-LOAD.*: CLIENTS
# connections made 20 ms apart (each sends its first call at once: all together would
# be a burst that starts the step collapsed), each at RATE / CLIENTS a second for
# WARM + SECS; h2load then waits for every answer (the gateway's timeout bounds it).
run_step() { # MODE LOAD RATE
    local base=$WORK/$1-$2 per n
    per=$(awk -v r="$3" -v c="$CLIENTS" 'BEGIN { printf "%.3f", r / c }')
    n=$(awk -v r="$3" -v c="$CLIENTS" -v s=$((WARM + SECS)) 'BEGIN { printf "%d", c * int(r * s / c + 0.5) }')
    [[ $1 == adaptive ]] && start_sampler "$base.limit"
    timeout -k 5 $((WARM + SECS + 40)) h2load -c "$CLIENTS" -r 1 --rate-period 20ms -m 100 --rps "$per" -n "$n" \
        --log-file="$base.log" "$URL" >"$base.out" 2>&1 || { sed 's/^/    /' "$base.out" >&2; tg_die "h2load ($1 at ${2}x, $3/s) failed"; }
    stop_sampler
}

tg_log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# The capacity: the oracle's cap, K callers in a closed loop (never more than K run,
# so none is refused and each takes t0 plus the gateway's own time).
start_mode cap-knee
timeout -k 5 30 h2load -c 1 -m 1 -D 1 "$URL" >/dev/null 2>&1 || true
timeout -k 5 $((SECS + 30)) h2load -c "$KNEE" -m 1 -D "$SECS" --log-file="$WORK/capacity.log" "$URL" >"$WORK/capacity.out" 2>&1 ||
    { sed 's/^/    /' "$WORK/capacity.out" >&2; tg_die "h2load (capacity) failed"; }
stop_gw
CAP=$(awk -v s="$SECS" '$2 >= 200 && $2 < 300 { ok++ } END { printf "%.1f", ok / s }' "$WORK/capacity.log")
awk -v c="$CAP" 'BEGIN { exit !(c > 0) }' || tg_die "the capacity step served nothing (see $WORK/capacity.out; BENCH_KEEP=1 keeps it)"
tg_log "capacity: $CAP calls/s (K = $KNEE closed-loop callers, cap $KNEE; the model's K / t0 = $((KNEE * 1000 / T0_MS)))"

declare -A R
for mode in "${MODES[@]}"; do
    start_mode "$mode"
    # a quiet second first: the adaptive limit measures its floor
    timeout -k 5 30 h2load -c 1 -m 1 -D 1 "$URL" >/dev/null 2>&1 || true
    for f in "${LOADS[@]}"; do
        rate=$(awk -v f="$f" -v c="$CAP" 'BEGIN { printf "%.0f", f * c }')
        run_step "$mode" "$f" "$rate"
        read -r offered ok p99 late shed other <<<"$(step_stats "$WORK/$mode-$f.log")"
        inflight=$(max_in_flight "$WORK/$mode-$f.log")
        ((inflight < CLIENTS * 90)) || tg_warn "$mode ${f}x: h2load had $inflight calls in flight, near its $((CLIENTS * 100)): some calls were sent late (BENCH_CLIENTS)"
        limit=-
        [[ $mode == adaptive ]] && limit=$(limit_stats "$WORK/$mode-$f.limit")
        R[$mode,$f]="$rate $offered $ok $p99 $late $shed $other $limit"
        tg_log "$mode ${f}x ($rate/s): offered $offered/s, ok $ok/s, p99 $p99 ms, late $late/s, 503 $shed/s, other $other/s, limit $limit, h2load in flight <= $inflight"
    done
    stop_gw
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
tg_log "load average after: $LOAD_AFTER"

# the common peak: the capacity, or any better goodput of the run
PEAK=$CAP
for k in "${!R[@]}"; do
    read -r _ _ ok _ <<<"${R[$k]}"
    awk -v a="$ok" -v b="$PEAK" 'BEGIN { exit !(a > b) }' && PEAK=$ok
done

echo
echo "overload benchmark: a call takes ${T0_MS} ms x max(1, (n / $KNEE)^$POWER), n running; pool.size $POOL, threads $THREADS;"
echo "capacity $CAP/s (closed loop at the knee), peak $PEAK/s; open loop ${SECS} s a step after ${WARM} s, deadline ${DEADLINE_MS} ms;"
echo "load average before $LOAD_BEFORE, after $LOAD_AFTER"
printf '%-9s %5s %8s %9s %8s %7s %7s %7s %7s  %s\n' gateway load rate/s offered/s ok/s p99ms late/s 503/s other/s 'limit min/med/max'
for mode in "${MODES[@]}"; do
    for f in "${LOADS[@]}"; do
        read -r rate offered ok p99 late shed other limit <<<"${R[$mode,$f]}"
        printf '%-9s %5s %8s %9s %8s %7s %7s %7s %7s  %s\n' "$mode" "${f}x" "$rate" "$offered" "$ok" "$p99" "$late" "$shed" "$other" "$limit"
    done
done
echo
printf '%-9s  goodput(%sx)/peak  best goodput/peak\n' gateway "$TARGET"
missed=0
for mode in "${MODES[@]}"; do
    best=0
    for f in "${LOADS[@]}"; do
        read -r _ _ ok _ <<<"${R[$mode,$f]}"
        awk -v a="$ok" -v b="$best" 'BEGIN { exit !(a > b) }' && best=$ok
    done
    read -r _ _ ok _ <<<"${R[$mode,$TARGET]}"
    ratio=$(awk -v a="$ok" -v p="$PEAK" 'BEGIN { printf "%.2f", a / p }')
    printf '%-9s  %17s  %17s\n' "$mode" "$ratio" "$(awk -v a="$best" -v p="$PEAK" 'BEGIN { printf "%.2f", a / p }')"
    if [[ $mode == adaptive ]] && ! awk -v r="$ratio" -v m="$MIN_RATIO" 'BEGIN { exit !(r >= m) }'; then
        echo "MISSED: adaptive goodput(${TARGET}x)/peak $ratio < $MIN_RATIO"
        missed=1
    fi
done
((STRICT == 0 || missed == 0))
