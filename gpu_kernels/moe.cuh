// The routed experts of a MoE layer that are resident on the GPU: for each
// token's chosen experts that have a GPU slot, down(silu(gate x) * up x)
// weighted and summed into the output. Experts without a slot are left to
// the CPU (the hybrid scheduler adds their sum separately). Host launcher
// with an explicit stream; usable from C++.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace strata::gpu {

// n_slots resident experts stacked like GGUF's ffn_*_exps (slot s of gate
// and up: an n_ff x n_embd matrix at gate + s * gate_mat_bytes; of down an
// n_embd x n_ff matrix), device memory. slot_of_expert[e] (device, n_expert
// entries) is expert e's slot, or -1 when it is not on the GPU.
struct GpuExpertSet {
  DType gate_type = DType::kF32, up_type = DType::kF32, down_type = DType::kF32;
  const void* gate = nullptr;
  const void* up = nullptr;
  const void* down = nullptr;
  uint64_t gate_mat_bytes = 0, up_mat_bytes = 0, down_mat_bytes = 0;  // 0: dense stacking
  int64_t n_embd = 0, n_ff = 0;
  int32_t n_slots = 0, n_expert = 0;
  const int32_t* slot_of_expert = nullptr;
};

size_t moe_experts_workspace_floats(const GpuExpertSet& e, int64_t n_rows, int32_t n_used);

// out[r] (+)= sum over k with a resident expert of
//   weights[r,k] * down_e(silu(gate_e x[r]) * up_e x[r]),  e = ids[r*n_used + k],
// in k order; accumulate false: out is overwritten first (rows with no
// resident expert become 0).
//   x: n_rows x n_embd floats, 16-byte aligned (n_embd a multiple of 4);
//   ids, weights: device, n_rows * n_used (ids < n_expert).
// One GEMV launch per matrix for all (row, k) slots at once; a slot whose
// expert is not resident is skipped by every launch.
Status moe_experts(const GpuExpertSet& e, const float* x, int64_t n_rows, int32_t n_used, const int32_t* ids,
                   const float* weights, float* out, bool accumulate, float* workspace, size_t workspace_floats,
                   cudaStream_t stream);

}  // namespace strata::gpu
