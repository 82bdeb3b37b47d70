#!/usr/bin/env bash
# Cross-compiles core, the CPU kernels and their tests (tests/core, tests/kernels: unit and model)
# for aarch64 (Jetson's CPU) into ${QEMU_BUILD_DIR:-build-qemu}, then runs them with ctest under
# qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR, set by cmake/toolchain-aarch64-linux-gnu.cmake).
# best_isa() is NEON on aarch64, so the model tests exercise the NEON kernels end to end. The
# momentkv and momentkvd programs are not built for aarch64 here (their tests stay native).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${QEMU_BUILD_DIR:-build-qemu}
command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null || {
  echo "test-aarch64: qemu-aarch64 not found (bash scripts/setup.sh installs qemu-user)" >&2
  exit 1
}
start=$(date +%s)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOMENTKV_WERROR=ON \
  -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake \
  -DMOMENTKV_CUDA=OFF -DMOMENTKV_BUILD_TESTS=ON -DMOMENTKV_BUILD_TOOLS=OFF
cmake --build "$build_dir" -j "$(nproc)" --target momentkv_cross_tests
built=$(date +%s)
(cd "$build_dir" && ctest --output-on-failure -j "$(nproc)" --timeout 900)
echo "test-aarch64: built in $((built - start)) s, tests under qemu in $(($(date +%s) - built)) s"
