// The routed-expert executor: what the model calls to run one MoE layer's
// chosen experts. It sees tensors as pointers, types and shapes, never model
// code; CPU (here), NUMA-aware and GPU executors implement the same interface.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace strata {

// One stacked expert tensor: n_expert matrices of n_out rows of n_in elements
// (ggml ne = {n_in, n_out, n_expert}); expert e starts at
// data + e * expert_bytes, expert_bytes = n_out * row bytes.
struct ExpertTensor {
  std::string name;  // for error messages: "blk.3.ffn_up_exps.weight"
  DType type = DType::kF32;
  const void* data = nullptr;
  int64_t n_in = 0;
  int64_t n_out = 0;
  int64_t n_expert = 0;
  uint64_t expert_bytes = 0;
};

// The routed experts of one layer: gate and up are {n_embd, n_ff, n_expert},
// down is {n_ff, n_embd, n_expert}.
struct ExpertLayer {
  int layer = -1;
  ExpertTensor gate, up, down;
  int64_t n_embd() const { return gate.n_in; }
  int64_t n_ff() const { return gate.n_out; }
  int64_t n_expert() const { return gate.n_expert; }
};

// The rows to run and where each goes:
//   x: n_rows x n_embd floats (contiguous).
//   ids, weights: n_rows x n_used; row r uses experts ids[r*n_used + k]
//   (distinct, < n_expert) with weights weights[r*n_used + k].
struct ExpertRouting {
  const float* x = nullptr;
  int64_t n_rows = 0;
  int32_t n_used = 0;
  const int32_t* ids = nullptr;
  const float* weights = nullptr;
};

class ExpertExecutor {
 public:
  virtual ~ExpertExecutor() = default;

  // Called once per layer when a model is loaded, before any compute: shapes
  // consistent, types this executor can compute. The error names the tensor.
  virtual Status check_layer(const ExpertLayer& layer) const = 0;

  // out[r] = sum_k weights[r,k] * down_e(silu(gate_e x[r]) * up_e x[r]),
  // e = ids[r,k]; out is n_rows x n_embd floats, overwritten. The result of a
  // row does not depend on which other rows share the call.
  virtual Status run(const ExpertLayer& layer, const ExpertRouting& routing, float* out) = 0;
};

// Runs experts on the calling thread with the scalar reference kernels,
// grouping rows by expert so each chosen expert's weights are read once per call.
std::unique_ptr<ExpertExecutor> make_cpu_expert_executor();

}  // namespace strata
