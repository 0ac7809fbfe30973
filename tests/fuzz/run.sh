#!/usr/bin/env bash
# Runs every fuzz target long: builds them without sanitizers (bazel --config=fuzznosan,
# for speed) and with ASan + UBSan (--config=fuzz), each with its own output base; then,
# one target after the other, single-process:
#
#   1. fuzzes SECONDS on a work copy of tests/fuzz/corpus/<target> (-rss_limit_mb=2048,
#      -timeout per input), new inputs kept apart;
#   2. replays the whole corpus plus the new inputs under ASan/UBSan (leaks checked);
#   3. with TG_FUZZ_MERGE=1, merges the new inputs that add coverage into the tree's
#      corpus (-merge=1), unless it already has TG_FUZZ_MERGE_MAX files.
#
# Prints per target "executions, new corpus entries, crashes", appends one row per
# target to tests/fuzz/EXECUTIONS.md (date, commit, target, seconds, executions,
# crashes), prints the cumulative executions from that table, and exits non-zero if
# anything crashed, leaked, timed out or failed an assertion (the inputs are kept in
# the work folder, which is then not removed).
#
# Usage: tests/fuzz/run.sh SECONDS
#
# Environment:
#   TG_FUZZ_TARGETS="router encode"        a subset (default: all seven)
#   TG_FUZZ_MERGE=1                        merge new coverage into tests/fuzz/corpus
#   TG_FUZZ_MERGE_MAX=300                  corpus size (files) past which no merge is done
#   TG_FUZZ_TIMEOUT=10                     seconds one input may take (the ASan replay: 3x)
#   TG_FUZZ_OUTPUT_BASE=/tmp/fuzz-ob-TAG, TG_FUZZ_OUTPUT_BASE_NOSAN=/tmp/fuzz-ob-nosan-TAG (TAG: of the checkout's path)
#   TG_FUZZ_NO_RECORD=1                    do not append to EXECUTIONS.md
#   TG_KEEP=1                              keep the work folder
set -uo pipefail
# shellcheck source=tests/fuzz/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ $# -ne 1 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: tests/fuzz/run.sh SECONDS" >&2
    exit 2
fi
SECONDS_PER_TARGET=$1
TIMEOUT=${TG_FUZZ_TIMEOUT:-10}
MERGE_MAX=${TG_FUZZ_MERGE_MAX:-300}
tg_positive_ints TG_FUZZ_ TIMEOUT MERGE_MAX
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tgfuzzrun.XXXXXX")
KEEP=${TG_KEEP:-0}
trap 'tg_finish_work "$WORK" "$KEEP" $?' EXIT
TABLE=$TG_FUZZ_DIR/EXECUTIONS.md

tg_fuzz_packages
for c in fuzznosan:${TG_FUZZ_OUTPUT_BASE_NOSAN:-/tmp/fuzz-ob-nosan-$TG_TREE_TAG} fuzz:${TG_FUZZ_OUTPUT_BASE:-/tmp/fuzz-ob-$TG_TREE_TAG}; do
    tg_log "building the fuzz targets (--config=${c%%:*})"
    if ! tg_fuzz_build "${c%%:*}" "${c#*:}" "$WORK/links-${c%%:*}" "$WORK/build-${c%%:*}.log"; then
        grep -v 'ld.gold: warning' "$WORK/build-${c%%:*}.log" | tail -40 >&2
        tg_die "the fuzz build (--config=${c%%:*}) failed"
    fi
done
NOSAN=$WORK/links-fuzznosan/bin/tests/fuzz
ASAN=$WORK/links-fuzz/bin/tests/fuzz
commit=$(cd "$TG_ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(cd "$TG_ROOT" && git status --porcelain -- gateway handlers include tests/fuzz 2>/dev/null | grep -v 'EXECUTIONS.md') ]]; then
    commit="$commit+"
fi

stat_of() { grep -ao "stat::$1: [0-9]*" "$2" | tail -1 | grep -o '[0-9]*$' || echo 0; }

if [[ ! -f $TABLE ]]; then
    printf '# Fuzzing executions\n\nAppended by tests/fuzz/run.sh, one row per target and run ("+" after the commit: the\nsources had uncommitted changes). Crashes: inputs that crashed, leaked, timed out or\nfailed an assertion, in the fuzzing run or in the replay under ASan/UBSan.\n\n| date (UTC) | commit | target | seconds | executions | crashes |\n|---|---|---|---:|---:|---:|\n' >"$TABLE"
fi

total_failed=0
for t in "${TG_FUZZ_TARGETS[@]}"; do
    corpus=$WORK/corpus/$t new=$WORK/new/$t art=$WORK/artifacts/$t
    mkdir -p "$corpus" "$new" "$art"
    cp -r "$TG_FUZZ_DIR/corpus/$t/." "$corpus/" 2>/dev/null || true
    crashes=0
    tg_log "$t: fuzzing for $SECONDS_PER_TARGET s ($(date -u +%H:%M:%S) UTC)"
    start=$(date +%s)
    # new inputs go to the first folder given
    "$NOSAN/$t" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout="$TIMEOUT" -print_final_stats=1 \
        -artifact_prefix="$art/" "$new" "$corpus" >"$WORK/$t.fuzz.log" 2>&1 || crashes=$((crashes + 1))
    elapsed=$(($(date +%s) - start))
    execs=$(stat_of number_of_executed_units "$WORK/$t.fuzz.log")
    added=$(find "$new" -type f | wc -l)

    tg_log "$t: replaying $(find "$corpus" "$new" -type f | wc -l) inputs under ASan/UBSan"
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$ASAN/$t" -runs=0 -rss_limit_mb=2048 -timeout=$((3 * TIMEOUT)) -artifact_prefix="$art/asan-" "$corpus" "$new" \
        >"$WORK/$t.replay.log" 2>&1 || crashes=$((crashes + 1))
    # a run stops at its first crash: what it kept is in the artifacts folder
    kept=$(find "$art" -type f | wc -l)
    ((kept > crashes)) && crashes=$kept

    if [[ ${TG_FUZZ_MERGE:-0} == 1 && $crashes == 0 && $added -gt 0 ]]; then
        # into a copy first, by edge coverage only (hit counts would keep thousands), and
        # only if the result stays within TG_FUZZ_MERGE_MAX files
        merged=$WORK/merged/$t
        mkdir -p "$merged"
        cp -r "$TG_FUZZ_DIR/corpus/$t/." "$merged/" 2>/dev/null || true
        have=$(find "$merged" -type f | wc -l)
        if "$NOSAN/$t" -merge=1 -use_counters=0 -rss_limit_mb=2048 -timeout="$TIMEOUT" "$merged" "$new" \
            >"$WORK/$t.merge.log" 2>&1; then
            now=$(find "$merged" -type f | wc -l)
            if ((now > MERGE_MAX)); then
                tg_warn "$t: merging would make the corpus $now files (over $MERGE_MAX); not merged"
            else
                cp -n "$merged"/* "$TG_FUZZ_DIR/corpus/$t/"
                tg_log "$t: corpus $have -> $now files"
            fi
        else
            tg_warn "$t: the merge failed ($WORK/$t.merge.log)"
        fi
    fi

    echo "$t: executions $execs, new corpus entries $added, crashes $crashes"
    if ((crashes > 0)); then
        total_failed=1
        KEEP=1
        tg_warn "$t: see $WORK/$t.fuzz.log and $WORK/$t.replay.log; inputs kept in $art/"
        grep -ah -m3 -E 'assertion failed|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' \
            "$WORK/$t.fuzz.log" "$WORK/$t.replay.log" >&2
    fi
    if [[ ${TG_FUZZ_NO_RECORD:-0} != 1 ]]; then
        printf '| %s | %s | %s | %d | %d | %d |\n' "$(date -u '+%Y-%m-%d %H:%M')" "$commit" "$t" "$elapsed" "$execs" "$crashes" >>"$TABLE"
    fi
done

if [[ -f $TABLE ]]; then
    awk -F'|' '/^\| [0-9][0-9][0-9][0-9]-/ { gsub(/ /, "", $4); sum[$4] += $6; total += $6 }
        END { for (t in sum) printf "cumulative: %s %d\n", t, sum[t]; printf "cumulative total: %d executions\n", total }' "$TABLE"
fi
exit "$total_failed"
