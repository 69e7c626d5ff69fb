// Prometheus exposition of the server's counters and gauges.
#include "runtime/serve/metrics.h"

#include <cmath>
#include <cstdio>

namespace strata::serve {
namespace {

constexpr auto kWindow = std::chrono::seconds(10);

std::string num(double v) {
  if (std::isnan(v)) return "NaN";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

void head(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// Label values escaped as the exposition format asks (backslash, quote, newline).
std::string label(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o += c;
  }
  return o;
}

}  // namespace

void Metrics::count_request(const std::string& route, int status) {
  std::lock_guard lk(mu_);
  ++requests_[{route, status}];
}

void Metrics::add_generated_tokens(int64_t n) {
  generated_tokens_.fetch_add(uint64_t(n));
  std::lock_guard lk(mu_);
  const auto now = Clock::now();
  recent_.emplace_back(now, n);
  while (!recent_.empty() && now - recent_.front().first > kWindow) recent_.pop_front();
}

void Metrics::observe_ttft(double seconds) {
  std::lock_guard lk(mu_);
  for (size_t i = 0; i < kTtftBuckets.size(); ++i) {
    if (seconds <= kTtftBuckets[i]) ++ttft_counts_[i];
  }
  ++ttft_count_;
  ttft_sum_ += seconds;
}

void Metrics::add_step_bytes(const TierBytes& b, int64_t n_tokens) {
  std::lock_guard lk(mu_);
  step_bytes_total_.vram += b.vram;
  step_bytes_total_.dram += b.dram;
  step_bytes_total_.nvme += b.nvme;
  step_tokens_total_ += uint64_t(n_tokens);
}

double Metrics::tokens_per_second_locked() const {
  const auto now = Clock::now();
  while (!recent_.empty() && now - recent_.front().first > kWindow) recent_.pop_front();
  int64_t n = 0;
  for (const auto& [t, k] : recent_) n += k;
  return double(n) / std::chrono::duration<double>(kWindow).count();
}

std::string Metrics::render(const SchedulerStats& s, const std::string& model, double hit_ratio) const {
  std::lock_guard lk(mu_);
  std::string o;
  head(o, "strata_requests_total", "counter", "HTTP requests answered, by route and status.");
  for (const auto& [key, n] : requests_) {
    o += "strata_requests_total{route=\"" + label(key.first) + "\",status=\"" + std::to_string(key.second) + "\"} " +
         std::to_string(n) + "\n";
  }
  head(o, "strata_prompt_tokens_total", "counter", "Prompt tokens of accepted generation requests.");
  o += "strata_prompt_tokens_total " + std::to_string(prompt_tokens_.load()) + "\n";
  head(o, "strata_generated_tokens_total", "counter", "Tokens generated.");
  o += "strata_generated_tokens_total " + std::to_string(generated_tokens_.load()) + "\n";
  head(o, "strata_tokens_per_second", "gauge", "Generated tokens per second over the last 10 s.");
  o += "strata_tokens_per_second " + num(tokens_per_second_locked()) + "\n";
  head(o, "strata_queue_length", "gauge", "Requests waiting for a slot.");
  o += "strata_queue_length " + std::to_string(s.n_waiting) + "\n";
  head(o, "strata_running_sequences", "gauge", "Sequences holding a slot (prefilling or decoding).");
  o += "strata_running_sequences " + std::to_string(s.n_running) + "\n";
  head(o, "strata_parallel_slots", "gauge", "Sequences that can run together (--parallel).");
  o += "strata_parallel_slots " + std::to_string(s.n_parallel) + "\n";
  head(o, "strata_kv_cache_blocks_used", "gauge", "KV-cache blocks held by sequences.");
  o += "strata_kv_cache_blocks_used " + std::to_string(s.kv_blocks_used) + "\n";
  head(o, "strata_kv_cache_blocks_total", "gauge", "KV-cache blocks the pool may hold.");
  o += "strata_kv_cache_blocks_total " + std::to_string(s.kv_blocks_max) + "\n";
  head(o, "strata_kv_cache_usage_ratio", "gauge", "Share of the KV-cache pool held by sequences.");
  o += "strata_kv_cache_usage_ratio " + num(s.kv_blocks_max ? double(s.kv_blocks_used) / s.kv_blocks_max : 0) + "\n";
  head(o, "strata_kv_cache_block_positions", "gauge", "Token positions per KV-cache block.");
  o += "strata_kv_cache_block_positions " + std::to_string(s.kv_block_positions) + "\n";
  head(o, "strata_kv_cache_bytes", "gauge", "Bytes of KV-cache blocks allocated so far (reused, never returned).");
  o += "strata_kv_cache_bytes " + std::to_string(s.kv_bytes_allocated) + "\n";
  head(o, "strata_steps_total", "counter", "Forward steps run by the batching scheduler.");
  o += "strata_steps_total " + std::to_string(s.n_steps) + "\n";
  head(o, "strata_preemptions_total", "counter", "Sequences whose KV blocks were taken back for older ones (recomputed later).");
  o += "strata_preemptions_total " + std::to_string(s.n_preempted) + "\n";

  head(o, "strata_time_to_first_token_seconds", "histogram", "From request accepted to first token sampled.");
  for (size_t i = 0; i < kTtftBuckets.size(); ++i) {
    o += "strata_time_to_first_token_seconds_bucket{le=\"" + num(kTtftBuckets[i]) + "\"} " +
         std::to_string(ttft_counts_[i]) + "\n";
  }
  o += "strata_time_to_first_token_seconds_bucket{le=\"+Inf\"} " + std::to_string(ttft_count_) + "\n";
  o += "strata_time_to_first_token_seconds_sum " + num(ttft_sum_) + "\n";
  o += "strata_time_to_first_token_seconds_count " + std::to_string(ttft_count_) + "\n";

  head(o, "strata_weight_bytes_per_token", "gauge",
       "Weight bytes read per batch token, by memory tier: non-expert weights once per step plus the routed "
       "experts the steps actually ran, divided by the tokens they ran.");
  const double n = double(step_tokens_total_);
  auto per = [&](uint64_t b) { return num(n > 0 ? double(b) / n : 0.0); };
  o += "strata_weight_bytes_per_token{tier=\"vram\"} " + per(step_bytes_total_.vram) + "\n";
  o += "strata_weight_bytes_per_token{tier=\"dram\"} " + per(step_bytes_total_.dram) + "\n";
  o += "strata_weight_bytes_per_token{tier=\"nvme\"} " + per(step_bytes_total_.nvme) + "\n";
  head(o, "strata_expert_cache_hit_ratio", "gauge",
       "Routed-expert lookups served from the GPU expert cache; NaN: this server has no expert cache (CPU only).");
  o += "strata_expert_cache_hit_ratio " + num(hit_ratio < 0 ? NAN : hit_ratio) + "\n";
  head(o, "strata_model_info", "gauge", "The model being served.");
  o += "strata_model_info{model=\"" + label(model) + "\"} 1\n";
  return o;
}

}  // namespace strata::serve
