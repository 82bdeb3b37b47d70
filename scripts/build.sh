#!/usr/bin/env bash
# Configures and builds momentkv (Release, warnings are errors) into ${BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
jobs=$(nproc)
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOMENTKV_WERROR=ON "$@"
cmake --build "$BUILD_DIR" -j "$jobs"
