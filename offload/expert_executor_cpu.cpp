// CPU expert executor: rows grouped by expert, each group through the fused
// SwiGLU FFN kernel, results scattered back weighted. Experts are visited in
// id order, so every row sums its experts in the same order however the batch
// is composed (batched decode equals single decode bit for bit).
#include <algorithm>
#include <vector>

#include "cpu_kernels/ffn_ref.h"
#include "cpu_kernels/matmul_ref.h"
#include "offload/expert_executor.h"

namespace strata {
namespace {

std::string shape(const ExpertTensor& t) {
  return "[" + std::to_string(t.n_in) + ", " + std::to_string(t.n_out) + ", " + std::to_string(t.n_expert) + "]";
}

class CpuExpertExecutor final : public ExpertExecutor {
 public:
  Status check_layer(const ExpertLayer& l) const override {
    for (const ExpertTensor* t : {&l.gate, &l.up, &l.down}) {
      if (!matmul_supports(t->type)) {
        return unsupported(t->name + ": type " + std::string(dtype_name(t->type)) +
                           " has no CPU expert kernel (expected a type with a dequantizer)");
      }
      if (!t->data || t->n_expert <= 0) return invalid_argument(t->name + ": expected expert data, got none");
    }
    const bool ok = l.up.n_in == l.gate.n_in && l.up.n_out == l.gate.n_out && l.down.n_in == l.gate.n_out &&
                    l.down.n_out == l.gate.n_in && l.up.n_expert == l.gate.n_expert &&
                    l.down.n_expert == l.gate.n_expert;
    if (!ok) {
      return invalid_argument("layer " + std::to_string(l.layer) + ": expert shapes disagree: gate " + shape(l.gate) +
                              ", up " + shape(l.up) + ", down " + shape(l.down));
    }
    return Status::ok();
  }

  Status run(const ExpertLayer& l, const ExpertRouting& r, float* out) override {
    const int64_t n_embd = l.n_embd(), n_expert = l.n_expert();
    // Bucket (row, slot) pairs by expert: counting sort keeps rows in order.
    std::vector<int64_t> count(static_cast<size_t>(n_expert) + 1, 0);
    const int64_t n_pairs = r.n_rows * r.n_used;
    for (int64_t i = 0; i < n_pairs; ++i) {
      const int32_t e = r.ids[i];
      if (e < 0 || e >= n_expert) {
        return internal_error("layer " + std::to_string(l.layer) + ": expert id " + std::to_string(e) +
                              " out of range 0.." + std::to_string(n_expert - 1));
      }
      ++count[static_cast<size_t>(e) + 1];
    }
    for (int64_t e = 0; e < n_expert; ++e) count[e + 1] += count[e];
    std::vector<int64_t> order(static_cast<size_t>(n_pairs));
    std::vector<int64_t> fill(count.begin(), count.end() - 1);
    for (int64_t i = 0; i < n_pairs; ++i) order[static_cast<size_t>(fill[r.ids[i]]++)] = i;

    for (int64_t i = 0; i < r.n_rows * n_embd; ++i) out[i] = 0.0f;
    std::vector<float> xb, yb, scratch;
    for (int64_t e = 0; e < n_expert; ++e) {
      const int64_t begin = count[e], m = count[e + 1] - begin;
      if (m == 0) continue;
      xb.resize(static_cast<size_t>(m * n_embd));
      yb.resize(static_cast<size_t>(m * n_embd));
      for (int64_t j = 0; j < m; ++j) {
        const float* src = r.x + (order[begin + j] / r.n_used) * n_embd;
        std::copy(src, src + n_embd, xb.data() + j * n_embd);
      }
      FfnMatrices f;
      f.gate_type = l.gate.type;
      f.up_type = l.up.type;
      f.down_type = l.down.type;
      f.gate = static_cast<const uint8_t*>(l.gate.data) + static_cast<uint64_t>(e) * l.gate.expert_bytes;
      f.up = static_cast<const uint8_t*>(l.up.data) + static_cast<uint64_t>(e) * l.up.expert_bytes;
      f.down = static_cast<const uint8_t*>(l.down.data) + static_cast<uint64_t>(e) * l.down.expert_bytes;
      f.n_embd = n_embd;
      f.n_ff = l.n_ff();
      scratch.resize(static_cast<size_t>(ffn_scratch_floats(f, m)));
      ffn_swiglu_ref(f, xb.data(), m, yb.data(), scratch.data());
      for (int64_t j = 0; j < m; ++j) {
        const int64_t pair = order[begin + j];
        const float w = r.weights[pair];
        float* dst = out + (pair / r.n_used) * n_embd;
        const float* y = yb.data() + j * n_embd;
        for (int64_t c = 0; c < n_embd; ++c) dst[c] += w * y[c];
      }
    }
    return Status::ok();
  }
};

}  // namespace

std::unique_ptr<ExpertExecutor> make_cpu_expert_executor() { return std::make_unique<CpuExpertExecutor>(); }

}  // namespace strata
