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

// Output rows [b, e) of m (b a multiple of 16) on qgemm from prepared rows a.
void qgemm_range(const Matrix& m, const ActPack& a, int64_t b, int64_t e, float* y, int64_t y_stride) {
  const int64_t split = m.packed ? std::clamp(m.n_packed, b, e) : b;  // ranges start at multiples of 16
  if (b < split) qgemm_packed_rows(m.type, m.packed, m.n_in, b, split, a, y, y_stride);
  if (split < e) qgemm_rows(m.type, m.data, m.n_in, split, e, a, y, y_stride);
}

// True when m's product runs on qgemm (not oneDNN, not the reference).
bool on_qgemm(const Matrix& m, int64_t n_rows) {
  if (!m.ctx || m.ctx->kernels == CpuKernels::kReference || !qgemm_supports(m.type)) return false;
  return m.packed || choose_gemm_path(m.type, m.data, m.n_in, m.n_out, n_rows) == GemmPath::kNative;
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

void for_head_runs(ComputeContext* ctx, int64_t n_tokens, int64_t n_groups, int64_t group, int64_t macs_per_head,
                   int64_t scratch_floats_per_head, FnRef<void(int64_t, int64_t, int64_t, int64_t, float*)> fn) {
  const int64_t n_threads = ctx && ctx->pool ? ctx->pool->n_threads() : 1;
  const int64_t whole = n_tokens * n_groups;
  const int64_t split = whole > 0 ? std::clamp<int64_t>((n_threads + whole - 1) / whole, 1, group) : 1;
  const int64_t run = (group + split - 1) / split, runs = (group + run - 1) / run;
  for_each_item(ctx, whole * runs, run * macs_per_head, run * scratch_floats_per_head, [&](int64_t i, float* scratch) {
    const int64_t t = i / (n_groups * runs), g = i / runs % n_groups, h0 = g * group + i % runs * run;
    fn(t, g, h0, std::min(h0 + run, (g + 1) * group), scratch);
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
  for_output_rows(ctx, n_out, n_in * n_rows, [&](int64_t b, int64_t e) { qgemm_range(*this, a, b, e, y, y_stride); });
}

void mul_shared_input(std::span<const Matrix* const> ms, const float* x, int64_t n_rows, std::span<float* const> ys) {
  constexpr size_t kMax = 3;
  if (ms.empty()) return;
  bool fused = ms.size() <= kMax;
  for (const Matrix* m : ms) fused = fused && m->ctx == ms[0]->ctx && m->n_in == ms[0]->n_in && on_qgemm(*m, n_rows);
  if (!fused) {
    for (size_t i = 0; i < ms.size(); ++i) ms[i]->mul(x, n_rows, ys[i]);
    return;
  }
  ComputeContext& ctx = *ms[0]->ctx;
  const int64_t n_in = ms[0]->n_in;
  ActPack* packs[kMax] = {&ctx.act, &ctx.act2, &ctx.act3};
  const ActPack* pack_of[kMax] = {};
  int64_t start[kMax + 1] = {};  // matrix i's rows at [start[i], start[i] + n_out) of the joint range
  size_t n_packs = 0;
  for (size_t i = 0; i < ms.size(); ++i) {
    for (size_t j = 0; j < i && !pack_of[i]; ++j) {
      if (act_pack_shares_format(ms[j]->type, ms[i]->type)) pack_of[i] = pack_of[j];
    }
    if (!pack_of[i]) {
      pack_activations(ctx, *packs[n_packs], ms[i]->type, n_in, x, n_in, n_rows);
      pack_of[i] = packs[n_packs++];
    }
    start[i + 1] = start[i] + (ms[i]->n_out + 15) / 16 * 16;  // each matrix's ranges start at multiples of 16
  }
  const int64_t total = start[ms.size()];
  for_output_rows(&ctx, total, n_in * n_rows, [&](int64_t b, int64_t e) {
    for (size_t i = 0; i < ms.size(); ++i) {
      const int64_t lo = std::max(b, start[i]), hi = std::min(e, start[i] + ms[i]->n_out);
      if (lo < hi) qgemm_range(*ms[i], *pack_of[i], lo - start[i], hi - start[i], ys[i], ms[i]->n_out);
    }
  });
}

}  // namespace strata
