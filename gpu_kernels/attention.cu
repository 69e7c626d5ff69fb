// Attention kernels over the paged 16-bit KV cache.
//
// Decode (split KV): a block owns (token, KV head, up to 16 of its query
// heads, one part of the KV range) and walks that part in sub-chunks of 64
// positions: warps score positions against all the block's heads at once
// (each key row is read once per block), the running max/sum are updated
// per head, and each thread accumulates its value columns for every head.
// The unnormalized partial output and (max, sum) go to the workspace; a
// second kernel merges the parts: out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s.
//
// Prefill (tiled): a block owns 8 query tokens of one head; KV tiles of 32
// positions are staged in shared memory (rows padded by one word so lane i
// reading row i hits bank i), lane i scores position i, and the online
// softmax runs per token within a warp.
#include "gpu_kernels/attention.cuh"

#include <algorithm>
#include <cmath>
#include <string>

#include "gpu_kernels/gpu_util.cuh"

namespace strata::gpu {
namespace {

constexpr int kDecThreads = 128;
constexpr int kDecHeads = 16;  // query heads per decode block
constexpr int kDecSub = 64;    // positions per sub-chunk
constexpr int kDecCols = kAttnMaxDv / kDecThreads;

constexpr int kPreWarps = 4;
constexpr int kPreTokPerWarp = 2;
constexpr int kPreBQ = kPreWarps * kPreTokPerWarp;  // query tokens per prefill block
constexpr int kPreBK = 32;                           // KV positions per tile
constexpr int kPreCols = kAttnMaxDv / 32;

struct KvRef {
  const uint8_t* k;
  const uint8_t* v;  // null: values in the key rows
  int64_t block_stride;
  int32_t block_size, k_width, v_width, max_blocks;
  const int32_t* table;
};

template <typename T>
__device__ __forceinline__ const T* key_row(const KvRef& kv, int32_t seq, int32_t p) {
  const int64_t b = kv.table[int64_t(seq) * kv.max_blocks + p / kv.block_size];
  return reinterpret_cast<const T*>(kv.k) + b * kv.block_stride + int64_t(p % kv.block_size) * kv.k_width;
}
template <typename T>
__device__ __forceinline__ const T* value_row(const KvRef& kv, int32_t seq, int32_t p) {
  const int64_t b = kv.table[int64_t(seq) * kv.max_blocks + p / kv.block_size];
  return reinterpret_cast<const T*>(kv.v) + b * kv.block_stride + int64_t(p % kv.block_size) * kv.v_width;
}

KvRef kv_ref(const GpuKvLayer& kv) {
  return KvRef{static_cast<const uint8_t*>(kv.k), static_cast<const uint8_t*>(kv.v), kv.block_stride, kv.block_size,
               kv.k_width, kv.v_width, kv.max_blocks, kv.block_table};
}

// ---- KV store -------------------------------------------------------------

template <typename T>
__global__ void kv_store_kernel(KvRef kv, T* kbase, T* vbase, const int32_t* seq, const int32_t* pos, int64_t n_tokens,
                                const float* k, int64_t k_stride, const float* v, int64_t v_stride) {
  const int64_t per = int64_t(kv.k_width) + (vbase ? kv.v_width : 0);
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n_tokens * per;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = e / per, i = e % per;
    const int32_t p = pos[t];
    const int64_t b = kv.table[int64_t(seq[t]) * kv.max_blocks + p / kv.block_size];
    const int64_t r = b * kv.block_stride;
    if (i < kv.k_width) {
      kbase[r + int64_t(p % kv.block_size) * kv.k_width + i] = from_f32<T>(k[t * k_stride + i]);
    } else {
      const int64_t j = i - kv.k_width;
      vbase[r + int64_t(p % kv.block_size) * kv.v_width + j] = from_f32<T>(v[t * v_stride + j]);
    }
  }
}

// ---- decode ---------------------------------------------------------------

struct DecArgs {
  AttnArgs a;
  int32_t n_splits;
  int32_t tiles_per_group;  // head tiles per KV head
  float* ws_o;              // [token][split][head][d_v]
  float* ws_ml;             // [token][split][head][2]
};

template <typename T>
__global__ void __launch_bounds__(kDecThreads) attn_decode_kernel(KvRef kv, DecArgs d) {
  extern __shared__ float smem[];
  const AttnArgs& a = d.a;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int32_t group = a.n_head / a.n_head_kv;
  const int32_t g = blockIdx.x / d.tiles_per_group, tile = blockIdx.x % d.tiles_per_group;
  const int32_t h0 = g * group + tile * kDecHeads;
  const int nh = min(kDecHeads, group - tile * kDecHeads);
  const int32_t split = blockIdx.y;
  float* q_s = smem;                               // [kDecHeads][d_k]
  float* sc_s = q_s + kDecHeads * a.d_k;           // [kDecHeads][kDecSub]
  float* m_s = sc_s + kDecHeads * kDecSub;         // [kDecHeads]
  float* l_s = m_s + kDecHeads;
  float* corr_s = l_s + kDecHeads;
  const bool v_in_k = kv.v == nullptr;

  for (int64_t t = blockIdx.z; t < a.n_tokens; t += gridDim.z) {
    const int32_t seq = a.seq[t];
    const int32_t n_kv = a.pos[t] + 1;
    const int32_t chunk = (n_kv + d.n_splits - 1) / d.n_splits;
    const int32_t begin = split * chunk, end = min(n_kv, begin + chunk);
    float* o_part = d.ws_o + ((t * d.n_splits + split) * a.n_head) * int64_t(a.d_v);
    float* ml_part = d.ws_ml + ((t * d.n_splits + split) * a.n_head) * 2;

    __syncthreads();  // the previous token's readers of the shared arrays are done
    for (int i = tid; i < nh * a.d_k; i += kDecThreads) {
      const int hh = i / a.d_k, e = i % a.d_k;
      q_s[hh * a.d_k + e] = a.q[t * a.q_token_stride + int64_t(h0 + hh) * a.q_head_stride + e];
    }
    if (tid < kDecHeads) {
      m_s[tid] = -INFINITY;
      l_s[tid] = 0.0f;
    }
    float acc[kDecCols][kDecHeads];
#pragma unroll
    for (int c = 0; c < kDecCols; ++c)
#pragma unroll
      for (int hh = 0; hh < kDecHeads; ++hh) acc[c][hh] = 0.0f;
    __syncthreads();

    for (int32_t sub = begin; sub < end; sub += kDecSub) {
      const int n_sub = min(kDecSub, end - sub);
      // Scores: warp w takes positions w, w+4, ...; lanes split the key row.
      for (int i = warp; i < n_sub; i += kDecThreads / 32) {
        const uint32_t* kr = reinterpret_cast<const uint32_t*>(key_row<T>(kv, seq, sub + i) + int64_t(g) * a.d_k);
        float part[kDecHeads];
#pragma unroll
        for (int hh = 0; hh < kDecHeads; ++hh) part[hh] = 0.0f;
        for (int e2 = lane; e2 < a.d_k / 2; e2 += 32) {
          const float2 kf = unpack2<T>(kr[e2]);
#pragma unroll
          for (int hh = 0; hh < kDecHeads; ++hh) {
            if (hh < nh) {
              const float2 qf = reinterpret_cast<const float2*>(q_s + hh * a.d_k)[e2];
              part[hh] += kf.x * qf.x + kf.y * qf.y;
            }
          }
        }
#pragma unroll
        for (int hh = 0; hh < kDecHeads; ++hh) {
          if (hh < nh) {
            const float s = warp_sum(part[hh]);
            if (lane == 0) sc_s[hh * kDecSub + i] = s * a.scale;
          }
        }
      }
      __syncthreads();
      // Online softmax per head: warp w updates heads w, w+4, ...
      for (int hh = warp; hh < nh; hh += kDecThreads / 32) {
        float* s = sc_s + hh * kDecSub;
        float mx = -INFINITY;
        for (int i = lane; i < n_sub; i += 32) mx = fmaxf(mx, s[i]);
        mx = warp_max(mx);
        const float m_old = m_s[hh], m_new = fmaxf(m_old, mx);
        float sum = 0.0f;
        for (int i = lane; i < n_sub; i += 32) {
          const float p = expf(s[i] - m_new);
          s[i] = p;
          sum += p;
        }
        sum = warp_sum(sum);
        if (lane == 0) {
          const float corr = expf(m_old - m_new);  // 0 on the first sub-chunk (m_old = -inf)
          corr_s[hh] = corr;
          l_s[hh] = l_s[hh] * corr + sum;
          m_s[hh] = m_new;
        }
      }
      __syncthreads();
      // Values: thread tid owns columns tid + 128c for every head of the block.
#pragma unroll
      for (int c = 0; c < kDecCols; ++c) {
        const int j = tid + c * kDecThreads;
        if (j >= a.d_v) continue;
#pragma unroll
        for (int hh = 0; hh < kDecHeads; ++hh)
          if (hh < nh) acc[c][hh] *= corr_s[hh];
        for (int i = 0; i < n_sub; ++i) {
          const T* vr = v_in_k ? key_row<T>(kv, seq, sub + i) + int64_t(g) * a.d_k
                               : value_row<T>(kv, seq, sub + i) + int64_t(g) * a.d_v;
          const float vv = to_f32<T>(vr[j]);
#pragma unroll
          for (int hh = 0; hh < kDecHeads; ++hh)
            if (hh < nh) acc[c][hh] += sc_s[hh * kDecSub + i] * vv;
        }
      }
      __syncthreads();
    }

#pragma unroll
    for (int c = 0; c < kDecCols; ++c) {
      const int j = tid + c * kDecThreads;
      if (j >= a.d_v) continue;
#pragma unroll
      for (int hh = 0; hh < kDecHeads; ++hh)
        if (hh < nh) o_part[int64_t(h0 + hh) * a.d_v + j] = acc[c][hh];
    }
    if (tid < nh) {
      ml_part[(h0 + tid) * 2] = m_s[tid];
      ml_part[(h0 + tid) * 2 + 1] = l_s[tid];
    }
  }
}

__global__ void attn_merge_kernel(AttnArgs a, int32_t n_splits, const float* ws_o, const float* ws_ml) {
  const int32_t h = blockIdx.x;
  for (int64_t t = blockIdx.y; t < a.n_tokens; t += gridDim.y) {
    const float* ml = ws_ml + (t * n_splits * a.n_head) * 2;
    float mx = -INFINITY;
    for (int32_t s = 0; s < n_splits; ++s) {
      const float m = ml[(int64_t(s) * a.n_head + h) * 2], l = ml[(int64_t(s) * a.n_head + h) * 2 + 1];
      if (l > 0.0f) mx = fmaxf(mx, m);
    }
    float denom = 0.0f;
    for (int32_t s = 0; s < n_splits; ++s) {
      const float m = ml[(int64_t(s) * a.n_head + h) * 2], l = ml[(int64_t(s) * a.n_head + h) * 2 + 1];
      if (l > 0.0f) denom += l * expf(m - mx);
    }
    const float inv = 1.0f / denom;
    float* out = a.out + t * a.out_token_stride + int64_t(h) * a.out_head_stride;
    for (int j = threadIdx.x; j < a.d_v; j += blockDim.x) {
      float acc = 0.0f;
      for (int32_t s = 0; s < n_splits; ++s) {
        const float m = ml[(int64_t(s) * a.n_head + h) * 2], l = ml[(int64_t(s) * a.n_head + h) * 2 + 1];
        // Parts past the sequence's end wrote l = 0 and no output: skip them
        // rather than multiply their unwritten workspace by zero.
        if (l > 0.0f) acc += expf(m - mx) * ws_o[((t * n_splits + s) * a.n_head + h) * int64_t(a.d_v) + j];
      }
      out[j] = acc * inv;
    }
  }
}

// ---- prefill --------------------------------------------------------------

template <typename T>
__global__ void __launch_bounds__(kPreWarps * 32) attn_prefill_kernel(KvRef kv, AttnArgs a) {
  extern __shared__ float smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int32_t h = blockIdx.y;
  const int32_t g = h / (a.n_head / a.n_head_kv);
  const bool v_in_k = kv.v == nullptr;
  const int kw = (a.d_k + 2) / 2;  // key tile row stride in 32-bit words (padded)
  const int vw = a.d_v / 2;        // value tile row stride in words
  float* q_s = smem;                                                          // [kPreBQ][d_k]
  uint32_t* k_s = reinterpret_cast<uint32_t*>(q_s + kPreBQ * a.d_k);          // [kPreBK][kw]
  uint32_t* v_s = k_s + kPreBK * kw;                                          // [kPreBK][vw] (unused when v_in_k)
  __shared__ int32_t max_pos_s;

  const int64_t t0 = int64_t(blockIdx.x) * kPreBQ;
  const int n_tok = int(a.n_tokens - t0 < kPreBQ ? a.n_tokens - t0 : kPreBQ);
  const int32_t seq = a.seq[0];
  for (int i = tid; i < n_tok * a.d_k; i += blockDim.x) {
    const int tt = i / a.d_k, e = i % a.d_k;
    q_s[tt * a.d_k + e] = a.q[(t0 + tt) * a.q_token_stride + int64_t(h) * a.q_head_stride + e];
  }
  if (tid == 0) {
    int32_t mp = 0;
    for (int tt = 0; tt < n_tok; ++tt) mp = max(mp, a.pos[t0 + tt]);
    max_pos_s = mp;
  }
  int32_t my_pos[kPreTokPerWarp];
  bool my_valid[kPreTokPerWarp];
#pragma unroll
  for (int k = 0; k < kPreTokPerWarp; ++k) {
    const int tt = warp * kPreTokPerWarp + k;
    my_valid[k] = tt < n_tok;
    my_pos[k] = my_valid[k] ? a.pos[t0 + tt] : -1;
  }
  float m[kPreTokPerWarp], l[kPreTokPerWarp], acc[kPreTokPerWarp][kPreCols];
#pragma unroll
  for (int k = 0; k < kPreTokPerWarp; ++k) {
    m[k] = -INFINITY;
    l[k] = 0.0f;
#pragma unroll
    for (int c = 0; c < kPreCols; ++c) acc[k][c] = 0.0f;
  }
  __syncthreads();
  const int32_t kv_end = max_pos_s + 1;

  for (int32_t kb = 0; kb < kv_end; kb += kPreBK) {
    const int n_load = min(kPreBK, kv_end - kb);
    __syncthreads();  // the previous tile's readers are done
    for (int i = tid; i < n_load * (a.d_k / 2); i += blockDim.x) {
      const int r = i / (a.d_k / 2), w = i % (a.d_k / 2);
      k_s[r * kw + w] = reinterpret_cast<const uint32_t*>(key_row<T>(kv, seq, kb + r) + int64_t(g) * a.d_k)[w];
    }
    if (!v_in_k) {
      for (int i = tid; i < n_load * vw; i += blockDim.x) {
        const int r = i / vw, w = i % vw;
        v_s[r * vw + w] = reinterpret_cast<const uint32_t*>(value_row<T>(kv, seq, kb + r) + int64_t(g) * a.d_v)[w];
      }
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kPreTokPerWarp; ++k) {
      if (!my_valid[k] || kb > my_pos[k]) continue;  // warp-uniform
      const float* q = q_s + (warp * kPreTokPerWarp + k) * a.d_k;
      float s = -INFINITY;
      if (lane < n_load && kb + lane <= my_pos[k]) {
        const uint32_t* kr = k_s + lane * kw;
        float dot = 0.0f;
        for (int w = 0; w < a.d_k / 2; ++w) {
          const float2 kf = unpack2<T>(kr[w]);
          dot += kf.x * q[2 * w] + kf.y * q[2 * w + 1];
        }
        s = dot * a.scale;
      }
      const float m_new = fmaxf(m[k], warp_max(s));  // finite: position kb <= my_pos is visible
      const float p = expf(s - m_new);
      const float corr = expf(m[k] - m_new);
      l[k] = l[k] * corr + warp_sum(p);
      m[k] = m_new;
#pragma unroll
      for (int c = 0; c < kPreCols; ++c) acc[k][c] *= corr;
      for (int i = 0; i < n_load; ++i) {
        const float pi = __shfl_sync(0xffffffffu, p, i);
        const T* vr = v_in_k ? reinterpret_cast<const T*>(k_s + i * kw) : reinterpret_cast<const T*>(v_s + i * vw);
#pragma unroll
        for (int c = 0; c < kPreCols; ++c) {
          const int j = lane + 32 * c;
          if (j < a.d_v) acc[k][c] += pi * to_f32<T>(vr[j]);
        }
      }
    }
  }

#pragma unroll
  for (int k = 0; k < kPreTokPerWarp; ++k) {
    if (!my_valid[k]) continue;
    const int64_t t = t0 + warp * kPreTokPerWarp + k;
    float* out = a.out + t * a.out_token_stride + int64_t(h) * a.out_head_stride;
    const float inv = 1.0f / l[k];
#pragma unroll
    for (int c = 0; c < kPreCols; ++c) {
      const int j = lane + 32 * c;
      if (j < a.d_v) out[j] = acc[k][c] * inv;
    }
  }
}

Status check_kv(const char* op, const GpuKvLayer& kv) {
  if (kv.dtype != DType::kF16 && kv.dtype != DType::kBF16) {
    return unsupported(std::string(op) + ": expected an f16 or bf16 KV cache, got " + type_name(kv.dtype));
  }
  if (!kv.k || !kv.block_table || kv.block_size < 1 || kv.max_blocks < 1 || kv.k_width < 1 ||
      (kv.v && kv.v_width < 1)) {
    return invalid_argument(std::string(op) + ": incomplete KV layer (null buffer, block size or table width < 1)");
  }
  if (kv.k_width % 2 != 0 || kv.v_width % 2 != 0 || kv.block_stride % 2 != 0 ||
      kv.block_stride < int64_t(kv.block_size) * std::max(kv.k_width, kv.v_width)) {
    return invalid_argument(std::string(op) + ": expected even row widths and a block stride of at least block_size rows");
  }
  return Status::ok();
}

Status check_attn(const char* op, const GpuKvLayer& kv, const AttnArgs& a) {
  STRATA_RETURN_IF_ERROR(check_kv(op, kv));
  if (a.n_head < 1 || a.n_head_kv < 1 || a.n_head % a.n_head_kv != 0) {
    return invalid_argument(std::string(op) + ": expected n_head a positive multiple of n_head_kv, got " +
                            std::to_string(a.n_head) + " and " + std::to_string(a.n_head_kv));
  }
  if (a.d_k < 2 || a.d_k % 2 != 0 || a.d_k > kAttnMaxDk || a.d_v < 2 || a.d_v % 2 != 0 || a.d_v > kAttnMaxDv) {
    return invalid_argument(std::string(op) + ": expected even head sizes d_k <= " + std::to_string(kAttnMaxDk) +
                            ", d_v <= " + std::to_string(kAttnMaxDv) + ", got " + std::to_string(a.d_k) + " and " +
                            std::to_string(a.d_v));
  }
  const bool v_in_k = kv.v == nullptr;
  if (int64_t(a.n_head_kv) * a.d_k > kv.k_width || (!v_in_k && int64_t(a.n_head_kv) * a.d_v > kv.v_width) ||
      (v_in_k && a.d_v > a.d_k)) {
    return invalid_argument(std::string(op) + ": head sizes exceed the KV rows (k_width " +
                            std::to_string(kv.k_width) + ", v_width " + std::to_string(kv.v_width) + ")");
  }
  if (!a.q || !a.out || !a.seq || !a.pos || a.n_tokens < 0) {
    return invalid_argument(std::string(op) + ": null q, out, seq or pos");
  }
  return Status::ok();
}

template <typename F>
void dispatch_kv(DType t, F&& f) {
  if (t == DType::kF16) {
    f(__half{});
  } else {
    f(__nv_bfloat16{});
  }
}

}  // namespace

Status kv_store(const GpuKvLayer& kv, const int32_t* seq, const int32_t* pos, int64_t n_tokens, const float* k,
                int64_t k_stride, const float* v, int64_t v_stride, cudaStream_t stream) {
  STRATA_RETURN_IF_ERROR(check_kv("kv_store", kv));
  if (n_tokens < 0 || k_stride < kv.k_width || (kv.v && (!v || v_stride < kv.v_width))) {
    return invalid_argument("kv_store: expected n_tokens >= 0, row strides >= the KV widths and V rows for a V cache");
  }
  if (n_tokens == 0) return Status::ok();
  const int64_t total = n_tokens * (int64_t(kv.k_width) + (kv.v ? kv.v_width : 0));
  const int grid = int(std::min<int64_t>(ceil_div(total, 256), 8192));
  dispatch_kv(kv.dtype, [&](auto tag) {
    using T = decltype(tag);
    kv_store_kernel<T><<<grid, 256, 0, stream>>>(kv_ref(kv), static_cast<T*>(kv.k), static_cast<T*>(kv.v), seq, pos,
                                                 n_tokens, k, k_stride, v, v_stride);
  });
  return launch_status("kv_store");
}

size_t attention_decode_workspace_floats(const AttnArgs& a, int32_t n_splits) {
  return size_t(std::max<int64_t>(a.n_tokens, 0)) * size_t(std::max(n_splits, 1)) * size_t(std::max(a.n_head, 0)) *
         size_t(std::max(a.d_v, 0) + 2);
}

int32_t attention_decode_splits(const AttnArgs& a, int32_t max_ctx, int32_t sm_count) {
  const int64_t group = a.n_head_kv > 0 ? a.n_head / a.n_head_kv : 1;
  const int64_t blocks = std::max<int64_t>(1, a.n_head_kv * ceil_div(group, kDecHeads) * std::max<int64_t>(a.n_tokens, 1));
  const int64_t want = ceil_div(2 * int64_t(std::max(sm_count, 1)), blocks);  // two waves' worth
  const int64_t by_len = std::max<int64_t>(1, ceil_div(std::max(max_ctx, 1), 256));
  return int32_t(std::clamp<int64_t>(std::min(want, by_len), 1, 256));
}

Status attention_decode(const GpuKvLayer& kv, const AttnArgs& a, int32_t n_splits, float* workspace,
                        size_t workspace_floats, cudaStream_t stream) {
  STRATA_RETURN_IF_ERROR(check_attn("attention_decode", kv, a));
  if (n_splits < 1 || n_splits > 65535) {
    return invalid_argument("attention_decode: expected 1..65535 splits, got " + std::to_string(n_splits));
  }
  const size_t need = attention_decode_workspace_floats(a, n_splits);
  if (!workspace || workspace_floats < need) {
    return invalid_argument("attention_decode: workspace of " + std::to_string(workspace_floats) +
                            " floats, expected at least " + std::to_string(need));
  }
  if (a.n_tokens == 0) return Status::ok();
  DecArgs d{};
  d.a = a;
  d.n_splits = n_splits;
  const int32_t group = a.n_head / a.n_head_kv;
  d.tiles_per_group = int32_t(ceil_div(group, kDecHeads));
  d.ws_o = workspace;
  d.ws_ml = workspace + size_t(a.n_tokens) * n_splits * a.n_head * a.d_v;
  const dim3 grid(unsigned(a.n_head_kv * d.tiles_per_group), unsigned(n_splits),
                  unsigned(std::min<int64_t>(a.n_tokens, kMaxGridYZ)));
  const size_t smem = (size_t(kDecHeads) * a.d_k + size_t(kDecHeads) * kDecSub + 3 * kDecHeads) * sizeof(float);
  dispatch_kv(kv.dtype, [&](auto tag) {
    attn_decode_kernel<decltype(tag)><<<grid, kDecThreads, smem, stream>>>(kv_ref(kv), d);
  });
  STRATA_RETURN_IF_ERROR(launch_status("attention_decode"));
  const dim3 mgrid(unsigned(a.n_head), unsigned(std::min<int64_t>(a.n_tokens, kMaxGridYZ)));
  attn_merge_kernel<<<mgrid, 128, 0, stream>>>(a, n_splits, d.ws_o, d.ws_ml);
  return launch_status("attention_decode (merge)");
}

Status attention_prefill(const GpuKvLayer& kv, const AttnArgs& a, cudaStream_t stream) {
  STRATA_RETURN_IF_ERROR(check_attn("attention_prefill", kv, a));
  if (a.n_tokens == 0) return Status::ok();
  const size_t kw = size_t(a.d_k + 2) / 2, vw = kv.v ? size_t(a.d_v) / 2 : 0;
  const size_t smem = size_t(kPreBQ) * a.d_k * sizeof(float) + size_t(kPreBK) * (kw + vw) * sizeof(uint32_t);
  const dim3 grid(unsigned(ceil_div(a.n_tokens, kPreBQ)), unsigned(a.n_head));
  Status st;
  dispatch_kv(kv.dtype, [&](auto tag) {
    auto* kernel = attn_prefill_kernel<decltype(tag)>;
    // Above 48 KiB of dynamic shared memory a kernel must opt in (MLA's
    // 576-wide key tiles need ~55 KiB; every target arch allows >= 99 KiB).
    if (smem > 48 * 1024) {
      (void)(st = cuda_status(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
                              "attention_prefill: shared memory opt-in"));
      if (!st.is_ok()) return;
    }
    kernel<<<grid, kPreWarps * 32, smem, stream>>>(kv_ref(kv), a);
  });
  STRATA_RETURN_IF_ERROR(st);
  return launch_status("attention_prefill");
}

}  // namespace strata::gpu
