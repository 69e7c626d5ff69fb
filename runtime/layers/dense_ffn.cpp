// Dense FFN. With a compute context the gate and up products run fused
// (qgemm_swiglu_rows: activations prepared once, no gate/up intermediates)
// over ranges of n_ff rows on the pool, then down through Matrix; the
// reference path is matmul_ref for each product, exactly ffn_swiglu_ref.
#include "runtime/layers/dense_ffn.h"

#include <vector>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/qgemm_packed.h"

namespace strata {

FfnMatrices DenseFfnWeights::matrices() const {
  FfnMatrices m;
  m.gate_type = gate.type;
  m.up_type = up.type;
  m.down_type = down.type;
  m.gate = gate.data;
  m.up = up.data;
  m.down = down.data;
  m.n_embd = gate.n_in;
  m.n_ff = gate.n_out;
  return m;
}

void dense_ffn(const DenseFfnWeights& w, const float* x, int64_t n_rows, float* out) {
  ComputeContext* ctx = w.gate.ctx;
  if (!ctx) {
    const FfnMatrices m = w.matrices();
    std::vector<float> scratch(size_t(ffn_scratch_floats(m, n_rows)));
    ffn_swiglu_ref(m, x, n_rows, out, scratch.data());
    return;
  }
  const int64_t E = w.gate.n_in, F = w.gate.n_out;
  const bool fast = ctx->kernels == CpuKernels::kFast && qgemm_supports(w.gate.type) && qgemm_supports(w.up.type);
  if (!fast) {
    ctx->h.resize(size_t(2 * n_rows * F));
    float* g = ctx->h.data();
    float* u = g + n_rows * F;
    w.gate.mul(x, n_rows, g);
    w.up.mul(x, n_rows, u);
    swiglu(g, u, g, n_rows * F);
    w.down.mul(g, n_rows, out);
    return;
  }
  ctx->h.resize(size_t(n_rows * F));
  float* h = ctx->h.data();
  pack_activations(*ctx, ctx->act, w.gate.type, E, x, E, n_rows);
  const bool share = act_pack_shares_format(w.gate.type, w.up.type);
  if (!share) pack_activations(*ctx, ctx->act2, w.up.type, E, x, E, n_rows);
  const ActPack& xu = share ? ctx->act : ctx->act2;
  const bool packed = w.gate.packed && w.up.packed && w.gate.type == w.up.type && w.gate.n_packed == F &&
                      w.up.n_packed == F;
  for_output_rows(ctx, F, 2 * E * n_rows, [&](int64_t b, int64_t e) {
    if (packed) {
      qgemm_packed_swiglu_rows(w.gate.type, w.gate.packed, w.up.packed, E, b, e, ctx->act, h, F);
    } else {
      qgemm_swiglu_rows(w.gate.type, w.gate.data, w.up.type, w.up.data, E, b, e, ctx->act, xu, h, F);
    }
  });
  w.down.mul(h, n_rows, out);
}

}  // namespace strata
