// Server metrics in the Prometheus text format: request counts by route and
// status, prompt and generated tokens, generated tokens/s over the last ten
// seconds, queue and running sequences, KV-cache use, time to first token
// as a histogram, weight bytes read per token by memory tier, and the expert
// cache hit rate (NaN, said so, where there is no expert cache).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "runtime/serve/scheduler.h"

namespace strata::serve {

// Weight bytes per memory tier, for the model being served.
struct TierBytes {
  uint64_t vram = 0, dram = 0, nvme = 0;
};

class Metrics {
 public:
  void count_request(const std::string& route, int status);
  void add_prompt_tokens(int64_t n) { prompt_tokens_.fetch_add(uint64_t(n)); }
  void add_generated_tokens(int64_t n);
  void observe_ttft(double seconds);
  // Weight bytes one step read from each tier, and the tokens it ran.
  void add_step_bytes(const TierBytes& bytes, int64_t n_tokens);

  // Everything above plus the scheduler's live figures, as exposition text.
  // expert_cache_hit_ratio < 0: no expert cache (reported as NaN).
  std::string render(const SchedulerStats& sched, const std::string& model, double expert_cache_hit_ratio) const;

  static constexpr std::array<double, 11> kTtftBuckets = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

 private:
  double tokens_per_second_locked() const;

  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::atomic<uint64_t> prompt_tokens_{0}, generated_tokens_{0};
  std::array<uint64_t, kTtftBuckets.size()> ttft_counts_{};
  uint64_t ttft_count_ = 0;
  double ttft_sum_ = 0;
  mutable std::deque<std::pair<Clock::time_point, int64_t>> recent_;  // generated tokens per report, last 10 s
  TierBytes step_bytes_total_;
  uint64_t step_tokens_total_ = 0;
};

}  // namespace strata::serve
