// This machine as a HardwareProfile, from what the OS reports without running
// any probe: CPU model and ISA, sockets/cores/threads, NUMA nodes and their
// memory (hwloc), caches, CUDA devices with their PCIe links, and block
// devices (NVMe with PCIe generation and width) from sysfs. Rates stay
// unknown (0) unless the parts catalog knows the part, in which case they are
// nominal figures whose source says so; calibrate.h measures them.
#pragma once

#include <string>

#include "offload/hardware.h"
#include "offload/topology.h"
#include "runtime/base/status.h"

namespace strata {

struct DetectOptions {
  // Where the OS's tables are read from; tests point these at a fake tree.
  std::string sysfs_root = "/sys";
  std::string cpuinfo_path = "/proc/cpuinfo";
  // The layout to use; null: Topology::this_machine().
  const Topology* topology = nullptr;
  // Enumerate CUDA devices (builds with CUDA only).
  bool cuda = true;
};

Result<HardwareProfile> detect_hardware(const DetectOptions& options = {});

// "16.0 GT/s PCIe" (sysfs current_link_speed) -> 4; 0 when not recognized.
int pcie_gen_from_link_speed(const std::string& speed);

}  // namespace strata
