# shellcheck shell=bash
# Shared by tests/fuzz/run.sh and tests/fuzz/smoke.sh. Source it; it defines functions
# and variables and runs nothing else.
#
#   TG_FUZZ_TARGETS      the targets, in the order they run (env: a subset, space-separated)
#   tg_fuzz_packages     installs what the fuzz build needs (clang 14, libFuzzer, the
#                        sanitizer runtimes, and the project's own packages), via tg_ensure_packages
#   tg_fuzz_build CONFIG OUTPUT_BASE LINKS LOG
#                        bazel --batch build --config=CONFIG //tests/fuzz:fuzzers with its own
#                        output base and convenience links under LINKS (one job: the
#                        machine is shared); the binaries are then in LINKS/bin/tests/fuzz/

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

TG_FUZZ_DIR=$TG_ROOT/tests/fuzz
# Default output bases are per checkout: two trees building into one would take each other's binaries.
TG_TREE_TAG=$(printf '%s' "$TG_ROOT" | cksum | cut -d' ' -f1)
TG_FUZZ_ALL_TARGETS=(router params_query params_body config catalog encode problem)
read -r -a TG_FUZZ_TARGETS <<<"${TG_FUZZ_TARGETS:-${TG_FUZZ_ALL_TARGETS[*]}}"

tg_fuzz_packages() {
    # libclang-rt-14-dev holds the sanitizer and libFuzzer runtimes (only recommended by
    # clang-14); llvm-14 the symbolizer for readable stacks.
    TG_PACKAGES+=(clang-14 libclang-rt-14-dev libfuzzer-14-dev llvm-14)
    tg_ensure_packages
}

tg_fuzz_build() {
    local config=$1 output_base=$2 links=$3 log=$4
    mkdir -p "$links"
    (cd "$TG_ROOT" && bazel --output_base="$output_base" --batch build --config="$config" --jobs="${TG_FUZZ_JOBS:-1}" \
        --symlink_prefix="$links/" //tests/fuzz:fuzzers) >"$log" 2>&1
}
