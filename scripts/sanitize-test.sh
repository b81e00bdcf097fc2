#!/usr/bin/env bash
# The CPU test suite built with AddressSanitizer + UndefinedBehaviorSanitizer
# (GCC's, via -DKILN_SANITIZE=ON), run with every sanitizer report fatal.
#
#   scripts/sanitize-test.sh            build build-asan/ and run ctest
#   BUILD_ASAN=dir JOBS=n scripts/sanitize-test.sh
#   KILN_SANITIZE_CTEST_ARGS="-R checkpoint" scripts/sanitize-test.sh   (extra ctest args)
#
# Exit status: non-zero when the build fails, a test fails, or any sanitizer
# reports (ASan and UBSan abort the test binary; LeakSanitizer fails it at exit).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD_ASAN:-build-asan}
JOBS=${JOBS:-$(nproc)}

# -g1 (line tables: reports keep file:line) instead of -g: the build is about half
# of this stage, and full debug info is most of its compile time.
cmake -S . -B "$BUILD" -DKILN_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_BENCH=OFF -DKILN_CUDA=OFF \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" >/dev/null
cmake --build "$BUILD" -j "$JOBS"

# halt_on_error / abort_on_error: the first report ends the binary with a
# failing status, so ctest cannot mistake a reported run for a pass.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_invalid_pointer_pairs=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="print_suppressions=0"

cd "$BUILD"
# shellcheck disable=SC2086
# Layers.* only run the compiler's preprocessor on the sources (nothing of Kiln's
# executes), so they run in the Release suite alone.
ctest --output-on-failure -j "$JOBS" -E '^Layers\.' ${KILN_SANITIZE_CTEST_ARGS:-}
cd "$ROOT"
bash scripts/test-skips.sh "$BUILD"
