#!/usr/bin/env bash
# The main job: install, build, write a small DeepSeek-shaped model with a
# real vocabulary and show what is in it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DSTRATA_BUILD_TESTS=OFF -DSTRATA_BUILD_BENCHMARKS=OFF
mkdir -p models
model=models/tiny-deepseek2.gguf
if [ ! -f "$model" ]; then
  build/tools/strata mkmodel --preset tiny-deepseek2 --routing-skew 1 \
    --vocab-from ../shared/data/vocab/ggml-vocab-deepseek-llm.gguf -o "$model"
fi
build/tools/strata inspect --no-tensors "$model"
