#!/bin/sh
# ctest's runner of one fuzz target: copies the committed seed corpus to WORK_DIR/corpus (libFuzzer
# adds what it finds there, never to the source tree), then fuzzes for SECONDS
# (-DMOMENTKV_FUZZ_SECONDS, default 60). A crash, leak, timeout or OOM leaves its input in
# WORK_DIR/ (-artifact_prefix) and fails the test.
#   run_fuzz.sh FUZZER CORPUS_DIR WORK_DIR SECONDS [libFuzzer flags...]
set -eu
fuzzer=$1 corpus=$2 work=$3 seconds=$4
shift 4
rm -rf "$work"
mkdir -p "$work/corpus"
cp "$corpus"/* "$work/corpus/"
exec "$fuzzer" -max_total_time="$seconds" -artifact_prefix="$work/" "$@" \
  "$work/corpus"
