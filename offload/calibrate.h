// Calibration: short probes that measure this machine's rates (DRAM read
// bandwidth per NUMA node and across nodes, pinned host->device copies,
// NVMe sequential and random reads, CPU kernel GB/s per weight type) and the
// profile cache that keeps the results between runs, keyed by a machine
// fingerprint so a changed machine is probed again.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "offload/hardware.h"
#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace strata {

struct CalibrateOptions {
  bool quick = false;        // ~0.5 s per probe and smaller buffers instead of ~2 s
  bool recalibrate = false;  // probe even when the cache has this machine
  // Profile cache (JSON). Empty: default_profile_path(). use_cache = false
  // neither reads nor writes it.
  std::string profile_path;
  bool use_cache = true;
  // Storage probe target: an existing file is read as it is (it must be at
  // least 64 MiB); a directory gets a temporary file that is removed after.
  // Empty: a temporary file in the profile cache's directory.
  std::string storage_path;
  bool probe_dram = true, probe_gpu = true, probe_storage = true, probe_kernels = true;
  // Weight types whose CPU kernel rates must be measured besides the usual
  // ones (the planned model's): a cached profile without them gets them
  // probed and stored, so a plan never falls back to assuming them.
  std::vector<DType> kernel_types;
  std::FILE* progress = stderr;  // one line per probe; nullptr: silent
  // Sizes and durations; 0 = automatic (see calibrate.cpp).
  uint64_t dram_bytes = 0;       // buffer per DRAM probe: max(4 x LLC, 1 GiB), quick max(2 x LLC, 256 MiB), <= 1/4 node memory
  uint64_t storage_bytes = 0;    // temporary file: 1 GiB, quick 256 MiB
  uint64_t kernel_bytes = 0;     // weights per kernel probe: max(2 x LLC, 512 MiB), quick max(LLC, 128 MiB)
  double seconds_per_probe = 0;  // 2, quick 0.5
  int min_runs = 3;              // timed passes at least (ranges need several)
};

// $STRATA_PROFILE, else $XDG_CACHE_HOME/strata/hardware-profile.json, else
// ~/.cache/strata/hardware-profile.json. Reads the environment: call it at the
// command layer and pass the result down.
std::string default_profile_path();

// "CPU model | sockets x cores x threads | memory GiB | GPUs": what must stay
// the same for cached measurements to apply.
std::string machine_fingerprint(const HardwareProfile& p);

// Runs the enabled probes on this machine and returns `profile` with the
// measured figures filled in (value = median, lo/hi = min/max of the timed
// runs; source = "measured <date> (<how>)"). Probes that cannot run (no CUDA
// device, O_DIRECT unsupported, kernels missing) leave the figure as it was
// and add a line to profile.assumptions saying why. `profile` must describe
// this machine (detect_hardware()).
Result<HardwareProfile> calibrate(const HardwareProfile& profile, const CalibrateOptions& options);

// What `strata plan --this-machine` uses: detect_hardware(), then the cached
// measurements for this machine's fingerprint unless options.recalibrate,
// else calibrate() and store the result in the cache.
Result<HardwareProfile> this_machine_profile(const CalibrateOptions& options);

// The cache: a JSON file holding profiles by fingerprint (several machines may
// share a home directory). load returns kNotFound when the file or this
// fingerprint is absent.
Result<HardwareProfile> load_cached_profile(const std::string& path, const std::string& fingerprint);
Status store_cached_profile(const std::string& path, const HardwareProfile& profile);

}  // namespace strata
