// The cost model: how fast a model runs with a given placement on a given
// machine. One implementation, used by the planner on paper and by the
// runtime to choose strategies. Everything is derived from bytes and FLOPs
// per role and the profile's rates; every result is a Figure (value and the
// range implied by the rates' lo/hi), never a single false-precision number.
//
// Decode step (batch b, context c), per MoE layer the b tokens touch
//   D = n_expert * (1 - (1 - k/n_expert)^b) distinct experts.
//   CPU routed experts: per node, max(bytes / node DRAM bandwidth,
//     params * (a + rows * d)) with (a, d) from the kernel's decode GB/s (1
//     row) and prefill GOP/s (512 rows) for that weight type, scaled by the
//     node's share of cores; nodes run in parallel, the most loaded one
//     (expected maximum of the experts it receives) decides.
//   GPU: resident bytes + KV-cache reads over device bandwidth (or compute,
//     if larger), GPU-cached experts likewise.
//   PCIe: hidden rows to the host and back per CPU layer; sync: one
//     round trip per CPU layer. Batch 1: GPU work that does not wait for the
//     experts (shared experts) overlaps the CPU; batch >= 2: two
//     micro-batches alternate, so the step is max(GPU, CPU).
// Prefill of P tokens: the resident part on the GPU (compute-bound), the
// routed experts either on the CPU (compute) or streamed to the GPU over
// PCIe once per micro-batch; the faster is taken, and the prompt length
// where streaming starts to win is the threshold.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "offload/hardware.h"
#include "offload/model_desc.h"

namespace strata {

enum class PrefillStrategy : uint8_t {
  kCpu,        // routed experts computed by the CPU kernels
  kGpuStream,  // routed experts copied to the GPU per micro-batch
};
const char* prefill_strategy_name(PrefillStrategy s);

// Where a model's bytes live. Made by the solver (placement.h); also
// built by hand in tests and by the runtime for what it actually loaded.
struct Placement {
  int gpu = -1;                // index into HardwareProfile::gpus; -1: CPU only
  // Layers whose attention, norms, router, shared/dense FFN and KV cache are
  // on the GPU: the last n_gpu_layers, as llama.cpp's -ngl counts them.
  uint32_t n_gpu_layers = 0;
  bool output_on_gpu = false;  // output head (and final norm)
  bool embeddings_on_gpu = false;
  uint64_t gpu_weight_bytes = 0;       // non-routed weights on the GPU
  uint64_t gpu_kv_bytes = 0;           // KV cache on the GPU
  uint64_t gpu_expert_bytes = 0;       // routed experts held on the GPU
  uint64_t gpu_scratch_bytes = 0;      // activations, CUDA context, streaming buffers
  std::vector<uint32_t> gpu_expert_layers;  // MoE layers whose routed experts are all on the GPU, ascending
  uint64_t dram_weight_bytes = 0;      // non-routed weights in DRAM (CPU-only runs, layers beyond n_gpu_layers)
  uint64_t dram_kv_bytes = 0;          // KV cache of CPU layers
  std::vector<uint64_t> node_expert_bytes;  // routed experts in DRAM per NUMA node
  std::vector<double> node_traffic;    // share of the CPU-side routed reads served by each node (sums to 1)
  bool numa_partitioned = false;       // experts bound to nodes (false: pages interleaved)
  uint64_t nvme_expert_bytes = 0;      // routed experts read from NVMe on use
  uint64_t kv_tokens = 0;              // tokens the KV cache holds (all sequences)
  PrefillStrategy prefill = PrefillStrategy::kCpu;
  uint32_t prefill_threshold = 0;      // prompts of at least this many tokens stream to the GPU (0: never)

  bool has_gpu() const { return gpu >= 0; }
  bool layer_on_gpu(uint32_t layer, uint32_t n_layer) const {
    return has_gpu() && layer + n_gpu_layers >= n_layer;
  }
};

struct Workload {
  uint32_t context = 4096;  // tokens per sequence the KV cache must hold
  uint32_t n_seq = 1;       // concurrent sequences
  uint32_t prompt = 1024;   // typical prompt
  uint32_t answer = 512;    // typical answer
  uint32_t ubatch = 512;    // prompt tokens per forward pass on the CPU path
};

// Seconds of one decode step, by where the time goes.
struct StepBreakdown {
  Figure dram_experts;  // routed experts computed by the CPU from DRAM
  Figure cpu_other;     // non-expert weights and attention on the CPU (CPU-only or layers off the GPU)
  Figure gpu;           // resident weights, KV reads, GPU-cached experts
  Figure pcie;          // hidden states to the host and back
  Figure nvme;          // expert reads from NVMe
  Figure sync;          // GPU <-> CPU round trips
  Figure overlap;       // time saved by running CPU and GPU at once (<= 0)
  Figure total;
};

struct DecodeEstimate {
  uint32_t batch = 1;
  uint32_t context = 0;
  double distinct_experts = 0;  // per MoE layer
  StepBreakdown step;           // seconds per step (one token of each of `batch` sequences)
  Figure tok_s;                 // all sequences together
  Figure tok_s_per_seq;
  std::string bottleneck;       // the largest part: "DRAM bandwidth (routed experts)", ...
};

struct PrefillEstimate {
  uint32_t prompt = 0;
  PrefillStrategy strategy = PrefillStrategy::kCpu;
  Figure seconds;
  Figure tok_s;
  Figure cpu_experts_s;     // routed experts on the CPU
  Figure stream_experts_s;  // routed experts streamed to the GPU (0: no GPU)
  Figure resident_s;        // everything else
};

class CostModel {
 public:
  CostModel(const ModelDesc& model, const HardwareProfile& hw);

  DecodeEstimate decode(const Placement& p, uint32_t batch, uint32_t context) const;
  // `allow_stream` false forces the CPU path (to compare the two).
  PrefillEstimate prefill(const Placement& p, uint32_t prompt, uint32_t ubatch = 512) const;
  PrefillEstimate prefill_with(const Placement& p, uint32_t prompt, uint32_t ubatch, PrefillStrategy s) const;
  // Shortest prompt for which streaming experts to the GPU beats the CPU
  // (0: never, up to 1M tokens, or no GPU).
  uint32_t stream_threshold(const Placement& p, uint32_t ubatch = 512) const;
  // Time to first token: prefill of the prompt plus one decode step.
  Figure time_to_first_token(const Placement& p, uint32_t prompt, uint32_t ubatch = 512) const;

  // Figures the model had to assume (rates the profile lacks), one line each.
  const std::vector<std::string>& assumptions() const { return assumptions_; }

  // Expected distinct experts among b tokens' k-of-n choices.
  static double distinct_experts(uint32_t n_expert, uint32_t k, double b);
  // Expected load of the busiest of `n_nodes` nodes relative to the mean
  // when `items` experts are spread over them with shares `share`.
  static double imbalance(const std::vector<double>& share, double items);

  // Per weight type: seconds per parameter to read/dequantize (a) and per
  // parameter per row (d), all cores; see the header comment.
  struct KernelCost {
    double a = 0, d = 0;
  };
  KernelCost kernel_cost(DType t, int which) const;  // which: 0 value, 1 slow (lo rates), 2 fast (hi rates)

 private:
  double pick(const Figure& f, int which) const;
  double dram_gbps(int which) const;          // all nodes, interleaved
  double node_gbps(size_t node, int which) const;
  double gpu_mem_gbps(const GpuSpec& g, int which) const;
  double gpu_flops(const GpuSpec& g, int which) const;
  // Bytes/s of device memory, FLOP/s and host-to-device bytes/s of the
  // placement's GPU; all zero without one.
  struct GpuRates {
    double mem = 0, flops = 0, h2d = 0;
  };
  GpuRates gpu_rates(const Placement& p, int which) const;
  double cpu_attn_flops(int which) const;
  double nominal_cpu_ops(int which) const;  // quantized GEMM, all cores, from the CPU spec
  // Seconds for the CPU to run `params` of type t from memory at `gbps`
  // with `rows` activation rows, using a share `core_frac` of the cores.
  double cpu_matmul_s(DType t, double params, double bytes, double rows, double gbps, double core_frac,
                      int which) const;
  StepBreakdown step(const Placement& p, double batch, uint32_t context, int which) const;
  double prefill_part(const Placement& p, uint32_t prompt, uint32_t ubatch, PrefillStrategy s, int which,
                      double* cpu_s, double* stream_s, double* resident_s) const;

  const ModelDesc& m_;
  const HardwareProfile& hw_;
  std::vector<std::string> assumptions_;
  uint32_t total_cores_ = 1;
};

// A figure in the same units from three evaluations (value, slow, fast).
Figure make_range(double value, double a, double b, std::string source = "");

}  // namespace strata
