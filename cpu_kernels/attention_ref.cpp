// One attention head: scores, softmax, weighted sum of values.
#include "cpu_kernels/attention_ref.h"

#include "cpu_kernels/matmul_ref.h"
#include "cpu_kernels/softmax.h"

namespace strata {

void attention_head_ref(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                        int64_t d_k, int64_t d_v, int64_t n_kv, float scale, float* scores, float* out) {
  for (int64_t t = 0; t < n_kv; ++t) scores[t] = scale * dot_f32(q, k + t * k_stride, d_k);
  softmax_inplace(scores, n_kv);
  for (int64_t j = 0; j < d_v; ++j) out[j] = 0.0f;
  for (int64_t t = 0; t < n_kv; ++t) {
    const float p = scores[t];
    const float* vt = v + t * v_stride;
    for (int64_t j = 0; j < d_v; ++j) out[j] += p * vt[j];
  }
}

}  // namespace strata
