// Helpers for the GPU tests: skipping without a device (with the reason),
// device buffers, random data, quantized weights and normalized error.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cpu_kernels/quant_ref.h"
#include "gpu_kernels/device_info.cuh"
#include "runtime/base/dtype.h"

namespace strata::gpu_test {

// Empty when a CUDA device is usable, else why not.
inline const std::string& no_device_reason() {
  static const std::string reason = [] {
    gpu::CudaDevices d = gpu::cuda_devices();
    return d.devices.empty() ? (d.reason.empty() ? std::string("no CUDA device") : d.reason) : std::string();
  }();
  return reason;
}

#define STRATA_REQUIRE_CUDA()                                                          \
  do {                                                                                 \
    if (!::strata::gpu_test::no_device_reason().empty())                               \
      GTEST_SKIP() << "no CUDA device: " << ::strata::gpu_test::no_device_reason();    \
  } while (0)

#define CUDA_OK(expr) ASSERT_EQ((expr), cudaSuccess) << #expr << ": " << cudaGetErrorString(cudaGetLastError())

// A device array of T, freed on destruction.
template <typename T>
class DevBuf {
 public:
  DevBuf() = default;
  explicit DevBuf(size_t n) : n_(n) {
    if (n_ && cudaMalloc(&p_, n_ * sizeof(T)) != cudaSuccess) p_ = nullptr;
    if (p_) cudaMemset(p_, 0, n_ * sizeof(T));
  }
  explicit DevBuf(const std::vector<T>& v) : DevBuf(v.size()) { upload(v); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf(DevBuf&& o) noexcept { *this = std::move(o); }
  DevBuf& operator=(DevBuf&& o) noexcept {
    if (this != &o) {
      if (p_) cudaFree(p_);
      p_ = o.p_;
      n_ = o.n_;
      o.p_ = nullptr;
      o.n_ = 0;
    }
    return *this;
  }
  ~DevBuf() {
    if (p_) cudaFree(p_);
  }
  void upload(const std::vector<T>& v) { cudaMemcpy(p_, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice); }
  std::vector<T> download() const {
    std::vector<T> v(n_);
    cudaDeviceSynchronize();
    cudaMemcpy(v.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
  }
  T* get() const { return static_cast<T*>(p_); }
  size_t size() const { return n_; }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = g(rng);
  return v;
}

// n_rows rows of n_in random values quantized to `t`, and their dequantized
// values (what every kernel must compute with).
struct QuantMatrix {
  DType type;
  int64_t n_in = 0, n_rows = 0;
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // n_rows x n_in, dequantized
};

inline QuantMatrix quant_matrix(DType t, int64_t n_in, int64_t n_rows, uint64_t seed, float scale = 1.0f) {
  QuantMatrix m;
  m.type = t;
  m.n_in = n_in;
  m.n_rows = n_rows;
  const uint64_t rb = dtype_row_bytes(t, uint64_t(n_in)).value();
  m.bytes.resize(size_t(rb * uint64_t(n_rows)));
  m.values.resize(size_t(n_in * n_rows));
  std::vector<float> src = randn(size_t(n_in * n_rows), seed, scale);
  for (int64_t r = 0; r < n_rows; ++r) {
    EXPECT_TRUE(quantize_row_ref(t, src.data() + r * n_in, m.bytes.data() + uint64_t(r) * rb, n_in).is_ok());
    EXPECT_TRUE(dequantize_row_ref(t, m.bytes.data() + uint64_t(r) * rb, m.values.data() + r * n_in, n_in).is_ok());
  }
  return m;
}

// sqrt(sum (a - ref)^2 / sum ref^2): error relative to the result's size.
inline double normalized_error(const std::vector<float>& a, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = double(a[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// The weight types of the GPU kernels, with the GEMV error bound of each
// (f32 accumulation in another order than the reference; the k-quants also
// fold scale and min in after the sums).
struct TypeCase {
  DType type;
  double gemv_tol;
};
inline const std::vector<TypeCase>& gpu_types() {
  static const std::vector<TypeCase> t = {{DType::kF32, 2e-6}, {DType::kF16, 2e-6}, {DType::kBF16, 2e-6},
                                          {DType::kQ8_0, 5e-6}, {DType::kQ4_K, 2e-5}, {DType::kQ5_K, 2e-5},
                                          {DType::kQ6_K, 2e-5}};
  return t;
}

}  // namespace strata::gpu_test
