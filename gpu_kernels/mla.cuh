// Multi-head latent attention (deepseek2) on the GPU in the absorbed form,
// the math of runtime/layers/attention_mla.cpp: queries move into latent
// space through attn_k_b, all heads attend over the one latent cache row per
// position ([normed latent | roped k_pe], values = the latent part), and
// attn_v_b lifts each head's latent output to v_head dims. Host launchers
// with an explicit stream; usable from C++.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "gpu_kernels/attention.cuh"
#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace strata::gpu {

struct GpuMlaLayer {
  int32_t n_head = 0;
  int32_t kv_lora = 0;  // L
  int32_t n_nope = 0;   // N
  int32_t n_rope = 0;   // R
  int32_t v_head = 0;   // V
  float kq_scale = 1.0f;
  // attn_k_b {N, L, H}: per head h an L x N matrix (q_nope -> latent);
  // attn_v_b {L, V, H}: per head a V x L matrix (latent -> v). Device, GGUF layout.
  DType k_b_type = DType::kF32;
  const void* k_b = nullptr;
  DType v_b_type = DType::kF32;
  const void* v_b = nullptr;
};

// Floats of workspace mla_attention needs for n_tokens tokens.
size_t mla_workspace_floats(const GpuMlaLayer& m, int64_t n_tokens, int32_t n_splits);

// out[t][h*V + j] = attention output of head h for token t (before attn_output).
//   q: n_tokens rows of H*(N+R) floats, the query after RoPE on its q_pe parts.
//   kv: the latent cache layer (k_width >= L+R, v null), rows of this call's
//       tokens already stored with kv_store (latent normed, k_pe roped).
//   seq, pos: device int32 per token.  prefill: tiled kernel (all tokens of
//   one sequence) instead of split-KV decode with n_splits parts.
// Errors: head sizes beyond the attention kernels' limits, unsupported types.
Status mla_attention(const GpuMlaLayer& m, const GpuKvLayer& kv, const float* q, const int32_t* seq,
                     const int32_t* pos, int64_t n_tokens, bool prefill, int32_t n_splits, float* out,
                     float* workspace, size_t workspace_floats, cudaStream_t stream);

}  // namespace strata::gpu
