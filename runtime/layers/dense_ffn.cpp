// Dense FFN over the fused SwiGLU kernel.
#include "runtime/layers/dense_ffn.h"

#include <vector>

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
  const FfnMatrices m = w.matrices();
  std::vector<float> scratch(size_t(ffn_scratch_floats(m, n_rows)));
  ffn_swiglu_ref(m, x, n_rows, out, scratch.data());
}

}  // namespace strata
