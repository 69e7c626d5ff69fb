// Byte accounting by tensor role.
#include "offload/model_shape.h"

namespace strata {

std::string_view tensor_role_name(TensorRole r) {
  switch (r) {
    case TensorRole::kEmbedding: return "embeddings";
    case TensorRole::kOutput: return "output_head";
    case TensorRole::kAttention: return "attention";
    case TensorRole::kNorm: return "norms";
    case TensorRole::kDenseFfn: return "dense_ffn";
    case TensorRole::kSharedExpert: return "shared_experts";
    case TensorRole::kRouter: return "router";
    case TensorRole::kRoutedExpert: return "routed_experts";
    case TensorRole::kOther: return "other";
  }
  return "other";
}

RoleSummary summarize_roles(const ModelShape& shape) {
  RoleSummary s;
  s.routed_bytes_per_layer.assign(static_cast<size_t>(std::max(shape.n_layer, 0)), 0);
  // Routed tensors are read in proportion n_expert_used / n_expert; done in
  // 128-bit-safe order (bytes * used fits: used <= n_expert <= 2^32).
  unsigned __int128 routed_active = 0;
  for (const auto& t : shape.tensors) {
    int r = static_cast<int>(t.role);
    s.bytes[r] += t.n_bytes;
    s.count[r] += 1;
    s.total_bytes += t.n_bytes;
    switch (t.role) {
      case TensorRole::kRoutedExpert:
        if (t.layer >= 0 && t.layer < shape.n_layer) s.routed_bytes_per_layer[t.layer] += t.n_bytes;
        if (shape.n_expert > 0) routed_active += static_cast<unsigned __int128>(t.n_bytes) * shape.n_expert_used;
        break;
      case TensorRole::kEmbedding:
        // One row per token; rows are ne[1] (vocab) of them.
        s.active_bytes_per_token += t.ne[1] > 0 ? t.n_bytes / t.ne[1] : t.n_bytes;
        break;
      default:
        s.active_bytes_per_token += t.n_bytes;
    }
  }
  if (shape.n_expert > 0) s.active_bytes_per_token += static_cast<uint64_t>(routed_active / shape.n_expert);
  return s;
}

}  // namespace strata
