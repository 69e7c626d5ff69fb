// SwiGLU feed-forward: two products, the gated activation, one product.
#include "cpu_kernels/ffn_ref.h"

#include "cpu_kernels/activation.h"
#include "cpu_kernels/matmul_ref.h"

namespace strata {

void ffn_swiglu_ref(const FfnMatrices& m, const float* x, int64_t n_rows, float* out, float* scratch) {
  float* g = scratch;
  float* u = scratch + n_rows * m.n_ff;
  matmul_ref(m.gate_type, m.gate, m.n_embd, m.n_ff, x, m.n_embd, n_rows, g, m.n_ff);
  matmul_ref(m.up_type, m.up, m.n_embd, m.n_ff, x, m.n_embd, n_rows, u, m.n_ff);
  swiglu(g, u, g, n_rows * m.n_ff);
  matmul_ref(m.down_type, m.down, m.n_ff, m.n_embd, g, m.n_ff, n_rows, out, m.n_embd);
}

}  // namespace strata
