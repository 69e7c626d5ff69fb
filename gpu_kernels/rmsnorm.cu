// RMSNorm: one block per row, sum of squares by a block reduction.
#include "gpu_kernels/rmsnorm.cuh"

#include <algorithm>
#include <string>

#include "gpu_kernels/gpu_util.cuh"

namespace strata::gpu {
namespace {

constexpr int kThreads = 256;

__global__ void rms_norm_kernel(const float* __restrict__ x, int64_t x_stride, const float* __restrict__ w, int64_t n,
                                int64_t n_rows, float eps, float* y, int64_t y_stride) {
  __shared__ float red[32];
  for (int64_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
    const float* xr = x + r * x_stride;
    float* yr = y + r * y_stride;
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += xr[i] * xr[i];
    s = block_sum(s, red);
    const float scale = 1.0f / sqrtf(s / float(n) + eps);
    // Every thread has read its own elements before any writes its own: an
    // element is read and written by the same thread, so y == x is safe.
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const float v = __fmul_rn(xr[i], scale);
      yr[i] = w ? __fmul_rn(v, w[i]) : v;
    }
  }
}

}  // namespace

Status rms_norm_rows(const float* x, int64_t x_stride, const float* w, int64_t n, int64_t n_rows, float eps,
                     float* y, int64_t y_stride, cudaStream_t stream) {
  if (n < 1 || n_rows < 0 || x_stride < n || y_stride < n) {
    return invalid_argument("rms_norm_rows: expected n >= 1, n_rows >= 0 and strides >= n, got n=" +
                            std::to_string(n) + " n_rows=" + std::to_string(n_rows));
  }
  if (n_rows == 0) return Status::ok();
  const int grid = int(std::min<int64_t>(n_rows, 65535));
  rms_norm_kernel<<<grid, kThreads, 0, stream>>>(x, x_stride, w, n, n_rows, eps, y, y_stride);
  return launch_status("rms_norm_rows");
}

}  // namespace strata::gpu
