#!/usr/bin/env bash
# Sanitizer runs (RELIABILITY.md §4-5): builds everything with ASan+UBSan into build-asan and runs
# the unit, model and integration tests; then builds with TSan into build-tsan and runs the daemon
# integration tests (the daemon is where the threads are: Asio, the scheduler's worker, telemetry's
# writer). Any report fails the run (halt_on_error, -fno-sanitize-recover=all).
#   bash scripts/test-sanitize.sh                 # both, the full sets (what a nightly runs)
#   SANITIZE_ASAN_LABELS='unit|integration' SANITIZE_TSAN_TESTS='daemon/daemon_integration' \
#     bash scripts/test-sanitize.sh               # fewer tests (ctest -L / -R regexes)
#   SANITIZE_SKIP_TSAN=1 bash scripts/test-sanitize.sh   # ASan+UBSan only
# The ASan+UBSan build uses clang++-14 where it is installed (scripts/setup.sh installs it for the
# fuzz targets): it compiles these sources with ASan in ~70 % of GCC 12's time (341 s against
# 456-496 s on 2 cores). The TSan build uses GCC 12: its runtime is smaller, and the daemon
# test's memory budgets are set for it. SANITIZE_ASAN_CXX and SANITIZE_TSAN_CXX choose others
# (for a fresh build directory; CXX, where set, is the TSan build's and the fallback for ASan).
set -euo pipefail
cd "$(dirname "$0")/.."
asan_labels=${SANITIZE_ASAN_LABELS:-unit|model|integration}
tsan_tests=${SANITIZE_TSAN_TESTS:-daemon/}
jobs=$(nproc)
asan_cxx=${SANITIZE_ASAN_CXX:-$(command -v clang++-14 || echo "${CXX:-c++}")}
tsan_cxx=${SANITIZE_TSAN_CXX:-${CXX:-c++}}
# Warnings are errors with GCC (as in scripts/build.sh); clang's extra ones must not stop the run.
werror() {
  case "$(basename "$1")" in clang*) echo OFF ;; *) echo ON ;; esac
}
# -O1 -g1: sanitizer reports with line numbers at a fraction of a debug build's compile time.
common=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1"
        -DMOMENTKV_BUILD_TESTS=ON -DMOMENTKV_CUDA=OFF)

# The slow tests are built only when the labels ask for them.
slow_tests=OFF
case "$asan_labels" in *slow*) slow_tests=ON ;; esac

start=$(date +%s)
cmake -S . -B build-asan "${common[@]}" -DCMAKE_CXX_COMPILER="$asan_cxx" \
  -DMOMENTKV_WERROR="$(werror "$asan_cxx")" -DMOMENTKV_SANITIZE=address,undefined \
  -DMOMENTKV_BUILD_SLOW_TESTS="$slow_tests"
cmake --build build-asan -j "$jobs"
built=$(date +%s)
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
(cd build-asan && ctest --output-on-failure -j "$jobs" --timeout 1800 -L "$asan_labels")
echo "test-sanitize: ASan+UBSan ($(basename "$asan_cxx")) built in $((built - start)) s," \
  "tests ($asan_labels) in $(($(date +%s) - built)) s"

[ "${SANITIZE_SKIP_TSAN:-0}" = 1 ] && exit 0
start=$(date +%s)
cmake -S . -B build-tsan "${common[@]}" -DCMAKE_CXX_COMPILER="$tsan_cxx" \
  -DMOMENTKV_WERROR="$(werror "$tsan_cxx")" -DMOMENTKV_SANITIZE=thread
# Only what the daemon tests run: the tests themselves, momentkvd and momentkv.
mapfile -t targets < <(cd build-tsan && ctest -N -R "$tsan_tests" | sed -n 's|^ *Test *#[0-9]*: \(.*\)$|\1|p' |
                       tr '/' '_')
cmake --build build-tsan -j "$jobs" --target momentkvd momentkv "${targets[@]}"
built=$(date +%s)
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
(cd build-tsan && ctest --output-on-failure -j "$jobs" --timeout 1800 -R "$tsan_tests")
echo "test-sanitize: TSan ($(basename "$tsan_cxx")) built in $((built - start)) s," \
  "tests ($tsan_tests) in $(($(date +%s) - built)) s"
