// Dequantization kernels: one thread per output element, rows gathered by id
// or taken in order. Not on the decode hot path (GEMV decodes on the fly);
// used for embedding rows and for the bf16 tiles of the prefill GEMM.
#include "gpu_kernels/dequant.cuh"

#include <algorithm>
#include <string>

#include "gpu_kernels/quant_decode.cuh"

namespace strata::gpu {
namespace {

template <DType T, typename Out>
__global__ void dequant_rows_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int64_t n_in,
                                    const int32_t* __restrict__ ids, int64_t n_ids_limit, int64_t row0,
                                    int64_t n_rows, Out* __restrict__ out, int64_t out_stride) {
  const int64_t total = n_rows * n_in;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / n_in, i = e % n_in;
    float v;
    if (ids) {
      const int64_t id = ids[r];
      v = (id >= 0 && id < n_ids_limit) ? decode_elem<T>(w + uint64_t(id) * row_bytes, i) : __int_as_float(0x7fc00000);
    } else {
      v = decode_elem<T>(w + uint64_t(row0 + r) * row_bytes, i);
    }
    if constexpr (std::is_same_v<Out, float>) {
      out[r * out_stride + i] = v;
    } else {
      out[r * out_stride + i] = __float2bfloat16_rn(v);
    }
  }
}

__global__ void f32_to_bf16_kernel(const float* __restrict__ x, int64_t x_stride, int64_t n_rows, int64_t n_cols,
                                   __nv_bfloat16* __restrict__ out) {
  const int64_t total = n_rows * n_cols;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    out[e] = __float2bfloat16_rn(x[(e / n_cols) * x_stride + e % n_cols]);
  }
}

int grid_for(int64_t n, int threads) {
  // Enough blocks to fill any of the target GPUs; the kernels stride beyond.
  return int(std::min<int64_t>(ceil_div(n, threads), 8192));
}

template <typename Out>
Status launch_dequant(const char* op, DType type, const void* w, int64_t n_in, const int32_t* ids,
                      int64_t n_ids_limit, int64_t row0, int64_t n_rows, Out* out, int64_t out_stride,
                      cudaStream_t stream) {
  if (!gpu_weight_type_supported(type)) return unsupported(std::string(op) + ": no GPU decoder for " + type_name(type));
  const auto row_bytes = dtype_row_bytes(type, uint64_t(n_in < 0 ? 0 : n_in));
  if (n_in <= 0 || !row_bytes) {
    return invalid_argument(std::string(op) + ": expected a positive row length that is a multiple of " +
                            std::to_string(dtype_traits(type).block_elems) + " for " + type_name(type) + ", got " +
                            std::to_string(n_in));
  }
  if (n_rows < 0 || out_stride < n_in) {
    return invalid_argument(std::string(op) + ": expected n_rows >= 0 and out_stride >= " + std::to_string(n_in) +
                            ", got " + std::to_string(n_rows) + " and " + std::to_string(out_stride));
  }
  if (n_rows == 0) return Status::ok();
  const int threads = 256;
  const int grid = grid_for(n_rows * n_in, threads);
  dispatch_weight_type(type, [&](auto tc) {
    dequant_rows_kernel<decltype(tc)::value, Out><<<grid, threads, 0, stream>>>(
        static_cast<const uint8_t*>(w), *row_bytes, n_in, ids, n_ids_limit, row0, n_rows, out, out_stride);
  });
  return launch_status(op);
}

}  // namespace

bool gpu_supports_weight_type(DType t) { return gpu_weight_type_supported(t); }

Status embed_rows(DType type, const void* table, int64_t n_embd, int64_t n_vocab, const int32_t* ids,
                  int64_t n_tokens, float* out, int64_t out_stride, cudaStream_t stream) {
  if (n_vocab <= 0) return invalid_argument("embed_rows: expected n_vocab > 0, got " + std::to_string(n_vocab));
  return launch_dequant<float>("embed_rows", type, table, n_embd, ids, n_vocab, 0, n_tokens, out, out_stride,
                               stream);
}

Status dequantize_rows(DType type, const void* w, int64_t n_in, int64_t row0, int64_t n_rows, float* out,
                       int64_t out_stride, cudaStream_t stream) {
  return launch_dequant<float>("dequantize_rows", type, w, n_in, nullptr, 0, row0, n_rows, out, out_stride,
                               stream);
}

Status dequantize_rows_bf16(DType type, const void* w, int64_t n_in, int64_t row0, int64_t n_rows, void* out,
                            int64_t out_stride, cudaStream_t stream) {
  return launch_dequant<__nv_bfloat16>("dequantize_rows_bf16", type, w, n_in, nullptr, 0, row0, n_rows,
                                       static_cast<__nv_bfloat16*>(out), out_stride, stream);
}

Status f32_to_bf16_rows(const float* x, int64_t x_stride, int64_t n_rows, int64_t n_cols, void* out,
                        cudaStream_t stream) {
  if (n_rows < 0 || n_cols < 0 || x_stride < n_cols) {
    return invalid_argument("f32_to_bf16_rows: expected n_rows, n_cols >= 0 and x_stride >= n_cols");
  }
  if (n_rows == 0 || n_cols == 0) return Status::ok();
  f32_to_bf16_kernel<<<grid_for(n_rows * n_cols, 256), 256, 0, stream>>>(x, x_stride, n_rows, n_cols,
                                                                         static_cast<__nv_bfloat16*>(out));
  return launch_status("f32_to_bf16_rows");
}

}  // namespace strata::gpu
