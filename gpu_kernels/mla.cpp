// MLA absorbed attention as a fixed sequence of launches: per-head GEMV into
// latent space, q_pe copied beside it, one-KV-head attention over the latent
// cache, per-head GEMV out of latent space.
#include "gpu_kernels/mla.cuh"

#include <string>

#include "gpu_kernels/elementwise.cuh"
#include "gpu_kernels/gemv.cuh"

namespace strata::gpu {
namespace {

AttnArgs latent_attn_args(const GpuMlaLayer& m, const float* qa, float* ol, const int32_t* seq, const int32_t* pos,
                          int64_t n_tokens) {
  const int64_t H = m.n_head, L = m.kv_lora, kw = L + m.n_rope;
  AttnArgs a;
  a.q = qa;
  a.q_token_stride = H * kw;
  a.q_head_stride = kw;
  a.out = ol;
  a.out_token_stride = H * L;
  a.out_head_stride = L;
  a.n_head = m.n_head;
  a.n_head_kv = 1;
  a.d_k = int32_t(kw);
  a.d_v = m.kv_lora;
  a.scale = m.kq_scale;
  a.seq = seq;
  a.pos = pos;
  a.n_tokens = n_tokens;
  return a;
}

// Floats of qa, rounded up to keep the next buffer 16-byte aligned.
size_t round4(size_t n) { return (n + 3) & ~size_t(3); }

}  // namespace

size_t mla_workspace_floats(const GpuMlaLayer& m, int64_t n_tokens, int32_t n_splits) {
  const size_t T = size_t(n_tokens), H = size_t(m.n_head), L = size_t(m.kv_lora), kw = L + size_t(m.n_rope);
  const AttnArgs a = latent_attn_args(m, nullptr, nullptr, nullptr, nullptr, n_tokens);
  return round4(T * H * kw) + round4(T * H * L) + attention_decode_workspace_floats(a, n_splits);
}

Status mla_attention(const GpuMlaLayer& m, const GpuKvLayer& kv, const float* q, const int32_t* seq,
                     const int32_t* pos, int64_t n_tokens, bool prefill, int32_t n_splits, float* out,
                     float* workspace, size_t workspace_floats, cudaStream_t stream) {
  if (m.n_head < 1 || m.kv_lora < 2 || m.n_nope < 1 || m.n_rope < 0 || m.v_head < 1) {
    return invalid_argument("mla_attention: expected positive head counts and sizes, got H=" + std::to_string(m.n_head) +
                            " L=" + std::to_string(m.kv_lora) + " N=" + std::to_string(m.n_nope) +
                            " V=" + std::to_string(m.v_head));
  }
  if (kv.v != nullptr || kv.k_width < m.kv_lora + m.n_rope) {
    return invalid_argument("mla_attention: expected a latent cache (no value rows) of width >= " +
                            std::to_string(m.kv_lora + m.n_rope) + ", got k_width " + std::to_string(kv.k_width));
  }
  const size_t need = mla_workspace_floats(m, n_tokens, n_splits);
  if (!workspace || workspace_floats < need) {
    return invalid_argument("mla_attention: workspace of " + std::to_string(workspace_floats) +
                            " floats, expected at least " + std::to_string(need));
  }
  if (n_tokens == 0) return Status::ok();
  const int64_t T = n_tokens, H = m.n_head, L = m.kv_lora, R = m.n_rope, N = m.n_nope, kw = L + R;
  float* qa = workspace;                        // [T][H][L + R]
  float* ol = qa + round4(size_t(T * H * kw));  // [T][H][L]
  float* attn_ws = ol + round4(size_t(T * H * L));

  // qa[t][h][0:L] = W_kb[h] q_nope[t][h]: row r = t*H + h uses matrix r % H.
  GemvArgs kb;
  kb.type = m.k_b_type;
  kb.w = m.k_b;
  kb.n_in = N;
  kb.n_out = L;
  kb.n_mat = H;
  kb.x = q;
  kb.x_stride = N + R;
  kb.y = qa;
  kb.y_stride = kw;
  kb.n_rows = T * H;
  STRATA_RETURN_IF_ERROR(gemv(kb, stream));
  if (R > 0) STRATA_RETURN_IF_ERROR(copy_rows(q + N, N + R, qa + L, kw, T * H, R, stream));

  const AttnArgs a = latent_attn_args(m, qa, ol, seq, pos, n_tokens);
  if (prefill) {
    STRATA_RETURN_IF_ERROR(attention_prefill(kv, a, stream));
  } else {
    STRATA_RETURN_IF_ERROR(attention_decode(kv, a, n_splits, attn_ws, workspace_floats - size_t(attn_ws - workspace),
                                            stream));
  }

  // out[t][h][0:V] = W_vb[h] ol[t][h].
  GemvArgs vb;
  vb.type = m.v_b_type;
  vb.w = m.v_b;
  vb.n_in = L;
  vb.n_out = m.v_head;
  vb.n_mat = H;
  vb.x = ol;
  vb.x_stride = L;
  vb.y = out;
  vb.y_stride = m.v_head;
  vb.n_rows = T * H;
  return gemv(vb, stream);
}

}  // namespace strata::gpu
