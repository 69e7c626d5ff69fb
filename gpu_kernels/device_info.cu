// CUDA device enumeration.
#include <cuda_runtime.h>

#include "gpu_kernels/device_info.cuh"

namespace strata::gpu {

CudaDevices cuda_devices() {
  CudaDevices out;
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    out.reason = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return out;
  }
  if (n == 0) {
    out.reason = "no CUDA device visible";
    return out;
  }
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    CudaDeviceInfo d;
    d.index = i;
    d.name = prop.name;
    d.total_bytes = prop.totalGlobalMem;
    d.sm_count = prop.multiProcessorCount;
    d.cc_major = prop.major;
    d.cc_minor = prop.minor;
    d.pci_bus = prop.pciBusID;
    d.pci_device = prop.pciDeviceID;
    d.pci_domain = prop.pciDomainID;
    size_t free_b = 0, total_b = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) d.free_bytes = free_b;
    out.devices.push_back(d);
  }
  if (out.devices.empty()) out.reason = "CUDA reported devices but none could be queried";
  return out;
}

}  // namespace strata::gpu
