// A loaded model and its forward pass. Loading validates every tensor the
// architecture needs (presence, shape, type usable by its op) before any
// compute; forward runs a batch of tokens from one or more sequences, each
// token at its own position, appending to the KV cache - a prompt prefill, a
// decode step, or both for several sequences at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <variant>
#include <vector>

#include "offload/cpu_pool.h"
#include "offload/expert_executor.h"
#include "offload/topology.h"
#include "runtime/base/status.h"
#include "runtime/gguf/gguf_reader.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/layers/attention_gqa.h"
#include "runtime/layers/attention_mla.h"
#include "runtime/layers/dense_ffn.h"
#include "runtime/layers/moe_ffn.h"
#include "runtime/model/arch.h"
#include "runtime/models/arch_config.h"

namespace strata {

struct ModelOptions {
  // Who runs routed experts; null: the CPU executor on the model's pool.
  std::shared_ptr<ExpertExecutor> experts;
  // The thread pool every product runs on; null: the model makes one on
  // `topology` with n_threads threads (0: one per physical core).
  std::shared_ptr<CpuPool> pool;
  int n_threads = 0;
  // The machine; unset: this one (hwloc). With a given pool and no topology,
  // experts are not placed on NUMA nodes.
  std::optional<Topology> topology;
  // kReference: matmul_ref for every product (f32 activations), the scalar
  // oracle's numerics; kFast: qgemm where the type has a kernel.
  CpuKernels kernels = CpuKernels::kFast;
  // Copy routed experts into memory bound to their NUMA node (machines with
  // more than one node).
  bool numa = true;
  // Repack routed experts and dense matrices for the SIMD width where the
  // CPU path has a packed kernel (offload/expert_executor.h, qgemm_packed.h).
  ExpertRepack repack = ExpertRepack::kAuto;
  // Entries of the KV caches make_cache makes: f32 (the reference's
  // numerics), or f16 (half the bytes; the commands' default).
  KvType kv_type = KvType::kF32;
  // Progress of both (bytes done of total), once per phase: experts, then
  // dense matrices; called from pool threads one at a time.
  std::function<void(uint64_t done, uint64_t total)> placement_progress;
};

// Where forward passes spent their time, added up while a profile is set
// (Model::set_profile). Attention includes its projections; other is the
// rest (embedding, norms, router and routing, residuals).
struct ForwardProfile {
  int64_t n_forward = 0, n_tokens = 0;
  double total_s = 0, attention_s = 0, experts_s = 0, ffn_s = 0 /* dense and shared FFN */, output_s = 0;
  uint64_t pool_ops = 0;           // fork/joins of the pool
  uint64_t pool_join_wait_ns = 0;  // caller's wait at those joins beyond its own share
  double other_s() const { return total_s - attention_s - experts_s - ffn_s - output_s; }
};

// Tokens to run. Each token belongs to a sequence (a KV-cache slot) and sits
// at a position in it; a sequence's tokens must continue it without gaps:
// the first at cache.seq_len(seq), the next one position later, and so on.
class Batch {
 public:
  void add(int32_t token, int32_t seq, int32_t pos, bool want_logits) {
    token_.push_back(token);
    seq_.push_back(seq);
    pos_.push_back(pos);
    logits_.push_back(want_logits ? 1 : 0);
  }
  // A whole prompt for one sequence starting at `pos0`; logits for the last token only.
  void add_sequence(const std::vector<int32_t>& tokens, int32_t seq, int32_t pos0, bool all_logits = false);
  void clear() { token_.clear(), seq_.clear(), pos_.clear(), logits_.clear(); }

  int64_t size() const { return int64_t(token_.size()); }
  const std::vector<int32_t>& tokens() const { return token_; }
  const std::vector<int32_t>& seqs() const { return seq_; }
  const std::vector<int32_t>& positions() const { return pos_; }
  bool wants_logits(int64_t i) const { return logits_[size_t(i)] != 0; }

 private:
  std::vector<int32_t> token_, seq_, pos_;
  std::vector<uint8_t> logits_;
};

// Logits of the batch tokens that asked for them, in batch order.
struct Logits {
  int32_t n_vocab = 0;
  std::vector<int64_t> batch_index;  // which batch token each row belongs to
  std::vector<float> data;           // rows of n_vocab
  int64_t n_rows() const { return int64_t(batch_index.size()); }
  const float* row(int64_t i) const { return data.data() + i * n_vocab; }
};

class Model {
 public:
  // Takes the file (its mapping stays alive with the model). Errors name the
  // file and tensor: missing, mis-shaped, or of a type no kernel reads.
  static Result<std::unique_ptr<Model>> load(gguf::GgufModel file, const ModelOptions& options = {});

  const HParams& hparams() const { return hp_; }
  const ArchConfig& config() const { return cfg_; }
  const gguf::GgufModel& file() const { return file_; }

  // A cache for n_seq sequences of up to n_ctx positions each, shaped for
  // this model, of the type it was loaded with (ModelOptions::kv_type).
  KvCache make_cache(uint32_t n_seq, uint32_t n_ctx) const;
  KvType kv_type() const { return kv_type_; }

  // Runs `batch`, appending every token to its sequence in `cache`. Checks
  // (before computing anything) that tokens are in the vocabulary, sequences
  // exist in the cache and positions continue them. Non-finite logits are an
  // error naming the token and the first layer whose output went non-finite;
  // the cache then already holds the batch.
  // One forward at a time per model (products share the model's scratch).
  Result<Logits> forward(const Batch& batch, KvCache& cache);

  // Adds the time of every later forward to *profile (null: stop).
  void set_profile(ForwardProfile* profile) { profile_ = profile; }
  ForwardProfile* profile() const { return profile_; }
  // The pool products run on (never null after load) and the kernels they use.
  const CpuPool& pool() const { return *ctx_->pool; }
  // The pool and kernels as layers use them, for work between forwards
  // (sampling rows in parallel); never during a forward.
  ComputeContext* compute() { return ctx_.get(); }
  CpuKernels kernels() const { return ctx_->kernels; }
  // How the routed experts were placed and which matrices were repacked
  // ("" when everything is computed on the file's bytes).
  std::string placement_summary() const;

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  struct Layer {
    std::vector<float> attn_norm, ffn_norm;
    std::variant<GqaWeights, MlaWeights> attn;
    std::variant<DenseFfnWeights, MoeWeights> ffn;
  };

 private:
  Model() = default;
  Status bind();  // in model_loader.cpp
  // Repacks the dense matrices the fast kernels have a packed kernel for
  // (attention, dense and shared FFN, output head); in model_loader.cpp.
  Status repack_matrices(ExpertRepack mode, const std::function<void(uint64_t, uint64_t)>& progress);
  Status check_batch(const Batch& batch, const KvCache& cache) const;

  gguf::GgufModel file_;
  HParams hp_;
  ArchConfig cfg_;
  std::shared_ptr<ExpertExecutor> experts_;
  std::unique_ptr<ComputeContext> ctx_;  // what every Matrix of the model points at
  ForwardProfile* profile_ = nullptr;
  KvType kv_type_ = KvType::kF32;
  const gguf::TensorInfo* tok_embd_ = nullptr;
  Matrix output_;  // output.weight, or token_embd.weight when tied
  std::vector<float> output_norm_;
  std::vector<float> rope_freqs_;  // llama 3.1 rope_freqs.weight; empty: none
  std::vector<Layer> layers_;
  std::shared_ptr<uint8_t> packed_;  // what the `packed` of repacked matrices point into
  std::string packed_summary_;
};

}  // namespace strata
