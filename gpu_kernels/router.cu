// Routing: one warp per row. The order-sensitive steps (group scores, group
// choice, the running sum of chosen weights) run sequentially in one lane in
// the CPU's order, so they round identically; the arg-max of top-k is a warp
// reduction whose tie rule (lower id) gives the CPU's first-maximum choice.
#include "gpu_kernels/router.cuh"

#include <algorithm>
#include <cmath>
#include <string>

#include "gpu_kernels/gpu_util.cuh"

namespace strata::gpu {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxExperts = 1024;
constexpr int kMaxGroups = 32;

// Per warp: probs[n], sel[n] (floats), taken[n] (bytes), rounded up to 16 bytes.
__host__ __device__ inline size_t smem_per_warp(int32_t n) { return (size_t(n) * (2 * sizeof(float) + 1) + 15) & ~size_t(15); }

__global__ void route_kernel(GpuRouteConfig c, const float* __restrict__ logits, int64_t logits_stride, int64_t n_rows,
                             const float* __restrict__ bias, int32_t* __restrict__ ids, float* __restrict__ weights) {
  extern __shared__ float smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int32_t n = c.n_expert;
  float* probs = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(smem) + warp * smem_per_warp(n));
  float* sel = probs + n;
  uint8_t* taken = reinterpret_cast<uint8_t*>(sel + n);
  __shared__ float gscore_s[kWarps][kMaxGroups];
  __shared__ uint8_t keep_s[kWarps][kMaxGroups];

  for (int64_t r = int64_t(blockIdx.x) * kWarps + warp; r < n_rows; r += int64_t(gridDim.x) * kWarps) {
    const float* lg = logits + r * logits_stride;
    if (c.sigmoid) {
      for (int i = lane; i < n; i += 32) probs[i] = 1.0f / (1.0f + expf(-lg[i]));
    } else {
      float mx = -INFINITY;
      for (int i = lane; i < n; i += 32) mx = fmaxf(mx, lg[i]);
      mx = warp_max(mx);
      double sum = 0.0;
      for (int i = lane; i < n; i += 32) {
        const float e = expf(lg[i] - mx);
        probs[i] = e;
        sum += e;
      }
      sum = warp_sum_d(sum);
      const float inv = float(1.0 / sum);
      for (int i = lane; i < n; i += 32) probs[i] = __fmul_rn(probs[i], inv);
    }
    for (int i = lane; i < n; i += 32) {
      sel[i] = bias ? __fadd_rn(probs[i], bias[i]) : probs[i];
      taken[i] = 0;
    }
    __syncwarp();

    if (c.n_groups > 1 && c.n_group_used < c.n_groups) {
      const int32_t per = n / c.n_groups;
      if (lane < c.n_groups) {
        const float* s = sel + lane * per;
        float a = -INFINITY, b = -INFINITY;
        for (int32_t i = 0; i < per; ++i) {
          if (s[i] > a) {
            b = a;
            a = s[i];
          } else if (s[i] > b) {
            b = s[i];
          }
        }
        gscore_s[warp][lane] = (!c.group_top2 || per < 2) ? a : __fadd_rn(a, b);
        keep_s[warp][lane] = 0;
      }
      __syncwarp();
      if (lane == 0) {
        for (int32_t k = 0; k < c.n_group_used; ++k) {
          int32_t best = -1;
          for (int32_t g = 0; g < c.n_groups; ++g) {
            if (keep_s[warp][g]) continue;
            if (best < 0 || gscore_s[warp][g] > gscore_s[warp][best]) best = g;
          }
          keep_s[warp][best] = 1;
        }
      }
      __syncwarp();
      for (int i = lane; i < n; i += 32) {
        if (!keep_s[warp][i / per]) sel[i] = -INFINITY;
      }
      __syncwarp();
    }

    float sum = 0.0f;
    int32_t* out_ids = ids + r * c.n_used;
    float* out_w = weights + r * c.n_used;
    for (int32_t k = 0; k < c.n_used; ++k) {
      // This lane's best untaken candidate (first maximum in id order)...
      float bv = -INFINITY;
      int32_t bi = INT32_MAX;
      for (int i = lane; i < n; i += 32) {
        if (taken[i]) continue;
        if (bi == INT32_MAX || sel[i] > bv) {
          bv = sel[i];
          bi = i;
        }
      }
      // ...then the warp's: larger score, or equal score and lower id.
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
        const bool other_valid = oi != INT32_MAX, mine_valid = bi != INT32_MAX;
        if (other_valid && (!mine_valid || ov > bv || (ov == bv && oi < bi))) {
          bv = ov;
          bi = oi;
        }
      }
      if (lane == 0) {
        taken[bi] = 1;
        out_ids[k] = bi;
        out_w[k] = probs[bi];
        sum = __fadd_rn(sum, probs[bi]);
      }
      __syncwarp();
    }
    if (lane == 0) {
      if (c.norm_w) {
        sum = fmaxf(sum, 6.103515625e-5f);
        for (int32_t k = 0; k < c.n_used; ++k) out_w[k] = __fdiv_rn(out_w[k], sum);
      }
      for (int32_t k = 0; k < c.n_used; ++k) out_w[k] = __fmul_rn(out_w[k], c.w_scale);
    }
    __syncwarp();
  }
}

}  // namespace

Status moe_route_rows(const GpuRouteConfig& c, const float* logits, int64_t logits_stride, int64_t n_rows,
                      const float* bias, int32_t* ids, float* weights, cudaStream_t stream) {
  if (c.n_expert < 1 || c.n_expert > kMaxExperts) {
    return invalid_argument("moe_route_rows: expected 1..1024 experts, got " + std::to_string(c.n_expert));
  }
  if (c.n_used < 1 || c.n_used > c.n_expert) {
    return invalid_argument("moe_route_rows: expected 1.." + std::to_string(c.n_expert) + " experts used, got " +
                            std::to_string(c.n_used));
  }
  if (c.n_groups > 1 && c.n_group_used < c.n_groups) {
    if (c.n_groups > kMaxGroups || c.n_expert % c.n_groups != 0 || c.n_group_used < 1) {
      return invalid_argument("moe_route_rows: expected at most 32 groups dividing " + std::to_string(c.n_expert) +
                              " experts and >= 1 used, got " + std::to_string(c.n_groups) + " groups, " +
                              std::to_string(c.n_group_used) + " used");
    }
  }
  if (n_rows < 0 || logits_stride < c.n_expert) {
    return invalid_argument("moe_route_rows: expected n_rows >= 0 and logits_stride >= n_expert");
  }
  if (n_rows == 0) return Status::ok();
  const size_t smem = kWarps * smem_per_warp(c.n_expert);
  const int grid = int(std::min<int64_t>(ceil_div(n_rows, kWarps), 4096));
  route_kernel<<<grid, kWarps * 32, smem, stream>>>(c, logits, logits_stride, n_rows, bias, ids, weights);
  return launch_status("moe_route_rows");
}

}  // namespace strata::gpu
