#!/usr/bin/env bash
# Set up, build and run the tests: the ctest suite (unit, model, integration; gpu tests skip
# themselves without a device), the clang-format check, then the aarch64 build of core, kernels
# and their tests, run under qemu-aarch64 (scripts/test-aarch64.sh), then the sanitizer builds and
# the fuzz targets in their CI sizes (README, "Tests": the full sets are for nightly runs). Tests
# that need a model read ../shared/models and fail when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check-format.sh
bash scripts/build.sh -DMOMENTKV_BUILD_TESTS=ON  # (main.sh builds without tests)
# Every label but slow (the full-size fault, soak and load runs: nightly, `ctest -L slow`).
(cd build && ctest --output-on-failure -j "$(nproc)" --timeout 1200 -LE slow)
bash scripts/test-aarch64.sh
# ASan+UBSan over unit|model|integration, TSan over the daemon's integration test only, 60 s per
# fuzz target: about 10 minutes on 2 cores (README, "Tests").
SANITIZE_TSAN_TESTS=daemon/daemon_integration_test bash scripts/test-sanitize.sh
MOMENTKV_FUZZ_SECONDS=60 bash scripts/test-fuzz.sh
