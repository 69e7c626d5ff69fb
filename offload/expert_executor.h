// The routed-expert executor: what the model calls to run one MoE layer's
// chosen experts. It sees tensors as pointers, types and shapes, never model
// code; CPU (here), NUMA-aware and GPU executors implement the same interface.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "offload/topology.h"
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

  // Called once when a model is loaded, after check_layer passed for every
  // layer: lets an executor move the experts' bytes where it will compute on
  // them (NUMA nodes, GPU). Later run() calls pass the same layers. Default:
  // compute on the bytes where they are.
  virtual Status place_layers(std::span<const ExpertLayer> layers) { return Status::ok(); }

  // How place_layers stored the experts, for reports ("repacked q4_k ...");
  // empty when they stay where the file has them.
  virtual std::string placement_summary() const { return {}; }
};

class CpuPool;

// Which CPU kernels compute products.
enum class CpuKernels : uint8_t {
  kFast,       // qgemm (cpu_kernels/qgemm.h: 8-bit activations for quantized weights)
               // for the types it supports, matmul_ref for the others
  kReference,  // matmul_ref everywhere: f32 activations, the scalar oracle's numerics
};

// Whether place_layers repacks experts into the interleaved layout of
// cpu_kernels/qgemm_packed.h (types and CPU paths with a packed kernel only).
enum class ExpertRepack : uint8_t {
  kAuto,  // when the packed experts fit in 90% of the available memory
  kOn,    // always (an allocation failure is an error)
  kOff,   // never: compute on the file's bytes (or their NUMA copies)
};

struct CpuExecutorOptions {
  std::shared_ptr<CpuPool> pool;  // null: everything on the calling thread
  CpuKernels kernels = CpuKernels::kFast;
  // The machine the pool's threads run on. With more than one NUMA node (and
  // pool threads on more than one), place_layers copies each expert into
  // memory bound to the node numa_partition assigns it, and run() computes an
  // expert only on that node's threads. One node: the bytes stay where they are.
  std::optional<Topology> topology;
  bool numa = true;  // false: never copy, any thread computes any expert
  ExpertRepack repack = ExpertRepack::kAuto;
  // Copy / repack progress (bytes done of total), called from pool threads
  // one at a time.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// Runs experts on the pool's threads (or the caller's), rows grouped by
// expert so each chosen expert's weights are read once per call, work split
// over experts and their output rows so uneven loads keep all threads busy.
// Results do not depend on the number of threads or the partition of work.
// One run() at a time per executor (it reuses its buffers across calls).
std::unique_ptr<ExpertExecutor> make_cpu_expert_executor(CpuExecutorOptions options);
// The calling thread only, reference kernels.
std::unique_ptr<ExpertExecutor> make_cpu_expert_executor();

}  // namespace strata
