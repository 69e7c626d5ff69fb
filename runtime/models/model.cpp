// The forward pass: embeddings, then per layer norm -> attention -> residual
// -> norm -> dense or MoE FFN -> residual, then the final norm and the output
// head for the tokens that asked for logits. All layers are shared; what an
// architecture changes arrives through ArchConfig and the bound weights.
#include <chrono>
#include <cmath>
#include <unordered_map>

#include "cpu_kernels/quant_ref.h"
#include "runtime/layers/rmsnorm.h"
#include "runtime/models/model.h"

namespace strata {
namespace {

// Index of the first non-finite value of x[0..n), or -1.
int64_t first_non_finite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return i;
  }
  return -1;
}

using Clock = std::chrono::steady_clock;

// Adds the seconds since the last mark to *slot and moves the mark; does
// nothing without a profile (no clock reads on the plain path).
class Stopwatch {
 public:
  explicit Stopwatch(bool on) : on_(on) {
    if (on_) t_ = Clock::now();
  }
  void lap(double* slot) {
    if (!on_) return;
    const auto now = Clock::now();
    *slot += std::chrono::duration<double>(now - t_).count();
    t_ = now;
  }

 private:
  bool on_;
  Clock::time_point t_;
};

}  // namespace

Status Model::check_batch(const Batch& batch, const KvCache& cache) const {
  if (batch.size() == 0) return invalid_argument("batch: expected at least one token, got none");
  const bool mla = cfg_.attn == AttnKind::kMla;
  const uint32_t k_width = mla ? mla_k_width(cfg_.mla) : gqa_k_width(cfg_.gqa);
  const uint32_t v_width = mla ? 0 : gqa_v_width(cfg_.gqa);
  // Each head's entries must lie within one of the cache's row parts.
  const bool parts_ok = mla ? cache.heads() == 1
                            : cache.k_stride() % cfg_.gqa.head_k == 0 && cache.v_stride() % cfg_.gqa.head_v == 0;
  const bool shape_ok =
      cache.n_layer() == hp_.n_layer && cache.k_width() == k_width && cache.v_width() == v_width && parts_ok;
  if (!shape_ok) return invalid_argument("KV cache: expected one made by this model's make_cache, got another shape");
  std::unordered_map<int32_t, int32_t> next;  // seq -> next position
  for (int64_t i = 0; i < batch.size(); ++i) {
    const int32_t tok = batch.tokens()[size_t(i)], seq = batch.seqs()[size_t(i)], pos = batch.positions()[size_t(i)];
    const std::string at = " at batch token " + std::to_string(i);
    if (tok < 0 || uint32_t(tok) >= hp_.n_vocab) {
      return invalid_argument("token: expected 0.." + std::to_string(hp_.n_vocab - 1) + ", got " + std::to_string(tok) + at);
    }
    if (seq < 0 || uint32_t(seq) >= cache.n_seq()) {
      return invalid_argument("sequence: expected 0.." + std::to_string(cache.n_seq() - 1) + ", got " +
                              std::to_string(seq) + at);
    }
    auto it = next.try_emplace(seq, cache.seq_len(uint32_t(seq))).first;
    if (pos != it->second) {
      return invalid_argument("position: expected " + std::to_string(it->second) + " (sequence " + std::to_string(seq) +
                              " continues there), got " + std::to_string(pos) + at);
    }
    if (uint32_t(pos) >= cache.n_ctx()) {
      return invalid_argument("position: expected < " + std::to_string(cache.n_ctx()) + " (the cache's context), got " +
                              std::to_string(pos) + at);
    }
    ++it->second;
  }
  return Status::ok();
}

Result<Logits> Model::forward(const Batch& batch, KvCache& cache) {
  STRATA_RETURN_IF_ERROR(check_batch(batch, cache));
  ForwardProfile* prof = profile_;
  const CpuPoolStats pool0 = prof ? ctx_->pool->stats() : CpuPoolStats{};
  const auto start = prof ? Clock::now() : Clock::time_point{};
  double ignored = 0;
  Stopwatch sw(prof != nullptr);
  double* other = prof ? &ignored : nullptr;
  MoeTiming moe_time;
  const int64_t T = batch.size(), E = hp_.n_embd;
  TokenPlaces places{T, batch.seqs().data(), batch.positions().data()};
  std::unordered_map<int32_t, int32_t> new_len;
  for (int64_t t = 0; t < T; ++t) new_len[places.seq[t]] = places.pos[t] + 1;
  for (const auto& [seq, len] : new_len) cache.reserve(uint32_t(seq), len);

  std::vector<float> x(size_t(T * E)), h(size_t(T * E)), y(size_t(T * E));
  const uint64_t embd_row_bytes = dtype_row_bytes(tok_embd_->dtype, tok_embd_->ne[0]).value_or(0);
  for (int64_t t = 0; t < T; ++t) {
    const uint8_t* row = tok_embd_->data + uint64_t(batch.tokens()[size_t(t)]) * embd_row_bytes;
    STRATA_RETURN_IF_ERROR(dequantize_row_ref(tok_embd_->dtype, row, x.data() + t * E, E));
  }

  int first_bad_layer = -1;
  for (uint32_t il = 0; il < hp_.n_layer; ++il) {
    const Layer& L = layers_[il];
    rmsnorm_rows(x.data(), T, E, E, L.attn_norm, hp_.rms_eps, h.data());
    sw.lap(other);
    if (const auto* w = std::get_if<GqaWeights>(&L.attn)) {
      attention_gqa(*w, cfg_.gqa, il, h.data(), places, cache, y.data());
    } else {
      attention_mla(std::get<MlaWeights>(L.attn), cfg_.mla, il, h.data(), places, cache, y.data());
    }
    sw.lap(prof ? &prof->attention_s : nullptr);
    for (int64_t i = 0; i < T * E; ++i) x[size_t(i)] += y[size_t(i)];

    rmsnorm_rows(x.data(), T, E, E, L.ffn_norm, hp_.rms_eps, h.data());
    sw.lap(other);
    if (const auto* w = std::get_if<DenseFfnWeights>(&L.ffn)) {
      dense_ffn(*w, h.data(), T, y.data());
      sw.lap(prof ? &prof->ffn_s : nullptr);
    } else {
      STRATA_RETURN_IF_ERROR(moe_ffn(std::get<MoeWeights>(L.ffn), cfg_.moe, h.data(), T, *experts_, y.data(),
                                     prof ? &moe_time : nullptr));
      sw.lap(other);  // router, routing and the rest; the experts' share is taken out below
    }
    for (int64_t i = 0; i < T * E; ++i) x[size_t(i)] += y[size_t(i)];
    if (first_bad_layer < 0 && first_non_finite(x.data(), T * E) >= 0) first_bad_layer = int(il);
  }
  for (const auto& [seq, len] : new_len) cache.set_len(uint32_t(seq), len);

  Logits out;
  out.n_vocab = int32_t(hp_.n_vocab);
  std::vector<float> xo;
  for (int64_t t = 0; t < T; ++t) {
    if (!batch.wants_logits(t)) continue;
    out.batch_index.push_back(t);
    xo.insert(xo.end(), x.begin() + t * E, x.begin() + (t + 1) * E);
  }
  const int64_t n_out = out.n_rows();
  if (n_out > 0) {
    sw.lap(other);
    rmsnorm_rows(xo.data(), n_out, E, E, output_norm_, hp_.rms_eps, xo.data());
    out.data.resize(size_t(n_out) * hp_.n_vocab);
    output_.mul(xo.data(), n_out, out.data.data());
    sw.lap(prof ? &prof->output_s : nullptr);
  }
  if (prof) {
    prof->experts_s += moe_time.experts_s;
    prof->ffn_s += moe_time.shared_s;
    prof->total_s += std::chrono::duration<double>(Clock::now() - start).count();
    ++prof->n_forward;
    prof->n_tokens += T;
    const CpuPoolStats pool1 = ctx_->pool->stats();
    prof->pool_ops += pool1.n_ops - pool0.n_ops;
    prof->pool_join_wait_ns += pool1.join_wait_ns - pool0.join_wait_ns;
  }
  if (n_out == 0) return out;
  for (int64_t r = 0; r < n_out; ++r) {
    const int64_t j = first_non_finite(out.row(r), out.n_vocab);
    if (j < 0) continue;
    const int64_t t = out.batch_index[size_t(r)];
    return invalid_format(file_.first().path + ": non-finite logit (" + std::to_string(out.row(r)[j]) +
                          ") at vocabulary index " + std::to_string(j) + " for batch token " + std::to_string(t) +
                          " (sequence " + std::to_string(places.seq[t]) + ", position " +
                          std::to_string(places.pos[t]) + "); " +
                          (first_bad_layer >= 0 ? "hidden state first non-finite after layer " + std::to_string(first_bad_layer)
                                                : std::string("hidden states finite: the output norm or head overflowed")));
  }
  return out;
}

}  // namespace strata
