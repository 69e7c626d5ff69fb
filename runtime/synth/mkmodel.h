// Synthetic GGUF models: real shapes, real vocabularies, random weights scaled
// so activations stay finite through many layers. Written as a stream, so a
// preset of hundreds of GB never sits in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "runtime/base/dtype.h"
#include "runtime/base/status.h"
#include "runtime/model/arch.h"

namespace strata::synth {

struct TypeChoice {
  DType base = DType::kQ4_K;          // every 2-D weight unless a role says otherwise
  std::optional<DType> attn, routed, shared, dense, embd, output;
  DType router = DType::kF32;         // router logits are precision-sensitive; real quants keep f32
};

struct MkModelOptions {
  std::string out_path;
  HParams hp;                 // after preset + overrides
  TypeChoice types;
  std::string vocab_from;     // GGUF whose tokenizer.* keys are copied ("" = no tokenizer)
  uint64_t seed = 42;
  float routing_skew = 0.0f;  // 0: uniform routing; 1-2: a few experts take much of the traffic
};

struct MkModelProgress {
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  std::string tensor;  // the tensor being written
};

struct MkModelReport {
  uint64_t n_tensors = 0;
  uint64_t tensor_bytes = 0;
  uint32_t n_vocab = 0;
  // Tensors whose row length did not fit the requested type's block and were
  // written in a fallback type (as llama.cpp's quantizer does).
  std::vector<std::string> fallbacks;
};

// Writes the model. `progress` (optional) is called every few MB.
Result<MkModelReport> make_model(const MkModelOptions& opt,
                                 const std::function<void(const MkModelProgress&)>& progress = {});

// Whether make_model writes weights of type t: it has an encoder for it, or
// it writes random blocks with sane scales (iq2_xxs, iq2_xs, iq3_xxs, iq4_nl,
// iq4_xs). Never the activation formats q8_1 and q8_k.
bool can_write(DType t);

// The type a tensor of this role and row length gets under `types` (after
// falling back for rows that do not fit the block size).
DType choose_type(const TypeChoice& types, TensorRole role, int n_dims, uint64_t ne0, bool* fell_back);

}  // namespace strata::synth
