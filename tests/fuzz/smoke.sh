#!/usr/bin/env bash
# A short run of every fuzz target with AddressSanitizer and UBSan (leak checking on):
# builds them (bazel --config=fuzz, its own output base), then for each target replays
# its whole seed corpus (tests/fuzz/corpus/<target>, regression cases included) and
# fuzzes on from it for TG_FUZZ_SMOKE_RUNS inputs or TG_FUZZ_SMOKE_SECONDS, whichever
# comes first, on a copy (the tree's corpus is never written).
#
# Prints one line per target on stdout, "PASS <target>" or "FAIL <target>" (a build
# failure: "FAIL <target>" for every one), and nothing else there; logs go to stderr
# (the end of a failing target's log, and where the crashing input was kept). Exits 0
# when every target passed, 1 otherwise. Installs clang 14 and libFuzzer with apt-get
# when they are missing (tests/lib.sh's tg_ensure_packages).
#
# Environment:
#   TG_FUZZ_TARGETS="router encode"      a subset (default: all seven)
#   TG_FUZZ_SMOKE_RUNS=20000             inputs per target after the corpus
#   TG_FUZZ_SMOKE_SECONDS=30             at most this long per target
#   TG_FUZZ_OUTPUT_BASE=/tmp/fuzz-ob-TAG bazel's output base for the ASan build (TAG: of the checkout's path)
#   TG_KEEP=1                            keep the work folder (logs, crashing inputs)
set -uo pipefail
# shellcheck source=tests/fuzz/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${TG_FUZZ_SMOKE_RUNS:-20000}
SECS=${TG_FUZZ_SMOKE_SECONDS:-30}
OUTPUT_BASE=${TG_FUZZ_OUTPUT_BASE:-/tmp/fuzz-ob-$TG_TREE_TAG}
tg_positive_ints TG_FUZZ_SMOKE_ RUNS SECS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tgfuzzsmoke.XXXXXX")
KEEP=${TG_KEEP:-0}
trap 'tg_finish_work "$WORK" "$KEEP" $?' EXIT

tg_fuzz_packages >&2
if ! tg_fuzz_build fuzz "$OUTPUT_BASE" "$WORK/links" "$WORK/build.log"; then
    tg_warn "the fuzz build failed:"
    grep -v 'ld.gold: warning' "$WORK/build.log" | tail -40 >&2
    for t in "${TG_FUZZ_TARGETS[@]}"; do echo "FAIL $t"; done
    exit 1
fi
BIN=$WORK/links/bin/tests/fuzz

failed=0
for t in "${TG_FUZZ_TARGETS[@]}"; do
    mkdir -p "$WORK/corpus/$t" "$WORK/artifacts/$t"
    cp -r "$TG_FUZZ_DIR/corpus/$t/." "$WORK/corpus/$t/" 2>/dev/null || true
    log=$WORK/$t.log
    if ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$BIN/$t" -runs="$RUNS" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
        -artifact_prefix="$WORK/artifacts/$t/" "$WORK/corpus/$t" >"$log" 2>&1; then
        echo "PASS $t"
        tg_log "$t: $(grep -ao 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$') executions"
    else
        echo "FAIL $t"
        failed=1
        KEEP=1
        tg_warn "$t failed; the end of its log ($log):"
        grep -av '^    #[0-9]* 0x[0-9a-f]* in fuzzer::' "$log" | tail -40 >&2
        tg_warn "crashing input kept in $WORK/artifacts/$t/"
    fi
done
exit "$failed"
