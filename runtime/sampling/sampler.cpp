// Sampler: penalties and bias on a copy of the logits, candidates sorted by
// logit and truncated by each filter, drawn with a seeded xoshiro256**
// generator (the same stream on every platform); stop-string matching.
#include "runtime/sampling/sampler.h"

#include <algorithm>
#include <cmath>

namespace strata {

int32_t argmax(const float* logits, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}

void Sampler::accept(int32_t token) {
  if (p_.penalty_last_n == 0) return;
  window_.push_back(token);
  ++counts_[token];
  if (p_.penalty_last_n > 0 && window_.size() > size_t(p_.penalty_last_n)) {
    const int32_t old = window_.front();
    window_.pop_front();
    if (--counts_[old] == 0) counts_.erase(old);
  }
}

void Sampler::reset_history() {
  window_.clear();
  counts_.clear();
}

const float* Sampler::adjusted(const float* logits, int32_t n_vocab) {
  const bool penalize = !counts_.empty() &&
                        (p_.repeat_penalty != 1.0f || p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f);
  if (!penalize && p_.logit_bias.empty()) return logits;
  work_.assign(logits, logits + n_vocab);
  if (penalize) {
    for (const auto& [tok, count] : counts_) {
      if (tok < 0 || tok >= n_vocab) continue;
      float& l = work_[size_t(tok)];
      if (p_.repeat_penalty != 1.0f && p_.repeat_penalty > 0.0f) l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
      l -= float(count) * p_.frequency_penalty + p_.presence_penalty;
    }
  }
  for (const auto& [tok, bias] : p_.logit_bias) {
    if (tok >= 0 && tok < n_vocab) work_[size_t(tok)] += bias;
  }
  return work_.data();
}

int32_t Sampler::sample(const float* raw_logits, int32_t n_vocab) {
  const float* logits = adjusted(raw_logits, n_vocab);
  if (p_.temp <= 0.0f) return argmax(logits, n_vocab);
  cand_.clear();
  for (int32_t i = 0; i < n_vocab; ++i) {
    // A banned token (bias -inf) is never a candidate, whatever the filters keep.
    if (logits[i] != -INFINITY) cand_.push_back({logits[i], i});
  }
  if (cand_.empty()) return argmax(logits, n_vocab);
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t n = cand_.size();
  if (p_.top_k > 0 && size_t(p_.top_k) < n) {
    std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
    n = size_t(p_.top_k);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  // Probabilities at temperature 1 for the truncation filters.
  prob_.resize(n);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += prob_[i] = std::exp(double(cand_[i].first - cand_[0].first));
  for (size_t i = 0; i < n; ++i) prob_[i] /= sum;
  if (p_.top_p < 1.0f) {
    double cum = 0.0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      cum += prob_[i];
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  if (p_.min_p > 0.0f) {
    size_t keep = 1;
    while (keep < n && prob_[keep] >= p_.min_p * prob_[0]) ++keep;
    n = keep;
  }
  sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += prob_[i] = std::exp(double(cand_[i].first - cand_[0].first) / p_.temp);
  double r = rng_.uniform() * sum;
  for (size_t i = 0; i < n; ++i) {
    r -= prob_[i];
    if (r < 0.0) return cand_[i].second;
  }
  return cand_[n - 1].second;
}

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (auto& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

std::string StopMatcher::push(std::string_view text) {
  if (stopped_) return {};
  held_.append(text);
  // The earliest complete stop string wins; on a tie, the longest.
  size_t best = std::string::npos;
  for (const auto& s : stops_) {
    const size_t at = held_.find(s);
    if (at != std::string::npos && (at < best || (at == best && s.size() > matched_.size()))) {
      best = at;
      matched_ = s;
    }
  }
  if (best != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, best);
    held_.clear();
    return out;
  }
  // Hold back the longest suffix of held_ that is a proper prefix of a stop.
  size_t keep = 0;
  for (const auto& s : stops_) {
    for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k) {
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::flush() {
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

void StopMatcher::reset() {
  held_.clear();
  matched_.clear();
  stopped_ = false;
}

}  // namespace strata
