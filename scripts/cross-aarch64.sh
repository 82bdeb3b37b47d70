#!/usr/bin/env bash
# Cross-compiles core and the CPU kernels (scalar + NEON) for aarch64 (Jetson's CPU) with Debian's
# g++-aarch64-linux-gnu: a quick compile-only check. scripts/test-aarch64.sh (run by
# scripts/test.sh) also builds their tests and runs them under qemu-aarch64.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-aarch64 -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake \
  -DMOMENTKV_CUDA=OFF -DMOMENTKV_BUILD_TESTS=OFF -DMOMENTKV_BUILD_TOOLS=OFF
cmake --build build-aarch64 -j "$(nproc)" --target momentkv_core momentkv_kernels
echo "cross-aarch64: core and kernels built for aarch64"
