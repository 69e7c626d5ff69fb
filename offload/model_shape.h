// A model as offload/ sees it: tensors with a role, a layer, a type and a
// size, never the model code. The role summary answers "how many bytes does
// each part of the model hold, and how many does one decode step read".
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/dtype.h"

namespace strata {

enum class TensorRole : uint8_t {
  kEmbedding,     // token embedding table: one row read per token
  kOutput,        // output head (lm_head)
  kAttention,     // q/k/v/o projections, MLA low-rank factors
  kNorm,          // every normalization weight
  kDenseFfn,      // FFN of dense layers
  kSharedExpert,  // always-active experts of MoE layers (and their gate)
  kRouter,        // router weights and expert score bias
  kRoutedExpert,  // the routed experts: only n_expert_used of n_expert per token
  kOther,         // anything else (rope frequency factors, ...)
};
inline constexpr int kTensorRoleCount = 9;

std::string_view tensor_role_name(TensorRole r);  // "routed_experts", ...

struct TensorDesc {
  std::string name;
  TensorRole role = TensorRole::kOther;
  int layer = -1;  // -1 for tensors outside the layer stack
  DType dtype = DType::kF32;
  int n_dims = 1;
  uint64_t ne[4] = {1, 1, 1, 1};
  uint64_t n_bytes = 0;
};

struct ModelShape {
  std::vector<TensorDesc> tensors;
  int n_layer = 0;
  uint32_t n_expert = 0;       // routed experts per MoE layer (0: dense model)
  uint32_t n_expert_used = 0;  // experts each token is routed to
  uint64_t n_vocab = 0;
};

struct RoleSummary {
  std::array<uint64_t, kTensorRoleCount> bytes{};  // by TensorRole
  std::array<uint64_t, kTensorRoleCount> count{};  // tensors by TensorRole
  std::vector<uint64_t> routed_bytes_per_layer;     // index = layer
  uint64_t total_bytes = 0;
  // Weight bytes one decode step of one token reads: all non-expert weights,
  // one embedding row, and n_expert_used/n_expert of the routed experts (the
  // expected share under uniform routing). KV-cache reads are not included.
  uint64_t active_bytes_per_token = 0;

  uint64_t of(TensorRole r) const { return bytes[static_cast<int>(r)]; }
};

RoleSummary summarize_roles(const ModelShape& shape);

}  // namespace strata
