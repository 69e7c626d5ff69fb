// A machine as the cost model sees it: CPU, memory per NUMA node, GPUs,
// storage, and the rates that matter (bandwidths, kernel throughput). Filled
// from this machine (topology + calibration probes), from a hardware file
// describing a machine that does not exist yet, or from the parts catalog.
// Every rate is a Figure: the value the model uses, the range it may really
// take, and where it came from, so reports give ranges and cite sources.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/base/dtype.h"

namespace strata {

struct Figure {
  double value = 0;  // what the cost model uses
  double lo = 0;     // plausible range (lo <= value <= hi)
  double hi = 0;
  std::string source;  // "measured 2026-11-23 (read probe, 2 threads)", "catalog: DDR5-4800 x 12 ch, 75-85 % efficiency"
  bool known() const { return value > 0; }
};

struct CpuSpec {
  std::string model;           // "AMD EPYC 9654"
  int sockets = 1;
  int cores_per_socket = 0;
  int threads_per_core = 1;
  double base_ghz = 0;
  bool avx2 = false, avx512 = false, avx512_vnni = false, avx512_bf16 = false, amx = false;
  uint64_t l3_bytes = 0;       // last-level cache of the whole machine (all sockets); 0: unknown
};

struct MemorySpec {
  std::string type;                // "DDR5-4800"
  int channels_per_socket = 0;     // populated
  int channels_max_per_socket = 0; // the platform's channels (for "populate all channels" advice)
  int dimms_per_channel = 1;
  uint64_t bytes = 0;              // total DRAM
  int mts = 0;                     // data rate the DIMMs run at (MT/s), after platform limits; 0: unknown
};

struct NumaSpec {
  int index = 0;
  int package = 0;
  uint64_t dram_bytes = 0;
  int cores = 0;
  Figure read_gbps;  // streaming read bandwidth of this node's memory by this node's cores, GB/s
};

struct GpuSpec {
  std::string name;  // "NVIDIA GeForce RTX 4090"
  uint64_t vram_bytes = 0;
  int sms = 0;
  int numa = 0;        // the node its PCIe root sits on
  int pcie_gen = 0;
  int pcie_width = 0;
  Figure mem_gbps;     // device memory read bandwidth
  Figure bf16_tflops;  // dense tensor-core throughput
  Figure h2d_gbps;     // pinned host -> device copy
  Figure gemv_gbps;    // quantized GEMV as strata's kernels reach it
};

struct StorageSpec {
  std::string name;  // "Samsung 990 Pro 2TB" or "/dev/nvme0n1"
  uint64_t capacity_bytes = 0;
  int pcie_gen = 0;
  int pcie_width = 0;       // lanes (0: unknown or not PCIe)
  std::string path;         // "/dev/nvme0n1" on this machine; empty in a hardware file
  bool rotational = false;  // spinning disk (never a place for experts)
  Figure seq_read_gbps;     // sequential read, large blocks, O_DIRECT
  Figure rand_read_gbps;    // random reads of expert-sized blocks (~1-8 MiB), queue depth 32
};

// What strata's CPU kernels reach for one weight type, all cores.
struct KernelRate {
  DType type = DType::kQ4_K;
  Figure decode_gbps;   // weight bytes per second at 1-8 rows (bandwidth or compute bound)
  Figure prefill_gops;  // multiply-adds x 2 per second at 512 rows
};

struct HardwareProfile {
  std::string name;       // "this machine", or the file's name
  double price_usd = 0;   // 0: unknown
  CpuSpec cpu;
  MemorySpec memory;
  std::vector<NumaSpec> numa;  // at least one
  Figure cross_numa_gbps;      // a node's cores reading another node's memory
  std::vector<GpuSpec> gpus;
  std::vector<StorageSpec> storage;
  std::vector<KernelRate> cpu_kernels;
  std::vector<std::string> assumptions;  // one line each, echoed by reports

  uint64_t dram_bytes() const {
    uint64_t b = 0;
    for (const NumaSpec& n : numa) b += n.dram_bytes;
    return b;
  }
};

}  // namespace strata
