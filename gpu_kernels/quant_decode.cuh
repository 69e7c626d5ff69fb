// Device-side decoding of single weight elements from GGUF rows, for the
// kernels that dequantize (embedding rows, GEMM tiles). Internal to gpu_kernels.
// The arithmetic is cpu_kernels/dequant_ref.cpp's, in the same order and
// with explicit round-to-nearest intrinsics so nvcc cannot contract it into
// FMAs: a decoded element equals the CPU reference bit for bit.
#pragma once

#include <cstdint>
#include <type_traits>

#include "gpu_kernels/gpu_util.cuh"
#include "runtime/base/quant_blocks.h"

namespace strata::gpu {

// The weight types the GPU kernels decode. One switch per op turns a runtime
// DType into one of these template arguments.
inline bool gpu_weight_type_supported(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ8_0:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

// Calls f(std::integral_constant<DType, T>{}) for a supported type; returns
// false (f not called) for any other.
template <typename F>
inline bool dispatch_weight_type(DType t, F&& f) {
  switch (t) {
    case DType::kF32: f(std::integral_constant<DType, DType::kF32>{}); return true;
    case DType::kF16: f(std::integral_constant<DType, DType::kF16>{}); return true;
    case DType::kBF16: f(std::integral_constant<DType, DType::kBF16>{}); return true;
    case DType::kQ8_0: f(std::integral_constant<DType, DType::kQ8_0>{}); return true;
    case DType::kQ4_K: f(std::integral_constant<DType, DType::kQ4_K>{}); return true;
    case DType::kQ5_K: f(std::integral_constant<DType, DType::kQ5_K>{}); return true;
    case DType::kQ6_K: f(std::integral_constant<DType, DType::kQ6_K>{}); return true;
    default: return false;
  }
}

__device__ __forceinline__ uint16_t load_u16(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }

// Q4_K/Q5_K's 6-bit scale and min of sub-block j from the 12 packed bytes.
__device__ __forceinline__ void scale_min_k4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Element i of a row of type T (row: the row's first byte, aligned as GGUF
// rows are: 2 bytes for the block types and 16-bit types, 4 for f32).
template <DType T>
__device__ __forceinline__ float decode_elem(const uint8_t* row, int64_t i);

template <>
__device__ __forceinline__ float decode_elem<DType::kF32>(const uint8_t* row, int64_t i) {
  return reinterpret_cast<const float*>(row)[i];
}
template <>
__device__ __forceinline__ float decode_elem<DType::kF16>(const uint8_t* row, int64_t i) {
  return half_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[i]);
}
template <>
__device__ __forceinline__ float decode_elem<DType::kBF16>(const uint8_t* row, int64_t i) {
  return bf16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[i]);
}
template <>
__device__ __forceinline__ float decode_elem<DType::kQ8_0>(const uint8_t* row, int64_t i) {
  const uint8_t* b = row + (i / kQK8_0) * sizeof(BlockQ8_0);
  const float d = half_bits_to_f32(load_u16(b));
  return __fmul_rn(float(int8_t(b[2 + i % kQK8_0])), d);
}
template <>
__device__ __forceinline__ float decode_elem<DType::kQ4_K>(const uint8_t* row, int64_t i) {
  const uint8_t* b = row + (i / kQK_K) * sizeof(BlockQ4_K);
  const int j = int(i % kQK_K), g = j / 64, w = j % 64, l = w % 32, hi = w >= 32;
  int sc, m;
  scale_min_k4(2 * g + hi, b + 4, &sc, &m);
  const uint8_t q = b[16 + 32 * g + l];
  const int nib = hi ? q >> 4 : q & 0xF;
  const float d = __fmul_rn(half_bits_to_f32(load_u16(b)), float(sc));
  const float mn = __fmul_rn(half_bits_to_f32(load_u16(b + 2)), float(m));
  return __fsub_rn(__fmul_rn(d, float(nib)), mn);
}
template <>
__device__ __forceinline__ float decode_elem<DType::kQ5_K>(const uint8_t* row, int64_t i) {
  const uint8_t* b = row + (i / kQK_K) * sizeof(BlockQ5_K);
  const int j = int(i % kQK_K), g = j / 64, w = j % 64, l = w % 32, hi = w >= 32;
  const int is = 2 * g + hi;
  int sc, m;
  scale_min_k4(is, b + 4, &sc, &m);
  const uint8_t q = b[48 + 32 * g + l];
  const int v = (hi ? q >> 4 : q & 0xF) + (((b[16 + l] >> is) & 1) ? 16 : 0);
  const float d = __fmul_rn(half_bits_to_f32(load_u16(b)), float(sc));
  const float mn = __fmul_rn(half_bits_to_f32(load_u16(b + 2)), float(m));
  return __fsub_rn(__fmul_rn(d, float(v)), mn);
}
template <>
__device__ __forceinline__ float decode_elem<DType::kQ6_K>(const uint8_t* row, int64_t i) {
  const uint8_t* b = row + (i / kQK_K) * sizeof(BlockQ6_K);
  const int j = int(i % kQK_K), n = j / 128, r = j % 128, k = r / 32, l = r % 32;
  const uint8_t* ql = b + 64 * n;
  const uint8_t* qh = b + 128 + 32 * n;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192 + 8 * n);
  const uint8_t qlb = ql[l + 32 * (k & 1)];
  const int nib = (k >> 1) ? qlb >> 4 : qlb & 0xF;
  const int q = (nib | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
  const float d = half_bits_to_f32(load_u16(b + 208));
  return __fmul_rn(__fmul_rn(d, float(sc[l / 16 + 2 * k])), float(q));
}

}  // namespace strata::gpu
