// Attention on the GPU against attention_head_ref over the same 16-bit
// rounded KV rows: the paged store (bit-exact), split-KV decode at several
// split counts (incl. more parts than positions), GQA groups wider than one
// block's head tile, tiled causal prefill, and MLA's absorbed form against
// the naive per-head formula (keys and values expanded from the latent).
#include <algorithm>
#include <numeric>
#include <random>

#include "cpu_kernels/attention_ref.h"
#include "gpu_kernels/attention.cuh"
#include "gpu_kernels/mla.cuh"
#include "runtime/base/half.h"
#include "tests/test_gpu_common.h"

namespace strata {
namespace {

using namespace gpu_test;

float round16(DType t, float x) { return t == DType::kF16 ? f16_to_f32(f32_to_f16(x)) : bf16_to_f32(f32_to_bf16(x)); }

// A paged cache on the device (blocks handed out in a shuffled order) and the
// rounded rows a reference reads.
struct PagedKv {
  DType dtype;
  int32_t bs, k_width, v_width, max_blocks;
  int64_t block_stride;
  std::vector<int32_t> table;
  DevBuf<uint16_t> k, v;
  DevBuf<int32_t> dtable;
  // Host copies, [seq][pos][width], rounded as stored.
  std::vector<std::vector<float>> k_rows, v_rows;

  PagedKv(DType t, int32_t block, int32_t kw, int32_t vw, int32_t n_seq, int32_t n_ctx)
      : dtype(t), bs(block), k_width(kw), v_width(vw), max_blocks((n_ctx + block - 1) / block),
        block_stride(int64_t(block) * std::max(kw, vw)) {
    const int32_t n_blocks = n_seq * max_blocks;
    table.resize(size_t(n_blocks));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937(7));
    k = DevBuf<uint16_t>(size_t(block_stride * n_blocks));
    if (vw > 0) v = DevBuf<uint16_t>(size_t(block_stride * n_blocks));
    dtable = DevBuf<int32_t>(table);
    k_rows.resize(size_t(n_seq));
    v_rows.resize(size_t(n_seq));
  }
  gpu::GpuKvLayer layer() const {
    gpu::GpuKvLayer l;
    l.dtype = dtype;
    l.k = k.get();
    l.v = v_width > 0 ? v.get() : nullptr;
    l.block_stride = block_stride;
    l.block_size = bs;
    l.k_width = k_width;
    l.v_width = v_width;
    l.block_table = dtable.get();
    l.max_blocks = max_blocks;
    return l;
  }
  // Appends n random positions to `seq` through kv_store.
  void append(int32_t seq, int32_t n, uint64_t seed) {
    const int32_t p0 = int32_t(k_rows[size_t(seq)].size() / size_t(k_width));
    std::vector<float> kr = randn(static_cast<size_t>(n * k_width), seed), vr = randn(static_cast<size_t>(n * std::max(v_width, 1)), seed + 1);
    std::vector<int32_t> s(static_cast<size_t>(n), seq), p(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) p[size_t(i)] = p0 + i;
    DevBuf<float> dk(kr), dv(vr);
    DevBuf<int32_t> ds(s), dp(p);
    ASSERT_TRUE(gpu::kv_store(layer(), ds.get(), dp.get(), n, dk.get(), k_width, dv.get(), v_width, nullptr).is_ok());
    for (float x : kr) k_rows[size_t(seq)].push_back(round16(dtype, x));
    if (v_width > 0)
      for (float x : vr) v_rows[size_t(seq)].push_back(round16(dtype, x));
  }
};

// out for each token and head by attention_head_ref over the rounded rows.
std::vector<float> reference(const PagedKv& kv, const gpu::AttnArgs& a, const std::vector<float>& q,
                             const std::vector<int32_t>& seq, const std::vector<int32_t>& pos) {
  std::vector<float> out(static_cast<size_t>(a.n_tokens * a.n_head * a.d_v));
  const int32_t group = a.n_head / a.n_head_kv;
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    const int32_t n_kv = pos[size_t(t)] + 1, s = seq[size_t(t)];
    for (int32_t h = 0; h < a.n_head; ++h) {
      const int32_t g = h / group;
      std::vector<float> kr(static_cast<size_t>(n_kv * a.d_k)), vr(static_cast<size_t>(n_kv * a.d_v)), scores(static_cast<size_t>(n_kv));
      for (int32_t p = 0; p < n_kv; ++p) {
        for (int32_t i = 0; i < a.d_k; ++i) kr[size_t(p * a.d_k + i)] = kv.k_rows[size_t(s)][size_t(p * kv.k_width + g * a.d_k + i)];
        for (int32_t i = 0; i < a.d_v; ++i) {
          vr[size_t(p * a.d_v + i)] = kv.v_width > 0 ? kv.v_rows[size_t(s)][size_t(p * kv.v_width + g * a.d_v + i)]
                                                     : kv.k_rows[size_t(s)][size_t(p * kv.k_width + g * a.d_k + i)];
        }
      }
      attention_head_ref(q.data() + t * a.q_token_stride + h * a.q_head_stride, kr.data(), a.d_k, vr.data(), a.d_v,
                         a.d_k, a.d_v, n_kv, a.scale, scores.data(), out.data() + (t * a.n_head + h) * a.d_v);
    }
  }
  return out;
}

gpu::AttnArgs args(int32_t H, int32_t Hkv, int32_t dk, int32_t dv, int64_t T) {
  gpu::AttnArgs a;
  a.q_head_stride = dk;
  a.q_token_stride = int64_t(H) * dk;
  a.out_head_stride = dv;
  a.out_token_stride = int64_t(H) * dv;
  a.n_head = H;
  a.n_head_kv = Hkv;
  a.d_k = dk;
  a.d_v = dv;
  a.scale = 1.0f / std::sqrt(float(dk));
  a.n_tokens = T;
  return a;
}

TEST(GpuAttention, KvStoreIsTheRoundedRows) {
  STRATA_REQUIRE_CUDA();
  for (DType t : {DType::kF16, DType::kBF16}) {
    PagedKv kv(t, 16, 24, 10, 2, 40);
    kv.append(1, 33, 5);
    const std::vector<uint16_t> kb = kv.k.download(), vb = kv.v.download();
    for (int32_t p = 0; p < 33; ++p) {
      const int64_t base = int64_t(kv.table[size_t(kv.max_blocks + p / 16)]) * kv.block_stride;
      for (int i = 0; i < 24; ++i) {
        const uint16_t b = kb[size_t(base + (p % 16) * 24 + i)];
        ASSERT_EQ(t == DType::kF16 ? f16_to_f32(b) : bf16_to_f32(b), kv.k_rows[1][size_t(p * 24 + i)]);
      }
      for (int i = 0; i < 10; ++i) {
        const uint16_t b = vb[size_t(base + (p % 16) * 10 + i)];
        ASSERT_EQ(t == DType::kF16 ? f16_to_f32(b) : bf16_to_f32(b), kv.v_rows[1][size_t(p * 10 + i)]);
      }
    }
  }
}

void check_decode(DType t, int32_t H, int32_t Hkv, int32_t dk, int32_t dv, bool v_in_k) {
  const std::vector<int32_t> lens = {1, 37, 300};
  PagedKv kv(t, 16, Hkv * dk, v_in_k ? 0 : Hkv * dv, 3, 320);
  for (int32_t s = 0; s < 3; ++s) kv.append(s, lens[size_t(s)], 100 + uint64_t(s));
  const std::vector<int32_t> seq = {0, 1, 2, 2}, pos = {0, 36, 299, 150};  // the last: an earlier position
  gpu::AttnArgs a = args(H, Hkv, dk, dv, int64_t(seq.size()));
  std::vector<float> q = randn(static_cast<size_t>(a.n_tokens * H * dk), 9);
  DevBuf<float> dq(q), dout(size_t(a.n_tokens * H * dv));
  DevBuf<int32_t> ds(seq), dp(pos);
  a.q = dq.get();
  a.out = dout.get();
  a.seq = ds.get();
  a.pos = dp.get();
  const std::vector<float> ref = reference(kv, a, q, seq, pos);
  for (int32_t splits : {1, 3, 7, 64}) {
    const size_t ws_floats = gpu::attention_decode_workspace_floats(a, splits);
    DevBuf<float> ws(ws_floats);
    ASSERT_TRUE(gpu::attention_decode(kv.layer(), a, splits, ws.get(), ws_floats, nullptr).is_ok());
    EXPECT_LT(normalized_error(dout.download(), ref), 2e-6)
        << dtype_name(t) << " H " << H << "/" << Hkv << " d " << dk << "/" << dv << " splits " << splits;
  }
}

TEST(GpuAttention, DecodeMatchesReference) {
  STRATA_REQUIRE_CUDA();
  check_decode(DType::kF16, 8, 2, 64, 64, false);     // GQA, group 4
  check_decode(DType::kBF16, 40, 2, 128, 128, false); // group 20: two head tiles per KV head
  check_decode(DType::kF16, 12, 12, 72, 40, false);   // MHA, d_k != d_v
  check_decode(DType::kF16, 16, 1, 576, 512, true);   // MLA-shaped latent cache
}

void check_prefill(DType t, int32_t H, int32_t Hkv, int32_t dk, int32_t dv, bool v_in_k) {
  PagedKv kv(t, 16, Hkv * dk, v_in_k ? 0 : Hkv * dv, 2, 64);
  kv.append(0, 5, 1);    // another sequence's rows must not be read
  kv.append(1, 10, 2);   // an earlier turn
  kv.append(1, 35, 3);   // this prompt: positions 10..44
  const int64_t T = 35;
  std::vector<int32_t> seq(static_cast<size_t>(T), 1), pos(static_cast<size_t>(T));
  for (int64_t i = 0; i < T; ++i) pos[size_t(i)] = int32_t(10 + i);
  gpu::AttnArgs a = args(H, Hkv, dk, dv, T);
  std::vector<float> q = randn(static_cast<size_t>(T * H * dk), 4);
  DevBuf<float> dq(q), dout(size_t(T * H * dv));
  DevBuf<int32_t> ds(seq), dp(pos);
  a.q = dq.get();
  a.out = dout.get();
  a.seq = ds.get();
  a.pos = dp.get();
  ASSERT_TRUE(gpu::attention_prefill(kv.layer(), a, nullptr).is_ok());
  EXPECT_LT(normalized_error(dout.download(), reference(kv, a, q, seq, pos)), 2e-6)
      << dtype_name(t) << " H " << H << "/" << Hkv << " d " << dk << "/" << dv;
}

TEST(GpuAttention, PrefillIsCausalAndMatchesReference) {
  STRATA_REQUIRE_CUDA();
  check_prefill(DType::kF16, 8, 2, 64, 64, false);
  check_prefill(DType::kBF16, 6, 3, 128, 96, false);
  check_prefill(DType::kF16, 4, 1, 576, 512, true);  // MLA-shaped: needs the >48 KiB shared-memory opt-in
}

// MLA: the absorbed GPU path against the naive formula, per head
//   k_t = [W_kb[h]^T latent_t | k_pe_t],  v_t = W_vb[h] latent_t,
//   out = sum_t softmax(scale * q . k_t) v_t.
void check_mla(int32_t H, int32_t L, int32_t N, int32_t R, int32_t V, DType kb_t, DType vb_t, bool prefill) {
  const int32_t n_ctx = 100;
  PagedKv kv(DType::kF16, 16, L + R, 0, 2, n_ctx);
  kv.append(0, prefill ? 20 : 61, 11);
  kv.append(1, 7, 12);
  std::vector<int32_t> seq, pos;
  if (prefill) {
    for (int32_t p = 13; p < 20; ++p) {  // the last 7 positions of seq 0 as one prompt
      seq.push_back(0);
      pos.push_back(p);
    }
  } else {
    seq = {0, 1};
    pos = {60, 6};
  }
  const int64_t T = int64_t(seq.size());
  QuantMatrix kb = quant_matrix(kb_t, N, int64_t(L) * H, 21, 0.2f);  // {N, L, H}
  QuantMatrix vb = quant_matrix(vb_t, L, int64_t(V) * H, 22, 0.1f);  // {L, V, H}
  DevBuf<uint8_t> dkb(kb.bytes), dvb(vb.bytes);
  std::vector<float> q = randn(static_cast<size_t>(T * H * (N + R)), 23);
  DevBuf<float> dq(q), dout(size_t(T * H * V));
  DevBuf<int32_t> ds(seq), dp(pos);
  gpu::GpuMlaLayer m;
  m.n_head = H;
  m.kv_lora = L;
  m.n_nope = N;
  m.n_rope = R;
  m.v_head = V;
  m.kq_scale = 1.0f / std::sqrt(float(N + R));
  m.k_b_type = kb_t;
  m.k_b = dkb.get();
  m.v_b_type = vb_t;
  m.v_b = dvb.get();
  const int32_t splits = 5;
  const size_t ws_floats = gpu::mla_workspace_floats(m, T, splits);
  DevBuf<float> ws(ws_floats);
  ASSERT_TRUE(gpu::mla_attention(m, kv.layer(), dq.get(), ds.get(), dp.get(), T, prefill, splits, dout.get(), ws.get(),
                                 ws_floats, nullptr)
                  .is_ok());
  std::vector<float> ref(static_cast<size_t>(T * H * V));
  for (int64_t t = 0; t < T; ++t) {
    const int32_t n_kv = pos[size_t(t)] + 1, s = seq[size_t(t)];
    for (int32_t h = 0; h < H; ++h) {
      const float* Wk = kb.values.data() + int64_t(h) * L * N;  // L rows of N
      const float* Wv = vb.values.data() + int64_t(h) * V * L;  // V rows of L
      std::vector<float> keys(static_cast<size_t>(n_kv * (N + R))), vals(static_cast<size_t>(n_kv * V)), scores(static_cast<size_t>(n_kv));
      for (int32_t p = 0; p < n_kv; ++p) {
        const float* row = kv.k_rows[size_t(s)].data() + int64_t(p) * (L + R);
        for (int32_t n = 0; n < N; ++n) {
          double acc = 0;
          for (int32_t l = 0; l < L; ++l) acc += double(Wk[int64_t(l) * N + n]) * row[l];
          keys[size_t(p * (N + R) + n)] = float(acc);
        }
        for (int32_t r = 0; r < R; ++r) keys[size_t(p * (N + R) + N + r)] = row[L + r];
        for (int32_t j = 0; j < V; ++j) {
          double acc = 0;
          for (int32_t l = 0; l < L; ++l) acc += double(Wv[int64_t(j) * L + l]) * row[l];
          vals[size_t(p * V + j)] = float(acc);
        }
      }
      attention_head_ref(q.data() + (t * H + h) * (N + R), keys.data(), N + R, vals.data(), V, N + R, V, n_kv,
                         m.kq_scale, scores.data(), ref.data() + (t * H + h) * V);
    }
  }
  EXPECT_LT(normalized_error(dout.download(), ref), 5e-5)
      << "H " << H << " L " << L << " N " << N << " R " << R << " V " << V << (prefill ? " prefill" : " decode");
}

TEST(GpuMla, AbsorbedFormMatchesNaiveFormula) {
  STRATA_REQUIRE_CUDA();
  check_mla(4, 64, 32, 16, 32, DType::kQ8_0, DType::kF16, false);
  check_mla(4, 64, 32, 16, 32, DType::kF16, DType::kQ8_0, true);
  check_mla(16, 512, 128, 64, 128, DType::kQ8_0, DType::kQ8_0, false);  // DeepSeek-V3's head shapes
}

TEST(GpuArgs, AttentionRejectsBadShapes) {
  gpu::GpuKvLayer kv;
  kv.dtype = DType::kF32;
  gpu::AttnArgs a = args(8, 3, 64, 64, 1);
  EXPECT_EQ(gpu::attention_prefill(kv, a, nullptr).code(), StatusCode::kUnsupported);
  kv.dtype = DType::kF16;
  kv.k = reinterpret_cast<void*>(uintptr_t(4096));
  kv.block_table = reinterpret_cast<int32_t*>(uintptr_t(4096));
  kv.max_blocks = 4;
  kv.k_width = 128;
  kv.block_stride = 16 * 128;
  EXPECT_NE(gpu::attention_prefill(kv, a, nullptr).message().find("n_head a positive multiple of n_head_kv"),
            std::string::npos);
  a = args(8, 1, 640, 64, 1);
  EXPECT_NE(gpu::attention_prefill(kv, a, nullptr).message().find("d_k <= 576"), std::string::npos);
  a = args(8, 2, 64, 64, 1);
  a.q = a.out = reinterpret_cast<float*>(uintptr_t(4096));
  a.seq = a.pos = reinterpret_cast<int32_t*>(uintptr_t(4096));
  EXPECT_NE(gpu::attention_decode(kv, a, 4, nullptr, 0, nullptr).message().find("workspace of 0 floats"),
            std::string::npos);
}

}  // namespace
}  // namespace strata
