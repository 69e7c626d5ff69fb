#!/usr/bin/env bash
# The main job: install, build, fetch the default real model (SmolLM2-135M-
# Instruct, checksum-verified) and have `strata chat` answer a question.
# Extra arguments replace the question.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DSTRATA_BUILD_TESTS=OFF -DSTRATA_BUILD_BENCHMARKS=OFF
model=$(scripts/fetch-default-model.sh)
question=${*:-"What is the capital of France? Answer in one sentence."}
printf '%s\n/bye\n' "$question" | build/tools/strata chat -m "$model" --temp 0 -n 128
