// Text generation for one sequence: prefill the prompt, then sample and
// decode token by token, with timings (prompt tok/s, generation tok/s, time
// to first token).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/models/model.h"
#include "runtime/sampling/sampler.h"

namespace strata {

struct GenerateOptions {
  int32_t n_predict = 32;  // tokens to generate at most
  SamplerParams sampling;
  // Generation stops after a token for which this returns true (end of
  // generation tokens); null: never.
  std::function<bool(int32_t)> is_stop;
};

struct GenerateStats {
  int64_t n_prompt = 0;
  int64_t n_generated = 0;
  int64_t n_decode_steps = 0;  // forward passes after the prefill
  double prompt_s = 0;         // prefill forward
  double first_token_s = 0;    // start -> first generated token
  double decode_s = 0;         // all decode forwards
  double prompt_tok_s() const { return prompt_s > 0 ? double(n_prompt) / prompt_s : 0; }
  double decode_tok_s() const { return decode_s > 0 ? double(n_decode_steps) / decode_s : 0; }
};

// Runs `prompt` (at least one token) and generates up to n_predict tokens,
// calling on_token(id) for each as soon as it is chosen; on_token returning
// false stops early.
Result<GenerateStats> generate(Model& model, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                               const std::function<bool(int32_t)>& on_token);

}  // namespace strata
