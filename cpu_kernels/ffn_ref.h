// The SiLU-gated feed-forward block, y = down(silu(gate x) * up x), over a
// batch of rows: the dense FFN, shared experts and each routed expert.
#pragma once

#include <cstdint>

#include "runtime/base/dtype.h"

namespace strata {

// One FFN's three matrices as GGUF stores them (row-major rows of n_in):
//   gate, up: ne = {n_embd, n_ff};  down: ne = {n_ff, n_embd}.
struct FfnMatrices {
  DType gate_type = DType::kF32, up_type = DType::kF32, down_type = DType::kF32;
  const void* gate = nullptr;
  const void* up = nullptr;
  const void* down = nullptr;
  int64_t n_embd = 0;
  int64_t n_ff = 0;
};

// Floats of scratch ffn_swiglu_ref needs for n_rows rows.
inline int64_t ffn_scratch_floats(const FfnMatrices& m, int64_t n_rows) { return 2 * n_rows * m.n_ff; }

// out[r] = down . (silu(gate . x[r]) * (up . x[r])) for r < n_rows.
//   x: n_rows x n_embd floats (contiguous);  out: n_rows x n_embd, overwritten.
//   scratch: ffn_scratch_floats(m, n_rows) floats.
// Preconditions: matmul_supports() for all three types; out does not overlap x.
void ffn_swiglu_ref(const FfnMatrices& m, const float* x, int64_t n_rows, float* out, float* scratch);

}  // namespace strata
