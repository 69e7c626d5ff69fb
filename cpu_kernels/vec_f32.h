// f32 vector primitives for attention over the KV cache, on the CPU path
// chosen at run time (cpu_isa.h): AVX-512, AVX2+FMA, or scalar. The SIMD
// paths sum in lanes and several accumulators (a different rounding than
// the scalar reference, within f32 accuracy); a given path gives the same
// result whatever the batch or thread count.
#pragma once

#include <cstdint>

namespace strata {

struct VecF32Ops {
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float alpha, const float* x, float* y, int64_t n);  // y += alpha x
  const char* name;
};

// The ops of the active CPU path (active_cpu_isa()); resolve once per loop.
const VecF32Ops& vec_f32_ops();

namespace vec_f32_detail {
float dot_avx2(const float* a, const float* b, int64_t n);
void axpy_avx2(float alpha, const float* x, float* y, int64_t n);
float dot_avx512(const float* a, const float* b, int64_t n);
void axpy_avx512(float alpha, const float* x, float* y, int64_t n);
}  // namespace vec_f32_detail

}  // namespace strata
