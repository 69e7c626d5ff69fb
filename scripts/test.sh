#!/usr/bin/env bash
# Installs, builds everything (CUDA kernels too when nvcc is present) and runs
# every test. GPU tests skip, reported as skipped, when no device is visible.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 900
