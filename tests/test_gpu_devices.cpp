// CUDA device enumeration: never fails; without a device it says why.
#include <gtest/gtest.h>

#include "gpu_kernels/device_info.cuh"

namespace strata::gpu {
namespace {

TEST(CudaDevices, EnumeratesOrExplains) {
  CudaDevices d = cuda_devices();
  if (d.devices.empty()) {
    EXPECT_FALSE(d.reason.empty());
    GTEST_SKIP() << "no CUDA device: " << d.reason;
  }
  for (const auto& dev : d.devices) {
    EXPECT_FALSE(dev.name.empty());
    EXPECT_GT(dev.total_bytes, 0u);
    EXPECT_GT(dev.sm_count, 0);
    EXPECT_GE(dev.cc_major, 7);
    EXPECT_LE(dev.free_bytes, dev.total_bytes);
  }
}

}  // namespace
}  // namespace strata::gpu
