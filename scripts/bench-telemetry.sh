#!/usr/bin/env bash
# What telemetry costs the decode loop: momentkvd's decode tokens/s with telemetry off, then on
# (every request recorded in SQLite), on the same model and requests. The figure "off" is the
# limit "on" is read against.
#   bash scripts/bench-telemetry.sh [MODEL.gguf] [N_REQUESTS]
# Default model: the TinyLlama-1.1B shape (make it with
#   ./build/tools/momentkv synth --shape tinyllama-1.1b --type Q4_0 -o /tmp/tl-q4_0.gguf).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-/tmp/tl-q4_0.gguf}
n=${2:-6}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# Mean decode tokens/s of n greedy 96-token requests (decode budget 64, so the cache evicts).
run() {
  ./build/daemon/momentkvd --model "$model" --socket "$dir/s.sock" --threads 2 \
    --telemetry-db "$1" 2>"$dir/log" &
  local pid=$!
  for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.2; done
  for _ in $(seq "$n"); do
    ./build/tools/momentkv generate --socket "$dir/s.sock" -n 96 --temp 0 --decode-budget 64 \
      "Once upon a time" 2>&1 >/dev/null | sed -n 's/.*"predicted_per_second":\([0-9.]*\).*/\1/p'
  done | awk '{ s += $1; n++ } END { printf "%.2f\n", s / n }'
  kill "$pid"
  wait "$pid" || true
  rm -f "$dir/s.sock"
}

off=$(run off)
on=$(run "$dir/telemetry.db")
echo "model $model, $n requests of 96 tokens, 2 threads"
echo "decode tok/s, telemetry off (the limit): $off"
echo "decode tok/s, telemetry on:              $on ($(awk -v a="$on" -v b="$off" 'BEGIN { printf "%+.1f%%", 100 * (a / b - 1) }'))"
echo "rows recorded: $(sqlite3 "$dir/telemetry.db" 'SELECT COUNT(*) FROM requests')"
