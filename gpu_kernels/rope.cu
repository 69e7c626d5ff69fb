// RoPE with YaRN: one thread per (token, head, rotated pair). The per-model
// constants (frequency ratio, YaRN correction range, magnitude scale) are
// computed once on the host with the same float operations as
// cpu_kernels/rope.cpp, so both sides start from identical numbers.
#include "gpu_kernels/rope.cuh"

#include <algorithm>
#include <cmath>
#include <string>

#include "gpu_kernels/gpu_util.cuh"

namespace strata::gpu {
namespace {

struct RopeConsts {
  int32_t n_dims;
  bool neox;
  float theta_scale;  // freq_base^(-2/n_dims)
  float freq_scale;
  float ext_factor;
  float mscale;       // attn_factor, times YaRN's 1 + 0.1 ln(1/freq_scale) when ext_factor != 0
  float corr0, corr1; // YaRN correction range in pair units
};

float corr_dim(int32_t n_dims, int32_t n_ctx_orig, float n_rot, float base) {
  return static_cast<float>(n_dims) *
         std::log(static_cast<float>(n_ctx_orig) / (n_rot * 2.0f * static_cast<float>(M_PI))) / (2.0f * std::log(base));
}

__global__ void rope_kernel(RopeConsts c, const float* __restrict__ freq_factors, const int32_t* __restrict__ pos,
                            float* x, int64_t n_tokens, int64_t row_stride, int64_t offset, int64_t n_heads,
                            int64_t head_stride) {
  const int32_t half = c.n_dims / 2;
  const int64_t total = n_tokens * n_heads * half;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int32_t i = int32_t(e % half);
    const int64_t h = (e / half) % n_heads, t = e / (int64_t(half) * n_heads);
    // theta_i = pos * theta_scale^i as the CPU's running product (not powf).
    float theta = float(pos[t]);
    for (int32_t k = 0; k < i; ++k) theta = __fmul_rn(theta, c.theta_scale);
    const float ff = freq_factors ? freq_factors[i] : 1.0f;
    const float theta_extrap = __fdiv_rn(theta, ff);
    const float theta_interp = __fmul_rn(c.freq_scale, theta_extrap);
    float th = theta_interp;
    if (c.ext_factor != 0.0f) {
      const float y = __fdiv_rn(__fsub_rn(float(i), c.corr0), fmaxf(0.001f, __fsub_rn(c.corr1, c.corr0)));
      const float ramp = 1.0f - fminf(1.0f, fmaxf(0.0f, y));
      const float mix = __fmul_rn(ramp, c.ext_factor);
      th = __fadd_rn(__fmul_rn(theta_interp, __fsub_rn(1.0f, mix)), __fmul_rn(theta_extrap, mix));
    }
    const float cs = __fmul_rn(cosf(th), c.mscale), sn = __fmul_rn(sinf(th), c.mscale);
    float* v = x + t * row_stride + offset + h * head_stride;
    const int32_t a = c.neox ? i : 2 * i, b = c.neox ? i + half : 2 * i + 1;
    const float x0 = v[a], x1 = v[b];
    v[a] = __fsub_rn(__fmul_rn(x0, cs), __fmul_rn(x1, sn));
    v[b] = __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, cs));
  }
}

}  // namespace

Status rope_rows(const GpuRopeParams& p, const int32_t* pos, float* x, int64_t n_tokens, int64_t row_stride,
                 int64_t offset, int64_t n_heads, int64_t head_stride, cudaStream_t stream) {
  if (p.n_dims < 2 || p.n_dims % 2 != 0 || head_stride < p.n_dims || n_tokens < 0 || n_heads < 0 || offset < 0) {
    return invalid_argument("rope_rows: expected an even n_dims >= 2 <= head_stride and non-negative counts, got n_dims=" +
                            std::to_string(p.n_dims) + " head_stride=" + std::to_string(head_stride));
  }
  if (p.ext_factor != 0.0f && p.n_ctx_orig <= 0) {
    return invalid_argument("rope_rows: YaRN needs the original context length, got n_ctx_orig=" +
                            std::to_string(p.n_ctx_orig));
  }
  if (n_tokens == 0 || n_heads == 0) return Status::ok();
  RopeConsts c{};
  c.n_dims = p.n_dims;
  c.neox = p.neox;
  c.theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_dims));
  c.freq_scale = p.freq_scale;
  c.ext_factor = p.ext_factor;
  c.mscale = p.attn_factor;
  if (p.ext_factor != 0.0f) {
    const float start = std::floor(corr_dim(p.n_dims, p.n_ctx_orig, p.beta_fast, p.freq_base));
    const float end = std::ceil(corr_dim(p.n_dims, p.n_ctx_orig, p.beta_slow, p.freq_base));
    c.corr0 = std::max(0.0f, start);
    c.corr1 = std::min(static_cast<float>(p.n_dims - 1), end);
    c.mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);
  }
  const int64_t total = n_tokens * n_heads * (p.n_dims / 2);
  const int threads = 128;
  const int grid = int(std::min<int64_t>(ceil_div(total, threads), 8192));
  rope_kernel<<<grid, threads, 0, stream>>>(c, p.freq_factors, pos, x, n_tokens, row_stride, offset, n_heads,
                                            head_stride);
  return launch_status("rope_rows");
}

}  // namespace strata::gpu
