// Prompt-batch products through oneDNN's matmul (its brgemm kernels: AVX2,
// AVX-512, AVX-512 BF16, and AMX tiles where the CPU and the library have
// them). oneDNN cannot read GGUF blocks, so each call dequantizes the weight
// rows it owns, a tile at a time, into a per-thread buffer (f32, or bf16 for
// kBF16) and multiplies all activation rows by that tile. The dequantization
// costs about one pass over the weights, which a product of many rows
// amortizes: gemm_choice.h decides per shape, by measurement, when it wins.
//
// oneDNN's own threads are held at one per calling thread: the caller's pool
// splits the output rows, as it does for qgemm.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cpu_kernels/cpu_isa.h"
#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace strata {

enum class DnnlPrecision : uint8_t {
  kF32,   // weights dequantized to f32, activations as given
  kBF16,  // weights and activations rounded to bf16, f32 accumulation
};
const char* dnnl_precision_name(DnnlPrecision p);

// True when oneDNN has a matmul for `p` on this CPU (bf16 needs AVX-512 BF16
// or AMX, or oneDNN's AVX-512 emulation); the answer is computed once.
bool dnnl_precision_available(DnnlPrecision p);

// The widest instruction set oneDNN uses here (its own detection, lowered by
// $DNNL_MAX_CPU_ISA): "sse41", "avx2", "avx512", "avx512-vnni",
// "avx512-bf16", "amx", ...
std::string dnnl_cpu_isa();

// Limit oneDNN to what qgemm's path `isa` may use with the extensions
// detect_cpu_features() reports (scalar: SSE4.1; avx2: AVX2, with AVX-VNNI
// where present; avx512: AVX-512 core, VNNI, BF16 as present; amx: no limit),
// so that --cpu-isa avx2 runs prompt batches as an AVX2 machine would. Only
// before oneDNN's first use: an error after it.
Status limit_dnnl_cpu_isa(CpuIsa isa);

// Weight types this path reads: every type the scalar dequantizer decodes.
bool dnnl_gemm_supports(DType w);

// Activation rows prepared for one precision: kF32 points at the caller's
// rows (no copy; they must outlive the products), kBF16 holds a rounded copy.
class DnnlActs {
 public:
  // n_rows rows of n_in floats, row r at x + r * x_stride (x_stride >= n_in).
  void prepare(DnnlPrecision p, const float* x, int64_t x_stride, int64_t n_in, int64_t n_rows);

  DnnlPrecision precision() const { return precision_; }
  int64_t n_in() const { return n_in_; }
  int64_t n_rows() const { return n_rows_; }
  int64_t stride() const { return precision_ == DnnlPrecision::kF32 ? f32_stride_ : n_in_; }
  const void* data() const;

 private:
  DnnlPrecision precision_ = DnnlPrecision::kF32;
  const float* f32_ = nullptr;
  int64_t f32_stride_ = 0;
  std::vector<uint16_t> bf16_;
  int64_t n_in_ = 0;
  int64_t n_rows_ = 0;
};

// y[r*y_stride + o] = W[o] . x[r] for o in [o_begin, o_end) and every row r
// of x, on the calling thread.
//   w: the whole matrix as GGUF stores it (row o at o * dtype_row_bytes(w_type, n_in)).
//   0 <= o_begin <= o_end; y_stride >= o_end; x.n_in() == n_in.
// Errors (invalid_argument, unsupported) name the shape; nothing is written
// to y then. Concurrent calls on disjoint output ranges are safe. Results
// are the f32 (or bf16) product of the dequantized weights: they agree with
// matmul_ref up to float rounding and may change with the number of rows
// and the range split (oneDNN blocks by shape).
Status dnnl_gemm_rows(DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end, const DnnlActs& x,
                      float* y, int64_t y_stride);

// Fused SwiGLU of a gate and an up matrix over the same activations:
//   h[r*h_stride + o] = silu(gate[o] . x[r]) * (up[o] . x[r])  for o in [o_begin, o_end).
// The gate and up products of each tile stay in a per-thread buffer.
Status dnnl_gemm_swiglu_rows(DType gate_type, const void* gate, DType up_type, const void* up, int64_t n_in,
                             int64_t o_begin, int64_t o_end, const DnnlActs& x, float* h, int64_t h_stride);

// A plain f32 product on the calling thread (attention's score and value
// products): C[m x n] (row stride ldc) = A[m x k] (row stride lda) times the
// k x n matrix whose element (i, j) is b[i * b_row + j * b_col].
Status dnnl_matmul_f32(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t b_row,
                       int64_t b_col, float* c, int64_t ldc);

// Weight rows dequantized per tile for a row length of n_in (the tile's f32
// copy stays within about 256 KiB, a multiple of 16 rows, 16 to 256).
int64_t dnnl_gemm_tile_rows(int64_t n_in);

}  // namespace strata
