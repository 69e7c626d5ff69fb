// Picks the f32 vector ops of the active CPU path.
#include "cpu_kernels/vec_f32.h"

#include "cpu_kernels/cpu_isa.h"
#include "cpu_kernels/matmul_ref.h"

namespace strata {
namespace {

void axpy_scalar(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

constexpr VecF32Ops kScalar{dot_f32, axpy_scalar, "scalar"};
constexpr VecF32Ops kAvx2{vec_f32_detail::dot_avx2, vec_f32_detail::axpy_avx2, "avx2"};
constexpr VecF32Ops kAvx512{vec_f32_detail::dot_avx512, vec_f32_detail::axpy_avx512, "avx512"};

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
