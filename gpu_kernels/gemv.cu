// GEMV for bandwidth: one warp per output row, four rows per block. A lane
// takes one "unit" of a weight row per step - a 16-byte chunk of quants with
// the scales it needs - so consecutive lanes read consecutive bytes (128-bit
// loads for the 16-byte aligned layouts; two 16-bit loads per word for q8_0
// and q6_k, whose 34- and 210-byte blocks are only 2-byte aligned). Sums are
// f32: per unit, sum(q * x) and sum(x) are formed first and the block's
// scale and min applied once, which is W x reassociated (not bit-equal to
// the reference; tests use normalized error).
#include "gpu_kernels/gemv.cuh"

#include <algorithm>
#include <string>

#include "gpu_kernels/quant_decode.cuh"

namespace strata::gpu {
namespace {

constexpr int kWarps = 4;    // output rows per block
constexpr int kMaxRows = 4;  // activation rows per weight read

struct KArgs {
  const uint8_t* w;
  uint64_t row_bytes, mat_bytes;
  int64_t n_out, n_units, n_mat, n_rows, n_groups;
  int32_t rows_per_group, x_row_div;
  const int32_t* mat_ids;
  const float* x;
  int64_t x_stride;
  float* y;
  int64_t y_stride;
};

__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float dot4(float4 a, float4 b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }
__device__ __forceinline__ float sum4(float4 a) { return (a.x + a.y) + (a.z + a.w); }
__device__ __forceinline__ int nib(uint32_t w, int byte, int hi) { return (w >> (8 * byte + 4 * hi)) & 0xF; }

// One unit of a row: acc[b] += (unit of W) . (matching elements of x row b).
template <DType T>
struct Unit;

template <>
struct Unit<DType::kF32> {
  static constexpr int kElems = 4;
  __device__ static void dot(const uint8_t* row, int64_t u, const float* const* xr, int nb, float* acc) {
    const float4 w = ld4(reinterpret_cast<const float*>(row) + 4 * u);
#pragma unroll
    for (int b = 0; b < kMaxRows; ++b)
      if (b < nb) acc[b] += dot4(w, ld4(xr[b] + 4 * u));
  }
};

template <typename H>
struct Unit16 {
  static constexpr int kElems = 8;
  __device__ static void dot(const uint8_t* row, int64_t u, const float* const* xr, int nb, float* acc) {
    const uint4 q = reinterpret_cast<const uint4*>(row)[u];
    const float2 a = unpack2<H>(q.x), b2 = unpack2<H>(q.y), c = unpack2<H>(q.z), d = unpack2<H>(q.w);
    const float4 w0 = make_float4(a.x, a.y, b2.x, b2.y), w1 = make_float4(c.x, c.y, d.x, d.y);
#pragma unroll
    for (int b = 0; b < kMaxRows; ++b)
      if (b < nb) acc[b] += dot4(w0, ld4(xr[b] + 8 * u)) + dot4(w1, ld4(xr[b] + 8 * u + 4));
  }
};
template <>
struct Unit<DType::kF16> : Unit16<__half> {};
template <>
struct Unit<DType::kBF16> : Unit16<__nv_bfloat16> {};

// Q8_0: 4 units of 8 quants per 32-element block.
template <>
struct Unit<DType::kQ8_0> {
  static constexpr int kElems = 8;
  __device__ static void dot(const uint8_t* row, int64_t u, const float* const* xr, int nb, float* acc) {
    const uint8_t* blk = row + (u / 4) * sizeof(BlockQ8_0);
    const int p = int(u % 4);
    const float d = half_bits_to_f32(load_u16(blk));
    const uint32_t q0 = load_u32_a2(blk + 2 + 8 * p), q1 = load_u32_a2(blk + 6 + 8 * p);
    const float4 w0 = make_float4(float(int8_t(q0)), float(int8_t(q0 >> 8)), float(int8_t(q0 >> 16)), float(int8_t(q0 >> 24)));
    const float4 w1 = make_float4(float(int8_t(q1)), float(int8_t(q1 >> 8)), float(int8_t(q1 >> 16)), float(int8_t(q1 >> 24)));
    const int64_t e = (u / 4) * 32 + 8 * p;
#pragma unroll
    for (int b = 0; b < kMaxRows; ++b)
      if (b < nb) acc[b] += d * (dot4(w0, ld4(xr[b] + e)) + dot4(w1, ld4(xr[b] + e + 4)));
  }
};

// Byte k (< 12) of the packed scales held in three words, without a local
// array (a dynamically indexed array would live in local memory).
__device__ __forceinline__ int scale_byte(uint32_t w0, uint32_t w1, uint32_t w2, int k) {
  const uint32_t w = k < 4 ? w0 : (k < 8 ? w1 : w2);
  return int((w >> (8 * (k & 3))) & 0xFF);
}

// Scale and min of sub-block s of a Q4_K/Q5_K super-block (scale_min_k4 on words).
__device__ __forceinline__ void k4_scale_min(uint32_t w0, uint32_t w1, uint32_t w2, int s, int* sc, int* m) {
  if (s < 4) {
    *sc = scale_byte(w0, w1, w2, s) & 63;
    *m = scale_byte(w0, w1, w2, s + 4) & 63;
  } else {
    *sc = (scale_byte(w0, w1, w2, s + 4) & 0xF) | ((scale_byte(w0, w1, w2, s - 4) >> 6) << 4);
    *m = (scale_byte(w0, w1, w2, s + 4) >> 4) | ((scale_byte(w0, w1, w2, s) >> 6) << 4);
  }
}

// Scales/mins of sub-blocks 2j and 2j+1 of a Q4_K/Q5_K super-block (header at blk).
__device__ __forceinline__ void k4_scales(const uint8_t* blk, int j, float* d1, float* m1, float* d2, float* m2) {
  const uint32_t* hw = reinterpret_cast<const uint32_t*>(blk);
  const uint32_t dd = hw[0], w0 = hw[1], w1 = hw[2], w2 = hw[3];
  const float d = half_bits_to_f32(uint16_t(dd & 0xffffu)), dmin = half_bits_to_f32(uint16_t(dd >> 16));
  int sc, m;
  k4_scale_min(w0, w1, w2, 2 * j, &sc, &m);
  *d1 = d * float(sc);
  *m1 = dmin * float(m);
  k4_scale_min(w0, w1, w2, 2 * j + 1, &sc, &m);
  *d2 = d * float(sc);
  *m2 = dmin * float(m);
}

// Q4_K: 8 units per 256-element super-block. Unit c (j = c/2, h = c%2) is qs
// bytes [16c, 16c+16): low nibbles are elements 64j + 16h + t of sub-block
// 2j, high nibbles elements 64j + 32 + 16h + t of sub-block 2j+1.
template <>
struct Unit<DType::kQ4_K> {
  static constexpr int kElems = 32;
  __device__ static void dot(const uint8_t* row, int64_t u, const float* const* xr, int nb, float* acc) {
    const int64_t sb = u / 8;
    const int c = int(u % 8), j = c / 2, h = c % 2;
    const uint8_t* blk = row + sb * sizeof(BlockQ4_K);
    const uint4 q = *reinterpret_cast<const uint4*>(blk + 16 + 16 * c);
    float d1, m1, d2, m2;
    k4_scales(blk, j, &d1, &m1, &d2, &m2);
    const uint32_t qw[4] = {q.x, q.y, q.z, q.w};
    const int64_t e = sb * 256 + 64 * j + 16 * h;
#pragma unroll
    for (int b = 0; b < kMaxRows; ++b) {
      if (b >= nb) continue;
      float lo = 0, hi = 0, slo = 0, shi = 0;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float4 xl = ld4(xr[b] + e + 4 * k), xh = ld4(xr[b] + e + 32 + 4 * k);
        const uint32_t w = qw[k];
        lo += dot4(make_float4(nib(w, 0, 0), nib(w, 1, 0), nib(w, 2, 0), nib(w, 3, 0)), xl);
        hi += dot4(make_float4(nib(w, 0, 1), nib(w, 1, 1), nib(w, 2, 1), nib(w, 3, 1)), xh);
        slo += sum4(xl);
        shi += sum4(xh);
      }
      acc[b] += (d1 * lo - m1 * slo) + (d2 * hi - m2 * shi);
    }
  }
};

// Q5_K: Q4_K's units plus the fifth bits: qh byte 16h + t holds bit 2j (low
// nibble's element) and bit 2j+1 (high nibble's element).
template <>
struct Unit<DType::kQ5_K> {
  static constexpr int kElems = 32;
  __device__ static void dot(const uint8_t* row, int64_t u, const float* const* xr, int nb, float* acc) {
    const int64_t sb = u / 8;
    const int c = int(u % 8), j = c / 2, h = c % 2;
    const uint8_t* blk = row + sb * sizeof(BlockQ5_K);
    const uint4 q = *reinterpret_cast<const uint4*>(blk + 48 + 16 * c);
    const uint4 qh = *reinterpret_cast<const uint4*>(blk + 16 + 16 * h);
    float d1, m1, d2, m2;
    k4_scales(blk, j, &d1, &m1, &d2, &m2);
    const uint32_t qw[4] = {q.x, q.y, q.z, q.w};
    const uint32_t hw[4] = {qh.x, qh.y, qh.z, qh.w};
    const int64_t e = sb * 256 + 64 * j + 16 * h;
#pragma unroll
    for (int b = 0; b < kMaxRows; ++b) {
      if (b >= nb) continue;
      float lo = 0, hi = 0, slo = 0, shi = 0;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float4 xl = ld4(xr[b] + e + 4 * k), xh = ld4(xr[b] + e + 32 + 4 * k);
        const uint32_t w = qw[k], hb = hw[k];
        float vl[4], vh[4];
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          const uint32_t hbyte = (hb >> (8 * t)) & 0xFF;
          vl[t] = float(nib(w, t, 0) + (((hbyte >> (2 * j)) & 1) << 4));
          vh[t] = float(nib(w, t, 1) + (((hbyte >> (2 * j + 1)) & 1) << 4));
        }
        lo += dot4(make_float4(vl[0], vl[1], vl[2], vl[3]), xl);
        hi += dot4(make_float4(vh[0], vh[1], vh[2], vh[3]), xh);
        slo += sum4(xl);
        shi += sum4(xh);
      }
      acc[b] += (d1 * lo - m1 * slo) + (d2 * hi - m2 * shi);
    }
  }
};

// Q6_K: 16 units of 16 elements per super-block. Unit v (n = v/8 half, l0 =
// 4*(v%8)) reads ql[64n + l0 .. +3], ql[64n + 32 + l0 .. +3], qh[32n + l0 ..
// +3] and yields elements 128n + 32k + l0 + t (k = 0..3, t = 0..3) with scale
// sc[8n + l0/16 + 2k].
template <>
struct Unit<DType::kQ6_K> {
  static constexpr int kElems = 16;
  __device__ static void dot(const uint8_t* row, int64_t u, const float* const* xr, int nb, float* acc) {
    const int64_t sb = u / 16;
    const int v = int(u % 16), n = v / 8, l0 = 4 * (v % 8);
    const uint8_t* blk = row + sb * sizeof(BlockQ6_K);
    const uint32_t ql0 = load_u32_a2(blk + 64 * n + l0), ql1 = load_u32_a2(blk + 64 * n + 32 + l0);
    const uint32_t qh = load_u32_a2(blk + 128 + 32 * n + l0);
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192 + 8 * n + l0 / 16);
    const float d = half_bits_to_f32(load_u16(blk + 208));
    float wq[4][4];
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      const uint32_t hb = (qh >> (8 * t)) & 0xFF;
      wq[0][t] = float(int(nib(ql0, t, 0) | ((hb & 3) << 4)) - 32);
      wq[1][t] = float(int(nib(ql1, t, 0) | (((hb >> 2) & 3) << 4)) - 32);
      wq[2][t] = float(int(nib(ql0, t, 1) | (((hb >> 4) & 3) << 4)) - 32);
      wq[3][t] = float(int(nib(ql1, t, 1) | (((hb >> 6) & 3) << 4)) - 32);
    }
    const float s[4] = {d * float(sc[0]), d * float(sc[2]), d * float(sc[4]), d * float(sc[6])};
    const int64_t e = sb * 256 + 128 * n + l0;
#pragma unroll
    for (int b = 0; b < kMaxRows; ++b) {
      if (b >= nb) continue;
      float a = 0;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        a += s[k] * dot4(make_float4(wq[k][0], wq[k][1], wq[k][2], wq[k][3]), ld4(xr[b] + e + 32 * k));
      }
      acc[b] += a;
    }
  }
};

template <DType T>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(KArgs a) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t o = int64_t(blockIdx.x) * kWarps + warp;
  if (o >= a.n_out) return;  // whole warps leave; no block-level synchronization below
  for (int64_t g = blockIdx.y; g < a.n_groups; g += gridDim.y) {
    const int64_t r0 = g * a.rows_per_group;
    const int nb = int(a.n_rows - r0 < a.rows_per_group ? a.n_rows - r0 : a.rows_per_group);
    const int64_t m = a.mat_ids ? a.mat_ids[r0] : (a.n_mat > 1 ? r0 % a.n_mat : 0);
    if (m < 0) continue;
    const uint8_t* row = a.w + uint64_t(m) * a.mat_bytes + uint64_t(o) * a.row_bytes;
    const float* xr[kMaxRows];
#pragma unroll
    for (int b = 0; b < kMaxRows; ++b) xr[b] = a.x + ((r0 + min(b, nb - 1)) / a.x_row_div) * a.x_stride;
    float acc[kMaxRows] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 2
    for (int64_t u = lane; u < a.n_units; u += 32) Unit<T>::dot(row, u, xr, nb, acc);
#pragma unroll
    for (int b = 0; b < kMaxRows; ++b) {
      if (b >= nb) continue;
      const float s = warp_sum(acc[b]);
      if (lane == 0) a.y[(r0 + b) * a.y_stride + o] = s;
    }
  }
}

bool aligned(const void* p, uintptr_t n) { return reinterpret_cast<uintptr_t>(p) % n == 0; }

}  // namespace

bool gemv_supports(DType t) { return gpu_weight_type_supported(t); }

Status gemv(const GemvArgs& a, cudaStream_t stream) {
  if (!gemv_supports(a.type)) return unsupported("gemv: no GPU kernel for weights of type " + type_name(a.type));
  const auto row_bytes = dtype_row_bytes(a.type, uint64_t(a.n_in < 0 ? 0 : a.n_in));
  const int64_t unit_align = a.type == DType::kF32 ? 4 : (a.type == DType::kF16 || a.type == DType::kBF16) ? 8 : 1;
  if (a.n_in <= 0 || !row_bytes || a.n_in % unit_align != 0) {
    return invalid_argument("gemv: expected n_in to be a positive multiple of " +
                            std::to_string(std::max<int64_t>(unit_align, dtype_traits(a.type).block_elems)) +
                            " for " + type_name(a.type) + ", got " + std::to_string(a.n_in));
  }
  if (a.n_out < 0 || a.n_rows < 0 || a.n_mat < 1 || a.x_row_div < 1) {
    return invalid_argument("gemv: expected n_out, n_rows >= 0 and n_mat, x_row_div >= 1");
  }
  if (a.y_stride < a.n_out || a.x_stride < a.n_in) {
    return invalid_argument("gemv: expected x_stride >= n_in (" + std::to_string(a.n_in) + ") and y_stride >= n_out (" +
                            std::to_string(a.n_out) + "), got " + std::to_string(a.x_stride) + " and " +
                            std::to_string(a.y_stride));
  }
  if (!aligned(a.x, 16) || a.x_stride % 4 != 0) {
    return invalid_argument("gemv: expected x 16-byte aligned with a stride that is a multiple of 4 floats, got stride " +
                            std::to_string(a.x_stride));
  }
  const uint64_t mat_bytes = a.mat_bytes ? a.mat_bytes : uint64_t(a.n_out) * *row_bytes;
  const uintptr_t w_align = (a.type == DType::kQ8_0 || a.type == DType::kQ6_K) ? 2 : 16;
  if (!aligned(a.w, w_align) || mat_bytes % w_align != 0) {
    return invalid_argument("gemv: expected " + type_name(a.type) + " weights " + std::to_string(w_align) +
                            "-byte aligned");
  }
  if (a.n_out == 0 || a.n_rows == 0) return Status::ok();

  KArgs k{};
  k.w = static_cast<const uint8_t*>(a.w);
  k.row_bytes = *row_bytes;
  k.mat_bytes = mat_bytes;
  k.n_out = a.n_out;
  k.n_mat = a.n_mat;
  k.n_rows = a.n_rows;
  k.mat_ids = a.mat_ids;
  k.x_row_div = a.x_row_div;
  k.x = a.x;
  k.x_stride = a.x_stride;
  k.y = a.y;
  k.y_stride = a.y_stride;
  const bool shared = a.mat_ids == nullptr && a.n_mat == 1;
  k.rows_per_group = shared ? kMaxRows : 1;
  k.n_groups = ceil_div(a.n_rows, k.rows_per_group);
  const dim3 grid(unsigned(ceil_div(a.n_out, kWarps)), unsigned(std::min<int64_t>(k.n_groups, kMaxGridYZ)));
  if (grid.x > 0x7fffffffu) return invalid_argument("gemv: n_out too large");
  dispatch_weight_type(a.type, [&](auto tc) {
    constexpr DType T = decltype(tc)::value;
    k.n_units = a.n_in / Unit<T>::kElems;
    gemv_kernel<T><<<grid, kWarps * 32, 0, stream>>>(k);
  });
  return launch_status("gemv");
}

}  // namespace strata::gpu
