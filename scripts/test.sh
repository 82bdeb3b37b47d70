#!/usr/bin/env bash
# Set up, build and run every test: the ctest suite (unit, model, integration; gpu tests skip
# themselves without a device), the clang-format check, then the aarch64 build of core, kernels
# and their tests, run under qemu-aarch64 (scripts/test-aarch64.sh). Tests that need a model read
# ../shared/models and fail when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check-format.sh
bash scripts/build.sh -DMOMENTKV_BUILD_TESTS=ON  # (main.sh builds without tests)
(cd build && ctest --output-on-failure -j "$(nproc)" --timeout 1200)
bash scripts/test-aarch64.sh
