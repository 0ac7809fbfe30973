#!/usr/bin/env bash
# The fault matrix: what each backend fault costs readers and writers, under the same
# bounded load.
#
#   1. a throwaway PostgreSQL 15 primary and streaming replica (tests/pg.sh); one
#      tests/faultproxy in front of each (loopback TCP that can blackhole, delay, cut
#      or reject on command); the gateway with the primary as a libpq multi-host
#      string over both proxies (target_session_attrs=read-write, so a promoted
#      replica takes the writes) and the replica through its proxy; health checks
#      every BENCH_HEALTH_MS (1000, the default), acquire_timeout_ms 1000; a catalog
#      of two queries (tests/integration/catalog/routing.json: a read, a write, each
#      answering which server ran it);
#   2. for each fault, a fresh start (both servers up, both proxies passing, the
#      gateway ready with reads on the replica), then BENCH_SECONDS (20) of load:
#      reads over h2c at BENCH_RATE (2000) req/s (h2load --rps, 8 clients), writes at
#      BENCH_WRITE_RATE (20) req/s; the fault starts at 5 s and (where it can) ends
#      at 12 s; /readyz is polled every 100 ms meanwhile;
#   3. a table: requests failed (not 2xx) of reads and of writes, the slowest read
#      (one with no answer within 5 s counts as failed; h2load's own -N timeout is
#      not used: it makes h2load 1.52 abort on its way out), the time from the fault
#      until /readyz showed the backend down ("out"), and from the fault's end until it
#      showed it up again ("back").
#
# The faults: replica killed (immediate stop, restarted at 12 s), replica blackholed
# (every packet held), replica slow (BENCH_DELAY_MS, 20, added each way), connections
# cut (every connection to both servers reset three times, 1 s apart), primary
# killed, primary blackholed, gateway started with the primary down (it starts at
# 12 s), fds exhausted (the gateway with `ulimit -n 256` and 400 idle client
# connections opened at 5 s, closed at 12 s), and last the primary promoted elsewhere
# (primary stopped, replica promoted at 5.5 s: the promoted server must take the
# writes; the replica is rebuilt afterwards).
#
# Targets: 0 failed reads in every row where a replica or the primary can still
# serve them. Loopback only, bounded in count and time (about 5 minutes); it stops
# everything it started. BENCH_ONLY="replica-blackholed primary-killed" runs a subset.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/lib.sh
source tests/pg.sh

SECS=${BENCH_SECONDS:-20}
RATE=${BENCH_RATE:-2000}
WRATE=${BENCH_WRITE_RATE:-20}
HEALTH_MS=${BENCH_HEALTH_MS:-1000}
DELAY_MS=${BENCH_DELAY_MS:-20}
FAULTS="replica-killed replica-blackholed replica-slow connections-cut primary-killed primary-blackholed primary-down-at-start fds-exhausted primary-promoted"
ONLY=${BENCH_ONLY:-$FAULTS}
tg_positive_ints 'BENCH_' SECS RATE WRATE HEALTH_MS DELAY_MS
((SECS >= 15)) || tg_die "BENCH_SECONDS must be at least 15 (faults run from 5 s to 12 s)"

WORK=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
PROXY_PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    tg_stop_gateway >/dev/null 2>&1 || true
    local p
    for p in "${PROXY_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    pg_stop >/dev/null 2>&1 || true
    tg_finish_work "$WORK" "${BENCH_KEEP:-0}" "$rc"
}
tg_trap_cleanup cleanup

tg_ensure_packages
command -v h2load >/dev/null || tg_die "h2load is missing (apt-get install nghttp2-client)"
command -v jq >/dev/null || tg_die "jq is missing (apt-get install jq)"
tg_log "building the gateway and the fault proxy"
bazel --batch build //gateway:tollgate //tests:faultproxy >"$WORK/build.log" 2>&1 ||
    { tail -n 30 "$WORK/build.log" >&2; tg_die "build failed"; }
GW_BIN=${BENCH_GATEWAY_BIN:-$TG_ROOT/bazel-bin/gateway/tollgate}
PROXY_BIN=$TG_ROOT/bazel-bin/tests/faultproxy

export TG_SAMPLE_USERS=100
pg_start || tg_die "could not start PostgreSQL"
TG_HTTP_PORT=$(tg_pick_port 18580 "$TG_PG_PORT" "$TG_PG_REPLICA_PORT")
PP=$(tg_pick_port 18581 "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$TG_HTTP_PORT")
RP=$(tg_pick_port 18582 "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$TG_HTTP_PORT" "$PP")
PC=$(tg_pick_port 18583 "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$TG_HTTP_PORT" "$PP" "$RP")
RC=$(tg_pick_port 18584 "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$TG_HTTP_PORT" "$PP" "$RP" "$PC")
URL=http://127.0.0.1:$TG_HTTP_PORT

"$PROXY_BIN" "$PP" "$TG_PG_PORT" "$PC" 2>"$WORK/proxy-primary.log" &
PROXY_PIDS+=($!)
"$PROXY_BIN" "$RP" "$TG_PG_REPLICA_PORT" "$RC" 2>"$WORK/proxy-replica.log" &
PROXY_PIDS+=($!)
say() { # CONTROL_PORT COMMAND
    local reply
    exec {fd}<>"/dev/tcp/127.0.0.1/$1"
    printf '%s\n' "$2" >&"$fd"
    read -r reply <&"$fd" || true
    exec {fd}>&-
    [[ $reply == ok* ]] || tg_die "faultproxy $2: $reply"
}
sleep 0.3
say "$PC" pass
say "$RC" pass

mkdir -p "$WORK/catalog"
cp tests/integration/catalog/routing.json "$WORK/catalog/"
dsn_rest="dbname=$TG_PG_DB user=$TG_PG_USER"
jq -n --argjson port "$TG_HTTP_PORT" --arg primary "host=127.0.0.1,127.0.0.1 port=$PP,$RP $dsn_rest target_session_attrs=read-write" \
    --arg replica "host=127.0.0.1 port=$RP $dsn_rest" --arg catalog "$WORK/catalog" --argjson health "$HEALTH_MS" '{
    listen: [{host: "127.0.0.1", port: $port}], threads: 2, primary: $primary, replicas: [$replica],
    pool: {size: 8, acquire_timeout_ms: 1000}, health_interval_ms: $health, replica_max_lag_ms: 5000,
    anonymous: {rate: 1000000000, burst: 1000000000}, catalog: [$catalog]}' >"$WORK/config.json"
printf '{}' >"$WORK/body.json"

backend_state() { # JSON NAME: up / down / ?
    jq -r --arg n "$2" '(.backends[] | select(.name == $n) | .state) // "?"' <<<"$1" 2>/dev/null || echo "?"
}

# Polls /readyz every 100 ms into $WORK/readyz.log: "<ms since start> <primary state> <replica state>".
poll_readyz() { # T0_MS
    local body now
    while :; do
        body=$(curl -s --max-time 1 "$URL/readyz" || true)
        now=$(($(date +%s%3N) - $1))
        echo "$now $(backend_state "$body" primary) $(backend_state "$body" replica1)"
        sleep 0.1
    done >"$WORK/readyz.log"
}

# The first time (ms) at or after FROM that COLUMN (2 primary, 3 replica) reads STATE; "-" if never.
first_at() { # FROM COLUMN STATE
    awk -v from="$1" -v c="$2" -v s="$3" '$1 >= from && $c == s { printf "%.1f s", ($1 - from) / 1000; found = 1; exit }
        END { if (!found) print "-" }' "$WORK/readyz.log"
}

# requests answered but not 2xx, or errored or timed out (done counts those); the few
# still in flight when -D ends are neither (started minus done, printed apart)
failed_of() { # H2LOAD_OUT
    awk '/^requests:/ { done = $6 } /^status codes:/ { ok = $3 } END { print done - ok }' "$1"
}
cut_of() { # H2LOAD_OUT
    awk '/^requests:/ { print $4 - $6 }' "$1"
}
slowest_of() { # H2LOAD_OUT: the longest request (a read with no answer within 5 s is a failed one)
    awk '/^time for request:/ { print $5 }' "$1"
}

start_gateway() {
    tg_start_gateway "$GW_BIN" "$WORK/config.json" "$WORK/gateway-$1.log" || tg_die "the gateway did not start ($1)"
}

fresh() { # FAULT: servers up, proxies passing, a gateway ready with reads on the replica
    say "$PC" pass
    say "$RC" pass
    "$TG_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$TG_PG_PORT" || pg_start_primary >/dev/null
    "$TG_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$TG_PG_REPLICA_PORT" || pg_start_replica >/dev/null
    [[ $1 == primary-down-at-start || $1 == fds-exhausted ]] && return 0
    start_gateway "$1"
    tg_wait_backends "$URL" >/dev/null 2>&1 || tg_warn "$1: not every backend up before the fault"
}

HOLDER=
hold_connections() { # N: idle client connections to the gateway, held until killed
    local i
    for ((i = 0; i < $1; ++i)); do exec {fd}<>"/dev/tcp/127.0.0.1/$TG_HTTP_PORT" 2>/dev/null || break; done
    exec sleep 3600 # the subshell becomes the sleep: killing it closes the connections
}

inject() { # FAULT
    case $1 in
        replica-killed) pg_stop_replica ;;
        replica-blackholed) say "$RC" blackhole ;;
        replica-slow) say "$RC" "delay $DELAY_MS" ;;
        connections-cut) for _ in 1 2 3; do say "$RC" cut; say "$PC" cut; sleep 1; done ;;
        primary-killed) pg_stop_primary ;;
        primary-blackholed) say "$PC" blackhole ;;
        primary-promoted) pg_stop_primary; sleep 0.5; pg_promote_replica ;;
        fds-exhausted) hold_connections 400 & HOLDER=$! ;;
        primary-down-at-start) ;;
    esac
}

heal() { # FAULT
    case $1 in
        replica-killed) pg_start_replica >/dev/null ;;
        replica-blackholed | replica-slow) say "$RC" pass ;;
        primary-killed | primary-down-at-start) pg_start_primary >/dev/null ;;
        primary-blackholed) say "$PC" pass ;;
        fds-exhausted) kill "$HOLDER" 2>/dev/null || true; wait "$HOLDER" 2>/dev/null || true ;;
        connections-cut | primary-promoted) ;;
    esac
}

: >"$WORK/rows"
# One row: a fresh start, the load, the fault; its line in $WORK/row.
run_row() { # FAULT
    local fault=$1 t0 injected healed col out back after
    fresh "$fault"
    if [[ $fault == primary-down-at-start ]]; then
        pg_stop_primary
        start_gateway "$fault"
        tg_wait_http "$URL/routing/read" 15 200 || tg_warn "$fault: reads are not served yet"
    elif [[ $fault == fds-exhausted ]]; then
        # the subshell becomes the gateway, with 256 descriptors at most
        (ulimit -n 256 && exec "$GW_BIN" --config "$WORK/config.json") >"$WORK/gateway-$fault.log" 2>&1 &
        TG_GATEWAY_PID=$!
        tg_wait_http "$URL/readyz" 15 200 || tg_die "$fault: the gateway did not start"
        tg_wait_backends "$URL" >/dev/null 2>&1 || true
    fi
    t0=$(date +%s%3N)
    poll_readyz "$t0" &
    POLLER=$!
    h2load -c 8 -m 1 --rps $((RATE / 8)) -D "$SECS" "$URL/routing/read" >"$WORK/reads-$fault.out" 2>&1 &
    RL=$!
    # writes from 10 clients, so that one waiting for an answer holds back a tenth of them, not all
    h2load -c 10 -m 1 --rps "$(awk -v r="$WRATE" 'BEGIN { printf "%g", r / 10 }')" -D "$SECS" -d "$WORK/body.json" -H 'Content-Type: application/json' "$URL/routing/write" >"$WORK/writes-$fault.out" 2>&1 &
    WL=$!
    sleep 5
    inject "$fault"
    injected=$(($(date +%s%3N) - t0))
    sleep $((12 - 5))
    heal "$fault"
    healed=$(($(date +%s%3N) - t0))
    wait "$RL" || true
    wait "$WL" || true
    kill "$POLLER" 2>/dev/null || true
    wait "$POLLER" 2>/dev/null || true
    col=3
    [[ $fault == primary-* ]] && col=2
    out=$(first_at "$injected" "$col" down)
    back=$(first_at "$healed" "$col" up)
    case $fault in
        connections-cut | replica-slow | fds-exhausted) out=${out/#-/never}; back=- ;;
        primary-down-at-start) out="(at start)" ;;
        primary-promoted) back=$(first_at "$injected" 2 up) ;;
    esac
    # a read right after the load: the gateway is still whole
    after=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 5 "$URL/routing/read" || echo "000 5")
    printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$fault" "$(failed_of "$WORK/reads-$fault.out")" \
        "$(awk '/^requests:/ { print $6 }' "$WORK/reads-$fault.out")" "$(slowest_of "$WORK/reads-$fault.out")" \
        "$(failed_of "$WORK/writes-$fault.out")" "$(awk '/^requests:/ { print $6 }' "$WORK/writes-$fault.out")" "$out" "$back" \
        "$(cut_of "$WORK/reads-$fault.out")+$(cut_of "$WORK/writes-$fault.out")" "$after" >"$WORK/row"
    tg_stop_gateway >/dev/null 2>&1 || true
}

for fault in $FAULTS; do
    [[ " $ONLY " == *" $fault "* ]] || continue
    # h2load 1.52 sometimes aborts on its way out (a libev assertion) before printing
    # its totals: such a row is run again, twice at most
    for attempt in 1 2 3; do
        tg_log "$fault (load average $(cut -d' ' -f1-3 /proc/loadavg))$( ((attempt > 1)) && echo ", attempt $attempt")"
        run_row "$fault"
        grep -q '^requests:' "$WORK/reads-$fault.out" && grep -q '^requests:' "$WORK/writes-$fault.out" && break
        tg_warn "$fault: h2load printed no totals; running the row again"
        [[ $fault == primary-promoted ]] && { say "$RC" pass; pg_rebuild_replica >/dev/null || tg_die "could not rebuild the replica"; }
    done
    cat "$WORK/row" >>"$WORK/rows"
    if [[ $fault == primary-promoted ]]; then
        tg_log "rebuilding the replica from the old primary"
        say "$RC" pass
        pg_rebuild_replica >/dev/null || tg_die "could not rebuild the replica"
    fi
done

echo
echo "Fault matrix: reads at $RATE req/s and writes at $WRATE req/s for $SECS s over h2c, the fault from 5 s to 12 s;"
echo "health_interval_ms $HEALTH_MS, acquire_timeout_ms 1000; load average now $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs."
echo
echo "| fault | reads failed | slowest read | writes failed | backend out after | back after heal | in flight at the end (reads+writes) | a read after (status, s) |"
echo "|---|---|---|---|---|---|---|---|"
while IFS='|' read -r f rf rn rs wf wn o b c a; do
    printf '| %s | %s of %s | %s | %s of %s | %s | %s | %s | %s |\n' "$f" "$rf" "$rn" "$rs" "$wf" "$wn" "$o" "$b" "$c" "$a"
done <"$WORK/rows"
awk -F'|' '$1 != "fds-exhausted" && $2 != 0 { bad = 1 } END { exit bad }' "$WORK/rows" ||
    tg_warn "reads failed in a row where a server could still serve them (table above)"
