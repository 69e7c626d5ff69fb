// Element-wise activations.
#include "cpu_kernels/activation.h"

namespace strata {

// Clones for AVX-512 and AVX2 beside the baseline, contraction off
// (CMakeLists.txt): the same bits on every CPU.
__attribute__((target_clones("avx512f", "avx2", "default"))) void swiglu(const float* gate, const float* up, float* out,
                                                                           int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = silu(gate[i]) * up[i];
}

}  // namespace strata
