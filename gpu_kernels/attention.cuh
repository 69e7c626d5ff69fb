// Attention on the GPU over a paged f16/bf16 KV cache: storing K/V rows,
// decode (flash-decoding: the KV length split over blocks, partial softmax
// results merged by a second kernel) and prefill (query tiles against KV
// tiles staged in shared memory, causal). GQA heads share their KV head;
// MLA runs as one latent KV head with values read from the key rows.
// Host launchers with an explicit stream; usable from C++.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace strata::gpu {

// One layer of a paged KV cache in device memory. Position p of sequence s
// lives in block b = block_table[s * max_blocks + p / block_size], row
// p % block_size: its key row at k + b * block_stride + (p % block_size) * k_width
// elements, its value row likewise from v with v_width. v null: values are
// read from the key rows (MLA's latent cache), v_width 0.
struct GpuKvLayer {
  DType dtype = DType::kF16;  // kF16 or kBF16
  void* k = nullptr;
  void* v = nullptr;
  int64_t block_stride = 0;   // elements, for k and v alike
  int32_t block_size = 16;
  int32_t k_width = 0;
  int32_t v_width = 0;
  const int32_t* block_table = nullptr;  // device
  int32_t max_blocks = 0;
};

// Rounds and writes each token's K (and V) row into the cache at (seq[t], pos[t]):
//   k: n_tokens rows of kv.k_width floats, k_stride apart; v likewise with
//   kv.v_width (ignored when kv.v is null). seq, pos: device int32.
// Preconditions: the blocks of those positions are in the table.
Status kv_store(const GpuKvLayer& kv, const int32_t* seq, const int32_t* pos, int64_t n_tokens, const float* k,
                int64_t k_stride, const float* v, int64_t v_stride, cudaStream_t stream);

// What to attend: token t (< n_tokens) of sequence seq[t] at position pos[t]
// attends over positions 0..pos[t] of its sequence (causal).
//   q of head h: q + t*q_token_stride + h*q_head_stride, d_k floats.
//   out of head h: out + t*out_token_stride + h*out_head_stride, d_v floats.
//   Head h uses KV head g = h / (n_head / n_head_kv): key elements
//   [g*d_k, (g+1)*d_k) of the key row; values [g*d_v, (g+1)*d_v) of the
//   value row, or [g*d_k, g*d_k + d_v) of the key row when kv.v is null.
// out = softmax(scale * q.k) . v per head, f32 throughout (16-bit cache
// elements widened on load).
struct AttnArgs {
  const float* q = nullptr;
  int64_t q_token_stride = 0, q_head_stride = 0;
  float* out = nullptr;
  int64_t out_token_stride = 0, out_head_stride = 0;
  int32_t n_head = 0, n_head_kv = 0;
  int32_t d_k = 0, d_v = 0;
  float scale = 1.0f;
  const int32_t* seq = nullptr;  // device, n_tokens
  const int32_t* pos = nullptr;  // device, n_tokens
  int64_t n_tokens = 0;
};

// Limits of these kernels (head sizes of every supported architecture fit).
inline constexpr int32_t kAttnMaxDk = 576;  // DeepSeek MLA: kv_lora 512 + rope 64
inline constexpr int32_t kAttnMaxDv = 512;

// Decode: each token's KV range is cut into n_splits parts computed by
// separate blocks, then merged. n_splits is fixed by the caller (not derived
// from the current lengths) so a captured CUDA graph stays valid as
// sequences grow; parts past a sequence's length exit at once.
// workspace: attention_decode_workspace_floats(a, n_splits) floats.
size_t attention_decode_workspace_floats(const AttnArgs& a, int32_t n_splits);
Status attention_decode(const GpuKvLayer& kv, const AttnArgs& a, int32_t n_splits, float* workspace,
                        size_t workspace_floats, cudaStream_t stream);

// A good n_splits for decode: enough blocks to fill `sm_count` SMs at the
// longest context the cache holds, at least one part per 256 positions.
int32_t attention_decode_splits(const AttnArgs& a, int32_t max_ctx, int32_t sm_count);

// Prefill: tiles of 8 query tokens against KV tiles of 32 positions. All
// tokens of a call belong to the sequence seq[0] (one prompt); their own
// rows must already be stored (kv_store) so each sees itself and earlier ones.
Status attention_prefill(const GpuKvLayer& kv, const AttnArgs& a, cudaStream_t stream);

}  // namespace strata::gpu
