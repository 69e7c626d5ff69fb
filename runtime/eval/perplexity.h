// Perplexity and KL divergence over a tokenized text, with llama.cpp's
// conventions so figures compare with its perplexity tool: consecutive,
// non-overlapping windows of n_ctx tokens, each run from an empty cache with
// its first token replaced by BOS when the vocabulary adds one, and only the
// second half of each window scored (every scored token has at least n_ctx/2
// tokens of context).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/eval/logits_file.h"
#include "runtime/models/model.h"

namespace strata {

struct WindowOptions {
  int32_t n_ctx = 512;
  int32_t n_chunk = 1;     // windows to run; tokens must hold n_chunk * n_ctx
  int32_t bos = -1;        // put in place of each window's first token; < 0: keep it
  int32_t n_batch = 512;   // tokens per forward call
};

// Called for each scored position j of window `chunk` (n_ctx/2 <= j < n_ctx-1)
// with the logits after token j and the token that follows it. An error stops
// the run and is returned.
using ScoredRowFn = std::function<Status(int32_t chunk, int32_t j, const float* logits, int32_t next)>;
// Called after each window.
using WindowDoneFn = std::function<Status(int32_t chunk)>;

// Runs the windows; logits exist only for the scored half, in batches of at
// most n_batch tokens, so memory stays at n_batch rows of n_vocab.
Status run_windows(Model& model, std::span<const int32_t> tokens, const WindowOptions& options,
                   const ScoredRowFn& on_row, const WindowDoneFn& on_window);

// Mean and standard error of the mean from running sums.
struct MeanError {
  double mean = 0;
  double error = 0;  // 0 with fewer than two values or a non-positive variance
};
MeanError mean_error(double sum, double sum2, int64_t count);

// -log softmax(logits)[tok], the sum of exp in double as llama.cpp does.
double token_nll(const float* logits, int32_t n_vocab, int32_t tok);

// Perplexity from per-token negative log-likelihoods. The error is
// llama.cpp's: the standard error of the mean NLL, times PPL (d exp(x) = exp(x) dx).
struct NllStats {
  double sum = 0, sum2 = 0;
  int64_t count = 0;
  void add(double nll) { sum += nll, sum2 += nll * nll, ++count; }
  double ppl() const;
  double ppl_error() const;
};

// Comparison of a model's distributions with a base model's stored rows.
struct KldStats {
  NllStats nll, nll_base;
  double sum_nll_nll_base = 0;  // for the covariance of the two log-PPLs
  double sum_kld = 0, sum_kld2 = 0;
  double sum_p_diff = 0, sum_p_diff2 = 0, sum_p_diff4 = 0;
  double max_abs_p_diff = 0;
  int64_t n_same_top = 0;
  int64_t count = 0;
  std::vector<float> kld_values;  // one per token, for percentiles

  // One scored token: `logits` from the model under test, `base` the stored
  // row for the same position, `tok` the token that follows.
  void add(const float* logits, int32_t n_vocab, const LogProbRow& base, int32_t tok);

  MeanError kld() const { return mean_error(sum_kld, sum_kld2, count); }
  // ln(PPL(Q) / PPL(base)) with the error of a difference of correlated means.
  MeanError log_ppl_ratio() const;
  MeanError same_top() const;     // fraction
  MeanError rms_p_diff() const;   // root mean square of p(tok) - p_base(tok)
};

// Linear interpolation between the values at ranks floor(f*(n-1)) and the
// next; `sorted` ascending and non-empty.
double percentile(const std::vector<float>& sorted, double fraction);

}  // namespace strata
