// The prefill-then-decode loop over Model::forward and the Sampler.
#include "runtime/models/generate.h"

#include <algorithm>
#include <chrono>

namespace strata {

Result<GenerateStats> generate(Model& model, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                               const std::function<bool(int32_t)>& on_token) {
  if (prompt.empty()) return invalid_argument("prompt: expected at least one token, got none");
  using clock = std::chrono::steady_clock;
  auto secs = [](clock::duration d) { return std::chrono::duration<double>(d).count(); };
  GenerateStats st;
  st.n_prompt = int64_t(prompt.size());
  const int32_t n_predict = std::max(options.n_predict, 0);
  KvCache cache = model.make_cache(1, uint32_t(prompt.size()) + uint32_t(n_predict));
  Sampler sampler(options.sampling);

  const auto t0 = clock::now();
  Batch batch;
  batch.add_sequence(prompt, 0, 0);
  STRATA_ASSIGN_OR_RETURN(Logits logits, model.forward(batch, cache));
  st.prompt_s = secs(clock::now() - t0);

  int32_t pos = int32_t(prompt.size());
  for (int32_t i = 0; i < n_predict; ++i) {
    const int32_t tok = sampler.sample(logits.row(logits.n_rows() - 1), logits.n_vocab);
    if (i == 0) st.first_token_s = secs(clock::now() - t0);
    ++st.n_generated;
    if (!on_token(tok) || (options.is_stop && options.is_stop(tok)) || i + 1 == n_predict) break;
    batch.clear();
    batch.add(tok, 0, pos++, true);
    const auto t1 = clock::now();
    STRATA_ASSIGN_OR_RETURN(logits, model.forward(batch, cache));
    st.decode_s += secs(clock::now() - t1);
    ++st.n_decode_steps;
  }
  return st;
}

}  // namespace strata
