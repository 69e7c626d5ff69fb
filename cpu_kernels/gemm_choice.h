// Which kernels multiply a batch of activation rows by a weight matrix:
// qgemm (integer dots on 8-bit activations, qgemm.h) or oneDNN's matmul on
// dequantized weight tiles (dnnl_gemm.h). Few rows always take qgemm: its
// per-row cost is lowest and a row's result is the same in any batch. From
// kDnnlMinRows rows on, the policy decides; under `auto` both paths are timed
// once per (weight type, shape, row bucket, CPU path) on the product's own
// weights and activations, and the faster is kept for the process.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cpu_kernels/cpu_isa.h"
#include "cpu_kernels/dnnl_gemm.h"
#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace strata {

enum class GemmPath : uint8_t { kNative, kDnnlF32, kDnnlBF16 };
const char* gemm_path_name(GemmPath p);  // "qgemm", "onednn-f32", "onednn-bf16"

enum class GemmPolicy : uint8_t {
  kAuto,    // measured per shape (the default)
  kNative,  // qgemm always
  kDnnl,    // oneDNN for every product of kDnnlMinRows rows or more (f32; bf16 where only that is available)
};

// "auto", "native" or "onednn"; the error names the accepted values.
Result<GemmPolicy> parse_gemm_policy(std::string_view name);
const char* gemm_policy_name(GemmPolicy p);

// The process-wide policy: set_gemm_policy()'s, else $STRATA_PREFILL_GEMM
// (read once; an invalid value is reported by the tools, and means auto here),
// else auto. Changing it forgets the measured choices (not the file's).
void set_gemm_policy(GemmPolicy p);
GemmPolicy gemm_policy();

// Products with fewer rows never leave qgemm.
constexpr int64_t kDnnlMinRows = 32;

// The path for y = W x over n_rows rows with the n_out x n_in matrix w of
// type w_type. Under auto, the first call of a (type, n_in, n_out, row
// bucket, CPU path) times qgemm and oneDNN (f32, and bf16 where available)
// on the first output rows of w and a bucket of pseudo-random activation
// rows, on the calling thread (call it outside parallel regions), charging
// each its activation preparation; later calls look the answer up. A type
// qgemm lacks goes to oneDNN, one oneDNN lacks stays native.
GemmPath choose_gemm_path(DType w_type, const void* w, int64_t n_in, int64_t n_out, int64_t n_rows);

// What auto measured or loaded so far, for reports (bench --profile); empty
// under another policy.
struct GemmChoice {
  DType w_type = DType::kF32;
  int64_t n_in = 0, n_out = 0;
  int64_t rows = 0;  // the bucket: products of rows..2*rows-1 rows (the last bucket: rows and up)
  CpuIsa isa = CpuIsa::kScalar;  // the qgemm path it was measured against
  GemmPath path = GemmPath::kNative;
  double native_ms = 0, dnnl_f32_ms = 0, dnnl_bf16_ms = 0;  // estimated whole product; 0: not timed
};
std::vector<GemmChoice> gemm_choices();

// "q4_k 2048x768, 512+ rows: onednn-f32 (qgemm 9.10 ms, onednn-f32 3.20 ms)".
std::string describe(const GemmChoice& c);

// One choice as a JSON object, the same record the choice file keeps:
// {"type", "n_in", "n_out", "rows", "isa", "path", "qgemm_ms",
// "onednn_f32_ms", "onednn_bf16_ms"}.
std::string gemm_choice_json(const GemmChoice& c);

// The precision oneDNN runs a oneDNN path at (kNative: f32, unused).
DnnlPrecision dnnl_precision_of(GemmPath p);

// Choices kept in a file, so that runs on one machine take the same kernels
// (and a seeded run repeats its answer; the two paths round differently):
// the choices recorded there for this CPU (cpu_brand()) and this build of
// the executable (its size and time: new kernels are measured again) are
// loaded now and
// used instead of timing again, and every new measurement is merged into the
// file (a temporary file renamed over it). A missing file is not an error;
// an unreadable or malformed one is reported (invalid_format, naming it) and
// then replaced at the next measurement. Writes that fail are skipped: the
// choice still holds for this process. Empty path: nothing is kept.
Status use_gemm_choice_file(const std::string& path);

}  // namespace strata
