// The SiLU-gated feed-forward of dense layers and of shared experts.
#pragma once

#include <cstdint>

#include "cpu_kernels/ffn_ref.h"
#include "runtime/layers/matrix.h"

namespace strata {

struct DenseFfnWeights {
  Matrix gate, up, down;  // {E, F}, {E, F}, {F, E}
  FfnMatrices matrices() const;
};

// out[r] = down(silu(gate x[r]) * up x[r]) for n_rows rows of E floats; out
// is overwritten and must not overlap x.
void dense_ffn(const DenseFfnWeights& w, const float* x, int64_t n_rows, float* out);

}  // namespace strata
