// Choosing the next token from logits: greedy, or seeded sampling with
// top-k, top-p (nucleus), min-p and temperature.
#pragma once

#include <cstdint>
#include <vector>

namespace strata {

struct SamplerParams {
  float temp = 0.8f;    // <= 0: greedy (argmax)
  int32_t top_k = 40;   // <= 0: keep all
  float top_p = 0.95f;  // >= 1: off
  float min_p = 0.05f;  // <= 0: off; keep tokens with p >= min_p * p_max
  uint64_t seed = 0;
};

// Index of the largest logit; ties go to the lower index.
int32_t argmax(const float* logits, int32_t n);

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);

  // A token id from n_vocab logits. The filters run in the order top-k,
  // top-p, min-p on the untempered distribution, then the temperature
  // reshapes what is left and one token is drawn from it, as llama.cpp's
  // default chain does.
  int32_t sample(const float* logits, int32_t n_vocab);

 private:
  double uniform();  // [0, 1)
  SamplerParams p_;
  uint64_t s_[4];
  std::vector<std::pair<float, int32_t>> cand_;
};

}  // namespace strata
