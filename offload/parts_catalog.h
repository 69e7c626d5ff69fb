// The built-in parts catalog: GPUs, CPUs, memory types and NVMe drives with
// the nominal figures the planner starts from when nothing was measured (a
// machine that does not exist yet, or a rate not yet calibrated). Every entry
// and every efficiency factor names its source. Lookup is case-insensitive and
// ignores spacing, dashes and vendor words ("rtx4090", "NVIDIA GeForce RTX 4090").
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "offload/hardware.h"
#include "runtime/base/status.h"

namespace strata {

struct GpuPart {
  const char* name;         // canonical: "RTX 4090"
  const char* aliases;      // '|'-separated other names, e.g. what CUDA reports ("NVIDIA A100-SXM4-80GB")
  double vram_gib;          // device memory
  double mem_gbps;          // device memory bandwidth, GB/s (1e9)
  double bf16_tflops;       // dense BF16 tensor throughput with FP32 accumulate (no sparsity)
  int pcie_gen;             // host link generation (x16)
  int sms;                  // streaming multiprocessors
  double price_usd;         // typical price (launch list price or street price, see source)
  const char* source;
};

struct CpuPart {
  const char* name;          // "EPYC 9654"
  const char* vendor;        // "AMD", "Intel"
  int cores;                 // per socket (P + E cores on hybrid parts)
  int threads;               // per socket
  double base_ghz;
  uint64_t l3_mib;
  const char* memory_kind;   // "DDR5"
  int memory_channels;       // per socket
  int memory_mts_1dpc;       // highest supported data rate at 1 DIMM per channel
  int memory_mts_2dpc;       // at 2 DIMMs per channel (0: 2 DIMMs per channel not supported)
  int max_sockets;
  bool server;               // server platform (registered DIMMs, many channels) vs client
  bool avx2, avx512, avx512_vnni, avx512_bf16, amx;
  double price_usd;
  const char* source;
};

struct MemoryPart {
  const char* name;  // "DDR5-4800"
  const char* kind;  // "DDR5"
  int mts;           // mega-transfers per second
  const char* source;
  // Theoretical peak of one 64-bit channel: MT/s x 8 bytes, in GB/s (1e9).
  double channel_gbps() const { return mts * 8.0 / 1000.0; }
};

// Share of theoretical channel bandwidth that all cores streaming reads reach.
struct StreamEfficiency {
  double lo, value, hi;
  const char* source;
};

struct NvmePart {
  const char* name;        // "Samsung 990 Pro" or "PCIe 4.0 NVMe" (generic)
  const char* aliases;
  int pcie_gen;
  double seq_read_gbps;    // sequential read, 128 KiB+ blocks, deep queue (vendor figure)
  double rand_read_gbps;   // random reads of 1-8 MiB blocks at queue depth 32 (typical)
  double price_usd_per_tb;
  const char* source;
};

std::span<const GpuPart> gpu_parts();
std::span<const CpuPart> cpu_parts();
std::span<const MemoryPart> memory_parts();
std::span<const NvmePart> nvme_parts();

// Server parts (8-12 channels, 1 DIMM per channel) and client parts (2-4
// channels) reach different shares of theoretical bandwidth.
const StreamEfficiency& stream_efficiency(bool server);
// Cross-NUMA reads (a node's cores reading another node's memory) as a share
// of local bandwidth: across sockets (xGMI/UPI bound) or within one socket
// (EPYC NPS2/NPS4, Xeon SNC).
const StreamEfficiency& cross_numa_share(bool across_sockets);

// Lookups: case-insensitive, spacing/dash/underscore-insensitive, vendor and
// brand words ignored. Unknown names give kNotFound with the closest names.
Result<const GpuPart*> find_gpu(const std::string& name);
Result<const CpuPart*> find_cpu(const std::string& name);
Result<const MemoryPart*> find_memory(const std::string& name);
Result<const NvmePart*> find_nvme(const std::string& name);

// The catalog CPU whose model number appears as a word in a CPU model string
// as the OS reports it ("AMD EPYC 9654 96-Core Processor"); nullptr if none.
const CpuPart* match_cpu_model_string(const std::string& model);

// Generic NVMe entry for a PCIe generation (3, 4 or 5; others: nullptr).
const NvmePart* generic_nvme(int pcie_gen);

// PCIe payload bandwidth of an x16 link of generation `gen` (3..6), GB/s; 0 otherwise.
double pcie_x16_gbps(int gen);

// Nominal figures from catalog entries, each with its range and a source
// that starts with "nominal:". fill_nominal_gpu also sets g.pcie_gen when 0;
// fill_nominal_h2d uses g.pcie_gen and g.pcie_width (0 = x16).
void fill_nominal_gpu(GpuSpec& g, const GpuPart& part);
void fill_nominal_h2d(GpuSpec& g);
void fill_nominal_nvme(StorageSpec& s, const NvmePart& part);

// The key names are compared by: lowercase alphanumerics and '+', with
// leading vendor/brand words removed ("NVIDIA GeForce RTX 4090 D" -> "rtx4090d").
std::string catalog_key(const std::string& name);

// Levenshtein distance, for "did you mean" in catalog and hardware-file errors.
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace strata
