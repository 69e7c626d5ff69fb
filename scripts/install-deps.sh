#!/usr/bin/env bash
# Installs what strata needs to build and test on Debian 12: apt packages and
# a Python virtual environment (.venv) with the test dependencies. Idempotent:
# a second run installs nothing and takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libhwloc-dev liburing-dev libdnnl-dev
  # Debian's oneDNN is built with its OpenCL GPU runtime, so its CMake config
  # finds OpenCL; libdnnl-dev only recommends the package that provides it.
  ocl-icd-opencl-dev
  libcli11-dev nlohmann-json3-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev libyaml-cpp-dev
  chromium fonts-dejavu-core
  clang libclang-rt-14-dev
  python3 python3-venv python3-pip
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python test dependencies live in a venv: Debian's system Python refuses
# global pip installs.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import gguf, numpy, pytest, jinja2, openai, jsonschema" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
fi
