#!/usr/bin/env bash
# Builds the GGUF fuzz target with clang++ (libFuzzer + ASan + UBSan) and runs
# it for SECONDS on a corpus seeded from tests/fixtures/{valid,malformed} and
# tests/fuzz/regressions (inputs that once crashed it).
#
#   tests/fuzz/run_fuzz.sh SECONDS [WORK_DIR]
#
# WORK_DIR (default build-fuzz/ in the repository) keeps the binary, the
# growing corpus and any crashing input (crashes/). Exits non-zero on a crash,
# leak, timeout or out-of-memory; prints "skipped" and exits 0 when clang++ or
# libFuzzer is not available. STRATA_FUZZ_CXX overrides the compiler.
set -euo pipefail

secs=${1:?usage: run_fuzz.sh SECONDS [WORK_DIR]}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${2:-$root/build-fuzz}
mkdir -p "$work/corpus" "$work/crashes"

cxx=${STRATA_FUZZ_CXX:-}
if [[ -z "$cxx" ]]; then
  for c in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
    if command -v "$c" >/dev/null 2>&1; then cxx=$c; break; fi
  done
fi
if [[ -z "$cxx" ]]; then
  echo "fuzz_gguf: skipped: no clang++ found (set STRATA_FUZZ_CXX)"
  exit 0
fi

flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=all -I"$root")
probe="$work/probe.cpp"
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe"
if ! "$cxx" "${flags[@]}" "$probe" -o "$work/probe" >"$work/probe.log" 2>&1; then
  echo "fuzz_gguf: skipped: $cxx cannot build with -fsanitize=fuzzer,address,undefined (see $work/probe.log)"
  exit 0
fi

srcs=(
  "$root/tests/fuzz/fuzz_gguf.cpp"
  "$root/runtime/gguf/gguf_parse.cpp"
  "$root/runtime/gguf/gguf_value.cpp"
  "$root/runtime/base/dtype.cpp"
  "$root/runtime/base/status.cpp"
)
bin="$work/fuzz_gguf"
rebuild=0
[[ -x "$bin" ]] || rebuild=1
for f in "${srcs[@]}" "$root"/runtime/gguf/*.h "$root"/runtime/base/*.h "$0"; do
  [[ "$f" -nt "$bin" ]] && rebuild=1
done
if (( rebuild )); then
  echo "fuzz_gguf: building with $cxx"
  "$cxx" "${flags[@]}" "${srcs[@]}" -o "$bin.tmp"
  mv "$bin.tmp" "$bin"
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Inputs are kept small (fixtures are < 4 KiB); an allocation of 256 MiB from
# one of them would mean the parser trusts a count it read, so it is a crash.
set +e
"$bin" \
  -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 -max_len=16384 \
  -dict="$root/tests/fuzz/gguf.dict" -artifact_prefix="$work/crashes/" -print_final_stats=1 \
  "$work/corpus" "$root/tests/fixtures/valid" "$root/tests/fixtures/malformed" "$root/tests/fuzz/regressions" \
  2>"$work/last_run.log"
rc=$?
set -e
grep -E "^(#[0-9]+ +DONE|stat::|INFO: (Seed|Running with)|==[0-9]+==|SUMMARY|fuzz_gguf:)" "$work/last_run.log" | tail -n 20 || true
if (( rc != 0 )); then
  tail -n 60 "$work/last_run.log"
  echo "fuzz_gguf: FAILED (exit $rc); crashing inputs in $work/crashes/"
  exit 1
fi
echo "fuzz_gguf: ran ${secs}s without a crash; corpus $(ls "$work/corpus" | wc -l) inputs in $work/corpus"
