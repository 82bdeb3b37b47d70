#!/usr/bin/env bash
# Set up, build and run every test: the ctest suite (unit, model, integration; gpu tests skip
# themselves without a device), the clang-format check, and the aarch64 cross-build of core and
# kernels. Tests that need a model read ../shared/models and fail when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check-format.sh
bash scripts/build.sh -DMOMENTKV_BUILD_TESTS=ON  # (main.sh builds without tests)
(cd build && ctest --output-on-failure -j "$(nproc)" --timeout 1200)
bash scripts/cross-aarch64.sh
