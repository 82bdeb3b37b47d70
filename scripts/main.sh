#!/usr/bin/env bash
# The main job: set up, build, and generate text with a real model.
# The model is the stories260K test model in ../shared/models unless MOMENTKV_MODEL (or -m in
# the arguments) names another GGUF file. Extra arguments go to `momentkv run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh -DMOMENTKV_BUILD_TESTS=OFF
if [ $# -eq 0 ]; then
  set -- -p "Once upon a time" -n 128
fi
exec ./build/tools/momentkv run "$@"
