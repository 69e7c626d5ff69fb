// The forward pass on tiny random models of every architecture and weight
// type: real path vs the plain reference (tests/reference), incremental
// decode vs full prefill, several sequences in one batch vs each alone, and
// load-time errors that name the bad tensor.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <ostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cpu_kernels/cpu_isa.h"
#include "cpu_kernels/gemm_choice.h"
#include "cpu_kernels/qgemm_packed.h"
#include "runtime/gguf/gguf_reader.h"
#include "runtime/models/model.h"
#include "runtime/synth/mkmodel.h"
#include "runtime/synth/presets.h"
#include "tests/reference/ref_forward.h"

namespace strata {
namespace {

struct Case {
  const char* preset;
  DType type;
};

std::string case_name(const Case& c) {
  std::string s = std::string(c.preset) + "_" + std::string(dtype_name(c.type));
  for (char& ch : s) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return s;
}

void PrintTo(const Case& c, std::ostream* os) { *os << case_name(c); }

// mkmodel writes norm weights of 1 and a zero expert bias; give them random
// values in place so a norm weight or bias applied wrongly shows up.
void randomize_vectors(const std::string& path, uint64_t seed) {
  struct Patch {
    uint64_t offset, n;
    bool bias;
  };
  std::vector<Patch> patches;
  {
    auto m = gguf::GgufModel::open(path);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    const gguf::GgufFile& f = m->first();
    for (const auto& t : m->tensors()) {
      if (t.n_dims != 1 || t.dtype != DType::kF32) continue;
      const bool norm = t.name.find("norm") != std::string::npos;
      const bool bias = t.name.find("exp_probs_b") != std::string::npos;
      if (norm || bias) patches.push_back({f.data_offset + t.offset, t.n_elems, bias});
    }
  }
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
  for (const Patch& p : patches) {
    std::vector<float> v(p.n);
    for (float& x : v) x = p.bias ? 0.2f * (u(rng) - 0.5f) : 0.6f + 0.8f * u(rng);
    io.seekp(std::streamoff(p.offset));
    io.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
  }
}

// Files this process wrote, removed when it exits. Names carry the process
// id: ctest runs the cases of this file as parallel processes.
struct TempFiles {
  std::vector<std::string> paths;
  std::string path(const std::string& name) {
    paths.push_back(::testing::TempDir() + "strata_fwd_" + std::to_string(::getpid()) + "_" + name + ".gguf");
    return paths.back();
  }
  ~TempFiles() {
    for (const auto& p : paths) std::remove(p.c_str());
  }
};
TempFiles& temp_files() {
  static TempFiles t;
  return t;
}

std::string make_tiny(const Case& c) {
  static std::map<std::string, std::string> made;
  const std::string key = case_name(c);
  if (auto it = made.find(key); it != made.end()) return it->second;
  const synth::Preset* p = synth::find_preset(c.preset);
  EXPECT_NE(p, nullptr) << c.preset;
  synth::MkModelOptions o;
  o.out_path = temp_files().path(key);
  o.hp = p->hp;
  o.types.base = c.type;
  o.seed = 7;
  auto r = synth::make_model(o);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  randomize_vectors(o.out_path, 11);
  made[key] = o.out_path;
  return o.out_path;
}

// kReference: every product through matmul_ref (f32 activations), whose
// numerics the tight comparisons with the reference forward below assume;
// kFast: the default qgemm path (8-bit activations for quantized weights).
std::unique_ptr<Model> load_model(const std::string& path, CpuKernels kernels = CpuKernels::kReference) {
  auto f = gguf::GgufModel::open(path);
  EXPECT_TRUE(f.is_ok()) << f.status().to_string();
  ModelOptions o;
  o.kernels = kernels;
  auto m = Model::load(std::move(f.value()), o);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  return m.is_ok() ? std::move(m.value()) : nullptr;
}

std::vector<int32_t> tokens_for(uint32_t n_vocab, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng() % n_vocab);
  return t;
}

// Max |a - b| over n values, and max |b| (the scale errors are read against).
struct Diff {
  double max_abs = 0, scale = 0;
};
Diff diff(const float* a, const float* b, size_t n) {
  Diff d;
  for (size_t i = 0; i < n; ++i) {
    d.max_abs = std::max(d.max_abs, std::fabs(double(a[i]) - double(b[i])));
    d.scale = std::max(d.scale, std::fabs(double(b[i])));
  }
  return d;
}

int32_t argmax_of(const float* x, int32_t n) {
  int32_t b = 0;
  for (int32_t i = 1; i < n; ++i) b = x[i] > x[b] ? i : b;
  return b;
}

// Gap between the best and second-best logit.
double top2_gap(const float* x, int32_t n) {
  double a = -INFINITY, b = -INFINITY;
  for (int32_t i = 0; i < n; ++i) {
    if (x[i] > a) {
      b = a;
      a = x[i];
    } else if (x[i] > b) {
      b = x[i];
    }
  }
  return a - b;
}

// Real-path error allowed against the reference, relative to the largest
// logit. The real path dequantizes weights exactly as the reference does, so
// every type differs only by f32-vs-double summation order; a path that
// quantizes activations (Q8) will need per-type room here.
double tolerance(DType t) {
  switch (t) {
    case DType::kF32: return 2e-4;
    case DType::kQ8_0: return 2e-4;
    default: return 3e-4;
  }
}

class ForwardTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    path_ = make_tiny(GetParam());
    model_ = load_model(path_);
    ASSERT_NE(model_, nullptr);
    n_vocab_ = int32_t(model_->hparams().n_vocab);
  }

  // Logits of every position of `toks` in one prefill of a fresh cache.
  std::vector<float> prefill_all(const std::vector<int32_t>& toks) { return prefill_all(*model_, toks); }
  static std::vector<float> prefill_all(Model& m, const std::vector<int32_t>& toks) {
    KvCache cache = m.make_cache(1, 64);
    Batch b;
    b.add_sequence(toks, 0, 0, true);
    auto r = m.forward(b, cache);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? r->data : std::vector<float>{};
  }
  // Logits of every position from the float32 reference forward (empty, and
  // the test marked failed, when the reference cannot load the file).
  std::vector<float> reference_logits(const std::vector<int32_t>& toks) {
    auto file = gguf::GgufModel::open(path_);
    EXPECT_TRUE(file.is_ok());
    if (!file.is_ok()) return {};
    auto ref = ref::RefModel::load(file.value());
    EXPECT_TRUE(ref.is_ok()) << ref.status().to_string();
    return ref.is_ok() ? ref->forward(toks) : std::vector<float>{};
  }
  void incremental_decode_matches_prefill(Model& m);
  void batched_sequences_match_each_alone(Model& m);
  // The model in each kernel mode: the reference one of SetUp, then the fast one.
  std::vector<std::pair<const char*, Model*>> both_modes() {
    if (!fast_) fast_ = load_model(path_, CpuKernels::kFast);
    return {{"reference", model_.get()}, {"fast", fast_.get()}};
  }

  std::string path_;
  std::unique_ptr<Model> model_, fast_;
  int32_t n_vocab_ = 0;
};

TEST_P(ForwardTest, PrefillMatchesReference) {
  const std::vector<int32_t> toks = tokens_for(uint32_t(n_vocab_), 9, 1);
  const std::vector<float> real = prefill_all(toks);
  ASSERT_EQ(real.size(), toks.size() * static_cast<size_t>(n_vocab_));

  const std::vector<float> want = reference_logits(toks);
  ASSERT_FALSE(want.empty());
  ASSERT_EQ(want.size(), real.size());

  const Diff d = diff(real.data(), want.data(), real.size());
  const double tol = tolerance(GetParam().type) * std::max(1.0, d.scale);
  EXPECT_LE(d.max_abs, tol) << "max |logit| " << d.scale;
  int argmax_checked = 0;
  for (size_t t = 0; t < toks.size(); ++t) {
    const float* r = real.data() + t * static_cast<size_t>(n_vocab_);
    const float* w = want.data() + t * static_cast<size_t>(n_vocab_);
    if (top2_gap(w, n_vocab_) <= 2 * tol) continue;  // a near-tie may legitimately flip
    ++argmax_checked;
    EXPECT_EQ(argmax_of(r, n_vocab_), argmax_of(w, n_vocab_)) << "position " << t;
  }
  EXPECT_GE(argmax_checked, int(toks.size()) - 1);
  RecordProperty("max_abs_err", std::to_string(d.max_abs));
  RecordProperty("max_abs_logit", std::to_string(d.scale));
  std::printf("[ measured ] %s vs reference: max |err| %.3g, max |logit| %.3g\n", case_name(GetParam()).c_str(),
              d.max_abs, d.scale);
}

// The default fast path (qgemm) against the reference forward. f32 weights
// keep f32 activations (summation order only). Quantized weights see 8-bit
// activations: per block (32 values for q8_0, 256 for q4_k) a scale of
// max|x| / 127, so rounding adds noise of max|x| / (127 sqrt 12) ~ 0.2-0.7 %
// of the rms of an input row for every product, more for the heavy-tailed
// FFN intermediates. Over the tiny models' layers this stays within about
// 1 % (q8_0) and 2 % (q4_k) of the largest logit; the bounds leave room for
// seeds, and the argmax must agree wherever the reference's top-2 gap exceeds
// twice the bound.
double fast_tolerance(DType t) {
  switch (t) {
    case DType::kF32: return 2e-4;
    case DType::kQ8_0: return 3e-2;
    default: return 5e-2;
  }
}

TEST_P(ForwardTest, FastPathIsNearReference) {
  const std::vector<int32_t> toks = tokens_for(uint32_t(n_vocab_), 9, 1);
  auto fast = load_model(path_, CpuKernels::kFast);
  ASSERT_NE(fast, nullptr);
  const std::vector<float> got = prefill_all(*fast, toks);
  const std::vector<float> want = reference_logits(toks);
  ASSERT_FALSE(want.empty());
  ASSERT_EQ(want.size(), got.size());

  const Diff d = diff(got.data(), want.data(), got.size());
  const double tol = fast_tolerance(GetParam().type) * std::max(1.0, d.scale);
  EXPECT_LE(d.max_abs, tol) << "max |logit| " << d.scale;
  int checked = 0, agree = 0;
  for (size_t t = 0; t < toks.size(); ++t) {
    const float* r = got.data() + t * static_cast<size_t>(n_vocab_);
    const float* w = want.data() + t * static_cast<size_t>(n_vocab_);
    agree += argmax_of(r, n_vocab_) == argmax_of(w, n_vocab_);
    if (top2_gap(w, n_vocab_) <= 2 * tol) continue;
    ++checked;
    EXPECT_EQ(argmax_of(r, n_vocab_), argmax_of(w, n_vocab_)) << "position " << t;
  }
  // Near-ties may flip, but not most positions.
  EXPECT_GE(agree, int(toks.size()) - 2);
  std::printf("[ measured ] %s fast vs reference: max |err| %.3g (%.2g of max |logit| %.3g), argmax %d/%zu, %d checked\n",
              case_name(GetParam()).c_str(), d.max_abs, d.max_abs / std::max(1.0, d.scale), d.scale, agree, toks.size(),
              checked);
}

// A 40-token prompt: the matrix products of 32 rows or more run on oneDNN
// under the onednn policy (f32 products of the dequantized weights), the rest
// on qgemm. Both policies stay within the fast path's bound of the reference
// at nearly every position (over 40 positions, 8-bit activation noise may
// flip a near-tie in an MoE router, which moves that position's logits
// wholesale), and they do not give the same bits (the oneDNN path really ran).
TEST_P(ForwardTest, OneDnnPromptBatchesAreNearReference) {
  const std::vector<int32_t> toks = tokens_for(uint32_t(n_vocab_), 40, 3);
  auto fast = load_model(path_, CpuKernels::kFast);
  ASSERT_NE(fast, nullptr);
  set_gemm_policy(GemmPolicy::kNative);
  const std::vector<float> native = prefill_all(*fast, toks);
  set_gemm_policy(GemmPolicy::kDnnl);
  const std::vector<float> dnnl = prefill_all(*fast, toks);
  set_gemm_policy(GemmPolicy::kAuto);
  const std::vector<float> want = reference_logits(toks);
  ASSERT_FALSE(want.empty());
  ASSERT_EQ(want.size(), dnnl.size());
  ASSERT_EQ(want.size(), native.size());
  const size_t V = size_t(n_vocab_);
  const double tol = fast_tolerance(GetParam().type) * std::max(1.0, diff(want.data(), want.data(), want.size()).scale);
  auto positions_off = [&](const std::vector<float>& got) {
    int off = 0;
    for (size_t t = 0; t < toks.size(); ++t) off += diff(got.data() + t * V, want.data() + t * V, V).max_abs > tol;
    return off;
  };
  const int off_dnnl = positions_off(dnnl), off_native = positions_off(native);
  const int allowed = GetParam().type == DType::kF32 ? 0 : int(toks.size()) / 10;
  EXPECT_LE(off_dnnl, allowed);
  EXPECT_LE(off_native, allowed);
  EXPECT_NE(std::memcmp(dnnl.data(), native.data(), dnnl.size() * sizeof(float)), 0);
  std::printf("[ measured ] %s 40-token prefill, positions off the reference by more than %.3g: onednn %d, qgemm %d\n",
              case_name(GetParam()).c_str(), tol, off_dnnl, off_native);
}

// Prompt chunks after earlier context, two sequences in one batch, under the
// onednn policy (runs of 32+ tokens attend as matrix products over the
// gathered keys and values of their own sequence): each position's logits
// match one plain prefill of that sequence.
TEST_P(ForwardTest, ChunkedPromptBatchesOnOneDnnMatchOnePrefill) {
  const std::vector<int32_t> a = tokens_for(uint32_t(n_vocab_), 60, 5), bt = tokens_for(uint32_t(n_vocab_), 35, 6);
  auto fast = load_model(path_, CpuKernels::kFast);
  ASSERT_NE(fast, nullptr);
  set_gemm_policy(GemmPolicy::kDnnl);
  const std::vector<float> a_alone = prefill_all(*fast, a), b_alone = prefill_all(*fast, bt);
  KvCache cache = fast->make_cache(2, 64);
  Batch b;
  b.add_sequence({a.begin(), a.begin() + 20}, 0, 0, false);
  ASSERT_TRUE(fast->forward(b, cache).is_ok());
  b.clear();
  for (int32_t i = 20; i < 60; ++i) b.add(a[size_t(i)], 0, i, true);
  for (int32_t i = 0; i < 35; ++i) b.add(bt[size_t(i)], 1, i, true);
  auto r = fast->forward(b, cache);
  set_gemm_policy(GemmPolicy::kAuto);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->n_rows(), 75);
  const size_t V = size_t(n_vocab_);
  const double tol = fast_tolerance(GetParam().type) * std::max(1.0, diff(a_alone.data(), a_alone.data(), a_alone.size()).scale);
  int off = 0;
  for (int64_t row = 0; row < 75; ++row) {
    const float* want = row < 40 ? a_alone.data() + size_t(20 + row) * V : b_alone.data() + size_t(row - 40) * V;
    off += diff(r->row(row), want, V).max_abs > tol;
  }
  EXPECT_LE(off, GetParam().type == DType::kF32 ? 0 : 7);
  std::printf("[ measured ] %s chunked prompts on oneDNN: %d of 75 positions off one prefill by more than %.3g\n",
              case_name(GetParam()).c_str(), off, tol);
}

TEST_P(ForwardTest, IncrementalDecodeMatchesPrefill) {
  for (auto [mode, model] : both_modes()) {
    SCOPED_TRACE(mode);
    incremental_decode_matches_prefill(*model);
  }
}

void ForwardTest::incremental_decode_matches_prefill(Model& m) {
  const std::vector<int32_t> toks = tokens_for(uint32_t(n_vocab_), 9, 2);
  const std::vector<float> full = prefill_all(m, toks);
  ASSERT_FALSE(full.empty());

  KvCache cache = m.make_cache(1, 64);
  Batch b;
  b.add_sequence({toks.begin(), toks.begin() + 4}, 0, 0, true);
  auto r = m.forward(b, cache);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  std::vector<float> inc = r->data;
  for (size_t t = 4; t < toks.size(); ++t) {
    b.clear();
    b.add(toks[t], 0, int32_t(t), true);
    auto s = m.forward(b, cache);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    inc.insert(inc.end(), s->data.begin(), s->data.end());
  }
  EXPECT_EQ(cache.seq_len(0), int32_t(toks.size()));
  const Diff d = diff(inc.data(), full.data(), full.size());
  EXPECT_LE(d.max_abs, 1e-5 * std::max(1.0, d.scale));
  std::printf("[ measured ] %s decode vs prefill: max |diff| %.3g\n", case_name(GetParam()).c_str(), d.max_abs);
}

TEST_P(ForwardTest, BatchedSequencesMatchEachAlone) {
  for (auto [mode, model] : both_modes()) {
    SCOPED_TRACE(mode);
    batched_sequences_match_each_alone(*model);
  }
}

void ForwardTest::batched_sequences_match_each_alone(Model& m) {
  const std::vector<std::vector<int32_t>> prompts = {tokens_for(uint32_t(n_vocab_), 5, 3),
                                                     tokens_for(uint32_t(n_vocab_), 7, 4),
                                                     tokens_for(uint32_t(n_vocab_), 3, 5)};
  const int n_steps = 3;
  // Each sequence alone: prefill, then greedy decode steps.
  std::vector<std::vector<float>> alone(prompts.size());
  std::vector<std::vector<int32_t>> generated(prompts.size());
  for (size_t s = 0; s < prompts.size(); ++s) {
    KvCache cache = m.make_cache(1, 64);
    Batch b;
    b.add_sequence(prompts[s], 0, 0);
    auto r = m.forward(b, cache);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    alone[s] = r->data;
    for (int step = 0; step < n_steps; ++step) {
      const int32_t next = argmax_of(r->row(r->n_rows() - 1), n_vocab_);
      generated[s].push_back(next);
      b.clear();
      b.add(next, 0, int32_t(prompts[s].size()) + step, true);
      r = m.forward(b, cache);
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      alone[s].insert(alone[s].end(), r->data.begin(), r->data.end());
    }
  }
  // All together: prompts interleaved in one batch, then one batch per step.
  KvCache cache = m.make_cache(3, 64);
  Batch b;
  for (size_t i = 0; i < 7; ++i) {
    for (size_t s = 0; s < prompts.size(); ++s) {
      if (i < prompts[s].size()) b.add(prompts[s][i], int32_t(s), int32_t(i), i + 1 == prompts[s].size());
    }
  }
  auto r = m.forward(b, cache);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  std::vector<std::vector<float>> together(prompts.size());
  for (int64_t row = 0; row < r->n_rows(); ++row) {
    const int32_t s = b.seqs()[static_cast<size_t>(r->batch_index[static_cast<size_t>(row)])];
    together[static_cast<size_t>(s)].insert(together[static_cast<size_t>(s)].end(), r->row(row), r->row(row) + n_vocab_);
  }
  for (int step = 0; step < n_steps; ++step) {
    b.clear();
    for (size_t s = 0; s < prompts.size(); ++s) b.add(generated[s][static_cast<size_t>(step)], int32_t(s), int32_t(prompts[s].size()) + step, true);
    r = m.forward(b, cache);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    for (size_t s = 0; s < prompts.size(); ++s) together[s].insert(together[s].end(), r->row(int64_t(s)), r->row(int64_t(s)) + n_vocab_);
  }
  double worst = 0;
  for (size_t s = 0; s < prompts.size(); ++s) {
    ASSERT_EQ(together[s].size(), alone[s].size()) << "sequence " << s;
    const Diff d = diff(together[s].data(), alone[s].data(), alone[s].size());
    EXPECT_LE(d.max_abs, 1e-5 * std::max(1.0, d.scale)) << "sequence " << s;
    worst = std::max(worst, d.max_abs);
  }
  std::printf("[ measured ] %s batched vs alone: max |diff| %.3g\n", case_name(GetParam()).c_str(), worst);
}

const char* kPresets[] = {"tiny-llama",    "tiny-qwen2",    "tiny-qwen3",     "tiny-mixtral",
                          "tiny-qwen3moe", "tiny-qwen2moe", "tiny-deepseek2", "tiny-deepseek2-lite"};

std::vector<Case> all_cases() {
  std::vector<Case> v;
  for (const char* p : kPresets) {
    for (DType t : {DType::kF32, DType::kQ8_0, DType::kQ4_K}) v.push_back({p, t});
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Tiny, ForwardTest, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return case_name(i.param); });

// --- load-time and run-time errors

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_all(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// Offset just past the first occurrence of `s` in `b` (npos when absent).
size_t after(const std::vector<uint8_t>& b, const std::string& s) {
  auto it = std::search(b.begin(), b.end(), s.begin(), s.end());
  return it == b.end() ? std::string::npos : static_cast<size_t>(it - b.begin()) + s.size();
}

std::string broken_copy(const std::string& name, const std::function<void(std::vector<uint8_t>&)>& edit) {
  std::vector<uint8_t> b = read_all(make_tiny({"tiny-llama", DType::kF32}));
  edit(b);
  const std::string path = temp_files().path("broken_" + name);
  write_all(path, b);
  return path;
}

Status load_status(const std::string& path) {
  auto f = gguf::GgufModel::open(path);
  if (!f.is_ok()) return f.status();
  auto m = Model::load(std::move(f.value()));
  return m.is_ok() ? Status::ok() : m.status();
}

// --- threads and NUMA placement

// A model on a two-node machine (synthetic topology: threads unpinned, node
// memory plain) copies its routed experts to the nodes at load and computes
// each on its node's threads; logits equal the one-thread model's bit for bit.
TEST(ForwardThreads, NumaPlacementAndThreadCountChangeNoLogit) {
  const std::string path = make_tiny({"tiny-qwen3moe", DType::kQ4_K});
  const std::vector<int32_t> toks = tokens_for(500, 7, 9);
  auto logits = [&](ModelOptions o) {
    auto f = gguf::GgufModel::open(path);
    EXPECT_TRUE(f.is_ok());
    uint64_t copied = 0, total = 0;
    o.placement_progress = [&](uint64_t d, uint64_t t) { copied = d, total = t; };
    auto m = Model::load(std::move(f.value()), o);
    EXPECT_TRUE(m.is_ok()) << m.status().to_string();
    if (!m.is_ok()) return std::pair(std::vector<float>{}, uint64_t(0));
    EXPECT_EQ(copied, total);
    KvCache cache = (*m)->make_cache(1, 16);
    Batch b;
    b.add_sequence(toks, 0, 0, true);
    auto r = (*m)->forward(b, cache);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return std::pair(r.is_ok() ? r->data : std::vector<float>{}, copied);
  };
  auto two_nodes = Topology::synthetic("pack:2 numa:1 core:2 pu:1");
  ASSERT_TRUE(two_nodes.is_ok()) << two_nodes.status().to_string();
  std::vector<float> fast_unpacked;
  for (CpuKernels k : {CpuKernels::kReference, CpuKernels::kFast}) {
    ModelOptions one;
    one.kernels = k;
    one.n_threads = 1;
    one.repack = ExpertRepack::kOff;
    ModelOptions numa;
    numa.kernels = k;
    numa.topology = *two_nodes;  // four threads, two per node
    numa.repack = ExpertRepack::kOff;
    const auto [want, none] = logits(one);
    const auto [got, copied] = logits(numa);
    EXPECT_EQ(none, 0u);   // one thread on one node: nothing copied
    EXPECT_GT(copied, 0u);  // every routed expert copied to its node
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0)
        << (k == CpuKernels::kFast ? "fast" : "reference");
    if (k == CpuKernels::kFast) fast_unpacked = want;
  }
  // Experts repacked for the SIMD width (where this CPU path has a packed
  // kernel): one thread and two NUMA nodes agree bit for bit, and both are
  // within float rounding of the file layout (same integer block sums).
  if (!qgemm_packed_fast(active_cpu_isa(), DType::kQ4_K)) GTEST_SKIP() << "no packed q4_k kernel on this CPU path";
  ModelOptions one;
  one.n_threads = 1;
  one.repack = ExpertRepack::kOn;
  ModelOptions numa = one;
  numa.n_threads = 0;
  numa.topology = *two_nodes;
  const auto [want, packed_one] = logits(one);
  const auto [got, packed_numa] = logits(numa);
  EXPECT_GT(packed_one, 0u);
  EXPECT_EQ(packed_numa, packed_one);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0) << "repacked";
  ASSERT_EQ(fast_unpacked.size(), want.size());
  double d = 0, s2 = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    d = std::max(d, std::fabs(double(want[i]) - fast_unpacked[i]));
    s2 = std::max(s2, std::fabs(double(fast_unpacked[i])));
  }
  EXPECT_LE(d, 1e-4 * s2) << "repacked vs file layout";
}

TEST(ForwardThreads, TooManyThreadsIsAnError) {
  auto f = gguf::GgufModel::open(make_tiny({"tiny-llama", DType::kF32}));
  ASSERT_TRUE(f.is_ok());
  auto topo = Topology::synthetic("pack:1 numa:1 core:2 pu:1");
  ASSERT_TRUE(topo.is_ok());
  ModelOptions o;
  o.topology = *topo;
  o.n_threads = 3;
  auto m = Model::load(std::move(f.value()), o);
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().message(), "thread pool: expected at most 2 threads (one per physical core), got 3");
}

TEST(ForwardErrors, MissingTensorIsNamedAtLoad) {
  const std::string path = broken_copy("missing", [](std::vector<uint8_t>& b) {
    const size_t at = after(b, "blk.1.ffn_up.weight");
    ASSERT_NE(at, std::string::npos);
    b[at - std::strlen("p.weight")] = 'X';  // blk.1.ffn_uX.weight
  });
  const Status s = load_status(path);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.to_string();
  EXPECT_NE(s.message().find("blk.1.ffn_up.weight"), std::string::npos) << s.message();
}

TEST(ForwardErrors, MisShapedTensorIsNamedAtLoad) {
  // feed_forward_length 512 -> 256: every FFN tensor now has the wrong shape.
  const std::string path = broken_copy("shape", [](std::vector<uint8_t>& b) {
    const size_t at = after(b, "llama.feed_forward_length");
    ASSERT_NE(at, std::string::npos);
    uint32_t v = 0;
    std::memcpy(&v, &b[at + 4], 4);
    ASSERT_EQ(v, 512u);
    v = 256;
    std::memcpy(&b[at + 4], &v, 4);
  });
  const Status s = load_status(path);
  EXPECT_EQ(s.code(), StatusCode::kInvalidFormat) << s.to_string();
  EXPECT_NE(s.message().find("blk.0.ffn_gate.weight: expected shape [256, 256], got [256, 512]"), std::string::npos)
      << s.message();
}

TEST(ForwardErrors, UnsupportedTypeIsNamedAtLoad) {
  // attn_norm f32 -> i32: same size, so the file still parses.
  const std::string path = broken_copy("type", [](std::vector<uint8_t>& b) {
    const size_t at = after(b, "blk.0.attn_norm.weight");
    ASSERT_NE(at, std::string::npos);
    const size_t type_at = at + 4 + 8;  // n_dims (u32), ne[0] (u64)
    uint32_t t = 0;
    std::memcpy(&t, &b[type_at], 4);
    ASSERT_EQ(t, uint32_t(DType::kF32));
    t = uint32_t(DType::kI32);
    std::memcpy(&b[type_at], &t, 4);
  });
  const Status s = load_status(path);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.to_string();
  EXPECT_NE(s.message().find("blk.0.attn_norm.weight: type i32"), std::string::npos) << s.message();
}

TEST(ForwardErrors, NonFiniteLogitsAreReported) {
  const std::string src = make_tiny({"tiny-llama", DType::kF32});
  const std::string path = temp_files().path("broken_nan");
  write_all(path, read_all(src));
  uint64_t offset = 0;
  {
    auto m = gguf::GgufModel::open(path);
    ASSERT_TRUE(m.is_ok());
    const gguf::TensorInfo* t = m->find_tensor("blk.1.ffn_norm.weight");
    ASSERT_NE(t, nullptr);
    offset = m->first().data_offset + t->offset;
  }
  {
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    const float nan = std::nanf("");
    io.seekp(std::streamoff(offset));
    io.write(reinterpret_cast<const char*>(&nan), sizeof nan);
  }
  auto model = load_model(path);
  ASSERT_NE(model, nullptr);
  KvCache cache = model->make_cache(1, 16);
  Batch b;
  b.add_sequence({1, 2, 3}, 0, 0);
  auto r = model->forward(b, cache);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("non-finite logit"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("after layer 1"), std::string::npos) << r.status().message();
}

TEST(ForwardErrors, BadBatchesAreRejectedBeforeCompute) {
  auto model = load_model(make_tiny({"tiny-llama", DType::kF32}));
  ASSERT_NE(model, nullptr);
  KvCache cache = model->make_cache(2, 8);
  auto run = [&](std::initializer_list<std::array<int32_t, 3>> toks) {
    Batch b;
    for (const auto& t : toks) b.add(t[0], t[1], t[2], true);
    return model->forward(b, cache).status();
  };
  EXPECT_NE(run({{1, 0, 1}}).message().find("position: expected 0"), std::string::npos);      // gap
  EXPECT_NE(run({{1, 2, 0}}).message().find("sequence: expected 0..1"), std::string::npos);   // no such slot
  EXPECT_NE(run({{100000, 0, 0}}).message().find("token: expected"), std::string::npos);      // vocabulary
  EXPECT_NE(run({{1, 0, 0}, {2, 0, 0}}).message().find("position: expected 1"), std::string::npos);  // repeat
  EXPECT_EQ(cache.seq_len(0), 0);
  EXPECT_TRUE(run({{1, 0, 0}, {2, 1, 0}, {3, 0, 1}}).is_ok());
  EXPECT_EQ(cache.seq_len(0), 2);
  EXPECT_EQ(cache.seq_len(1), 1);
  std::vector<std::array<int32_t, 3>> long_seq;
  EXPECT_NE(run({{1, 1, 1}, {1, 1, 2}, {1, 1, 3}, {1, 1, 4}, {1, 1, 5}, {1, 1, 6}, {1, 1, 7}, {1, 1, 8}})
                .message()
                .find("the cache's context"),
            std::string::npos);
}

}  // namespace
}  // namespace strata
