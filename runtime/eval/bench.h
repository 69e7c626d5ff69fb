// Throughput measurements in llama-bench's manner: pp<N> runs a prompt of N
// random tokens (BOS first when the vocabulary adds one) from an empty cache
// in batches, tg<N> decodes N random tokens one at a time from an empty
// cache, and tg<N>x<S> decodes S sequences together, one token of each per
// forward pass, as a server's continuous batching does. Each is repeated and
// reported as mean +/- sample standard deviation of the per-repetition tokens
// per second. With a depth D, every sequence's cache first holds D positions
// of random tokens, prefilled untimed before each repetition, and the test
// runs from position D on ("tg128 @ d4096", llama-bench's -d).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/models/model.h"

namespace strata {

struct BenchOptions {
  int32_t n_batch = 512;  // prompt tokens per forward call
  int32_t n_rep = 5;
  int32_t bos = -1;       // first prompt token when >= 0
  uint64_t seed = 1234;   // random token ids
  bool profile = false;   // time the forward passes by category (BenchResult::profile)
  int32_t n_parallel = 1;  // sequences decoded together by bench_generation
  int32_t n_depth = 0;     // positions already in every sequence's cache when a test starts
};

enum class BenchKind { kPrompt, kGeneration };

struct BenchResult {
  BenchKind kind = BenchKind::kPrompt;
  int32_t n_tokens = 0;         // per sequence
  int32_t n_parallel = 1;       // sequences decoded together
  int32_t n_depth = 0;          // positions in the cache before the test
  // Key and value bytes one generated token reads, at the test's mean history
  // length (generation only; the weights' bytes are the model's).
  double kv_bytes_per_token = 0;
  std::vector<double> seconds;  // one per repetition
  ForwardProfile profile;       // summed over repetitions when BenchOptions::profile
  std::string name() const;     // "pp512", "tg128", "tg128x8", "tg128 @ d4096"
  std::vector<double> tok_per_s() const;  // all sequences' tokens together
  double mean_tok_per_s() const;
  double stddev_tok_per_s() const;  // sample standard deviation; 0 for one repetition
};

// Reads every page of every tensor once, so the first repetition does not
// pay for page faults of the mapped file. Returns the bytes touched.
uint64_t touch_weights(const gguf::GgufModel& file);

Result<BenchResult> bench_prompt(Model& model, int32_t n_prompt, const BenchOptions& options);
Result<BenchResult> bench_generation(Model& model, int32_t n_gen, const BenchOptions& options);

// Parameters (elements of all tensors) and the weight type holding most
// bytes, for the model column ("q4_k").
uint64_t count_params(const gguf::GgufModel& file);
std::string dominant_type(const gguf::GgufModel& file);

}  // namespace strata
