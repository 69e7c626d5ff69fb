// runtime/eval: the 16-bit log-probability rows of the base file, the file's
// validation, the perplexity and KL statistics, the bandwidth probe and the
// bench loops on a tiny model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>

#include "runtime/eval/bandwidth_probe.h"
#include "runtime/eval/bench.h"
#include "runtime/eval/logits_file.h"
#include "runtime/eval/perplexity.h"
#include "runtime/synth/mkmodel.h"
#include "runtime/synth/presets.h"

namespace strata {
namespace {

std::vector<float> random_logits(int32_t n, float spread, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, spread);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("strata_test_eval_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

TEST(LogProbRow, RoundTripsWithinHalfAStep) {
  for (int32_t n : {1, 2, 7, 512, 50257}) {
    const auto logits = random_logits(n, 3.0f, uint32_t(n));
    std::vector<uint16_t> row(size_t(logits_row_u16(n)), 0xFFFF);
    encode_log_probs(logits.data(), n, row.data());
    const LogProbRow r = decode_log_probs(row.data());
    float mx = logits[0];
    for (float x : logits) mx = std::max(mx, x);
    double sum = 0;
    for (float x : logits) sum += std::exp(double(x) - mx);
    const double lse = mx + std::log(sum);
    for (int32_t i = 0; i < n; ++i) {
      const double want = double(logits[size_t(i)]) - lse;
      if (want > -lse + mx - kLogProbRange + 1e-3) {  // inside the stored range
        EXPECT_NEAR(r.log_prob(i), want, 0.5 * r.scale + 1e-5) << "n " << n << " i " << i;
      } else {
        EXPECT_GE(r.log_prob(i), want - 0.5 * r.scale - 1e-5) << "below the range: stored at its floor";
      }
    }
    if (n % 2) {
      EXPECT_EQ(row.back(), 0) << "padding of an odd vocabulary";
    }
  }
}

TEST(LogProbRow, FlatLogitsStoreZeros) {
  std::vector<float> flat(10, 2.5f);
  std::vector<uint16_t> row(size_t(logits_row_u16(10)), 7);
  encode_log_probs(flat.data(), 10, row.data());
  const LogProbRow r = decode_log_probs(row.data());
  EXPECT_EQ(r.scale, 0.0f);
  EXPECT_NEAR(r.min_log_prob, -std::log(10.0), 1e-6);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(r.q[i], 0);
}

TEST(LogitsFile, WritesAndReadsBack) {
  const std::string path = temp_path("rt.kld");
  const int32_t n_ctx = 8, n_vocab = 5, n_chunk = 2;
  std::vector<int32_t> tokens(size_t(n_ctx * n_chunk));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(i % 5);
  {
    auto w = LogitsFileWriter::create(path, n_ctx, n_vocab, n_chunk, tokens);
    ASSERT_TRUE(w.is_ok()) << w.status().message();
    for (int i = 0; i < n_chunk * scored_per_window(n_ctx); ++i) {
      const auto l = random_logits(n_vocab, 1.0f, uint32_t(i));
      ASSERT_TRUE(w->add_row(l.data()).is_ok());
    }
    const auto extra = random_logits(n_vocab, 1.0f, 99);
    EXPECT_FALSE(w->add_row(extra.data()).is_ok()) << "more rows than the header says";
    ASSERT_TRUE(w->finish().is_ok());
  }
  EXPECT_EQ(std::filesystem::file_size(path), uint64_t(20 + 4 * 16 + 2 * 3 * 2 * logits_row_u16(5)));
  auto r = LogitsFileReader::open(path);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->n_ctx(), n_ctx);
  EXPECT_EQ(r->n_vocab(), n_vocab);
  EXPECT_EQ(r->n_chunk(), n_chunk);
  EXPECT_EQ(r->tokens(), tokens);
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(r->next_row().is_ok());
  EXPECT_FALSE(r->next_row().is_ok());
  std::filesystem::remove(path);
}

TEST(LogitsFile, RejectsMalformedFiles) {
  const std::string path = temp_path("bad.kld");
  auto write = [&](const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; };
  auto header = [](int32_t a, int32_t b, int32_t c) {
    std::string s = "_logits_";
    s.append(reinterpret_cast<const char*>(&a), 4).append(reinterpret_cast<const char*>(&b), 4);
    return s.append(reinterpret_cast<const char*>(&c), 4);
  };
  write("GGUF1234");
  EXPECT_NE(LogitsFileReader::open(path).status().message().find("_logits_"), std::string::npos);
  write("_logits_\x08");
  EXPECT_NE(LogitsFileReader::open(path).status().message().find("header"), std::string::npos);
  write(header(0, 5, 1));
  EXPECT_NE(LogitsFileReader::open(path).status().message().find("n_ctx >= 4"), std::string::npos);
  write(header(8, 5, 1));  // no tokens, no rows
  EXPECT_NE(LogitsFileReader::open(path).status().message().find("expected 112 bytes for n_ctx 8, n_vocab 5, n_chunk 1, got 20"), std::string::npos);
  write(header(2000000000, 2000000000, 2000000000));
  EXPECT_FALSE(LogitsFileReader::open(path).is_ok());
  std::string body = header(4, 3, 1);
  const int32_t toks[4] = {0, 1, 2, 9};  // 9 is outside the vocabulary
  body.append(reinterpret_cast<const char*>(toks), 16).append(size_t(2 * logits_row_u16(3)), '\0');
  write(body);
  EXPECT_NE(LogitsFileReader::open(path).status().message().find("got 9 at token 3"), std::string::npos);
  EXPECT_FALSE(LogitsFileReader::open(path + ".missing").is_ok());
  std::filesystem::remove(path);
}

TEST(Stats, UniformLogitsGiveVocabularySizedPerplexity) {
  std::vector<float> flat(100, 0.25f);
  NllStats s;
  for (int i = 0; i < 10; ++i) s.add(token_nll(flat.data(), 100, i));
  EXPECT_NEAR(s.ppl(), 100.0, 1e-6);
  EXPECT_EQ(s.ppl_error(), 0.0);
}

TEST(Stats, MeanErrorAndPercentile) {
  const MeanError m = mean_error(1 + 2 + 3 + 4, 1 + 4 + 9 + 16, 4);
  EXPECT_DOUBLE_EQ(m.mean, 2.5);
  EXPECT_NEAR(m.error, std::sqrt(1.25 / 3), 1e-12);
  EXPECT_EQ(mean_error(5, 25, 1).error, 0.0);
  const std::vector<float> v = {0, 1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(percentile(v, 0.5), 2.0);
  EXPECT_DOUBLE_EQ(percentile(v, 0.125), 0.5);
  EXPECT_DOUBLE_EQ(percentile(v, 1.0), 4.0);
  EXPECT_DOUBLE_EQ(percentile(v, 0.0), 0.0);
}

TEST(Stats, KldOfADistributionWithItselfIsZeroAndPositiveOtherwise) {
  const int32_t n = 1000;
  KldStats same, other;
  for (uint32_t t = 0; t < 50; ++t) {
    const auto l = random_logits(n, 2.0f, t);
    std::vector<uint16_t> row(size_t(logits_row_u16(n)));
    encode_log_probs(l.data(), n, row.data());
    same.add(l.data(), n, decode_log_probs(row.data()), int32_t(t));
    auto noisy = l;
    for (size_t i = 0; i < noisy.size(); ++i) noisy[i] += 0.1f * random_logits(1, 1.0f, uint32_t(i * 7 + t))[0];
    other.add(noisy.data(), n, decode_log_probs(row.data()), int32_t(t));
  }
  EXPECT_LT(std::fabs(same.kld().mean), 1e-5);
  EXPECT_EQ(same.same_top().mean, 1.0);
  EXPECT_NEAR(same.log_ppl_ratio().mean, 0.0, 1e-4);
  EXPECT_GT(other.kld().mean, 1e-4);
  EXPECT_EQ(other.kld_values.size(), 50u);
}

TEST(BandwidthProbe, MeasuresSomething) {
  BandwidthProbeOptions o;
  o.buffer_bytes = 16 << 20;
  o.n_runs = 3;
  auto r = probe_read_bandwidth(o);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->gbps.size(), 3u);
  EXPECT_GT(r->median_gbps, 0.0);
  EXPECT_EQ(r->buffer_bytes, uint64_t(16) << 20);
}

TEST(Bench, PromptAndGenerationOnATinyModel) {
  const std::string path = temp_path("tiny.gguf");
  const synth::Preset* preset = synth::find_preset("tiny-qwen3moe");
  ASSERT_NE(preset, nullptr);
  synth::MkModelOptions mo;
  mo.out_path = path;
  mo.hp = preset->hp;
  mo.types.base = DType::kQ8_0;
  ASSERT_TRUE(synth::make_model(mo).is_ok());
  auto file = gguf::GgufModel::open(path);
  ASSERT_TRUE(file.is_ok());
  auto model = Model::load(std::move(file.value()));
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  EXPECT_GT(touch_weights((*model)->file()), 0u);
  BenchOptions o;
  o.n_rep = 2;
  o.n_batch = 5;  // 16 prompt tokens in 4 batches
  auto pp = bench_prompt(**model, 16, o);
  ASSERT_TRUE(pp.is_ok()) << pp.status().message();
  EXPECT_EQ(pp->name(), "pp16");
  EXPECT_EQ(pp->seconds.size(), 2u);
  EXPECT_GT(pp->mean_tok_per_s(), 0.0);
  auto tg = bench_generation(**model, 4, o);
  ASSERT_TRUE(tg.is_ok());
  EXPECT_EQ(tg->name(), "tg4");
  EXPECT_GE(tg->stddev_tok_per_s(), 0.0);
  EXPECT_FALSE(bench_prompt(**model, 0, o).is_ok());
  // Three sequences decode together: one forward pass of 3 tokens per step,
  // and tokens/s counts all of them.
  ForwardProfile one_seq = tg->profile;
  EXPECT_EQ(one_seq.n_forward, 0);  // profiling was off
  o.n_parallel = 3;
  o.profile = true;
  auto tg3 = bench_generation(**model, 4, o);
  ASSERT_TRUE(tg3.is_ok()) << tg3.status().message();
  EXPECT_EQ(tg3->name(), "tg4x3");
  EXPECT_EQ(tg3->profile.n_forward, 2 * 4);
  EXPECT_EQ(tg3->profile.n_tokens, 2 * 4 * 3);
  ASSERT_EQ(tg3->seconds.size(), 2u);
  EXPECT_DOUBLE_EQ(tg3->tok_per_s()[0], 12 / tg3->seconds[0]);
  // At a depth every sequence's history is prefilled before each repetition,
  // outside the profile, and each step reads that much more of the cache.
  o.n_depth = 10;
  auto deep = bench_generation(**model, 4, o);
  ASSERT_TRUE(deep.is_ok()) << deep.status().message();
  EXPECT_EQ(deep->name(), "tg4x3 @ d10");
  EXPECT_EQ(deep->n_depth, 10);
  EXPECT_EQ(deep->profile.n_forward, 2 * 4);
  EXPECT_EQ(deep->profile.n_tokens, 2 * 4 * 3);
  const HParams& hp = (*model)->hparams();
  KvCache probe_cache = (*model)->make_cache(1, 1);
  const double row = double(hp.n_layer) * (probe_cache.k_width() + probe_cache.v_width()) * sizeof(float);
  EXPECT_EQ(probe_cache.position_bytes(), uint64_t(row));
  EXPECT_DOUBLE_EQ(tg3->kv_bytes_per_token, row * 2.5);  // positions 1..4 on average
  EXPECT_DOUBLE_EQ(deep->kv_bytes_per_token, row * 12.5);
  auto deep_pp = bench_prompt(**model, 16, o);
  ASSERT_TRUE(deep_pp.is_ok()) << deep_pp.status().message();
  EXPECT_EQ(deep_pp->name(), "pp16 @ d10");
  EXPECT_EQ(deep_pp->profile.n_tokens, 2 * 16);
  o.n_depth = -1;
  EXPECT_FALSE(bench_generation(**model, 4, o).is_ok());
  o.n_depth = 0;
  o.n_parallel = 0;
  EXPECT_FALSE(bench_generation(**model, 4, o).is_ok());
  EXPECT_EQ(dominant_type((*model)->file()), "q8_0");
  EXPECT_GT(count_params((*model)->file()), 0u);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace strata
