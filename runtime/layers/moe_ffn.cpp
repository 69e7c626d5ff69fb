// MoE FFN: routing (cpu_kernels/moe_route.h), the routed experts through
// the executor, the shared expert(s).
#include "runtime/layers/moe_ffn.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/matmul_ref.h"

namespace strata {

Status moe_ffn(const MoeWeights& w, const MoeConfig& c, const float* x, int64_t n_rows, ExpertExecutor& executor,
               float* out, MoeTiming* timing) {
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  const int64_t E = w.router.n_in, n = c.n_expert, k = c.n_used;
  std::vector<float> logits(size_t(n_rows * n)), scratch(size_t(2 * n)), weights(size_t(n_rows * k));
  std::vector<int32_t> ids(size_t(n_rows * k));
  w.router.mul(x, n_rows, logits.data());
  const float* bias = w.exp_probs_b.empty() ? nullptr : w.exp_probs_b.data();
  for (int64_t r = 0; r < n_rows; ++r) {
    moe_route_row(c, logits.data() + r * n, bias, ids.data() + r * k, weights.data() + r * k, scratch.data());
  }
  ExpertRouting routing;
  routing.x = x;
  routing.n_rows = n_rows;
  routing.n_used = c.n_used;
  routing.ids = ids.data();
  routing.weights = weights.data();
  auto t0 = Clock::now();
  STRATA_RETURN_IF_ERROR(executor.run(w.experts, routing, out));
  if (timing) timing->experts_s += since(t0);

  if (w.shared) {
    t0 = Clock::now();
    std::vector<float> sh(size_t(n_rows * E));
    dense_ffn(*w.shared, x, n_rows, sh.data());
    for (int64_t r = 0; r < n_rows; ++r) {
      const float g = w.shared_gate.empty() ? 1.0f : sigmoid(dot_f32(w.shared_gate.data(), x + r * E, E));
      for (int64_t i = 0; i < E; ++i) out[r * E + i] += g * sh[size_t(r * E + i)];
    }
    if (timing) timing->shared_s += since(t0);
  }
  return Status::ok();
}

}  // namespace strata
