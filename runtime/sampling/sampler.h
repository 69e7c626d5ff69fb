// Choosing the next token from logits: greedy, or seeded sampling, after
// repetition/presence/frequency penalties and a logit bias; plus stop strings
// matched on the generated text.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/base/rng.h"

namespace strata {

struct SamplerParams {
  float temp = 0.8f;    // <= 0: greedy (argmax, after penalties and bias)
  int32_t top_k = 40;   // <= 0: keep all
  float top_p = 0.95f;  // >= 1: off
  float min_p = 0.05f;  // <= 0: off; keep tokens with p >= min_p * p_max
  uint64_t seed = 0;
  // Penalties over the last `penalty_last_n` accepted tokens (0: off,
  // -1: every token accepted since the last reset).
  int32_t penalty_last_n = 64;
  float repeat_penalty = 1.0f;     // 1: off; logit > 0 divided by it, < 0 multiplied
  float presence_penalty = 0.0f;   // subtracted once from a token seen in the window
  float frequency_penalty = 0.0f;  // subtracted per occurrence in the window
  // Added to a token's logit; -INFINITY bans it.
  std::unordered_map<int32_t, float> logit_bias;
};

// Index of the largest logit; ties go to the lower index.
int32_t argmax(const float* logits, int32_t n);

// The chain, in this order (llama.cpp's default chain, less its DRY, XTC and
// typical-p stages):
//   1. penalties (repeat, then frequency and presence) over the window of
//      accepted tokens,
//   2. logit bias,
//   3. greedy stops here: argmax of the adjusted logits,
//   4. top-k, 5. top-p, 6. min-p (the filters see the distribution at
//      temperature 1),
//   7. temperature reshapes what is left,
//   8. one token is drawn with a seeded xoshiro256** stream.
// The same params, seed and sequence of sample/accept calls give the same
// tokens on every platform.
class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);

  // A token id from n_vocab logits (not modified). Does not record it:
  // call accept() with the token actually used.
  int32_t sample(const float* logits, int32_t n_vocab);
  // Records a token for the penalties (generated or prompt tokens alike).
  void accept(int32_t token);
  // Forgets the penalty window; the random stream goes on.
  void reset_history();
  const SamplerParams& params() const { return p_; }

 private:
  // Penalties and bias applied to a copy of the logits; returns it.
  const float* adjusted(const float* logits, int32_t n_vocab);
  SamplerParams p_;
  Xoshiro256 rng_;
  std::deque<int32_t> window_;
  std::unordered_map<int32_t, int32_t> counts_;  // occurrences in window_
  std::vector<float> work_;
  std::vector<std::pair<float, int32_t>> cand_;
  std::vector<double> prob_;
};

// Stop strings on streamed text. Text that could still be the start of a
// stop string is held back; once a stop string is complete, the text before
// it is released and everything from it on is dropped. Matching is on bytes,
// so it works across token boundaries and inside multi-byte characters.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops = {});

  // Appends generated text; returns what may be shown now.
  std::string push(std::string_view text);
  // The held-back text when generation ends without a stop (resets it).
  std::string flush();
  bool stopped() const { return stopped_; }
  // The stop string that matched; empty if none.
  const std::string& matched() const { return matched_; }
  void reset();

 private:
  std::vector<std::string> stops_;
  std::string held_;
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace strata
