// Element-wise kernels: grid-stride loops over flat index spaces. silu and
// sigmoid use expf (not __expf) so they track the CPU's std::exp to an ulp.
#include "gpu_kernels/elementwise.cuh"

#include <algorithm>
#include <string>

#include "gpu_kernels/gpu_util.cuh"

namespace strata::gpu {
namespace {

constexpr int kThreads = 256;

int grid_for(int64_t n) { return int(std::min<int64_t>(ceil_div(n, kThreads), 16384)); }

#define STRATA_GRID_STRIDE(e, total) \
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < (total); e += int64_t(gridDim.x) * blockDim.x)

__global__ void swiglu_kernel(const float* gate, const float* up, float* out, int64_t n) {
  STRATA_GRID_STRIDE(i, n) {
    const float g = gate[i];
    out[i] = __fmul_rn(__fdiv_rn(g, 1.0f + expf(-g)), up[i]);
  }
}

__global__ void add_rows_kernel(float* y, const float* a, const float* b, int64_t n_rows, int64_t n, int64_t stride) {
  STRATA_GRID_STRIDE(e, n_rows * n) {
    const int64_t k = (e / n) * stride + e % n;
    float v = y[k] + a[k];
    if (b) v += b[k];
    y[k] = v;
  }
}

__global__ void add_rows_gated_kernel(float* y, const float* a, const float* gate, int64_t n_rows, int64_t n) {
  STRATA_GRID_STRIDE(e, n_rows * n) {
    const float g = 1.0f / (1.0f + expf(-gate[e / n]));
    y[e] += g * a[e];
  }
}

__global__ void moe_weighted_sum_kernel(const float* src, const float* weights, const int32_t* valid, int64_t n_rows,
                                        int32_t n_used, int64_t n, float* out, bool accumulate) {
  STRATA_GRID_STRIDE(e, n_rows * n) {
    const int64_t r = e / n, i = e % n;
    float acc = accumulate ? out[e] : 0.0f;
    for (int32_t k = 0; k < n_used; ++k) {
      const int64_t slot = r * n_used + k;
      if (valid && valid[slot] < 0) continue;
      acc += weights[slot] * src[slot * n + i];
    }
    out[e] = acc;
  }
}

__global__ void copy_rows_kernel(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t n_rows,
                                 int64_t n_cols) {
  STRATA_GRID_STRIDE(e, n_rows * n_cols) {
    const int64_t r = e / n_cols, c = e % n_cols;
    dst[r * dst_stride + c] = src[r * src_stride + c];
  }
}

__global__ void map_ids_kernel(const int32_t* ids, const int32_t* table, int32_t n_table, int64_t n, int32_t* out) {
  STRATA_GRID_STRIDE(i, n) {
    const int32_t e = ids[i];
    out[i] = (e >= 0 && e < n_table) ? table[e] : -1;
  }
}

#undef STRATA_GRID_STRIDE

Status check_counts(const char* op, int64_t n_rows, int64_t n) {
  if (n_rows < 0 || n < 0) {
    return invalid_argument(std::string(op) + ": expected non-negative sizes, got " + std::to_string(n_rows) + " x " +
                            std::to_string(n));
  }
  return Status::ok();
}

}  // namespace

Status swiglu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream) {
  STRATA_RETURN_IF_ERROR(check_counts("swiglu", 1, n));
  if (n == 0) return Status::ok();
  swiglu_kernel<<<grid_for(n), kThreads, 0, stream>>>(gate, up, out, n);
  return launch_status("swiglu");
}

Status add_rows(float* y, const float* a, const float* b, int64_t n_rows, int64_t n, int64_t stride,
                cudaStream_t stream) {
  STRATA_RETURN_IF_ERROR(check_counts("add_rows", n_rows, n));
  if (stride < n) return invalid_argument("add_rows: expected stride >= n, got " + std::to_string(stride));
  if (n_rows == 0 || n == 0) return Status::ok();
  add_rows_kernel<<<grid_for(n_rows * n), kThreads, 0, stream>>>(y, a, b, n_rows, n, stride);
  return launch_status("add_rows");
}

Status add_rows_gated(float* y, const float* a, const float* gate, int64_t n_rows, int64_t n, cudaStream_t stream) {
  STRATA_RETURN_IF_ERROR(check_counts("add_rows_gated", n_rows, n));
  if (n_rows == 0 || n == 0) return Status::ok();
  add_rows_gated_kernel<<<grid_for(n_rows * n), kThreads, 0, stream>>>(y, a, gate, n_rows, n);
  return launch_status("add_rows_gated");
}

Status moe_weighted_sum(const float* src, const float* weights, const int32_t* valid, int64_t n_rows, int32_t n_used,
                        int64_t n, float* out, bool accumulate, cudaStream_t stream) {
  STRATA_RETURN_IF_ERROR(check_counts("moe_weighted_sum", n_rows, n));
  if (n_used < 1) return invalid_argument("moe_weighted_sum: expected n_used >= 1, got " + std::to_string(n_used));
  if (n_rows == 0 || n == 0) return Status::ok();
  moe_weighted_sum_kernel<<<grid_for(n_rows * n), kThreads, 0, stream>>>(src, weights, valid, n_rows, n_used, n, out,
                                                                         accumulate);
  return launch_status("moe_weighted_sum");
}

Status copy_rows(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t n_rows, int64_t n_cols,
                 cudaStream_t stream) {
  STRATA_RETURN_IF_ERROR(check_counts("copy_rows", n_rows, n_cols));
  if (src_stride < n_cols || dst_stride < n_cols) {
    return invalid_argument("copy_rows: expected strides >= n_cols (" + std::to_string(n_cols) + ")");
  }
  if (n_rows == 0 || n_cols == 0) return Status::ok();
  copy_rows_kernel<<<grid_for(n_rows * n_cols), kThreads, 0, stream>>>(src, src_stride, dst, dst_stride, n_rows,
                                                                         n_cols);
  return launch_status("copy_rows");
}

Status map_ids(const int32_t* ids, const int32_t* table, int32_t n_table, int64_t n, int32_t* out,
               cudaStream_t stream) {
  STRATA_RETURN_IF_ERROR(check_counts("map_ids", 1, n));
  if (n == 0) return Status::ok();
  map_ids_kernel<<<grid_for(n), kThreads, 0, stream>>>(ids, table, n_table, n, out);
  return launch_status("map_ids");
}

}  // namespace strata::gpu
