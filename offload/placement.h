// The placement solver: for a model, a machine and a workload, decides what
// lives on the GPU (the weights every token touches, the KV cache, then as
// many routed-expert layers as fit), how the remaining experts are split
// over NUMA nodes, what spills to NVMe, and the prefill strategy. Never
// exceeds a capacity; deterministic; every decision is one line of text; an
// impossible request says what is missing and the cheapest ways out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "offload/cost_model.h"
#include "offload/hardware.h"
#include "offload/model_desc.h"
#include "runtime/base/status.h"

namespace strata {

struct PlanOptions {
  Workload workload;
  int gpu = 0;                       // index into the profile's GPUs; -1: plan for the CPU only
  uint64_t gpu_budget_bytes = 0;     // use at most this much VRAM (0: all of it)
  uint64_t vram_reserve_bytes = 0;   // CUDA context and activations (0: estimated from the model)
  double dram_reserve_fraction = 0.1;  // of each node, for the OS and page cache (at least 2 GiB a node)
  bool allow_nvme = true;            // experts that do not fit in DRAM may be read from NVMe
  bool numa_partition = true;        // bind experts to nodes when there are several
};

struct Capacity {
  uint64_t vram_bytes = 0;          // usable by the plan (after budget and reserve)
  uint64_t vram_total_bytes = 0;    // the device's
  std::vector<uint64_t> node_bytes;  // usable DRAM per NUMA node
  uint64_t dram_total_bytes = 0;     // the machine's
  uint64_t nvme_bytes = 0;
};

struct Plan {
  bool feasible = false;
  Placement placement;
  Capacity capacity;
  std::vector<std::string> decisions;   // one line each, in the order taken
  std::vector<std::string> shortfalls;  // what is missing, with the ways out
  std::vector<std::string> assumptions;
  uint64_t dram_used_bytes = 0;
  std::vector<uint64_t> node_used_bytes;  // everything in DRAM per node

  DecodeEstimate decode_single;  // one sequence at the workload's mean context
  DecodeEstimate decode_batch;   // all concurrent sequences
  PrefillEstimate prefill;       // the typical prompt
  Figure ttft;
  std::vector<PrefillEstimate> prefill_curve;  // tok/s against prompt length
  DecodeEstimate decode_interleaved;  // the same plan with pages interleaved (multi-node machines)
};

// Plans a placement. Errors only for malformed inputs (a profile without
// NUMA nodes, a GPU index out of range, a zero context); a request that does
// not fit returns a Plan with feasible == false and its shortfalls.
Result<Plan> plan_placement(const ModelDesc& model, const HardwareProfile& hw, const PlanOptions& options);

// Checks a profile's fields the planner divides by; the error names the field.
Status validate_profile(const HardwareProfile& hw);

// The llama.cpp flags for the same split: "-ngl 99 -ot "blk\.(N|M)\.ffn_.*_exps\.=CPU"".
std::string llama_cpp_args(const ModelDesc& model, const Placement& p);
// A regex alternation matching exactly these non-negative integers as whole
// decimal strings: {3,4,5,...,60} -> "([3-9]|[1-5][0-9]|60)".
std::string integer_set_regex(std::vector<uint32_t> numbers);

// Beyond one box: an expert-parallel deployment on an existing engine.
struct ClusterSketch {
  uint32_t n_gpus = 0;        // total
  uint32_t gpus_per_node = 8;
  uint32_t n_nodes = 0;
  std::string gpu_name;       // the GPU it is sized for
  uint64_t weight_bytes = 0;  // in the engine's format
  uint64_t kv_bytes = 0;
  std::string format;         // "FP8", "BF16"
  std::vector<std::string> lines;  // explanation and commands
};
ClusterSketch sketch_cluster(const ModelDesc& model, const std::string& native_format, uint32_t users,
                             double tok_per_user, uint32_t context);

}  // namespace strata
