#!/usr/bin/env bash
# Builds and runs the kernel micro-benchmarks (bench/kernels_bench.cpp, Google Benchmark) in
# ${BENCH_BUILD_DIR:-build-mb}: per weight type and ISA, dot/dequantize/quantize_act throughput
# and matmul GB/s + FLOP/s beside the measured read bandwidth. Arguments go to the benchmark,
# e.g. --benchmark_filter='dot_act|matmul/.*/tokens:1/' or --benchmark_format=json.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BENCH_BUILD_DIR:-build-mb}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOMENTKV_WERROR=ON \
  -DMOMENTKV_BUILD_BENCH=ON -DMOMENTKV_BUILD_TESTS=OFF -DMOMENTKV_BUILD_TOOLS=OFF >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target momentkv_kernels_bench
exec "$build_dir/bench/momentkv_kernels_bench" "$@"
