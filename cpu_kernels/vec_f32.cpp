// Picks the f32 vector ops of the active CPU path.
#include "cpu_kernels/vec_f32.h"

#include <vector>

#include "cpu_kernels/cpu_isa.h"
#include "cpu_kernels/matmul_ref.h"
#include "runtime/base/half.h"

namespace strata {
namespace {

void axpy_scalar(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void dots_scalar(const float* q, int64_t q_stride, int64_t n_q, const float* k, int64_t k_stride, int64_t n_k,
                 int64_t d, float scale, float* s, int64_t s_stride) {
  for (int64_t i = 0; i < n_q; ++i) {
    for (int64_t t = 0; t < n_k; ++t) s[i * s_stride + t] = scale * dot_f32(q + i * q_stride, k + t * k_stride, d);
  }
}

void axpys_scalar(const float* p, int64_t p_stride, int64_t n_q, const float* v, int64_t v_stride, int64_t n_v,
                  int64_t d, float* out, int64_t out_stride) {
  for (int64_t t = 0; t < n_v; ++t) {
    for (int64_t i = 0; i < n_q; ++i) axpy_scalar(p[i * p_stride + t], v + t * v_stride, out + i * out_stride, d);
  }
}

void to_f16_scalar(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(x[i]);
}

void from_f16_scalar(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(x[i]);
}

// The f16 forms: each row widened (into a buffer each thread keeps, as they
// run once per block of positions), then the f32 form on it.
std::vector<float>& widened_row(int64_t d) {
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(d));
  return row;
}

void dots_f16_scalar(const float* q, int64_t q_stride, int64_t n_q, const uint16_t* k, int64_t k_stride, int64_t n_k,
                     int64_t d, float scale, float* s, int64_t s_stride) {
  std::vector<float>& row = widened_row(d);
  for (int64_t t = 0; t < n_k; ++t) {
    from_f16_scalar(k + t * k_stride, row.data(), d);
    dots_scalar(q, q_stride, n_q, row.data(), d, 1, d, scale, s + t, s_stride);
  }
}

void axpys_f16_scalar(const float* p, int64_t p_stride, int64_t n_q, const uint16_t* v, int64_t v_stride, int64_t n_v,
                      int64_t d, float* out, int64_t out_stride) {
  std::vector<float>& row = widened_row(d);
  for (int64_t t = 0; t < n_v; ++t) {
    from_f16_scalar(v + t * v_stride, row.data(), d);
    axpys_scalar(p + t, p_stride, n_q, row.data(), d, 1, d, out, out_stride);
  }
}

namespace simd = vec_f32_detail;
constexpr VecF32Ops kScalar{dot_f32,         axpy_scalar,      dots_scalar,   axpys_scalar,
                            dots_f16_scalar, axpys_f16_scalar, to_f16_scalar, from_f16_scalar,
                            "scalar"};
constexpr VecF32Ops kAvx2{simd::dot_avx2,      simd::axpy_avx2,      simd::dots_avx2,   simd::axpys_avx2,
                          simd::dots_f16_avx2, simd::axpys_f16_avx2, simd::to_f16_avx2, simd::from_f16_avx2,
                          "avx2"};
// Conversions are not on the hot path: AVX-512 uses the AVX2 (F16C) ones.
constexpr VecF32Ops kAvx512{simd::dot_avx512,      simd::axpy_avx512,      simd::dots_avx512, simd::axpys_avx512,
                            simd::dots_f16_avx512, simd::axpys_f16_avx512, simd::to_f16_avx2, simd::from_f16_avx2,
                            "avx512"};

}  // namespace

const VecF32Ops& vec_f32_ops() {
  switch (active_cpu_isa()) {
    case CpuIsa::kScalar: return kScalar;
    case CpuIsa::kAvx2: return kAvx2;
    case CpuIsa::kAvx512:
    case CpuIsa::kAmx: return kAvx512;
  }
  return kScalar;
}

}  // namespace strata
