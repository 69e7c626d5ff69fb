// GPU-resident experts as six launches (host code only; the kernels live in
// elementwise.cu and gemv.cu): expert id -> slot, gate and up
// GEMVs over all (row, k) slots, SiLU-mul, down GEMV, weighted sum.
#include "gpu_kernels/moe.cuh"

#include <algorithm>
#include <string>

#include "gpu_kernels/elementwise.cuh"
#include "gpu_kernels/gemv.cuh"

namespace strata::gpu {
namespace {

size_t round4(size_t n) { return (n + 3) & ~size_t(3); }

}  // namespace

size_t moe_experts_workspace_floats(const GpuExpertSet& e, int64_t n_rows, int32_t n_used) {
  const size_t z = size_t(std::max<int64_t>(n_rows, 0)) * size_t(std::max(n_used, 0));
  // slots (int32, counted as floats), gate, up (reused for the product), down outputs.
  return round4(z) + 2 * round4(z * size_t(e.n_ff)) + round4(z * size_t(e.n_embd));
}

Status moe_experts(const GpuExpertSet& e, const float* x, int64_t n_rows, int32_t n_used, const int32_t* ids,
                   const float* weights, float* out, bool accumulate, float* workspace, size_t workspace_floats,
                   cudaStream_t stream) {
  if (e.n_embd < 1 || e.n_ff < 1 || e.n_slots < 1 || e.n_expert < 1 || !e.slot_of_expert) {
    return invalid_argument("moe_experts: expected an expert set with sizes, slots and a slot table");
  }
  if (n_rows < 0 || n_used < 1) {
    return invalid_argument("moe_experts: expected n_rows >= 0 and n_used >= 1, got " + std::to_string(n_rows) +
                            " and " + std::to_string(n_used));
  }
  const size_t need = moe_experts_workspace_floats(e, n_rows, n_used);
  if (!workspace || workspace_floats < need) {
    return invalid_argument("moe_experts: workspace of " + std::to_string(workspace_floats) +
                            " floats, expected at least " + std::to_string(need));
  }
  if (n_rows == 0) return Status::ok();
  const int64_t z = n_rows * n_used;
  int32_t* slots = reinterpret_cast<int32_t*>(workspace);
  float* g = workspace + round4(size_t(z));
  float* u = g + round4(size_t(z * e.n_ff));
  float* d = u + round4(size_t(z * e.n_ff));

  STRATA_RETURN_IF_ERROR(map_ids(ids, e.slot_of_expert, e.n_expert, z, slots, stream));

  GemvArgs a;
  a.n_mat = e.n_slots;
  a.mat_ids = slots;
  a.n_rows = z;
  // gate and up: slot (r, k) reads token row r = slot / n_used.
  a.x = x;
  a.x_stride = e.n_embd;
  a.x_row_div = n_used;
  a.n_in = e.n_embd;
  a.n_out = e.n_ff;
  a.y_stride = e.n_ff;
  a.type = e.gate_type;
  a.w = e.gate;
  a.mat_bytes = e.gate_mat_bytes;
  a.y = g;
  STRATA_RETURN_IF_ERROR(gemv(a, stream));
  a.type = e.up_type;
  a.w = e.up;
  a.mat_bytes = e.up_mat_bytes;
  a.y = u;
  STRATA_RETURN_IF_ERROR(gemv(a, stream));
  // Slots without a resident expert hold stale values here; the down GEMV and
  // the weighted sum skip them.
  STRATA_RETURN_IF_ERROR(swiglu(g, u, u, z * e.n_ff, stream));
  a.x = u;
  a.x_stride = e.n_ff;
  a.x_row_div = 1;
  a.n_in = e.n_ff;
  a.n_out = e.n_embd;
  a.y_stride = e.n_embd;
  a.type = e.down_type;
  a.w = e.down;
  a.mat_bytes = e.down_mat_bytes;
  a.y = d;
  STRATA_RETURN_IF_ERROR(gemv(a, stream));
  return moe_weighted_sum(d, weights, slots, n_rows, n_used, e.n_embd, out, accumulate, stream);
}

}  // namespace strata::gpu
