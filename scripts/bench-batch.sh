#!/usr/bin/env bash
# Batched decode in the daemon: aggregate generated tokens/s of N concurrent streams against one
# stream alone, same model and requests (greedy, 128 tokens each). The single stream is the
# reference the aggregate is read against; with batching one pass over the weights serves every
# stream, so the aggregate grows with N until the matrix products become compute-bound.
#   bash scripts/bench-batch.sh [MODEL.gguf] [THREADS] [N ...]
# Default model: the TinyLlama-1.1B shape (make it with
#   ./build/tools/momentkv synth --shape tinyllama-1.1b --type Q4_0 -o /tmp/tl-q4_0.gguf).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-/tmp/tl-q4_0.gguf}
threads=${2:-2}
shift $(( $# > 2 ? 2 : $# ))
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(2 4)
n_tokens=128
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT

./build/daemon/momentkvd --model "$model" --socket "$dir/s.sock" --threads "$threads" \
  --telemetry-db off 2>"$dir/log" &
pid=$!
for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.2; done

# Wall-clock seconds for k concurrent streams (each with its own prompt).
streams() {
  local k=$1 start end clients=()
  start=$(date +%s.%N)
  for i in $(seq "$k"); do
    ./build/tools/momentkv generate --socket "$dir/s.sock" -n "$n_tokens" --temp 0 \
      "Once upon a time there was a child number $i" >/dev/null 2>&1 &
    clients+=($!)
  done
  wait "${clients[@]}"
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { print b - a }'
}

streams 1 >/dev/null  # warm up
one=$(streams 1)
single=$(awk -v n="$n_tokens" -v t="$one" 'BEGIN { print n / t }')
printf "model %s, %s threads, %d tokens per stream\n" "$model" "$threads" "$n_tokens"
printf "1 stream:  %6.1f tok/s (the reference)\n" "$single"
for k in "${counts[@]}"; do
  t=$(streams "$k")
  awk -v k="$k" -v n="$n_tokens" -v t="$t" -v s="$single" \
    'BEGIN { a = k * n / t; printf "%d streams: %6.1f tok/s aggregate, %.2fx one stream\n", k, a, a / s }'
done
