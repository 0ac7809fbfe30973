#!/usr/bin/env bash
# The whole suite (unit and integration) under AddressSanitizer, with leak checking
# on, and UndefinedBehaviorSanitizer: tests/run.sh with every binary built by
# `bazel --config=asan` (gcc; .bazelrc) in an output base of its own, and the gateway
# built without jemalloc (//gateway:tollgate_sysmalloc) so ASan sees every
# allocation. A leak at a gateway's exit makes it exit non-zero, which the tests that
# stop a gateway check. Bounds on resident memory are not checked (TG_ASAN=1). Ends,
# as tests/run.sh does, with "N passed, N failed".
#
#   tests/asan.sh [--unit-only | --integration-only]
#
# About three times as long as tests/run.sh (the fuzz targets' short run is skipped:
# tests/fuzz/smoke.sh builds them with ASan already).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OB=${TG_ASAN_OUTPUT_BASE:-/tmp/tollgate-asan-ob}
LINKS=${TG_ASAN_LINKS:-/tmp/tollgate-asan-}
export TG_BAZEL_STARTUP="--output_base=$OB"
export TG_BAZEL_FLAGS="--config=asan --symlink_prefix=$LINKS"
export TG_BAZEL_BIN=${LINKS}bin TG_BAZEL_TESTLOGS=${LINKS}testlogs
export TG_GATEWAY_TARGET=//gateway:tollgate_sysmalloc TG_GATEWAY_BIN=${LINKS}bin/gateway/tollgate_sysmalloc
export TG_SKIP_FUZZ=1
export TG_SKIP_PACKAGE=1 # the package holds the release build; tests/run.sh tests it
export TG_ASAN=1 # the tests' bounds on resident memory do not hold under ASan (its shadow memory and quarantine)
# Every process a test starts (the gateway above all) reports leaks and UB at exit and fails on them.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23:detect_stack_use_after_return=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Sanitized binaries are slower: give the integration binary more time.
export TG_INTEGRATION_TIMEOUT=${TG_INTEGRATION_TIMEOUT:-2400}
exec bash tests/run.sh "$@"
