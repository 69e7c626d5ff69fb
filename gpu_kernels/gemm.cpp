// Prefill GEMM (host code only: the kernels it launches live in dequant.cu
// and cuBLAS): X to bf16 once, then per weight tile: dequantize to bf16,
// one cublasGemmEx. cuBLAS is column-major: a row-major tile of W (tile x
// n_in) is a column-major n_in x tile matrix, so C^T = W_tile X^T is
// gemm(T, N) with m = tile, n = n_rows, k = n_in, written straight into the
// row-major Y at column offset o0 (ldc = y_stride).
#include "gpu_kernels/gemm.cuh"

#include <algorithm>
#include <string>

#include "gpu_kernels/dequant.cuh"

namespace strata::gpu {
namespace {

constexpr int64_t kTileAlign = 64;

size_t align256(size_t n) { return (n + 255) & ~size_t(255); }

Status cublas_status(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::ok();
  return internal_error(std::string(what) + ": cuBLAS status " + std::to_string(int(s)));
}

}  // namespace

size_t gemm_scratch_bytes(int64_t n_in, int64_t n_rows, int64_t tile_rows) {
  return align256(size_t(std::max<int64_t>(n_rows, 0)) * size_t(std::max<int64_t>(n_in, 0)) * 2) +
         size_t(std::max<int64_t>(tile_rows, 0)) * size_t(std::max<int64_t>(n_in, 0)) * 2;
}

Status gemm_bf16(cublasHandle_t cublas, DType type, const void* w, int64_t n_in, int64_t n_out, const float* x,
                 int64_t x_stride, int64_t n_rows, float* y, int64_t y_stride, void* scratch, size_t scratch_bytes,
                 cudaStream_t stream) {
  if (!gpu_supports_weight_type(type)) return unsupported("gemm_bf16: no GPU decoder for " + std::string(dtype_name(type)));
  if (n_in < 1 || n_out < 0 || n_rows < 0 || x_stride < n_in || y_stride < n_out) {
    return invalid_argument("gemm_bf16: expected n_in >= 1, n_out, n_rows >= 0, x_stride >= n_in, y_stride >= n_out");
  }
  if (n_in > INT32_MAX || n_out > INT32_MAX || n_rows > INT32_MAX || y_stride > INT32_MAX) {
    return invalid_argument("gemm_bf16: dimensions beyond cuBLAS's 32-bit sizes");
  }
  const auto row_bytes = dtype_row_bytes(type, uint64_t(n_in));
  if (!row_bytes) {
    return invalid_argument("gemm_bf16: n_in " + std::to_string(n_in) + " is not a multiple of " +
                            std::string(dtype_name(type)) + "'s block");
  }
  if (n_rows == 0 || n_out == 0) return Status::ok();
  const size_t x_bytes = align256(size_t(n_rows) * size_t(n_in) * 2);
  const size_t need = gemm_scratch_bytes(n_in, n_rows, std::min<int64_t>(kTileAlign, n_out));
  if (!scratch || scratch_bytes < need) {
    return invalid_argument("gemm_bf16: scratch of " + std::to_string(scratch_bytes) + " bytes, expected at least " +
                            std::to_string(need));
  }
  int64_t tile = int64_t((scratch_bytes - x_bytes) / (size_t(n_in) * 2));
  tile = std::min<int64_t>(n_out, tile >= kTileAlign ? tile / kTileAlign * kTileAlign : tile);
  auto* xb = static_cast<uint8_t*>(scratch);
  auto* wb = xb + x_bytes;
  STRATA_RETURN_IF_ERROR(f32_to_bf16_rows(x, x_stride, n_rows, n_in, xb, stream));
  STRATA_RETURN_IF_ERROR(cublas_status(cublasSetStream(cublas, stream), "gemm_bf16: cublasSetStream"));
  const float alpha = 1.0f, beta = 0.0f;
  for (int64_t o0 = 0; o0 < n_out; o0 += tile) {
    const int64_t nt = std::min(tile, n_out - o0);
    STRATA_RETURN_IF_ERROR(dequantize_rows_bf16(type, w, n_in, o0, nt, wb, n_in, stream));
    STRATA_RETURN_IF_ERROR(cublas_status(
        cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, int(nt), int(n_rows), int(n_in), &alpha, wb, CUDA_R_16BF,
                     int(n_in), xb, CUDA_R_16BF, int(n_in), &beta, y + o0, CUDA_R_32F, int(y_stride),
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "gemm_bf16: cublasGemmEx"));
  }
  return Status::ok();
}

}  // namespace strata::gpu
