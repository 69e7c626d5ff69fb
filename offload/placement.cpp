// The placement solver and the llama.cpp equivalent of its split. Greedy in
// the order of bytes read per byte held: what every token reads goes to the
// GPU first, then the KV cache, then whole layers of routed experts.
#include "offload/placement.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "offload/model_catalog.h"
#include "offload/numa_partition.h"

namespace strata {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

std::string gb(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, bytes >= 100e9 ? "%.0f GB" : bytes >= 1e9 ? "%.1f GB" : "%.2f GB", bytes / 1e9);
  return buf;
}

std::string num(double v, const char* f = "%.1f") {
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// "3-5, 9, 12-60"
std::string ranges(const std::vector<uint32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (!s.empty()) s += ", ";
    s += std::to_string(v[i]);
    if (j > i) s += "-" + std::to_string(v[j]);
    i = j + 1;
  }
  return s;
}

// Where the experts kept in DRAM go: the runtime's own partition
// (offload/numa_partition.h), so the plan shows what the CPU executor will
// do. Traffic is unknown on paper (experts equally popular); each node's
// share of the routed reads is the mean of its per-layer shares.
struct NumaSplit {
  std::vector<uint64_t> node_bytes;
  std::vector<double> traffic;
  bool ok = true;
};

NumaSplit numa_split(const std::vector<uint64_t>& capacity, const std::vector<double>& weight,
                     const std::vector<uint64_t>& expert_bytes_per_layer, uint32_t experts_per_layer) {
  const size_t N = capacity.size();
  std::vector<NumaNodeBudget> nodes(N);
  for (size_t i = 0; i < N; ++i) nodes[i] = {capacity[i], weight[i]};
  std::vector<ExpertBytes> experts;
  experts.reserve(expert_bytes_per_layer.size() * experts_per_layer);
  for (size_t l = 0; l < expert_bytes_per_layer.size(); ++l) {
    for (uint32_t e = 0; e < experts_per_layer; ++e) {
      experts.push_back({static_cast<int>(l), static_cast<int>(e), expert_bytes_per_layer[l], -1});
    }
  }
  NumaSplit r;
  auto part = partition_experts(nodes, experts);
  if (!part.is_ok()) {
    r.ok = false;
    return r;
  }
  r.node_bytes = part.value().node_bytes;
  const double layers = static_cast<double>(std::max<size_t>(expert_bytes_per_layer.size(), 1));
  r.traffic.assign(N, 0);
  for (size_t i = 0; i < N; ++i) {
    r.traffic[i] = experts.empty() ? 1.0 / static_cast<double>(N) : part.value().node_traffic[i] / layers;
  }
  return r;
}

struct Sizes {
  std::vector<uint64_t> layer_resident;  // non-routed weights per layer
  std::map<uint32_t, uint64_t> layer_routed;
  uint64_t output = 0;  // output head + final norm + other non-layer tensors
  uint64_t embed = 0;
  uint64_t largest_routed_tensor = 0;
};

Sizes sizes_of(const ModelDesc& m) {
  Sizes s;
  s.layer_resident.assign(m.dims.n_layer, 0);
  for (const TensorDesc& t : m.shape.tensors) {
    if (t.role == TensorRole::kEmbedding) {
      s.embed += t.n_bytes;
    } else if (t.role == TensorRole::kRoutedExpert) {
      s.layer_routed[static_cast<uint32_t>(t.layer)] += t.n_bytes;
      s.largest_routed_tensor = std::max(s.largest_routed_tensor, t.n_bytes);
    } else if (t.layer >= 0 && t.layer < static_cast<int>(m.dims.n_layer)) {
      s.layer_resident[static_cast<size_t>(t.layer)] += t.n_bytes;
    } else {
      s.output += t.n_bytes;
    }
  }
  return s;
}

// VRAM outside the plan's weights: CUDA context and kernels (~0.6 GiB), and
// activations of a prompt micro-batch (hidden states, attention scores of
// one layer, logits).
uint64_t vram_scratch(const ModelDesc& m, const Workload& w) {
  const uint64_t ub = std::max<uint32_t>(w.ubatch, 1);
  // Attention is computed one head at a time over the context (f32 scores).
  const uint64_t act = ub * (uint64_t{m.dims.n_embd} * 4 * 12 + uint64_t{m.dims.n_vocab} * 4) +
                       ub * uint64_t{w.context} * 4;
  return 600ull * (1 << 20) + act;
}

uint64_t scheme_bytes(const ModelDims& d, const QuantScheme& q) {
  ModelShape shape = shape_from_dims(d);
  uint64_t b = 0;
  for (const TensorDesc& t : shape.tensors) b += tensor_format(q, d, t).n_bytes;
  return b;
}

}  // namespace

Status validate_profile(const HardwareProfile& hw) {
  const std::string who = "hardware '" + hw.name + "': ";
  if (hw.numa.empty()) return invalid_argument(who + "numa: expected at least one NUMA node, got none");
  for (size_t i = 0; i < hw.numa.size(); ++i) {
    const NumaSpec& n = hw.numa[i];
    const std::string at = who + "numa[" + std::to_string(i) + "].";
    if (n.dram_bytes == 0) return invalid_argument(at + "dram_bytes: expected > 0, got 0");
    if (n.read_gbps.value < 0 || !std::isfinite(n.read_gbps.value)) {
      return invalid_argument(at + "read_gbps: expected a bandwidth >= 0, got " + num(n.read_gbps.value, "%g"));
    }
  }
  for (size_t i = 0; i < hw.gpus.size(); ++i) {
    const GpuSpec& g = hw.gpus[i];
    const std::string at = who + "gpus[" + std::to_string(i) + "].";
    if (g.vram_bytes == 0) return invalid_argument(at + "vram_bytes: expected > 0, got 0");
    if (g.mem_gbps.value < 0 || g.h2d_gbps.value < 0 || g.bf16_tflops.value < 0) {
      return invalid_argument(at + "mem_gbps/h2d_gbps/bf16_tflops: expected values >= 0");
    }
  }
  for (size_t i = 0; i < hw.cpu_kernels.size(); ++i) {
    const KernelRate& k = hw.cpu_kernels[i];
    if (k.decode_gbps.value < 0 || k.prefill_gops.value < 0) {
      return invalid_argument(who + "cpu_kernels[" + std::to_string(i) + "] (" + std::string(dtype_name(k.type)) +
                              "): expected rates >= 0");
    }
  }
  return Status::ok();
}

Result<Plan> plan_placement(const ModelDesc& model, const HardwareProfile& hw, const PlanOptions& opt) {
  STRATA_RETURN_IF_ERROR(validate_profile(hw));
  const Workload& w = opt.workload;
  if (w.context == 0) return invalid_argument("workload context: expected > 0 tokens, got 0");
  if (w.n_seq == 0) return invalid_argument("workload sequences: expected > 0, got 0");
  if (opt.gpu >= 0 && !hw.gpus.empty() && static_cast<size_t>(opt.gpu) >= hw.gpus.size()) {
    return invalid_argument("--gpu: expected 0.." + std::to_string(hw.gpus.size() - 1) + ", got " +
                            std::to_string(opt.gpu));
  }
  const ModelDims& d = model.dims;
  const Sizes sz = sizes_of(model);
  CostModel cm(model, hw);
  Plan plan;
  Placement& p = plan.placement;
  Capacity& cap = plan.capacity;
  plan.assumptions = cm.assumptions();

  // Capacities.
  const bool use_gpu = opt.gpu >= 0 && !hw.gpus.empty();
  for (const NumaSpec& n : hw.numa) {
    const uint64_t reserve = std::max<uint64_t>(static_cast<uint64_t>(opt.dram_reserve_fraction * double(n.dram_bytes)), 2 * kGiB);
    cap.node_bytes.push_back(n.dram_bytes > reserve ? n.dram_bytes - reserve : 0);
    cap.dram_total_bytes += n.dram_bytes;
  }
  for (const StorageSpec& s : hw.storage) cap.nvme_bytes += s.capacity_bytes;
  uint64_t dram_usable = 0;
  for (uint64_t b : cap.node_bytes) dram_usable += b;

  const uint64_t kv_total = model.kv_bytes_per_token * uint64_t{w.context} * w.n_seq;
  const uint64_t kv_layer = kv_total / d.n_layer;
  p.kv_tokens = uint64_t{w.context} * w.n_seq;
  const std::string kv_kind = d.attention() == AttentionKind::kMla ? "MLA latent" : "K and V";

  uint64_t vram_left = 0;
  if (use_gpu) {
    const GpuSpec& g = hw.gpus[static_cast<size_t>(opt.gpu)];
    p.gpu = opt.gpu;
    cap.vram_total_bytes = g.vram_bytes;
    const uint64_t budget = opt.gpu_budget_bytes ? std::min(opt.gpu_budget_bytes, g.vram_bytes) : g.vram_bytes;
    const uint64_t reserve = opt.vram_reserve_bytes ? opt.vram_reserve_bytes : vram_scratch(model, w);
    p.gpu_scratch_bytes = std::min(reserve, budget);
    cap.vram_bytes = budget > reserve ? budget - reserve : 0;
    vram_left = cap.vram_bytes;
    plan.decisions.push_back("GPU " + g.name + ": " + gb(double(budget)) + (opt.gpu_budget_bytes ? " budget" : "") +
                             ", " + gb(double(cap.vram_bytes)) + " for the plan after " + gb(double(p.gpu_scratch_bytes)) +
                             " for the CUDA context and activations");
    // The output head: every token reads all of it.
    if (sz.output <= vram_left) {
      p.output_on_gpu = true;
      vram_left -= sz.output;
    }
    // Layers from the last, as llama.cpp's -ngl counts: attention, norms,
    // router, shared/dense FFN and that layer's KV cache.
    for (uint32_t i = 0; i < d.n_layer; ++i) {
      const uint32_t L = d.n_layer - 1 - i;
      const uint64_t need = sz.layer_resident[L] + kv_layer;
      if (need > vram_left) break;
      vram_left -= need;
      ++p.n_gpu_layers;
    }
    uint64_t res = p.output_on_gpu ? sz.output : 0;
    for (uint32_t L = d.n_layer - p.n_gpu_layers; L < d.n_layer; ++L) res += sz.layer_resident[L];
    p.gpu_weight_bytes = res;
    p.gpu_kv_bytes = kv_layer * p.n_gpu_layers;
    const std::string what = d.is_moe() ? "attention, norms, routers, shared experts and dense layers"
                                        : "attention, norms and FFN";
    if (p.n_gpu_layers == d.n_layer && p.output_on_gpu) {
      plan.decisions.push_back("resident set on the GPU: " + what + " of all " + std::to_string(d.n_layer) +
                               " layers and the output head, " + gb(double(res)) + " (every token reads all of it)");
      plan.decisions.push_back("KV cache on the GPU: " + gb(double(p.gpu_kv_bytes)) + " for " +
                               std::to_string(w.context) + " tokens x " + std::to_string(w.n_seq) + " sequence(s) (" +
                               kv_kind + ", " + num(double(model.kv_bytes_per_token) / 1024, "%.1f") + " KiB per token)");
    } else {
      plan.decisions.push_back("resident set does not fit the GPU: the last " + std::to_string(p.n_gpu_layers) + " of " +
                               std::to_string(d.n_layer) + " layers (" + what + ", their KV cache" +
                               (p.output_on_gpu ? ", and the output head" : "") + ", " +
                               gb(double(res + p.gpu_kv_bytes)) + ") on the GPU, the rest on the CPU");
    }
    plan.decisions.push_back("token embeddings (" + gb(double(sz.embed)) +
                             ") in DRAM: a token reads one row, the GPU would gain nothing");
  } else {
    plan.decisions.push_back(hw.gpus.empty() ? "no GPU: every weight, the KV cache and attention on the CPU"
                                             : "GPU not used (--gpu -1): everything on the CPU");
  }

  // The GPU expert cache takes whole layers, lowest first, so llama.cpp's -ot
  // can express the same split. Copy buffers for streaming experts during
  // long prompts compete for the same VRAM: both options are costed on one
  // typical request (prompt + answer) and the faster is kept.
  std::vector<uint32_t> cpu_moe_layers;
  for (const auto& [L, b] : sz.layer_routed) cpu_moe_layers.push_back(L);
  if (use_gpu && d.is_moe()) {
    auto fill_cache = [&](Placement q, uint64_t left, std::vector<uint32_t>* kept, uint64_t* left_out) {
      kept->clear();
      for (uint32_t L : cpu_moe_layers) {
        const uint64_t b = sz.layer_routed.at(L);
        if (b <= left && q.layer_on_gpu(L, d.n_layer)) {
          left -= b;
          q.gpu_expert_layers.push_back(L);
          q.gpu_expert_bytes += b;
        } else {
          kept->push_back(L);
        }
      }
      q.node_expert_bytes = {1};
      q.node_traffic = {1.0};
      *left_out = left;
      return q;
    };
    const uint32_t ctx = std::max<uint32_t>(1, w.prompt + w.answer / 2);
    auto request_s = [&](const Placement& q) {
      const PrefillEstimate pf = q.prefill == PrefillStrategy::kGpuStream ? cm.prefill(q, w.prompt, w.ubatch)
                                                                          : cm.prefill_with(q, w.prompt, w.ubatch, PrefillStrategy::kCpu);
      return pf.seconds.value + double(w.answer) * cm.decode(q, 1, ctx).step.total.value;
    };
    std::vector<uint32_t> kept_a, kept_b;
    uint64_t left_a = 0, left_b = 0;
    Placement a = fill_cache(p, vram_left, &kept_a, &left_a);
    const uint32_t threshold = cm.stream_threshold(p, w.ubatch);
    const uint64_t buffers = 2 * sz.largest_routed_tensor;
    bool streamed = false;
    if (threshold > 0 && w.prompt >= threshold && buffers <= vram_left) {
      Placement sb = p;
      sb.gpu_scratch_bytes += buffers;
      sb.prefill = PrefillStrategy::kGpuStream;
      sb.prefill_threshold = threshold;
      Placement b = fill_cache(sb, vram_left - buffers, &kept_b, &left_b);
      const double ta = request_s(a), tb = request_s(b);
      if (tb < ta) {
        streamed = true;
        const size_t lost = a.gpu_expert_layers.size() - b.gpu_expert_layers.size();
        plan.decisions.push_back("VRAM for streaming copy buffers (" + gb(double(buffers)) + ")" +
                                 (lost ? " rather than " + std::to_string(lost) + " more cached expert layer(s)" : "") +
                                 ": a typical request (" + std::to_string(w.prompt) + " + " + std::to_string(w.answer) +
                                 " tokens) takes " + num(tb, "%.2f") + " s against " + num(ta, "%.2f") + " s without");
        p = b;
        cpu_moe_layers = kept_b;
        vram_left = left_b;
      }
    }
    if (!streamed) {
      p = a;
      cpu_moe_layers = kept_a;
      vram_left = left_a;
    }
    p.node_expert_bytes.clear();
    p.node_traffic.clear();
    if (!p.gpu_expert_layers.empty()) {
      plan.decisions.push_back("GPU expert cache: routed experts of layers " + ranges(p.gpu_expert_layers) + " (" +
                               std::to_string(p.gpu_expert_layers.size()) + " of " +
                               std::to_string(sz.layer_routed.size()) + " MoE layers, " +
                               gb(double(p.gpu_expert_bytes)) + ") fill the VRAM that is left");
    } else {
      plan.decisions.push_back("GPU expert cache: none (one MoE layer's experts, " +
                               gb(double(sz.layer_routed.begin()->second)) + ", does not fit the " +
                               gb(double(vram_left)) + " left)");
    }
  }

  // DRAM: what the GPU does not hold.
  uint64_t dram_other = sz.embed + (p.output_on_gpu ? 0 : sz.output);
  for (uint32_t L = 0; L < d.n_layer; ++L) {
    if (!p.layer_on_gpu(L, d.n_layer)) dram_other += sz.layer_resident[L] + kv_layer;
  }
  p.dram_weight_bytes = dram_other - kv_layer * (d.n_layer - (use_gpu ? p.n_gpu_layers : 0));
  p.dram_kv_bytes = dram_other - p.dram_weight_bytes;
  uint64_t routed_cpu = 0;
  std::vector<uint64_t> expert_bytes;  // one expert per CPU MoE layer
  for (uint32_t L : cpu_moe_layers) {
    routed_cpu += sz.layer_routed.at(L);
    expert_bytes.push_back(sz.layer_routed.at(L) / d.n_expert);
  }
  const uint64_t dram_need = dram_other + routed_cpu;
  const size_t N = hw.numa.size();
  plan.node_used_bytes.assign(N, 0);
  auto add_shortfall = [&](uint64_t need, uint64_t have) {
    const uint64_t missing = need - have;
    const uint64_t add = ((missing + 32 * uint64_t(1e9) - 1) / (32 * uint64_t(1e9))) * 32 * uint64_t(1e9);
    // A smaller quantization of the same model that would fit: the largest.
    std::string alt;
    uint64_t alt_bytes = 0;
    const uint64_t fixed = need - (model.routed_bytes + model.resident_bytes);  // KV and the like
    for (const QuantScheme& q : quant_schemes()) {
      if (!q.gguf || q.name == model.quant) continue;
      const uint64_t b = scheme_bytes(d, q);
      const uint64_t on_gpu = p.gpu_weight_bytes + p.gpu_expert_bytes;
      const uint64_t in_dram = b + fixed > on_gpu ? b + fixed - on_gpu : 0;
      if (in_dram <= have && b < model.routed_bytes + model.resident_bytes && b > alt_bytes) {
        alt = q.name;
        alt_bytes = b;
      }
    }
    std::string s = "needs " + gb(double(need)) + " DRAM, has " + gb(double(have)) + " usable (" +
                    gb(double(cap.dram_total_bytes)) + " installed): ";
    if (!alt.empty()) s += "use " + alt + " (" + gb(double(alt_bytes)) + ") or ";
    s += "add " + gb(double(add));
    plan.shortfalls.push_back(s);
  };

  if (dram_other > dram_usable) {
    add_shortfall(dram_need, dram_usable);
    plan.feasible = false;
    return plan;
  }
  // Expert room per node after the other DRAM contents, spread by capacity.
  std::vector<uint64_t> room(N, 0);
  uint64_t room_total = 0;
  for (size_t i = 0; i < N; ++i) {
    const uint64_t other_i = dram_usable ? static_cast<uint64_t>(double(dram_other) * double(cap.node_bytes[i]) / double(dram_usable)) : 0;
    plan.node_used_bytes[i] = other_i;
    room[i] = cap.node_bytes[i] > other_i ? cap.node_bytes[i] - other_i : 0;
    room_total += room[i];
  }
  uint32_t in_dram_per_layer = d.n_expert;
  if (routed_cpu > room_total) {
    // Keep the same share of every layer in DRAM; the rest is read from NVMe.
    uint64_t per_expert_all = 0;
    for (uint64_t eb : expert_bytes) per_expert_all += eb;
    in_dram_per_layer = per_expert_all ? static_cast<uint32_t>(std::min<uint64_t>(room_total / per_expert_all, d.n_expert)) : 0;
    uint64_t spill = 0;
    for (uint64_t eb : expert_bytes) spill += eb * (d.n_expert - in_dram_per_layer);
    add_shortfall(dram_need, dram_usable);
    if (!opt.allow_nvme || spill > cap.nvme_bytes) {
      plan.shortfalls.push_back(!opt.allow_nvme ? "NVMe spill not allowed (--no-nvme)"
                                                : "NVMe: needs " + gb(double(spill)) + " for the experts that do not fit, has " +
                                                      gb(double(cap.nvme_bytes)));
      plan.feasible = false;
      return plan;
    }
    p.nvme_expert_bytes = spill;
    plan.decisions.push_back("NVMe: " + gb(double(spill)) + " of routed experts (" +
                             std::to_string(d.n_expert - in_dram_per_layer) + " of " + std::to_string(d.n_expert) +
                             " per layer) do not fit in DRAM and are read from " + hw.storage.front().name +
                             " when a token picks them");
  }

  if (!cpu_moe_layers.empty()) {
    std::vector<double> weight(N);
    for (size_t i = 0; i < N; ++i) weight[i] = std::max(hw.numa[i].cores, 1);
    NumaSplit split = numa_split(room, weight, expert_bytes, in_dram_per_layer);
    if (!split.ok) {
      add_shortfall(dram_need, dram_usable);
      plan.feasible = false;
      return plan;
    }
    p.node_expert_bytes = split.node_bytes;
    p.node_traffic = split.traffic;
    for (size_t i = 0; i < N; ++i) plan.node_used_bytes[i] += split.node_bytes[i];
    const uint64_t in_dram = routed_cpu - p.nvme_expert_bytes;
    if (N > 1) {
      Placement inter = p;
      inter.numa_partitioned = false;
      Placement part = p;
      part.numa_partitioned = true;
      const uint32_t ctx = std::max<uint32_t>(1, w.prompt + w.answer / 2);
      const double t_part = cm.decode(part, 1, ctx).tok_s.value, t_inter = cm.decode(inter, 1, ctx).tok_s.value;
      plan.decode_interleaved = cm.decode(inter, 1, ctx);
      std::string per_node;
      for (size_t i = 0; i < N; ++i) per_node += (i ? "/" : "") + gb(double(split.node_bytes[i]));
      if (opt.numa_partition && t_part >= t_inter) {
        p.numa_partitioned = true;
        plan.decisions.push_back("routed experts of " + std::to_string(cpu_moe_layers.size()) + " layers in DRAM (" +
                                 gb(double(in_dram)) + "), split over " + std::to_string(N) +
                                 " NUMA nodes by cores (" + per_node + "): each node computes the experts in its own memory, " +
                                 num(t_part) + " tok/s against " + num(t_inter) + " with pages interleaved");
      } else {
        plan.decisions.push_back("routed experts of " + std::to_string(cpu_moe_layers.size()) + " layers in DRAM (" +
                                 gb(double(in_dram)) + "), pages interleaved over " + std::to_string(N) + " nodes" +
                                 (opt.numa_partition ? " (binding to nodes would not be faster here)" : " (--no-numa)"));
      }
    } else {
      plan.decisions.push_back("routed experts of " + std::to_string(cpu_moe_layers.size()) + " layers in DRAM (" +
                               gb(double(in_dram)) + "), computed by the CPU kernels");
    }
  }
  if (!use_gpu) {
    plan.decisions.push_back("KV cache in DRAM: " + gb(double(p.dram_kv_bytes)) + " for " + std::to_string(w.context) +
                             " tokens x " + std::to_string(w.n_seq) + " sequence(s) (" + kv_kind + ", " +
                             num(double(model.kv_bytes_per_token) / 1024, "%.1f") + " KiB per token)");
  }
  for (uint64_t b : plan.node_used_bytes) plan.dram_used_bytes += b;

  // Prefill.
  if (use_gpu && d.is_moe() && !cpu_moe_layers.empty()) {
    const uint32_t threshold = cm.stream_threshold(p, w.ubatch);
    const double h2d = hw.gpus[static_cast<size_t>(p.gpu)].h2d_gbps.value;
    if (p.prefill == PrefillStrategy::kGpuStream) {
      p.prefill_threshold = threshold;
      plan.decisions.push_back("prefill: prompts of " + std::to_string(threshold) +
                               "+ tokens stream the experts to the GPU over PCIe" +
                               (h2d > 0 ? " (" + num(h2d) + " GB/s)" : "") + ", shorter ones run them on the CPU; " +
                               gb(double(2 * sz.largest_routed_tensor)) + " of VRAM for the copy buffers");
    } else if (threshold > 0) {
      plan.decisions.push_back("prefill on the CPU: the typical prompt (" + std::to_string(w.prompt) +
                               " tokens) is below the " + std::to_string(threshold) +
                               "-token point where streaming experts over PCIe wins" +
                               (threshold <= w.context ? " (or the copy buffers do not fit)" : ""));
    } else {
      plan.decisions.push_back("prefill on the CPU: streaming experts over PCIe never wins on this machine");
    }
  } else if (use_gpu) {
    plan.decisions.push_back("prefill on the GPU: every weight it needs is resident");
  }

  // Capacity invariants hold by construction; check them anyway (cold path).
  const uint64_t vram_used = p.gpu_weight_bytes + p.gpu_kv_bytes + p.gpu_expert_bytes + p.gpu_scratch_bytes;
  if (use_gpu && vram_used > std::max(cap.vram_bytes + p.gpu_scratch_bytes, p.gpu_scratch_bytes)) {
    return internal_error("placement over VRAM: " + std::to_string(vram_used) + " > " + std::to_string(cap.vram_bytes));
  }
  for (size_t i = 0; i < N; ++i) {
    if (plan.node_used_bytes[i] > cap.node_bytes[i]) {
      return internal_error("placement over DRAM of node " + std::to_string(i));
    }
  }

  plan.feasible = true;
  const uint32_t ctx = std::max<uint32_t>(1, w.prompt + w.answer / 2);
  plan.decode_single = cm.decode(p, 1, ctx);
  plan.decode_batch = cm.decode(p, w.n_seq, ctx);
  if (N <= 1 || cpu_moe_layers.empty()) plan.decode_interleaved = plan.decode_single;
  plan.prefill = cm.prefill(p, w.prompt, w.ubatch);
  plan.ttft = cm.time_to_first_token(p, w.prompt, w.ubatch);
  for (uint32_t P : {128u, 512u, 2048u, 8192u, 32768u}) {
    if (P > w.context && P != 128u) break;
    PrefillEstimate e = cm.prefill(p, P, w.ubatch);
    if (p.prefill == PrefillStrategy::kCpu) e = cm.prefill_with(p, P, w.ubatch, PrefillStrategy::kCpu);
    plan.prefill_curve.push_back(e);
  }
  return plan;
}

namespace {

// Regex alternatives for the integers lo..hi: the range is cut where a
// suffix of nines ends or a suffix of zeros begins, so each piece is
// "common prefix, one digit range, then [0-9] for every remaining digit".
void range_regex(uint32_t lo, uint32_t hi, std::vector<std::string>* out) {
  std::vector<uint64_t> stops = {hi};
  uint64_t p10 = 10;
  for (uint64_t stop = lo - lo % p10 + p10 - 1; lo <= stop && stop < hi; p10 *= 10, stop = lo - lo % p10 + p10 - 1) {
    stops.push_back(stop);
  }
  p10 = 10;
  for (uint64_t stop = (uint64_t{hi} + 1) - (uint64_t{hi} + 1) % p10; stop > 0 && lo < stop && stop - 1 <= hi;
       p10 *= 10, stop = (uint64_t{hi} + 1) - (uint64_t{hi} + 1) % p10) {
    if (stop - 1 >= lo) stops.push_back(stop - 1);
    if (p10 > hi) break;
  }
  std::sort(stops.begin(), stops.end());
  stops.erase(std::unique(stops.begin(), stops.end()), stops.end());
  uint64_t start = lo;
  for (uint64_t stop : stops) {
    if (stop < start) continue;
    const std::string a = std::to_string(start), b = std::to_string(stop);
    std::string r;
    int any = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i] == b[i]) r += a[i];
      else if (a[i] == '0' && b[i] == '9') ++any;
      else r += std::string("[") + a[i] + "-" + b[i] + "]";
    }
    for (int i = 0; i < any; ++i) r += "[0-9]";
    out->push_back(r);
    start = stop + 1;
  }
}

}  // namespace

std::string integer_set_regex(std::vector<uint32_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  std::vector<std::string> alts;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    range_regex(v[i], v[j], &alts);
    i = j + 1;
  }
  std::string r = "(";
  for (size_t k = 0; k < alts.size(); ++k) r += (k ? "|" : "") + alts[k];
  return r + ")";
}

std::string llama_cpp_args(const ModelDesc& model, const Placement& p) {
  if (!p.has_gpu()) return "-ngl 0";
  const uint32_t n_layer = model.dims.n_layer;
  std::string s = "-ngl " + (p.n_gpu_layers == n_layer && p.output_on_gpu ? std::string("99")
                                                                          : std::to_string(p.n_gpu_layers));
  if (!model.is_moe()) return s;
  std::vector<uint32_t> cpu;
  for (uint32_t L : model.moe_layers) {
    if (!std::binary_search(p.gpu_expert_layers.begin(), p.gpu_expert_layers.end(), L) && p.layer_on_gpu(L, n_layer)) {
      cpu.push_back(L);
    }
  }
  if (!cpu.empty()) s += " -ot \"blk\\." + integer_set_regex(cpu) + "\\.ffn_.*_exps\\.=CPU\"";
  return s;
}

ClusterSketch sketch_cluster(const ModelDesc& model, const std::string& native_format, uint32_t users,
                             double tok_per_user, uint32_t context) {
  ClusterSketch c;
  // Sized for 80 GB H100-class GPUs, 8 to a node, serving the checkpoint's own format.
  c.gpu_name = "H100 80GB";
  const double vram = 80e9, usable = 0.85, hbm = 3.35e12, hbm_eff = 0.5;
  c.format = native_format == "FP8" ? "FP8" : "BF16";
  auto q = find_quant_scheme(c.format);
  c.weight_bytes = q.is_ok() ? scheme_bytes(model.dims, *q) : model.routed_bytes + model.resident_bytes;
  c.kv_bytes = model.kv_bytes_per_token * uint64_t{context} * users;
  // Memory: weights and every user's KV cache. Throughput: with all users in
  // one batch every expert is touched each step, so a step reads the weights
  // once, spread over the GPUs: step = weights / (n * HBM * eff) must stay
  // under 1 / tok_per_user.
  const uint32_t for_memory = static_cast<uint32_t>(std::ceil(double(c.weight_bytes + c.kv_bytes) / (vram * usable)));
  const uint32_t for_speed = static_cast<uint32_t>(std::ceil(double(c.weight_bytes) * tok_per_user / (hbm * hbm_eff)));
  const uint32_t gpus = std::max({for_memory, for_speed, 1u});
  c.n_gpus = gpus <= 8 ? std::max<uint32_t>(gpus, 1) : ((gpus + 7) / 8) * 8;
  if (c.n_gpus < 8) {
    uint32_t p2 = 1;
    while (p2 < c.n_gpus) p2 *= 2;
    c.n_gpus = p2;
  }
  c.n_nodes = (c.n_gpus + c.gpus_per_node - 1) / c.gpus_per_node;
  const uint32_t per_node = std::min(c.n_gpus, c.gpus_per_node);
  c.lines.push_back("workload: " + std::to_string(users) + " users x " + num(tok_per_user, "%.0f") + " tok/s = " +
                    num(users * tok_per_user, "%.0f") + " tok/s aggregate, " + std::to_string(context) +
                    " tokens of context each");
  c.lines.push_back("memory: " + gb(double(c.weight_bytes)) + " of " + c.format + " weights + " + gb(double(c.kv_bytes)) +
                    " of KV cache need " + std::to_string(for_memory) + " x " + c.gpu_name +
                    " (85 % usable); speed: one step reads the weights once across the GPUs at ~50 % of 3.35 TB/s, "
                    "which needs " + std::to_string(for_speed) + "; plan " + std::to_string(c.n_gpus) + " GPUs on " +
                    std::to_string(c.n_nodes) + " node(s) of " + std::to_string(per_node));
  const std::string n = std::to_string(c.n_gpus);
  std::string sg = "SGLang: python -m sglang.launch_server --model-path <" + model.name + " " + c.format +
                   " checkpoint> --tp " + n + " --ep-size " + n + " --enable-dp-attention --dp " + n;
  if (c.n_nodes > 1) {
    sg += " --nnodes " + std::to_string(c.n_nodes) + " --node-rank <0.." + std::to_string(c.n_nodes - 1) +
          "> --dist-init-addr <head-ip>:5000";
  }
  c.lines.push_back(sg);
  std::string vl = "vLLM: vllm serve <" + model.name + " " + c.format + " checkpoint> --tensor-parallel-size " +
                   std::to_string(per_node) + " --enable-expert-parallel";
  if (c.n_nodes > 1) vl += " --pipeline-parallel-size " + std::to_string(c.n_nodes) + " (nodes joined with Ray)";
  c.lines.push_back(vl);
  c.lines.push_back("expert parallelism spreads the routed experts over all GPUs and batches every user's tokens into "
                    "one step; check the flags against the engine version and measure with its own benchmark");
  return c;
}

}  // namespace strata
