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
# Without an NVIDIA GPU to run them on (CI), the CUDA kernels are compiled for Orin's sm_87
# alone, not for sm_87, sm_90 and sm_110: a compile check at a third of nvcc's time; their gpu
# tests skip without a device either way. (No nvidia-smi on a Jetson: sm_87 is its GPU.)
cuda_archs=()
nvidia-smi -L >/dev/null 2>&1 || cuda_archs=(-DCMAKE_CUDA_ARCHITECTURES=87)
# The slow label is not run here, so its tests are not built either.
bash scripts/build.sh -DMOMENTKV_BUILD_TESTS=ON -DMOMENTKV_BUILD_SLOW_TESTS=OFF "${cuda_archs[@]}"
# Every label but slow (the full-size fault, soak and load runs: nightly, in a build configured
# with -DMOMENTKV_BUILD_SLOW_TESTS=ON, `ctest -L slow`).
(cd build && ctest --output-on-failure -j "$(nproc)" --timeout 1200 -LE slow)
bash scripts/test-aarch64.sh
# ASan+UBSan over unit|model|integration, TSan over the daemon's integration test only, 60 s per
# fuzz target: about 10 minutes on 2 cores (README, "Tests").
SANITIZE_TSAN_TESTS=daemon/daemon_integration_test bash scripts/test-sanitize.sh
MOMENTKV_FUZZ_SECONDS=60 bash scripts/test-fuzz.sh
