// RMSNorm over rows of floats on the GPU. Host launcher with an explicit stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/base/status.h"

namespace strata::gpu {

// y[r][i] = x[r][i] / sqrt(mean_i(x[r][i]^2) + eps) * (w ? w[i] : 1)
// for r < n_rows, i < n, as cpu_kernels' rms_norm computes each row.
//   x: n_rows rows x_stride floats apart;  y: rows y_stride floats apart
//   (y may be x, in place, with the same stride);  w: n floats or null.
// The sum of squares is accumulated in f32 by a block-wide tree (the CPU
// reference uses a double running sum): results agree to a few ulp.
// Errors: n < 1, n_rows < 0, a stride below n.
Status rms_norm_rows(const float* x, int64_t x_stride, const float* w, int64_t n, int64_t n_rows, float eps,
                     float* y, int64_t y_stride, cudaStream_t stream);

}  // namespace strata::gpu
