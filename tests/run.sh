#!/usr/bin/env bash
# Builds and runs every test of tollgate and ends with one plain line
# "N passed, N failed" (all tests summed); exits non-zero if any test failed or
# anything could not be built or started.
#
#   1. unit tests: `bazel --batch test //...` (Criterion binaries), each binary's
#      "Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N" counted;
#   1b. fuzzing: tests/fuzz/smoke.sh, every libFuzzer target briefly under ASan and
#      UBSan (one test per target);
#   2. integration: a PostgreSQL primary + streaming replica (tests/pg.sh, small
#      sample data), the gateway (//gateway:tollgate) with tests/integration/config.json
#      and its catalog, then bazel-bin/tests/integration against it;
#   2b. the OpenAPI document of that gateway: tests/openapi/check.sh (an OpenAPI 3.1
#      validator, Redocly's lint, openapi-typescript and tsc, from npm; Node.js and
#      npm installed with apt-get when missing, the packages once into
#      TG_OPENAPI_NODE_DIR, default ~/.cache/tollgate/openapi-check);
#   2c. embedding: tests/embed/embed, a program linking libtollgate.so, against the primary;
#   3. process, backends, operator, observe, cached, reads, faults, overload_suite, abuse and shared_limits: suites that
#      start their own gateways and stop, start, promote or cut off the servers (exit
#      codes, outages, failover, lag, cancel, reloads, /metrics with promtool and a
#      real Prometheus, the access log, the result cache, reads sharing Syncs, calls
#      relayed between threads, streamed answers, the adaptive overload limit, network faults through
#      tests/faultproxy, hostile clients through tests/abuse.c, tenant limits shared
#      by three gateways through a redis-server the suite starts and kills), one test at a time.
#   4. the Debian package: tests/package.sh builds it, installs it with dpkg -i,
#      checks and serves what it installed, lints, removes and purges it (one test
#      per check; needs root, else skipped and not counted).
#
# Usage: tests/run.sh [--unit-only | --integration-only]
#
# Environment:
#   TG_SAMPLE_USERS=2000        users in the sample data for the integration tests
#   TG_HTTP_PORT=18080 TG_ADMIN_PORT=18081   gateway ports (next free ones if taken)
#   TG_PG_PORT / TG_PG_REPLICA_PORT          see tests/pg.sh
#   TG_INTEGRATION_ARGS         extra arguments for the Criterion binary (e.g. "-j1")
#   TG_INTEGRATION_TIMEOUT=1200 seconds the integration binary may run
#   TG_KEEP=1                   keep the work folder (logs, rendered config)
#   TG_BAZEL_STARTUP / TG_BAZEL_FLAGS        extra bazel startup / command options
#   TG_BAZEL_BIN / TG_BAZEL_TESTLOGS         where outputs are (default bazel-bin,
#                                            bazel-testlogs in the repo)
#   TG_UNIT_TARGETS=//...       what `bazel test` runs
#   TG_GATEWAY_TARGET=//gateway:tollgate    what is built as the gateway
#   TG_SKIP_FUZZ=1              skip the fuzz targets' short run
#   TG_SKIP_PACKAGE=1           skip the Debian package's test (tests/package.sh)
#   TG_SKIP_OPENAPI=1           skip tests/openapi/check.sh
#   TG_REDIS_BIN=redis-server   the Redis the shared-limits suite starts (tests/integration/shared_limits.c)
#   TG_SKIP_BUILD=1             don't build; use TG_GATEWAY_BIN / TG_INTEGRATION_BIN
#                               (default: the bazel-bin outputs) as they are
#
# The integration binary gets: TG_URL TG_ADMIN_URL TG_API_KEY TG_LOW_KEY TG_SLOW_KEY
# TG_PRIMARY_DSN TG_REPLICA_DSN TG_CONFIG TG_GATEWAY_PID TG_GATEWAY_LOG TG_GATEWAY_BIN
# TG_PG_DIR TG_PG_SH (tests/pg.sh: `$TG_PG_SH stop-replica` etc. for failover tests).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh
# shellcheck source=tests/pg.sh
source tests/pg.sh

RUN_UNIT=1 RUN_INTEGRATION=1
case ${1:-} in
    "") ;;
    --unit-only) RUN_INTEGRATION=0 ;;
    --integration-only) RUN_UNIT=0 ;;
    -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: tests/run.sh [--unit-only | --integration-only]" >&2; exit 2 ;;
esac

read -r -a BAZEL_STARTUP <<<"${TG_BAZEL_STARTUP:-}"
read -r -a BAZEL_FLAGS <<<"${TG_BAZEL_FLAGS:-}"
BAZEL_BIN=${TG_BAZEL_BIN:-$TG_ROOT/bazel-bin}
BAZEL_TESTLOGS=${TG_BAZEL_TESTLOGS:-$TG_ROOT/bazel-testlogs}
bazel_batch() { bazel "${BAZEL_STARTUP[@]}" --batch "$@"; }

PASSED=0 FAILED=0
PROBLEMS=() # one line per failure, repeated at the end

fail_stage() { # MESSAGE: something that is not a test could not be done; counts 1 failed
    FAILED=$((FAILED + 1))
    PROBLEMS+=("$1")
    tg_warn "$1"
}

WORK=$(mktemp -d /tmp/tollgate-run.XXXXXX)

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    tg_stop_gateway >/dev/null 2>&1 || true
    pg_stop || true
    tg_finish_work "$WORK" "${TG_KEEP:-0}" "$rc"
}
tg_trap_cleanup cleanup

# Sums the Criterion synthesis lines of a log: prints "PASSING FAILING", or nothing
# when the log has none.
synthesis() {
    sed 's/\x1b\[[0-9;]*m//g' "$1" |
        grep -Eo 'Synthesis: Tested: [0-9]+ \| Passing: [0-9]+ \| Failing: [0-9]+ \| Crashing: [0-9]+' |
        awk '{ p += $6; f += $9 } END { if (NR) print p, f }'
}

# Adds one test binary's results: LABEL STATUS(ok|fail) LOG. A binary that failed
# without reporting a failing test (crash, timeout, startup error) counts as one failure.
count_binary() {
    local label=$1 status=$2 log=$3 p=0 f=0 counts
    counts=$(synthesis "$log" 2>/dev/null || true)
    if [[ -n $counts ]]; then
        read -r p f <<<"$counts"
    elif [[ $status == ok ]]; then
        p=1 # a test that is not Criterion: one test
    fi
    if [[ $status != ok ]] && ((f == 0)); then
        f=1
    fi
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    printf '  %-40s %5d ok %5d failing%s\n' "$label" "$p" "$f" "$([[ $status == ok ]] || echo "   <-- $status")"
    ((f == 0)) || PROBLEMS+=("$label: $f failing")
}

# ---------------------------------------------------------------------------------

unit_tests() {
    local log=$WORK/unit.log rc=0 targets
    read -r -a targets <<<"${TG_UNIT_TARGETS:-//...}"
    tg_log "unit tests: bazel test ${TG_UNIT_TARGETS:-//...} (log: $log)"
    # TestRunner=local: Criterion binds ipc:///tmp/criterion_<pid>.sock, and in
    # Bazel's PID-namespaced sandbox every test has the same pid, so parallel tests
    # collide ("Could not initialize the message server: Address already in use").
    bazel_batch test --test_output=all --strategy=TestRunner=local "${BAZEL_FLAGS[@]}" \
        -- "${targets[@]}" >"$log" 2>&1 || rc=$?

    # Bazel's summary: "//tests:buf   PASSED in 0.4s", "(cached) PASSED", "FAILED TO BUILD", ...
    local line label status n=0 failed_logs=()
    local re='^(//[^[:space:]]+)[[:space:]]+(\(cached\) )?(PASSED|FLAKY|FAILED TO BUILD|FAILED|TIMEOUT|NO STATUS|INCOMPLETE|SKIPPED|REMOTE FAILURE)'
    while IFS= read -r line; do
        [[ $line =~ $re ]] || continue
        label=${BASH_REMATCH[1]} status=${BASH_REMATCH[3]} n=$((n + 1))
        local pkg=${label#//} name testlog
        name=${pkg#*:} pkg=${pkg%%:*}
        testlog=$BAZEL_TESTLOGS/${pkg:+$pkg/}$name/test.log
        case $status in
            PASSED | FLAKY) count_binary "$label" ok "$testlog" ;;
            FAILED | TIMEOUT)
                count_binary "$label" "$status" "$testlog"
                failed_logs+=("$label|$testlog")
                ;;
            SKIPPED) ;;
            *) count_binary "$label" "$status" /dev/null ;; # not built or not run: no log of this run
        esac
    done <"$log"

    if ((n == 0)); then
        if ((rc == 4)); then
            tg_warn "bazel found no unit tests"
        else
            fail_stage "bazel test could not run (exit $rc)"
            grep -E '^(ERROR|FAILED)|error:' "$log" | head -n 40 >&2 || tail -n 40 "$log" >&2
        fi
        return
    fi
    if ((rc != 0 && rc != 3)); then
        # exit 1: some targets did not build; show why
        grep -E -A5 '^ERROR' "$log" | head -n 60 >&2 || true
    fi
    local entry
    for entry in "${failed_logs[@]}"; do
        printf '\n==================== %s (%s)\n' "${entry%%|*}" "${entry#*|}"
        sed 's/\x1b\[[0-9;]*m//g' "${entry#*|}" 2>/dev/null || echo "(no log)"
    done
}

# Builds the gateway and the integration binary (separately, so a failure names which).
build_integration() {
    local what
    for what in ${TG_GATEWAY_TARGET:-//gateway:tollgate} //tests:integration //tests:process //tests:backends //tests:operator //tests:observe //tests:cached //tests:reads //tests:faults //tests:overload_suite //tests:abuse //tests:shared_limits //tests:faultproxy //tests:abuse_client //tests/embed:embed; do
        tg_log "building $what"
        local log=$WORK/build-${what##*:}.log
        if ! bazel_batch build "${BAZEL_FLAGS[@]}" "$what" >"$log" 2>&1; then
            grep -E -A5 '^ERROR' "$log" | head -n 60 >&2 || tail -n 40 "$log" >&2
            fail_stage "could not build $what (log above)"
            return 1
        fi
    done
}

integration_tests() {
    local gw_bin=${TG_GATEWAY_BIN:-$BAZEL_BIN/gateway/tollgate}
    local it_bin=${TG_INTEGRATION_BIN:-$BAZEL_BIN/tests/integration}

    if [[ ${TG_SKIP_BUILD:-0} == 1 ]]; then
        tg_log "TG_SKIP_BUILD=1: using $gw_bin and $it_bin as they are"
    else
        build_integration || return 0
    fi
    [[ -x $gw_bin ]] || { fail_stage "no gateway binary at $gw_bin"; return 0; }
    [[ -x $it_bin ]] || { fail_stage "no integration binary at $it_bin"; return 0; }

    TG_SAMPLE_USERS=${TG_SAMPLE_USERS:-2000}
    pg_start || { fail_stage "could not start PostgreSQL (primary + replica)"; return 0; }
    # Tables only the tests use (the replica gets them through replication).
    _pg_psql "$TG_PG_PORT" <tests/integration/schema.sql || { fail_stage "could not load tests/integration/schema.sql"; return 0; }
    pg_wait_replica_caught_up || true

    TG_HTTP_PORT=$(tg_pick_port "${TG_HTTP_PORT:-18080}" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT")
    TG_ADMIN_PORT=$(tg_pick_port "${TG_ADMIN_PORT:-18081}" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$TG_HTTP_PORT")
    local config=$WORK/config.json glog=$WORK/gateway.log
    tg_render_config tests/integration/config.json "$config"

    tg_log "checking the config and catalog against the database (--check --db)"
    local crc=0
    "$gw_bin" --config "$config" --check --db >"$WORK/check.log" 2>&1 || crc=$?
    if ((crc == 2)); then
        tg_warn "tollgate does not take --check --db yet (usage error); skipped"
    elif ((crc != 0)); then
        sed 's/^/    /' "$WORK/check.log" >&2
        fail_stage "tollgate --check --db rejected tests/integration/config.json (exit $crc)"
    fi

    tg_log "starting the gateway on 127.0.0.1:$TG_HTTP_PORT (admin $TG_ADMIN_PORT)"
    tg_start_gateway "$gw_bin" "$config" "$glog" || { fail_stage "the gateway did not start"; return 0; }
    if ! tg_wait_http "http://127.0.0.1:$TG_HTTP_PORT/readyz" 15 200; then
        tg_warn "GET /readyz is not 200 after 15 s; running the tests anyway"
    fi

    tg_log "integration tests: $it_bin ${TG_INTEGRATION_ARGS:-}"
    local ilog=$WORK/integration.log rc=0
    read -r -a it_args <<<"${TG_INTEGRATION_ARGS:-}"
    TG_URL=http://127.0.0.1:$TG_HTTP_PORT \
        TG_ADMIN_URL=http://127.0.0.1:$TG_ADMIN_PORT \
        TG_API_KEY=tg-test-key TG_LOW_KEY=tg-low-key TG_SLOW_KEY=tg-slow-key \
        TG_CONFIG=$config TG_GATEWAY_PID=$TG_GATEWAY_PID TG_GATEWAY_LOG=$glog \
        TG_GATEWAY_BIN=$gw_bin TG_PG_SH=$TG_ROOT/tests/pg.sh \
        timeout -k 10 "${TG_INTEGRATION_TIMEOUT:-1200}" "$it_bin" "${it_args[@]}" 2>&1 |
        tee "$ilog" || rc=${PIPESTATUS[0]}
    local status=ok
    ((rc == 0)) || status="exit $rc"
    ((rc == 124)) && status="timed out"
    count_binary //tests:integration "$status" "$ilog"
    [[ ${TG_SKIP_OPENAPI:-0} == 1 ]] || openapi_check "http://127.0.0.1:$TG_HTTP_PORT"

    if [[ -n $TG_GATEWAY_PID ]] && ! kill -0 "$TG_GATEWAY_PID" 2>/dev/null; then
        TG_GATEWAY_PID=
        fail_stage "the gateway died during the integration tests"
    fi
    local grc=0
    tg_stop_gateway || grc=$?
    ((grc == 0)) || fail_stage "the gateway exited with status $grc on SIGTERM (expected 0)"
    if ((rc != 0 || grc != 0)); then
        printf '\n==================== gateway log (last 60 lines of %s)\n' "$glog"
        tail -n 60 "$glog" || true
    fi

    embed_test

    # Tests that run their own gateways and stop and start the databases: one at a
    # time, after the API suite, whose gateway is gone by now.
    local name
    for name in process backends operator observe cached reads faults overload_suite abuse shared_limits; do
        local bin=$BAZEL_BIN/tests/$name
        [[ -x $bin ]] || { fail_stage "no test binary at $bin"; continue; }
        tg_log "$name tests: $bin --jobs 1"
        local blog=$WORK/$name.log brc=0
        TG_GATEWAY_BIN=$gw_bin TG_PG_SCRIPT=$TG_ROOT/tests/pg.sh TG_CATALOG_DIR=$TG_ROOT/tests/integration/catalog \
            TG_FAULTPROXY_BIN=$BAZEL_BIN/tests/faultproxy TG_ABUSE_BIN=$BAZEL_BIN/tests/abuse_client TG_REPO_DIR=$TG_ROOT \
            TG_PROMETHEUS_BIN=${TG_PROMETHEUS_BIN:-$(command -v prometheus || echo /usr/bin/prometheus)} \
            TG_PROMTOOL_BIN=${TG_PROMTOOL_BIN:-$(command -v promtool || echo /usr/bin/promtool)} \
            TG_REDIS_BIN=${TG_REDIS_BIN:-$(command -v redis-server || echo /usr/bin/redis-server)} \
            timeout -k 10 900 "$bin" --jobs 1 2>&1 | tee "$blog" || brc=${PIPESTATUS[0]}
        status=ok
        ((brc == 0)) || status="exit $brc"
        ((brc == 124)) && status="timed out"
        count_binary "//tests:$name" "$status" "$blog"
    done
}

# The embedding API: tests/embed/embed.c, a program linking only libtollgate.so and
# <tollgate.h>, serves a catalog query from the primary, reloads and stops a gateway
# (exit 0: every check passed). One test.
embed_test() {
    local bin=$BAZEL_BIN/tests/embed/embed log=$WORK/embed.log rc=0 status=ok
    [[ -x $bin ]] || { fail_stage "no embed binary at $bin"; return 0; }
    tg_log "embedding: $bin"
    TG_PRIMARY_DSN=$TG_PRIMARY_DSN timeout -k 10 120 "$bin" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
    ((rc == 0)) || status="exit $rc"
    ((rc == 124)) && status="timed out"
    count_binary //tests/embed:embed "$status" "$log"
}

# GET /openapi.json of the running gateway, checked with real tools from npm
# (tests/openapi/check.sh): its checks counted by its "Synthesis:" line. URL: the gateway.
openapi_check() {
    local log=$WORK/openapi.log rc=0 status=ok
    tg_log "OpenAPI document: tests/openapi/check.sh $1 (log: $log)"
    TG_API_KEY=tg-test-key timeout -k 10 600 tests/openapi/check.sh "$1" >"$log" 2>&1 || rc=$?
    ((rc == 0)) || status="exit $rc"
    ((rc == 124)) && status="timed out"
    count_binary tests/openapi/check.sh "$status" "$log"
    ((rc == 0)) || tail -n 60 "$log"
}

# A short run of every libFuzzer target under ASan and UBSan (tests/fuzz/smoke.sh): a
# test each, by its "PASS name" / "FAIL name" line.
fuzz_smoke() {
    local log=$WORK/fuzz.log out=$WORK/fuzz.out line n=0
    tg_log "fuzz targets: tests/fuzz/smoke.sh (log: $log)"
    bash tests/fuzz/smoke.sh >"$out" 2>"$log" || true
    while IFS= read -r line; do
        case $line in
            "PASS "*) PASSED=$((PASSED + 1)) n=$((n + 1)); printf '  %-40s %5d ok %5d failing\n' "fuzz:${line#PASS }" 1 0 ;;
            "FAIL "*) FAILED=$((FAILED + 1)) n=$((n + 1)); PROBLEMS+=("fuzz target ${line#FAIL } failed (log: $log)")
                printf '  %-40s %5d ok %5d failing   <-- failed\n' "fuzz:${line#FAIL }" 0 1 ;;
        esac
    done <"$out"
    if ((n == 0)); then
        fail_stage "tests/fuzz/smoke.sh ran no target"
        tail -n 40 "$log" >&2
    elif grep -q '^FAIL ' "$out"; then
        tail -n 60 "$log" >&2
    fi
}

# The Debian package (tests/package.sh): its "Synthesis:" line counts its checks.
# Exit 77 is its SKIP (not root, or the package is installed here already): not counted.
package_test() {
    if [[ ${TG_SKIP_PACKAGE:-0} == 1 ]]; then
        tg_log "TG_SKIP_PACKAGE=1: the Debian package is not tested"
        return
    fi
    local log=$WORK/package.log rc=0 args=()
    [[ ${TG_SKIP_BUILD:-0} == 1 ]] && args=(--no-build)
    tg_log "Debian package: tests/package.sh ${args[*]} (log: $log)"
    TG_GATEWAY_BIN=${TG_GATEWAY_BIN:-$BAZEL_BIN/gateway/tollgate} bash tests/package.sh "${args[@]}" 2>&1 |
        tee "$log" || rc=${PIPESTATUS[0]}
    if ((rc == 77)); then
        tg_warn "the Debian package was not tested: $(sed -n 's/^SKIP package: //p' "$log" | head -n 1)"
        return
    fi
    local status=ok
    ((rc == 0)) || status="exit $rc"
    count_binary //tests:package "$status" "$log"
}

# ---------------------------------------------------------------------------------

tg_ensure_packages
if ((RUN_UNIT)); then
    unit_tests
    [[ ${TG_SKIP_FUZZ:-0} == 1 ]] || fuzz_smoke
fi
if ((RUN_INTEGRATION)); then
    integration_tests
    package_test
fi

if ((${#PROBLEMS[@]})); then
    echo
    echo "Problems:"
    printf '  - %s\n' "${PROBLEMS[@]}"
fi
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
