// A DRAM read-bandwidth probe: every core streams its share of a buffer far
// larger than the last-level cache. Benchmarks print their achieved GB/s as
// a percentage of this figure, measured in the same process.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/base/status.h"

namespace strata {

struct BandwidthProbeOptions {
  uint64_t buffer_bytes = 0;  // 0: four times the last-level cache, at least 1 GiB
  int n_threads = 0;          // 0: one per hardware thread
  int n_runs = 7;             // timed passes per read loop; the fastest loop's median is reported
};

struct BandwidthProbeResult {
  uint64_t buffer_bytes = 0;
  uint64_t llc_bytes = 0;  // last-level cache as the OS reports it (0: unknown)
  int n_threads = 0;
  const char* kernel = "";   // the fastest read loop (ReadLoop::name): "avx512+prefetch", "avx2", ...
  std::vector<double> gbps;  // one per timed pass of that loop, 1 GB = 1e9 bytes
  double median_gbps = 0;
};

// Largest cache of cpu0 in /sys/devices/system/cpu/cpu0/cache; 0 if unknown.
uint64_t last_level_cache_bytes();

// Allocates and touches the buffer (each thread its own slice, so pages land
// on that thread's NUMA node), reads it once untimed, then n_runs timed passes
// of each read loop (cpu_kernels/read_loops.h), and keeps the fastest loop's.
Result<BandwidthProbeResult> probe_read_bandwidth(const BandwidthProbeOptions& options = {});

}  // namespace strata
