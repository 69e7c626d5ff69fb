// The window loop over Model::forward and the statistics of perplexity and
// KL divergence runs.
#include "runtime/eval/perplexity.h"

#include <algorithm>
#include <cmath>

namespace strata {

Status run_windows(Model& model, std::span<const int32_t> tokens, const WindowOptions& o, const ScoredRowFn& on_row,
                   const WindowDoneFn& on_window) {
  if (o.n_ctx < 4) return invalid_argument("context: expected at least 4 tokens per window, got " + std::to_string(o.n_ctx));
  if (o.n_chunk < 1) return invalid_argument("chunks: expected at least 1, got " + std::to_string(o.n_chunk));
  if (o.n_batch < 1) return invalid_argument("batch: expected at least 1 token, got " + std::to_string(o.n_batch));
  if (int64_t(tokens.size()) < int64_t(o.n_ctx) * o.n_chunk) {
    return invalid_argument("windows: expected at least " + std::to_string(int64_t(o.n_ctx) * o.n_chunk) +
                            " tokens, got " + std::to_string(tokens.size()));
  }
  const int32_t first = o.n_ctx / 2;
  const int32_t last = o.n_ctx - 1;  // exclusive: the window's last token predicts nothing in it
  KvCache cache = model.make_cache(1, uint32_t(o.n_ctx));
  Batch batch;
  for (int32_t c = 0; c < o.n_chunk; ++c) {
    const int32_t* win = tokens.data() + int64_t(c) * o.n_ctx;
    cache.clear_all();
    for (int32_t b0 = 0; b0 < o.n_ctx; b0 += o.n_batch) {
      const int32_t b1 = std::min(o.n_ctx, b0 + o.n_batch);
      batch.clear();
      for (int32_t p = b0; p < b1; ++p) {
        const int32_t tok = p == 0 && o.bos >= 0 ? o.bos : win[p];
        batch.add(tok, 0, p, p >= first && p < last);
      }
      STRATA_ASSIGN_OR_RETURN(Logits logits, model.forward(batch, cache));
      for (int64_t r = 0; r < logits.n_rows(); ++r) {
        const int32_t j = b0 + int32_t(logits.batch_index[size_t(r)]);
        STRATA_RETURN_IF_ERROR(on_row(c, j, logits.row(r), win[j + 1]));
      }
    }
    if (on_window) STRATA_RETURN_IF_ERROR(on_window(c));
  }
  return Status::ok();
}

MeanError mean_error(double sum, double sum2, int64_t count) {
  MeanError m;
  if (count < 1) return m;
  m.mean = sum / double(count);
  const double var = sum2 / double(count) - m.mean * m.mean;
  if (count > 1 && var > 0) m.error = std::sqrt(var / double(count - 1));
  return m;
}

double token_nll(const float* logits, int32_t n_vocab, int32_t tok) {
  float max_logit = logits[0];
  for (int32_t i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum = 0;
  for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(logits[i] - max_logit);
  return double(max_logit) + std::log(sum) - double(logits[tok]);
}

double NllStats::ppl() const { return std::exp(mean_error(sum, sum2, count).mean); }
double NllStats::ppl_error() const { return ppl() * mean_error(sum, sum2, count).error; }

void KldStats::add(const float* logits, int32_t n_vocab, const LogProbRow& base, int32_t tok) {
  float max_logit = logits[0];
  int32_t best = 0;
  for (int32_t i = 1; i < n_vocab; ++i) {
    if (logits[i] > max_logit) max_logit = logits[i], best = i;
  }
  double sum = 0;
  for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(logits[i] - max_logit);
  // log p[i] = logits[i] - norm
  const double norm = double(max_logit) + std::log(sum);

  const double token_nll_q = norm - double(logits[tok]);
  const double token_nll_base = -double(base.log_prob(tok));
  nll.add(token_nll_q);
  nll_base.add(token_nll_base);
  sum_nll_nll_base += token_nll_q * token_nll_base;

  // KL(base || Q) = sum_i p_base[i] (log p_base[i] - log p[i]), over the
  // tokens the base row resolves (the others are stored at the floor).
  double kld = 0;
  uint16_t best_q = base.q[0];
  for (int32_t i = 0; i < n_vocab; ++i) {
    best_q = std::max(best_q, base.q[i]);
    const double lb = base.log_prob(i);
    if (lb > -double(kLogProbRange)) kld += std::exp(lb) * (lb - (double(logits[i]) - norm));
  }
  sum_kld += kld;
  sum_kld2 += kld * kld;
  kld_values.push_back(float(kld));
  // The base's best token is known only up to 16-bit rounding: tokens that
  // round to the same top value are all "the base's top".
  if (base.q[best] == best_q) ++n_same_top;

  const double p_diff = std::exp(-token_nll_q) - std::exp(-token_nll_base);
  sum_p_diff += p_diff;
  sum_p_diff2 += p_diff * p_diff;
  sum_p_diff4 += p_diff * p_diff * p_diff * p_diff;
  max_abs_p_diff = std::max(max_abs_p_diff, std::fabs(p_diff));
  ++count;
}

MeanError KldStats::log_ppl_ratio() const {
  const MeanError a = mean_error(nll.sum, nll.sum2, nll.count);
  const MeanError b = mean_error(nll_base.sum, nll_base.sum2, nll_base.count);
  double cov = 0;
  if (count > 1) cov = (sum_nll_nll_base / double(count) - a.mean * b.mean) / double(count - 1);
  const double var = a.error * a.error + b.error * b.error - 2 * cov;
  return {a.mean - b.mean, var > 0 ? std::sqrt(var) : 0.0};
}

MeanError KldStats::same_top() const {
  if (count < 1) return {};
  const double p = double(n_same_top) / double(count);
  return {p, count > 1 ? std::sqrt(p * (1 - p) / double(count - 1)) : 0.0};
}

MeanError KldStats::rms_p_diff() const {
  const MeanError mse = mean_error(sum_p_diff2, sum_p_diff4, count);
  const double rms = std::sqrt(mse.mean);
  return {rms, rms > 0 ? 0.5 / rms * mse.error : 0.0};
}

double percentile(const std::vector<float>& sorted, double fraction) {
  if (fraction <= 0) return sorted.front();
  if (fraction >= 1) return sorted.back();
  const double p = fraction * double(sorted.size() - 1);
  const size_t i = size_t(p);
  const double t = p - double(i);
  const size_t j = std::min(i + 1, sorted.size() - 1);
  return (1 - t) * sorted[i] + t * sorted[j];
}

}  // namespace strata
