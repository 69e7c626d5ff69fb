// Timed prompt and generation loops over Model::forward.
#include "runtime/eval/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>

#include "runtime/base/dtype.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

Status check_options(int32_t n, const BenchOptions& o, const Model& model) {
  if (n < 1) return invalid_argument("bench: expected at least 1 token per test, got " + std::to_string(n));
  if (o.n_rep < 1) return invalid_argument("bench: expected at least 1 repetition, got " + std::to_string(o.n_rep));
  if (o.n_batch < 1) return invalid_argument("bench: expected a batch of at least 1, got " + std::to_string(o.n_batch));
  if (o.n_parallel < 1) {
    return invalid_argument("bench: expected at least 1 parallel sequence, got " + std::to_string(o.n_parallel));
  }
  if (o.n_depth < 0) return invalid_argument("bench: expected a depth of 0 or more, got " + std::to_string(o.n_depth));
  if (int64_t(o.n_depth) + n > (int64_t(1) << 30)) {
    return invalid_argument("bench: depth " + std::to_string(o.n_depth) + " plus " + std::to_string(n) +
                            " tokens is too long");
  }
  if (model.hparams().n_vocab < 1) return invalid_argument("bench: the model has no vocabulary");
  return Status::ok();
}

// Fills positions [0, depth) of sequences [0, n_seq) with random tokens (the
// first BOS when the vocabulary adds one), in prompt batches, unprofiled.
Status fill_depth(Model& model, KvCache& cache, int32_t n_seq, const BenchOptions& o, std::mt19937_64& rng) {
  if (o.n_depth == 0) return Status::ok();
  ForwardProfile* profile = model.profile();
  model.set_profile(nullptr);
  std::uniform_int_distribution<int32_t> pick(0, int32_t(model.hparams().n_vocab) - 1);
  Batch batch;
  Status st = Status::ok();
  for (int32_t q = 0; q < n_seq && st.is_ok(); ++q) {
    for (int32_t b0 = 0; b0 < o.n_depth && st.is_ok(); b0 += o.n_batch) {
      const int32_t b1 = std::min(o.n_depth, b0 + o.n_batch);
      batch.clear();
      for (int32_t p = b0; p < b1; ++p) batch.add(p == 0 && o.bos >= 0 ? o.bos : pick(rng), q, p, p + 1 == b1);
      auto logits = model.forward(batch, cache);
      if (!logits.is_ok()) st = logits.status();
    }
  }
  model.set_profile(profile);
  return st;
}

// Profiles the model's forward passes while in scope.
class ProfileScope {
 public:
  ProfileScope(Model& m, ForwardProfile* p) : m_(m) { m_.set_profile(p); }
  ~ProfileScope() { m_.set_profile(nullptr); }

 private:
  Model& m_;
};

}  // namespace

std::string BenchResult::name() const {
  std::string s = (kind == BenchKind::kPrompt ? "pp" : "tg") + std::to_string(n_tokens);
  if (n_parallel > 1) s += "x" + std::to_string(n_parallel);
  return n_depth > 0 ? s + " @ d" + std::to_string(n_depth) : s;
}

std::vector<double> BenchResult::tok_per_s() const {
  std::vector<double> v;
  for (double s : seconds) v.push_back(s > 0 ? double(n_tokens) * double(n_parallel) / s : 0.0);
  return v;
}

double BenchResult::mean_tok_per_s() const {
  const auto v = tok_per_s();
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0.0 : sum / double(v.size());
}

double BenchResult::stddev_tok_per_s() const {
  const auto v = tok_per_s();
  if (v.size() < 2) return 0;
  const double m = mean_tok_per_s();
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / double(v.size() - 1));
}

uint64_t touch_weights(const gguf::GgufModel& file) {
  uint64_t bytes = 0;
  volatile uint8_t sink = 0;
  for (const auto& t : file.tensors()) {
    if (!t.data) continue;
    uint8_t acc = 0;
    for (uint64_t off = 0; off < t.n_bytes; off += 4096) acc ^= t.data[off];
    sink = sink ^ acc;
    bytes += t.n_bytes;
  }
  return bytes;
}

Result<BenchResult> bench_prompt(Model& model, int32_t n_prompt, const BenchOptions& o) {
  STRATA_RETURN_IF_ERROR(check_options(n_prompt, o, model));
  const int32_t n_vocab = int32_t(model.hparams().n_vocab);
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> pick(0, n_vocab - 1);
  BenchResult r;
  r.kind = BenchKind::kPrompt;
  r.n_tokens = n_prompt;
  r.n_depth = o.n_depth;
  KvCache cache = model.make_cache(1, uint32_t(o.n_depth + n_prompt));
  Batch batch;
  ProfileScope scope(model, o.profile ? &r.profile : nullptr);
  for (int32_t rep = 0; rep < o.n_rep; ++rep) {
    std::vector<int32_t> tokens(static_cast<size_t>(n_prompt));
    for (auto& t : tokens) t = pick(rng);
    if (o.bos >= 0 && o.n_depth == 0) tokens[0] = o.bos;
    cache.clear_all();
    STRATA_RETURN_IF_ERROR(fill_depth(model, cache, 1, o, rng));
    const auto t0 = Clock::now();
    for (int32_t b0 = 0; b0 < n_prompt; b0 += o.n_batch) {
      const int32_t b1 = std::min(n_prompt, b0 + o.n_batch);
      batch.clear();
      // Logits of each batch's last token only, as a prompt prefill needs.
      for (int32_t p = b0; p < b1; ++p) batch.add(tokens[size_t(p)], 0, o.n_depth + p, p + 1 == b1);
      STRATA_ASSIGN_OR_RETURN(Logits logits, model.forward(batch, cache));
      (void)logits;
    }
    r.seconds.push_back(seconds_since(t0));
  }
  return r;
}

Result<BenchResult> bench_generation(Model& model, int32_t n_gen, const BenchOptions& o) {
  STRATA_RETURN_IF_ERROR(check_options(n_gen, o, model));
  const int32_t n_vocab = int32_t(model.hparams().n_vocab);
  const int32_t n_seq = o.n_parallel;
  std::mt19937_64 rng(o.seed + 1);
  std::uniform_int_distribution<int32_t> pick(0, n_vocab - 1);
  BenchResult r;
  r.kind = BenchKind::kGeneration;
  r.n_tokens = n_gen;
  r.n_parallel = n_seq;
  r.n_depth = o.n_depth;
  KvCache cache = model.make_cache(uint32_t(n_seq), uint32_t(o.n_depth + n_gen));
  // Step i attends over n_depth + i + 1 positions of every layer.
  r.kv_bytes_per_token = double(cache.position_bytes()) * (double(o.n_depth) + double(n_gen + 1) / 2);
  Batch batch;
  ProfileScope scope(model, o.profile ? &r.profile : nullptr);
  std::vector<int32_t> tok(static_cast<size_t>(n_seq));
  for (int32_t rep = 0; rep < o.n_rep; ++rep) {
    cache.clear_all();
    STRATA_RETURN_IF_ERROR(fill_depth(model, cache, n_seq, o, rng));
    for (auto& t : tok) t = o.bos >= 0 && o.n_depth == 0 ? o.bos : pick(rng);
    double s = 0;
    for (int32_t i = 0; i < n_gen; ++i) {
      batch.clear();
      for (int32_t q = 0; q < n_seq; ++q) batch.add(tok[size_t(q)], q, o.n_depth + i, true);
      const auto t0 = Clock::now();
      STRATA_ASSIGN_OR_RETURN(Logits logits, model.forward(batch, cache));
      s += seconds_since(t0);
      (void)logits;
      for (auto& t : tok) t = pick(rng);
    }
    r.seconds.push_back(s);
  }
  return r;
}

uint64_t count_params(const gguf::GgufModel& file) {
  uint64_t n = 0;
  for (const auto& t : file.tensors()) n += t.n_elems;
  return n;
}

std::string dominant_type(const gguf::GgufModel& file) {
  std::map<DType, uint64_t> bytes;
  for (const auto& t : file.tensors()) {
    if (t.n_dims >= 2) bytes[t.dtype] += t.n_bytes;
  }
  if (bytes.empty()) return "?";
  auto best = std::max_element(bytes.begin(), bytes.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  return std::string(dtype_name(best->first));
}

}  // namespace strata
