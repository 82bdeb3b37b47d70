#!/usr/bin/env bash
# The main job: set up, build, start momentkvd serving a real model (the stories260K test model
# in ../shared/models unless MOMENTKV_MODEL names another GGUF), and make a generation through
# its Unix socket with `momentkv generate`. Extra arguments go to `momentkv generate`
# (default: a greedy story opening). The daemon is stopped with SIGTERM at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh -DMOMENTKV_BUILD_TESTS=OFF
model=${MOMENTKV_MODEL:-../shared/models/stories260K/stories260K.gguf}
run_dir=$(mktemp -d /tmp/momentkv-main.XXXXXX)
socket=$run_dir/momentkvd.sock
./build/daemon/momentkvd --config configs/momentkvd.toml --model "$model" --socket "$socket" \
  2> "$run_dir/momentkvd.log" &
daemon=$!
cleanup() {
  kill -TERM "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  echo "--- momentkvd log ---" >&2
  cat "$run_dir/momentkvd.log" >&2
  rm -rf "$run_dir"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  ./build/tools/momentkv health --socket "$socket" >/dev/null 2>&1 && break
  kill -0 "$daemon" 2>/dev/null || { echo "momentkvd exited; see its log" >&2; exit 1; }
  sleep 0.1
done
if [ $# -eq 0 ]; then
  set -- -n 128 --temp 0 "Once upon a time"
fi
./build/tools/momentkv generate --socket "$socket" "$@"
