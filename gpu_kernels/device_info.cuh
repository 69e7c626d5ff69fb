// CUDA devices visible to this process: what the planner and the GPU tests
// need to know about each (name, memory, SMs, compute capability, PCIe link).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace strata::gpu {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;
  int pci_bus = 0, pci_device = 0, pci_domain = 0;
};

struct CudaDevices {
  std::vector<CudaDeviceInfo> devices;
  // Why the list is empty ("no CUDA device", "driver too old", ...); empty when devices were found.
  std::string reason;
};

// Enumerates devices. Never fails: a machine without a driver or a device
// gets an empty list and the runtime's own explanation in `reason`.
CudaDevices cuda_devices();

}  // namespace strata::gpu
