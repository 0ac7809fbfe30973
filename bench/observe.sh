#!/usr/bin/env bash
# The cost of observing: point reads with the access log on and /metrics scraped
# every second, against the same gateway build with both off, in one run.
#
#   1. a throwaway PostgreSQL 15 primary and streaming replica (tests/pg.sh) with
#      BENCH_USERS users; two gateways with config/example.json's config (threads 2,
#      pool 16, its catalog, anonymous limits out of the way): "plain" (access_log
#      null, nobody scrapes it) and "observed" (access_log a file in the work folder,
#      GET /metrics on its admin listener every BENCH_SCRAPE_MS (1000) ms by one curl
#      process);
#   2. BENCH_RUNS rounds, each of one BENCH_SECONDS load of point reads over h2c
#      (h2load -c10 -m10, GET /users/<random id>, a fresh file of random URIs each
#      round) on each gateway, the order alternating round by round (ABBA), so drift
#      of the shared machine falls on both;
#   3. prints req/s of each (medians), the per-round ratios observed / plain and
#      their median (target at least 0.97), the access-log lines written against the
#      requests served (every request has its line; drops are counted in /metrics),
#      the gateway CPU per request of each (from /proc: steadier than req/s here),
#      the scrapes answered, and every failed or non-2xx request (must be 0).
#
# Metrics are always counted (there is no switch for them), so both gateways pay for
# counting; what differs is the access log and the scrapes. One ratio alone is inside
# this machine's noise; the median of per-round ratios of
# interleaved rounds is the figure to quote, with the load average printed per round.
#
# Settings: BENCH_USERS=100000 BENCH_SECONDS=10 BENCH_RUNS=6 BENCH_SCRAPE_MS=1000
# BENCH_CLIENTS=10 BENCH_STREAMS=10 BENCH_KEEP=1 (keep the work folder).
# Loopback only, bounded in time; it stops everything it started.
set -euo pipefail
shopt -s inherit_errexit # a tg_die inside $(...) ends the script, not only the subshell
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/lib.sh
source tests/pg.sh

USERS=${BENCH_USERS:-100000}
SECS=${BENCH_SECONDS:-10}
RUNS=${BENCH_RUNS:-6}
SCRAPE_MS=${BENCH_SCRAPE_MS:-1000}
CLIENTS=${BENCH_CLIENTS:-10}
STREAMS=${BENCH_STREAMS:-10}
tg_positive_ints 'BENCH_' USERS SECS RUNS SCRAPE_MS CLIENTS STREAMS

declare -A PID=() URL=() ADMIN=()
SPID=
bench_cleanup() {
    [[ -n $SPID ]] && kill "$SPID" 2>/dev/null
    local g
    for g in "${!PID[@]}"; do TG_GATEWAY_PID=${PID[$g]} tg_stop_gateway >/dev/null 2>&1 || true; done
}
tg_bench_start

# Our own database ports by default, away from tests/run.sh's and the demo's, and below the
# ephemeral range (a just-stopped server's TIME-WAIT sockets can keep a port there from binding).
export TG_PG_PORT=${TG_PG_PORT:-27532} TG_PG_REPLICA_PORT=${TG_PG_REPLICA_PORT:-27533}
export TG_SAMPLE_USERS=$USERS
pg_start || tg_die "could not start PostgreSQL"

# start_gw NAME ACCESS_LOG_JSON: a gateway on ports of its own
start_gw() {
    local name=$1 log=$2 base=$3
    TG_HTTP_PORT=$(tg_pick_port "$base" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" ${URL[plain]:+${URL[plain]##*:}} ${ADMIN[plain]:+${ADMIN[plain]##*:}})
    TG_ADMIN_PORT=$(tg_pick_port $((base + 1)) "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$TG_HTTP_PORT" ${URL[plain]:+${URL[plain]##*:}} ${ADMIN[plain]:+${ADMIN[plain]##*:}})
    tg_render_config config/example.json "$WORK/$name.tmpl.json"
    jq --argjson log "$log" '.anonymous.rate = 1000000000 | .anonymous.burst = 1000000000 | .access_log = $log' \
        "$WORK/$name.tmpl.json" >"$WORK/$name.json"
    tg_start_gateway "$GW_BIN" "$WORK/$name.json" "$WORK/$name.log" || tg_die "the $name gateway did not start"
    PID[$name]=$TG_GATEWAY_PID
    URL[$name]=http://127.0.0.1:$TG_HTTP_PORT
    ADMIN[$name]=http://127.0.0.1:$TG_ADMIN_PORT
    tg_wait_http "${URL[$name]}/readyz" 15 200 || tg_die "the $name gateway is not ready"
    tg_wait_backends "${URL[$name]}" || true
}
start_gw plain null 18580
start_gw observed "\"$WORK/access.log\"" 18590

make_uris() { tg_random_user_uris "$1" "$2" "$3" "$USERS"; }
load() { tg_h2load_uris "$1" "$SECS" "$CLIENTS" "$STREAMS" "$WORK/h2load.out"; }
# GET /metrics every SCRAPE_MS for SECS; the 200s into $WORK/scrapes.
scraper() { tg_curl_every GET "${ADMIN[observed]}/metrics" "$SCRAPE_MS" "$SECS" "$WORK" | awk '{ print $1 }' >"$WORK/scrapes"; }

# A gateway's CPU time so far (user + system), in clock ticks.
gw_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

run_one() { # NAME URIFILE -> "req/s done bad scrapes"
    local name=$1 res scrapes=-
    if [[ $name == observed ]]; then
        scraper &
        SPID=$!
        res=$(load "$2")
        wait "$SPID" || true
        SPID=
        scrapes=$(cat "$WORK/scrapes")
    else
        res=$(load "$2")
    fi
    [[ $(wc -w <<<"$res") == 3 ]] || tg_die "$name: h2load gave no totals ($res)"
    echo "$res $scrapes"
}

tg_log "warm-up (3 s each)"
for g in plain observed; do
    make_uris "$WORK/uris-$g" 0 "${URL[$g]}"
    SECS=3 load "$WORK/uris-$g" >/dev/null
done
: >"$WORK/results"
served_observed=0
sleep 0.5 # the warm-up's last lines are written before counting starts
lines_before=$(wc -l <"$WORK/access.log")
dropped_before=$(curl -s "${ADMIN[observed]}/metrics" | awk '$1 == "tollgate_access_log_dropped_total" { print $2 }')
for ((r = 1; r <= RUNS; ++r)); do
    for g in $( ((r % 2)) && echo "plain observed" || echo "observed plain"); do
        make_uris "$WORK/uris-$g" "$r" "${URL[$g]}"
        la=$(cut -d' ' -f1 /proc/loadavg)
        tg_log "round $r: $g, $SECS s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
        t0=$(gw_ticks "${PID[$g]}")
        res=$(run_one "$g" "$WORK/uris-$g")
        t1=$(gw_ticks "${PID[$g]}")
        # the gateway's CPU (user + system) per request served, in microseconds
        cpu=$(awk -v t="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$(awk '{ print $2 }' <<<"$res")" 'BEGIN { printf "%.2f", (n > 0 ? t * 1e6 / hz / n : 0) }')
        echo "$g $r $res $la $cpu" >>"$WORK/results"
        [[ $g == observed ]] && served_observed=$((served_observed + $(awk '{ print $2 }' <<<"$res")))
    done
done
sleep 0.5 # the writer drains every few ms
lines=$(($(wc -l <"$WORK/access.log") - lines_before))
dropped=$(curl -s "${ADMIN[observed]}/metrics" | awk -v b="${dropped_before:-0}" '$1 == "tollgate_access_log_dropped_total" { print $2 - b }')

median_of() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v k="$1" -v c="$2" '$1 == k { print $c }' "$WORK/results"; }
ratios=$(join <(col plain 2 | paste - <(col plain 3) | sort -k1,1) <(col observed 2 | paste - <(col observed 3) | sort -k1,1) |
    awk '{ printf "%.3f\n", $3 / $2 }')
plain=$(col plain 3 | median_of)
observed=$(col observed 3 | median_of)
ratio=$(median_of <<<"$ratios")
bad=$(awk '{ s += $5 } END { print s + 0 }' "$WORK/results")

echo
echo "Point reads (h2load -c$CLIENTS -m$STREAMS, h2c, $SECS s each, $RUNS interleaved rounds, medians):"
printf '  %-44s %10s\n' "" "req/s"
printf '  %-44s %10s\n' "plain (no access log, not scraped)" "$plain"
printf '  %-44s %10s\n' "observed (access log, /metrics every ${SCRAPE_MS} ms)" "$observed"
echo "  per-round ratios observed / plain: $(tr '\n' ' ' <<<"$ratios")"
echo "  median ratio: $ratio (target >= 0.97)"
echo "  access-log lines: $lines for $served_observed requests served by the observed gateway; dropped (tollgate_access_log_dropped_total): ${dropped:-?}"
echo "  scrapes answered per observed round: $(col observed 6 | tr '\n' ' ')(of $((SECS * 1000 / SCRAPE_MS)))"
cpu_plain=$(col plain 8 | median_of)
cpu_observed=$(col observed 8 | median_of)
echo "  gateway CPU per request (median): plain $cpu_plain us, observed $cpu_observed us ($(awk -v a="$cpu_plain" -v b="$cpu_observed" 'BEGIN { printf "%+.2f", b - a }') us, x$(awk -v a="$cpu_plain" -v b="$cpu_observed" 'BEGIN { printf "%.3f", b / a }'))"
echo "  per round (gateway round req/s done bad scrapes load1 cpu_us/req):"
sed 's/^/    /' "$WORK/results"
echo "  load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
((bad == 0)) || tg_die "$bad requests failed or were not 2xx"
((lines + ${dropped:-0} >= served_observed)) || tg_die "the access log has $lines lines (and ${dropped:-?} dropped) for $served_observed requests"
