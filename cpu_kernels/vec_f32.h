// f32 vector primitives for attention over the KV cache, on the CPU path
// chosen at run time (cpu_isa.h): AVX-512, AVX2+FMA(+F16C), or scalar. The
// SIMD paths sum in lanes and several accumulators (a different rounding
// than the scalar reference, within f32 accuracy); a given path gives the
// same result whatever the batch or thread count. Key and value rows may be
// f16 (binary16 bits): the _f16 forms widen each entry to f32 and then do
// exactly what the f32 form does, so they give the bits the f32 form gives
// on the widened rows.
#pragma once

#include <cstdint>

namespace strata {

struct VecF32Ops {
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float alpha, const float* x, float* y, int64_t n);  // y += alpha x
  // Attention scores of n_q query rows against n_k key rows, d floats each:
  //   s[i * s_stride + t] = scale * (q_i . k_t),  q_i = q + i * q_stride,  k_t = k + t * k_stride.
  // Each (i, t) is summed in an order that depends on d only, so a row's
  // scores are the same whichever rows share the call.
  void (*dots)(const float* q, int64_t q_stride, int64_t n_q, const float* k, int64_t k_stride, int64_t n_k,
               int64_t d, float scale, float* s, int64_t s_stride);
  // Weighted sums of n_v value rows into n_q output rows, d floats each:
  //   out_i += sum_t p_i[t] * v_t,  p_i = p + i * p_stride,  v_t = v + t * v_stride,  out_i = out + i * out_stride,
  // term by term in t order with the rounding of axpy(p_i[t], v_t, out_i, d).
  void (*axpys)(const float* p, int64_t p_stride, int64_t n_q, const float* v, int64_t v_stride, int64_t n_v,
                int64_t d, float* out, int64_t out_stride);
  void (*dots_f16)(const float* q, int64_t q_stride, int64_t n_q, const uint16_t* k, int64_t k_stride, int64_t n_k,
                   int64_t d, float scale, float* s, int64_t s_stride);
  void (*axpys_f16)(const float* p, int64_t p_stride, int64_t n_q, const uint16_t* v, int64_t v_stride, int64_t n_v,
                    int64_t d, float* out, int64_t out_stride);
  // n floats to binary16, rounded to nearest even (the bits f32_to_f16 of
  // runtime/base/half.h gives, NaN payloads aside), and back (exact).
  void (*to_f16)(const float* x, uint16_t* y, int64_t n);
  void (*from_f16)(const uint16_t* x, float* y, int64_t n);
  const char* name;
};

// The ops of the active CPU path (active_cpu_isa()); resolve once per loop.
const VecF32Ops& vec_f32_ops();

namespace vec_f32_detail {
float dot_avx2(const float* a, const float* b, int64_t n);
void axpy_avx2(float alpha, const float* x, float* y, int64_t n);
void dots_avx2(const float* q, int64_t q_stride, int64_t n_q, const float* k, int64_t k_stride, int64_t n_k, int64_t d,
               float scale, float* s, int64_t s_stride);
void axpys_avx2(const float* p, int64_t p_stride, int64_t n_q, const float* v, int64_t v_stride, int64_t n_v, int64_t d,
                float* out, int64_t out_stride);
void dots_f16_avx2(const float* q, int64_t q_stride, int64_t n_q, const uint16_t* k, int64_t k_stride, int64_t n_k,
                   int64_t d, float scale, float* s, int64_t s_stride);
void axpys_f16_avx2(const float* p, int64_t p_stride, int64_t n_q, const uint16_t* v, int64_t v_stride, int64_t n_v,
                    int64_t d, float* out, int64_t out_stride);
void to_f16_avx2(const float* x, uint16_t* y, int64_t n);
void from_f16_avx2(const uint16_t* x, float* y, int64_t n);
float dot_avx512(const float* a, const float* b, int64_t n);
void axpy_avx512(float alpha, const float* x, float* y, int64_t n);
void dots_avx512(const float* q, int64_t q_stride, int64_t n_q, const float* k, int64_t k_stride, int64_t n_k,
                 int64_t d, float scale, float* s, int64_t s_stride);
void axpys_avx512(const float* p, int64_t p_stride, int64_t n_q, const float* v, int64_t v_stride, int64_t n_v,
                  int64_t d, float* out, int64_t out_stride);
void dots_f16_avx512(const float* q, int64_t q_stride, int64_t n_q, const uint16_t* k, int64_t k_stride, int64_t n_k,
                     int64_t d, float scale, float* s, int64_t s_stride);
void axpys_f16_avx512(const float* p, int64_t p_stride, int64_t n_q, const uint16_t* v, int64_t v_stride,
                      int64_t n_v, int64_t d, float* out, int64_t out_stride);
}  // namespace vec_f32_detail

}  // namespace strata
