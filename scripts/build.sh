#!/usr/bin/env bash
# Configures and builds strata into build/ (Release with debug info).
# Extra arguments go to cmake, e.g. -DSTRATA_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DPython3_EXECUTABLE="$PWD/.venv/bin/python" "$@" >/dev/null
cmake --build build -j"$(nproc)"
