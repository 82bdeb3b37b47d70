#!/usr/bin/env bash
# The libFuzzer targets (tests/fuzz, RELIABILITY.md §4.5 FZ-1..FZ-3): builds them with clang,
# -fsanitize=fuzzer,address,undefined, into build-fuzz and runs `ctest -L fuzz`: each target for
# MOMENTKV_FUZZ_SECONDS (default 60) from a copy of its committed seed corpus, then every input in
# its regressions/ directory once. A crash, leak, timeout or OOM fails the run; the input is left
# in build-fuzz/tests/fuzz/work/NAME/.
#   bash scripts/test-fuzz.sh                          # 60 s per target
#   MOMENTKV_FUZZ_SECONDS=1800 bash scripts/test-fuzz.sh   # nightly
# CXX overrides the compiler (default clang++-14, else clang++).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${MOMENTKV_FUZZ_SECONDS:-60}
cxx=${CXX:-$(command -v clang++-14 || command -v clang++ || true)}
if [ -z "$cxx" ]; then
  echo "test-fuzz: clang++ not found (bash scripts/setup.sh installs clang-14)" >&2
  exit 1
fi
start=$(date +%s)
# Warnings are errors in the GCC builds; clang's extra ones must not stop the fuzzing.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" -DMOMENTKV_WERROR=OFF -DMOMENTKV_BUILD_TESTS=OFF \
  -DMOMENTKV_BUILD_TOOLS=OFF -DMOMENTKV_CUDA=OFF -DMOMENTKV_FUZZ=ON \
  -DMOMENTKV_FUZZ_SECONDS="$seconds"
cmake --build build-fuzz -j "$(nproc)" --target gguf_fuzz config_fuzz http_api_fuzz tokenizer_fuzz
built=$(date +%s)
# One fuzzer is one process on one core: ctest runs as many at once as there are cores.
(cd build-fuzz && ctest --output-on-failure -j "$(nproc)" -L fuzz)
echo "test-fuzz: built in $((built - start)) s, fuzzed ${seconds} s per target in" \
  "$(($(date +%s) - built)) s"
