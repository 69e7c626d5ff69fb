// The block-paged KV cache: pool accounting (blocks taken on demand, given
// back on clear and shrink, reused without growth, refusal without partial
// allocation), rows that do not alias across sequences, f16 entries (rounded
// rows, half the bytes, attention as over the widened rows), and the forward
// pass giving bit-identical logits whatever the block size (GQA and MLA, f32
// and f16), with sequences interleaved so their blocks alternate in the pool.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cpu_kernels/cpu_isa.h"
#include "runtime/base/half.h"
#include "runtime/base/rng.h"
#include "runtime/gguf/gguf_reader.h"
#include "runtime/kv/kv_attention.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/models/model.h"
#include "runtime/synth/mkmodel.h"
#include "runtime/synth/presets.h"

namespace strata {
namespace {

TEST(KvPool, BlocksAreTakenOnDemandAndGivenBack) {
  KvCache c(2, 8, 4, 3, 64, 4, 10);
  EXPECT_EQ(c.n_blocks_max(), 10u);
  EXPECT_EQ(c.n_blocks_used(), 0u);
  EXPECT_EQ(c.bytes_allocated(), 0u);
  c.reserve(0, 9);  // 3 blocks of 4
  EXPECT_EQ(c.n_blocks_used(), 3u);
  EXPECT_EQ(c.blocks_needed(0, 12), 0u);
  EXPECT_EQ(c.blocks_needed(0, 13), 1u);
  c.reserve(1, 20);  // 5 blocks
  EXPECT_EQ(c.n_blocks_used(), 8u);
  EXPECT_EQ(c.bytes_allocated(), 8 * c.block_bytes());
  EXPECT_EQ(c.block_bytes(), uint64_t(2) * 4 * (8 + 4) * sizeof(float));

  // Short: nothing is taken, and the error says how many are missing.
  const Status st = c.try_reserve(2, 16);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kOutOfMemory);
  EXPECT_NE(st.message().find("4 more blocks needed, 2 of 10 free"), std::string::npos) << st.message();
  EXPECT_EQ(c.n_blocks_used(), 8u);
  EXPECT_FALSE(c.try_reserve(2, 65).is_ok());  // past n_ctx
  EXPECT_FALSE(c.try_reserve(3, 1).is_ok());   // no such sequence

  // Shrinking gives back whole blocks past the new length only.
  c.set_len(1, 20);
  c.set_len(1, 9);
  EXPECT_EQ(c.seq_len(1), 9);
  EXPECT_EQ(c.n_blocks_used(), 6u);
  c.clear(0);
  EXPECT_EQ(c.n_blocks_used(), 3u);
  EXPECT_TRUE(c.try_reserve(2, 16).is_ok());
  EXPECT_EQ(c.n_blocks_used(), 7u);
  // Reused blocks: the pool did not grow past its peak.
  EXPECT_EQ(c.bytes_allocated(), 8 * c.block_bytes());
  c.clear_all();
  EXPECT_EQ(c.n_blocks_used(), 0u);
  EXPECT_EQ(c.n_blocks_free(), 10u);
}

TEST(KvPool, DefaultCapacityCoversEverySequenceAtFullContext) {
  KvCache c(1, 4, 4, 3, 50, 16);
  EXPECT_EQ(c.n_blocks_max(), 3u * 4u);  // ceil(50 / 16) per sequence
  for (uint32_t s = 0; s < 3; ++s) EXPECT_TRUE(c.try_reserve(s, 50).is_ok());
  EXPECT_EQ(c.n_blocks_free(), 0u);
}

TEST(KvPool, RowsOfSequencesAndLayersDoNotAlias) {
  const uint32_t L = 3, kw = 5, vw = 2, S = 4, B = 3;
  KvCache c(L, kw, vw, S, 40, B);
  std::mt19937 rng(5);
  std::vector<int32_t> len(S, 0);
  // Grow the sequences in an interleaved order so their blocks alternate.
  for (int round = 0; round < 40; ++round) {
    const uint32_t s = rng() % S;
    if (len[s] >= 40) continue;
    c.reserve(s, ++len[s]);
  }
  auto val = [](uint32_t l, uint32_t s, int32_t p, uint32_t j, bool v) { return float(((l * 7 + s) * 100 + p) * 10 + j) + (v ? 0.5f : 0.0f); };
  for (uint32_t s = 0; s < S; ++s)
    for (uint32_t l = 0; l < L; ++l)
      for (int32_t p = 0; p < len[s]; ++p) {
        for (uint32_t j = 0; j < kw; ++j) c.k(l, s, p)[j] = val(l, s, p, j, false);
        for (uint32_t j = 0; j < vw; ++j) c.v(l, s, p)[j] = val(l, s, p, j, true);
      }
  for (uint32_t s = 0; s < S; ++s)
    for (uint32_t l = 0; l < L; ++l)
      for (int32_t p = 0; p < len[s]; ++p) {
        for (uint32_t j = 0; j < kw; ++j) ASSERT_EQ(c.k(l, s, p)[j], val(l, s, p, j, false));
        for (uint32_t j = 0; j < vw; ++j) ASSERT_EQ(c.v(l, s, p)[j], val(l, s, p, j, true));
        // Within a block the rows are contiguous.
        if (p % int32_t(B) != 0) {
          EXPECT_EQ(c.k(l, s, p), c.k(l, s, p - 1) + kw);
          EXPECT_EQ(c.v(l, s, p), c.v(l, s, p - 1) + vw);
        }
      }
}

TEST(KvPool, ManyShortAndLongSequencesDoNotFragment) {
  // A pool just big enough for the peak demand serves a long churn of
  // sequences of random lengths: fixed-size blocks never fragment.
  const uint32_t S = 4, B = 8, n_ctx = 200;
  KvCache c(1, 2, 2, S, n_ctx, B, S * (n_ctx / B));
  std::mt19937 rng(9);
  for (int i = 0; i < 2000; ++i) {
    const uint32_t s = rng() % S;
    const int32_t n = int32_t(1 + rng() % n_ctx);
    c.clear(s);
    ASSERT_TRUE(c.try_reserve(s, n).is_ok()) << "iteration " << i;
  }
  EXPECT_LE(c.bytes_allocated(), uint64_t(S) * (n_ctx / B) * c.block_bytes());
}

TEST(KvPool, F16EntriesAreTheRoundedRowsInHalfTheBytes) {
  const uint32_t L = 2, kw = 5, vw = 3, B = 4;
  KvCache h(L, kw, vw, 2, 32, B, 0, KvType::kF16), f(L, kw, vw, 2, 32, B, 0, KvType::kF32);
  EXPECT_EQ(h.type(), KvType::kF16);
  EXPECT_EQ(h.block_bytes() * 2, f.block_bytes());
  EXPECT_EQ(h.position_bytes(), uint64_t(L) * (kw + vw) * 2);
  h.reserve(1, 3);
  h.reserve(0, 10);
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-100, 100);
  std::vector<float> K(10 * kw), V(10 * vw);
  for (auto& x : K) x = u(rng);
  for (auto& x : V) x = u(rng);
  for (int32_t t = 0; t < 10; ++t) {
    h.put_k(1, 0, t, K.data() + t * kw);
    h.put_v(1, 0, t, V.data() + t * vw);
  }
  for (int32_t t = 0; t < 10; ++t) {
    for (uint32_t j = 0; j < kw; ++j) ASSERT_EQ(h.k<uint16_t>(1, 0, t)[j], f32_to_f16(K[t * kw + j])) << t;
    for (uint32_t j = 0; j < vw; ++j) ASSERT_EQ(h.v<uint16_t>(1, 0, t)[j], f32_to_f16(V[t * vw + j])) << t;
  }
  std::vector<float> gk(9 * kw), gv(9 * vw);
  h.get_k(1, 0, 9, gk.data());
  h.get_v(1, 0, 9, gv.data());
  for (size_t i = 0; i < gk.size(); ++i) ASSERT_EQ(gk[i], f16_to_f32(f32_to_f16(K[i]))) << i;
  for (size_t i = 0; i < gv.size(); ++i) ASSERT_EQ(gv[i], f16_to_f32(f32_to_f16(V[i]))) << i;
  EXPECT_EQ(h.k<uint16_t>(0, 0, 0)[0], 0) << "layer 0 was written";
  EXPECT_DEATH(h.k<float>(1, 0, 0), "check failed.*kv_type_bytes");  // f16 rows read as floats
  EXPECT_EQ(parse_kv_type("f16").value(), KvType::kF16);
  EXPECT_EQ(parse_kv_type("f32").value(), KvType::kF32);
  const auto bad = parse_kv_type("q8_0");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("expected f16 or f32, got 'q8_0'"), std::string::npos);
}

// A cache whose rows are stored head by head holds the same rows: every entry
// reads back at its offset, a head's entries of the positions of one block
// are k_stride() apart, and get_k/get_v give the rows whole.
TEST(KvPool, HeadPartsHoldTheRowsHeadByHead) {
  const uint32_t L = 2, heads = 3, dk = 4, dv = 2, kw = heads * dk, vw = heads * dv, B = 4, n = 11;
  Xoshiro256 rng(11);
  for (const KvType type : {KvType::kF32, KvType::kF16}) {
    KvCache c(L, kw, vw, 2, 32, B, 0, type, heads);
    EXPECT_EQ(c.heads(), heads);
    EXPECT_EQ(c.k_stride(), dk);
    EXPECT_EQ(c.v_stride(), dv);
    c.reserve(1, 5);
    c.reserve(0, n);
    std::vector<float> K(n * kw), V(n * vw);
    for (auto& x : K) x = float(rng.uniform() * 8 - 4);
    for (auto& x : V) x = float(rng.uniform() * 8 - 4);
    for (uint32_t t = 0; t < n; ++t) {
      c.put_k(1, 0, int32_t(t), K.data() + t * kw);
      c.put_v(1, 0, int32_t(t), V.data() + t * vw);
    }
    const auto stored = [&](float x) { return type == KvType::kF16 ? f16_to_f32(f32_to_f16(x)) : x; };
    const auto entry = [&](bool value, int32_t t, int64_t at) {
      if (type == KvType::kF32) return value ? c.v(1, 0, t, at)[0] : c.k(1, 0, t, at)[0];
      return f16_to_f32(value ? c.v<uint16_t>(1, 0, t, at)[0] : c.k<uint16_t>(1, 0, t, at)[0]);
    };
    for (int32_t t = 0; t < int32_t(n); ++t) {
      for (int64_t j = 0; j < kw; ++j) ASSERT_EQ(entry(false, t, j), stored(K[t * kw + j])) << t << " " << j;
      for (int64_t j = 0; j < vw; ++j) ASSERT_EQ(entry(true, t, j), stored(V[t * vw + j])) << t << " " << j;
    }
    const auto addr = [&](int32_t t) {
      return type == KvType::kF32 ? reinterpret_cast<const std::byte*>(c.k(1, 0, t, dk))
                                  : reinterpret_cast<const std::byte*>(c.k<uint16_t>(1, 0, t, dk));
    };
    for (int32_t t = 5; t < 8; ++t) {  // positions 4..7 share a block
      EXPECT_EQ(addr(t) - addr(4), (t - 4) * c.k_stride() * ptrdiff_t(kv_type_bytes(type))) << t;
    }
    std::vector<float> gk(n * kw), gv(n * vw);
    c.get_k(1, 0, n, gk.data());
    c.get_v(1, 0, n, gv.data());
    for (size_t i = 0; i < gk.size(); ++i) ASSERT_EQ(gk[i], stored(K[i])) << i;
    for (size_t i = 0; i < gv.size(); ++i) ASSERT_EQ(gv[i], stored(V[i])) << i;
  }
  EXPECT_DEATH(KvCache(1, 10, 10, 1, 8, 4, 0, KvType::kF32, 3), "check failed");  // 3 does not divide 10
}

// Blocks come from slabs; blocks big enough that a few fill one still hold
// their own rows across the slabs' ends.
TEST(KvPool, BlocksAcrossSlabsDoNotAlias) {
  const uint32_t L = 32, w = 2048, B = 16, S = 3, n = 48;  // 8 MiB per block: 9 blocks over two slabs
  KvCache c(L, w, w, S, n, B);
  for (uint32_t s = 0; s < S; ++s) c.reserve(s, n);
  EXPECT_EQ(c.n_blocks_used(), S * n / B);
  std::vector<float> row(w);
  const auto fill = [&](uint32_t l, uint32_t s, uint32_t t, bool value) {
    for (uint32_t j = 0; j < w; ++j) row[j] = float(((l * 7 + s) * 131 + t) * 2 + value) + float(j) / 4096;
  };
  for (const uint32_t l : {0u, L - 1}) {
    for (uint32_t s = 0; s < S; ++s) {
      for (uint32_t t = 0; t < n; ++t) {
        fill(l, s, t, false);
        c.put_k(l, s, int32_t(t), row.data());
        fill(l, s, t, true);
        c.put_v(l, s, int32_t(t), row.data());
      }
    }
  }
  for (const uint32_t l : {0u, L - 1}) {
    for (uint32_t s = 0; s < S; ++s) {
      for (uint32_t t = 0; t < n; ++t) {
        fill(l, s, t, false);
        ASSERT_TRUE(std::equal(row.begin(), row.end(), c.k(l, s, int32_t(t)))) << l << " " << s << " " << t;
        fill(l, s, t, true);
        ASSERT_TRUE(std::equal(row.begin(), row.end(), c.v(l, s, int32_t(t)))) << l << " " << s << " " << t;
      }
    }
  }
}

TEST(KvAttention, PagedHeadMatchesContiguousLoop) {
  // One head over rows spread across blocks vs the textbook loop over the same rows copied contiguously.
  const uint32_t kw = 6, vw = 4, B = 3;
  const int64_t n_kv = 11;
  KvCache c(1, kw, vw, 2, 32, B);
  c.reserve(1, 2);
  c.reserve(0, int32_t(n_kv));  // interleave with another sequence's blocks
  c.reserve(1, 20);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> K(n_kv * kw), V(n_kv * vw);
  for (int64_t t = 0; t < n_kv; ++t) {
    for (uint32_t j = 0; j < kw; ++j) c.k(0, 0, int32_t(t))[j] = K[t * kw + j] = u(rng);
    for (uint32_t j = 0; j < vw; ++j) c.v(0, 0, int32_t(t))[j] = V[t * vw + j] = u(rng);
  }
  const int64_t dk = 3, dv = 2, k_off = 3, v_off = 2;
  std::vector<float> q(dk);
  for (auto& x : q) x = u(rng);
  std::vector<float> scores(n_kv), out(dv);
  attention_head_paged(q.data(), c, 0, 0, k_off, v_off, false, dk, dv, n_kv, 0.7f, scores.data(), out.data());
  std::vector<double> p(n_kv);
  double mx = -1e30, sum = 0;
  for (int64_t t = 0; t < n_kv; ++t) {
    double d = 0;
    for (int64_t j = 0; j < dk; ++j) d += double(q[j]) * K[t * kw + k_off + j];
    p[t] = 0.7 * d;
    mx = std::max(mx, p[t]);
  }
  for (auto& x : p) sum += x = std::exp(x - mx);
  for (int64_t j = 0; j < dv; ++j) {
    double o = 0;
    for (int64_t t = 0; t < n_kv; ++t) o += p[t] / sum * V[t * vw + v_off + j];
    EXPECT_NEAR(out[j], o, 1e-5);
  }
}

// Query heads that share keys and values, attended together, against each
// head alone (bit for bit, on every CPU path) and against a double-precision
// loop; values in their own rows (GQA) and in the key row (MLA).
TEST(KvAttention, HeadsTogetherMatchEachHeadAlone) {
  const uint32_t B = 4;
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1, 1);
  for (const char* isa : {"scalar", "avx2", "avx512"}) {
    if (!set_cpu_isa(isa).is_ok()) continue;  // this CPU lacks it
    for (const bool v_in_k : {false, true}) {
      for (const int64_t d : {5, 64}) {
        const int64_t n_kv = 19, n_q = 7, kw = 2 * d + 1, vw = v_in_k ? 0 : d + 2;
        const int64_t k_off = 1, v_off = v_in_k ? 0 : 2, dv = v_in_k ? d + 1 : d;
        KvCache c(2, uint32_t(kw), uint32_t(vw), 2, 32, B);
        c.reserve(1, 5);
        c.reserve(0, int32_t(n_kv));
        for (int64_t t = 0; t < n_kv; ++t) {
          for (int64_t j = 0; j < kw; ++j) c.k(1, 0, int32_t(t))[j] = u(rng);
          for (int64_t j = 0; j < vw; ++j) c.v(1, 0, int32_t(t))[j] = u(rng);
        }
        const int64_t q_stride = d + 3, out_stride = dv + 2;
        std::vector<float> q(size_t(n_q * q_stride)), scores(size_t(n_q * n_kv)), one_scores(static_cast<size_t>(n_kv));
        for (auto& x : q) x = u(rng);
        std::vector<float> out(size_t(n_q * out_stride), 9.0f), one(static_cast<size_t>(dv));
        attention_heads_paged(q.data(), q_stride, n_q, c, 1, 0, k_off, v_off, v_in_k, d, dv, n_kv, 0.3f,
                              scores.data(), out.data(), out_stride);
        for (int64_t i = 0; i < n_q; ++i) {
          const std::string at = std::string(isa) + (v_in_k ? " latent" : " gqa") + " d=" + std::to_string(d) +
                                 " head " + std::to_string(i);
          attention_head_paged(q.data() + i * q_stride, c, 1, 0, k_off, v_off, v_in_k, d, dv, n_kv, 0.3f,
                               one_scores.data(), one.data());
          std::vector<double> p(static_cast<size_t>(n_kv));
          double mx = -1e30, sum = 0;
          for (int64_t t = 0; t < n_kv; ++t) {
            double dot = 0;
            const float* krow = c.k(1, 0, int32_t(t)) + k_off;
            for (int64_t j = 0; j < d; ++j) dot += double(q[size_t(i * q_stride + j)]) * krow[j];
            p[size_t(t)] = 0.3 * dot;
            mx = std::max(mx, p[size_t(t)]);
          }
          for (auto& x : p) sum += x = std::exp(x - mx);
          for (int64_t j = 0; j < dv; ++j) {
            ASSERT_EQ(out[size_t(i * out_stride + j)], one[size_t(j)]) << at << " j=" << j;
            double o = 0;
            for (int64_t t = 0; t < n_kv; ++t) {
              const float* vrow = v_in_k ? c.k(1, 0, int32_t(t)) : c.v(1, 0, int32_t(t));
              o += p[size_t(t)] / sum * vrow[v_off + j];
            }
            EXPECT_NEAR(out[size_t(i * out_stride + j)], o, 1e-5) << at << " j=" << j;
          }
          for (int64_t j = dv; j < out_stride; ++j) ASSERT_EQ(out[size_t(i * out_stride + j)], 9.0f) << at;
        }
      }
    }
  }
  ASSERT_TRUE(set_cpu_isa("auto").is_ok());
}

// Attention over a cache stored head by head gives, bit for bit, what it
// gives over one holding whole rows, on every CPU path; a head that would
// straddle two parts is refused.
TEST(KvAttention, HeadPartsAreTheWholeRowCache) {
  const uint32_t L = 2, heads = 4, dk = 24, dv = 20, B = 4;
  Xoshiro256 rng(12);
  for (const KvType type : {KvType::kF32, KvType::kF16}) {
    KvCache parts(L, heads * dk, heads * dv, 1, 64, B, 0, type, heads);
    KvCache rows(L, heads * dk, heads * dv, 1, 64, B, 0, type);
    const int32_t n_kv = 37;
    parts.reserve(0, n_kv);
    rows.reserve(0, n_kv);
    std::vector<float> k(heads * dk), v(heads * dv);
    for (int32_t t = 0; t < n_kv; ++t) {
      for (auto& x : k) x = float(rng.uniform() * 2 - 1);
      for (auto& x : v) x = float(rng.uniform() * 2 - 1);
      for (KvCache* c : {&parts, &rows}) {
        c->put_k(1, 0, t, k.data());
        c->put_v(1, 0, t, v.data());
      }
    }
    const int64_t n_q = 3;
    std::vector<float> q(n_q * dk), scores(n_q * n_kv), a(n_q * dv), b(n_q * dv);
    for (auto& x : q) x = float(rng.uniform() * 2 - 1);
    for (const char* isa : {"scalar", "avx2", "avx512"}) {
      if (!set_cpu_isa(isa).is_ok()) continue;  // this CPU lacks it
      for (uint32_t g = 0; g < heads; ++g) {
        for (const int32_t n : {1, 4, 5, n_kv}) {
          attention_heads_paged(q.data(), dk, n_q, parts, 1, 0, g * dk, g * dv, false, dk, dv, n, 0.2f,
                                scores.data(), a.data(), dv);
          attention_heads_paged(q.data(), dk, n_q, rows, 1, 0, g * dk, g * dv, false, dk, dv, n, 0.2f,
                                scores.data(), b.data(), dv);
          ASSERT_EQ(a, b) << isa << " " << kv_type_name(type) << " head " << g << " n_kv " << n;
        }
      }
    }
    ASSERT_TRUE(set_cpu_isa("auto").is_ok());
    EXPECT_DEATH(attention_heads_paged(q.data(), dk, n_q, parts, 1, 0, dk / 2, 0, false, dk, dv, n_kv, 0.2f,
                                       scores.data(), a.data(), dv),
                 "check failed");
  }
}

// Attention over an f16 cache gives, bit for bit, what it gives over an f32
// cache holding the same rows widened, on every CPU path, for GQA rows and
// MLA latent rows, one head or several.
TEST(KvAttention, F16CacheIsTheF32CacheOfTheWidenedRows) {
  const uint32_t B = 4;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  for (const char* isa : {"scalar", "avx2", "avx512"}) {
    if (!set_cpu_isa(isa).is_ok()) continue;  // this CPU lacks it
    for (const bool v_in_k : {false, true}) {
      for (const int64_t d : {5, 64}) {
        const int64_t n_kv = 19, n_q = 5, kw = 2 * d + 1, vw = v_in_k ? 0 : d + 2;
        const int64_t k_off = 1, v_off = v_in_k ? 0 : 2, dv = v_in_k ? d + 1 : d;
        KvCache h(2, uint32_t(kw), uint32_t(vw), 2, 32, B, 0, KvType::kF16), f(2, uint32_t(kw), uint32_t(vw), 2, 32, B);
        for (KvCache* c : {&h, &f}) {
          c->reserve(1, 5);
          c->reserve(0, int32_t(n_kv));
        }
        std::vector<float> kr(static_cast<size_t>(kw)), vr(static_cast<size_t>(vw));
        for (int64_t t = 0; t < n_kv; ++t) {
          for (auto& x : kr) x = u(rng);
          for (auto& x : vr) x = u(rng);
          h.put_k(1, 0, int32_t(t), kr.data());
          h.put_v(1, 0, int32_t(t), vr.data());
          for (auto& x : kr) x = f16_to_f32(f32_to_f16(x));
          for (auto& x : vr) x = f16_to_f32(f32_to_f16(x));
          f.put_k(1, 0, int32_t(t), kr.data());
          f.put_v(1, 0, int32_t(t), vr.data());
        }
        std::vector<float> q(size_t(n_q * d)), scores(size_t(n_q * n_kv));
        for (auto& x : q) x = u(rng);
        std::vector<float> o16(size_t(n_q * dv), 9.0f), o32 = o16;
        attention_heads_paged(q.data(), d, n_q, h, 1, 0, k_off, v_off, v_in_k, d, dv, n_kv, 0.3f, scores.data(),
                              o16.data(), dv);
        attention_heads_paged(q.data(), d, n_q, f, 1, 0, k_off, v_off, v_in_k, d, dv, n_kv, 0.3f, scores.data(),
                              o32.data(), dv);
        const std::string at = std::string(isa) + (v_in_k ? " latent" : " gqa") + " d=" + std::to_string(d);
        for (size_t j = 0; j < o16.size(); ++j) ASSERT_EQ(o16[j], o32[j]) << at << " at " << j;
      }
    }
  }
  ASSERT_TRUE(set_cpu_isa("auto").is_ok());
}

std::string make_tiny(const char* preset) {
  const synth::Preset* p = synth::find_preset(preset);
  EXPECT_NE(p, nullptr) << preset;
  synth::MkModelOptions o;
  o.out_path = ::testing::TempDir() + "strata_kv_" + std::to_string(::getpid()) + "_" + preset + ".gguf";
  o.hp = p->hp;
  o.types.base = DType::kQ8_0;
  o.seed = 3;
  auto r = synth::make_model(o);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return o.out_path;
}

// Three sequences: prompts interleaved in one batch, then greedy decode
// steps together; every logit row, in order. heads: the cache's row parts
// (0: the model's own, as make_cache gives).
std::vector<float> run_three(Model& m, uint32_t block, uint32_t heads = 0) {
  const KvCache shape = m.make_cache(1, 1);
  KvCache cache(shape.n_layer(), shape.k_width(), shape.v_width(), 3, 64, block, 0, shape.type(),
                heads ? heads : shape.heads());
  const int32_t V = int32_t(m.hparams().n_vocab);
  std::vector<std::vector<int32_t>> prompts = {{1, 5, 9, 13, 17, 21, 25, 29, 33}, {2, 4}, {7, 8, 9, 10, 11, 12}};
  Batch b;
  for (size_t i = 0; i < 9; ++i)
    for (size_t s = 0; s < 3; ++s)
      if (i < prompts[s].size()) b.add(prompts[s][i] % V, int32_t(s), int32_t(i), true);
  std::vector<float> all;
  auto r = m.forward(b, cache);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (!r.is_ok()) return all;
  for (int step = 0; step < 12; ++step) {
    all.insert(all.end(), r->data.begin(), r->data.end());
    std::vector<int32_t> last(3, -1);
    for (int64_t row = 0; row < r->n_rows(); ++row) {
      const int32_t s = b.seqs()[size_t(r->batch_index[size_t(row)])];
      const float* l = r->row(row);
      last[size_t(s)] = int32_t(std::max_element(l, l + V) - l);
    }
    b.clear();
    for (int32_t s = 0; s < 3; ++s) b.add(last[size_t(s)], s, cache.seq_len(uint32_t(s)), true);
    r = m.forward(b, cache);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    if (!r.is_ok()) return all;
  }
  all.insert(all.end(), r->data.begin(), r->data.end());
  return all;
}

TEST(KvForward, LogitsDoNotDependOnTheBlockSize) {
  for (const char* preset : {"tiny-qwen3moe", "tiny-deepseek2"}) {
    const std::string path = make_tiny(preset);
    std::vector<float> f32_logits;
    for (const KvType type : {KvType::kF32, KvType::kF16}) {
      const std::string at = std::string(preset) + " " + kv_type_name(type);
      auto f = gguf::GgufModel::open(path);
      ASSERT_TRUE(f.is_ok()) << f.status().to_string();
      ModelOptions mo;
      mo.kv_type = type;
      auto m = Model::load(std::move(f.value()), mo);
      ASSERT_TRUE(m.is_ok()) << m.status().to_string();
      ASSERT_EQ((*m)->make_cache(1, 1).type(), type);
      const std::vector<float> one_block = run_three(**m, 64);
      ASSERT_FALSE(one_block.empty());
      // Blocks of other sizes, and rows kept whole instead of head by head.
      for (const auto& [block, heads] : {std::pair{1u, 0u}, {3u, 0u}, {16u, 0u}, {16u, 1u}}) {
        const std::vector<float> paged = run_three(**m, block, heads);
        ASSERT_EQ(paged.size(), one_block.size()) << at << " block " << block << " heads " << heads;
        size_t n_diff = 0;
        for (size_t i = 0; i < paged.size(); ++i) n_diff += paged[i] != one_block[i];
        EXPECT_EQ(n_diff, 0u) << at << " block " << block << " heads " << heads;
      }
      // A split that cuts a head in two is refused, not read across.
      const KvCache shape = (*m)->make_cache(1, 1);
      if (shape.v_width() > 0) {
        EXPECT_GT(shape.heads(), 1u) << at;
        KvCache cut(shape.n_layer(), shape.k_width(), shape.v_width(), 1, 8, 4, 0, type, 2 * shape.heads());
        Batch b;
        b.add(1, 0, 0, true);
        const auto r = (*m)->forward(b, cut);
        ASSERT_FALSE(r.is_ok()) << at;
        EXPECT_NE(r.status().message().find("another shape"), std::string::npos) << r.status().to_string();
      }
      if (type == KvType::kF32) {
        f32_logits = one_block;
        continue;
      }
      // f16 entries move the logits of the prompt batch (before greedy
      // choices may part) by the rounding of the keys and values (relative
      // 2^-11): a little; not at all would mean f32 was used.
      ASSERT_EQ(one_block.size(), f32_logits.size()) << at;
      const size_t n_prompt = 17 * size_t((*m)->hparams().n_vocab);
      double max_diff = 0, max_abs = 0;
      for (size_t i = 0; i < n_prompt; ++i) {
        max_diff = std::max(max_diff, double(std::abs(one_block[i] - f32_logits[i])));
        max_abs = std::max(max_abs, double(std::abs(f32_logits[i])));
      }
      EXPECT_GT(max_diff, 0.0) << at;
      EXPECT_LT(max_diff, 0.02 * max_abs) << at;
    }
    std::remove(path.c_str());
  }
}

}  // namespace
}  // namespace strata
