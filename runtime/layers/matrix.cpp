// Matrix products over the pool: the fast path prepares the activations once
// (qgemm's ActPack, or oneDNN's rows when gemm_choice picks oneDNN for a
// prompt batch) and splits output rows over the threads; the reference
// path splits output rows of matmul_ref the same way (each weight row is
// dequantized once per call, so a split changes no value).
#include "runtime/layers/matrix.h"

#include <algorithm>
#include <atomic>

#include "cpu_kernels/gemm_choice.h"
#include "cpu_kernels/matmul_ref.h"
#include "cpu_kernels/qgemm_packed.h"

namespace strata {
namespace {

// Below this many multiply-adds a product runs on the calling thread: waking
// the pool costs a few microseconds.
constexpr int64_t kMinParallelMacs = 1 << 16;

// The product on oneDNN when gemm_choice picks it; false (nothing decided
// for y) when it does not, or when oneDNN fails, so the caller runs qgemm.
bool dnnl_product(ComputeContext& ctx, const Matrix& m, const float* x, int64_t x_stride, int64_t n_rows, float* y,
                  int64_t y_stride) {
  const GemmPath path = choose_gemm_path(m.type, m.data, m.n_in, m.n_out, n_rows);
  if (path == GemmPath::kNative) return false;
  DnnlActs& a = ctx.dnnl_act;
  a.prepare(dnnl_precision_of(path), x, x_stride, m.n_in, n_rows);
  std::atomic<bool> failed{false};
  for_output_rows(&ctx, m.n_out, m.n_in * n_rows, [&](int64_t b, int64_t e) {
    if (!dnnl_gemm_rows(m.type, m.data, m.n_in, b, e, a, y, y_stride).is_ok()) failed = true;
  });
  return !failed;
}

}  // namespace

void pack_activations(ComputeContext& ctx, ActPack& a, DType w_type, int64_t n_in, const float* x, int64_t x_stride,
                      int64_t n_rows) {
  act_pack_prepare(a, w_type, n_in, n_rows);
  CpuPool* pool = ctx.pool.get();
  if (!pool || pool->n_threads() == 1 || n_rows < 8) {
    act_pack_rows(a, x, x_stride, 0, n_rows);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, n_rows / (2 * pool->n_threads()));
  pool->parallel_for(n_rows, grain, [&](int64_t b, int64_t e, int) { act_pack_rows(a, x, x_stride, b, e); });
}

void for_output_rows(ComputeContext* ctx, int64_t n_out, int64_t macs_per_row, FnRef<void(int64_t, int64_t)> fn) {
  CpuPool* pool = ctx ? ctx->pool.get() : nullptr;
  if (!pool || pool->n_threads() == 1 || n_out * macs_per_row < kMinParallelMacs) {
    fn(0, n_out);
    return;
  }
  const int n_threads = pool->n_threads();
  // Ranges start at multiples of 16 (packed matrices need whole groups).
  int64_t grain = (n_out + 4 * n_threads - 1) / (4 * n_threads);
  grain = std::max<int64_t>(16, (grain + 15) / 16 * 16);
  pool->parallel_for(n_out, grain, [&](int64_t b, int64_t e, int) { fn(b, e); });
}

void for_each_item(ComputeContext* ctx, int64_t n, int64_t macs_per_item, int64_t scratch_floats,
                   FnRef<void(int64_t, float*)> fn) {
  CpuPool* pool = ctx ? ctx->pool.get() : nullptr;
  if (!pool || pool->n_threads() == 1 || n < 2 || n * macs_per_item < kMinParallelMacs) {
    std::vector<float> scratch(size_t(std::max<int64_t>(scratch_floats, 1)));
    for (int64_t i = 0; i < n; ++i) fn(i, scratch.data());
    return;
  }
  const int n_threads = pool->n_threads();
  std::vector<float> scratch(size_t(n_threads) * size_t(std::max<int64_t>(scratch_floats, 1)));
  const int64_t grain = std::max<int64_t>(1, n / (4 * n_threads));
  pool->parallel_for(n, grain, [&](int64_t b, int64_t e, int thread) {
    float* mine = scratch.data() + size_t(thread) * size_t(std::max<int64_t>(scratch_floats, 1));
    for (int64_t i = b; i < e; ++i) fn(i, mine);
  });
}

void Matrix::mul_strided(const float* x, int64_t x_stride, int64_t n_rows, float* y, int64_t y_stride) const {
  if (!ctx || ctx->kernels == CpuKernels::kReference || !qgemm_supports(type)) {
    for_output_rows(ctx, n_out, n_in * n_rows, [&](int64_t b, int64_t e) {
      matmul_ref(type, static_cast<const uint8_t*>(data) + uint64_t(b) * row_bytes, n_in, e - b, x, x_stride, n_rows,
                 y + b, y_stride);
    });
    return;
  }
  // Packed rows stay on qgemm (faster than oneDNN at every batch size measured).
  if (!packed && dnnl_product(*ctx, *this, x, x_stride, n_rows, y, y_stride)) return;
  ActPack& a = ctx->act;
  pack_activations(*ctx, a, type, n_in, x, x_stride, n_rows);
  for_output_rows(ctx, n_out, n_in * n_rows, [&](int64_t b, int64_t e) {
    const int64_t split = packed ? std::clamp(n_packed, b, e) : b;  // ranges start at multiples of 16
    if (b < split) qgemm_packed_rows(type, packed, n_in, b, split, a, y, y_stride);
    if (split < e) qgemm_rows(type, data, n_in, split, e, a, y, y_stride);
  });
}

}  // namespace strata
