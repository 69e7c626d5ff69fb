// Decode and prefill time from bytes, FLOPs and the profile's rates; see
// cost_model.h for the model. Rates the profile lacks are assumed from the
// nearest thing it has, and each assumption is recorded once.
#include "offload/cost_model.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace strata {
namespace {

constexpr int kValue = 0, kSlow = 1, kFast = 2;

// GPU <-> CPU round trip per CPU-computed layer (event wait + small copies).
const Figure kSyncLatency{30e-6, 15e-6, 60e-6, "assumed: 15-60 us per GPU<->CPU round trip"};
// Share of peak tensor throughput prefill GEMMs reach.
const Figure kGpuGemmEfficiency{0.5, 0.3, 0.7, "assumed: 30-70 % of peak BF16 tensor throughput in prefill"};
// Share of the CPU's nominal multiply-add rate quantized prefill GEMMs reach
// when no kernel rate was measured.
const Figure kNominalCpuEfficiency{0.35, 0.2, 0.5, "assumed: 20-50 % of the CPU's nominal FMA rate in prefill"};
// Prompt tokens per micro-batch when experts stream to the GPU: larger
// batches amortize the copy; bounded by activation memory.
constexpr uint32_t kStreamUbatch = 4096;

double ceil_div(double a, double b) { return std::ceil(a / b); }

}  // namespace

const char* prefill_strategy_name(PrefillStrategy s) {
  return s == PrefillStrategy::kGpuStream ? "stream experts to GPU" : "CPU experts";
}

Figure make_range(double value, double a, double b, std::string source) {
  Figure f;
  f.value = value;
  f.lo = std::min({value, a, b});
  f.hi = std::max({value, a, b});
  f.source = std::move(source);
  return f;
}

double CostModel::distinct_experts(uint32_t n_expert, uint32_t k, double b) {
  if (n_expert == 0 || k == 0 || b <= 0) return 0;
  const double n = n_expert;
  return n * (1.0 - std::pow(1.0 - double(k) / n, b));
}

double CostModel::imbalance(const std::vector<double>& share, double items) {
  std::vector<double> s;
  for (double x : share) {
    if (x > 0) s.push_back(x);
  }
  if (s.size() <= 1 || items <= 0) return 1.0;
  double smin = *std::min_element(s.begin(), s.end());
  double cap = 1.0 / smin;  // everything on the smallest node
  if (s.size() == 2) {
    // Exact: X ~ Binomial(n, s0); busiest node time ~ max(X/s0, (n-X)/s1).
    const int n = std::max(1, static_cast<int>(std::lround(items)));
    double e = 0, logc = 0;
    for (int x = 0; x <= n; ++x) {
      if (x > 0) logc += std::log(double(n - x + 1)) - std::log(double(x));
      double pr = std::exp(logc + x * std::log(s[0]) + (n - x) * std::log(s[1]));
      e += pr * std::max(x / s[0], (n - x) / s[1]);
    }
    return std::min(cap, e / n);
  }
  // Normal approximation: mean `items`, sd per node sqrt(items (1-s)/s);
  // expected maximum of N standard normals.
  static const double kZ[] = {0, 0, 0.5642, 0.8463, 1.0294, 1.1630, 1.2672, 1.3522, 1.4236};
  const size_t N = s.size();
  double z = N <= 8 ? kZ[N] : std::sqrt(2.0 * std::log(double(N)));
  double sd = 0;
  for (double x : s) sd += std::sqrt(items * (1 - x) / x);
  sd /= double(N);
  return std::min(cap, (items + z * sd) / items);
}

CostModel::CostModel(const ModelDesc& model, const HardwareProfile& hw) : m_(model), hw_(hw) {
  uint32_t cores = 0;
  for (const NumaSpec& n : hw.numa) cores += static_cast<uint32_t>(std::max(n.cores, 0));
  if (cores == 0) cores = static_cast<uint32_t>(std::max(1, hw.cpu.sockets * hw.cpu.cores_per_socket));
  total_cores_ = std::max<uint32_t>(cores, 1);

  bool missing_prefill = false;
  std::set<DType> types;
  for (const TensorDesc& t : m_.shape.tensors) {
    if (t.n_dims >= 2 && t.role != TensorRole::kEmbedding) types.insert(t.dtype);
  }
  for (DType t : types) {
    const KernelRate* r = nullptr;
    for (const KernelRate& k : hw_.cpu_kernels) {
      if (k.type == t) r = &k;
    }
    if (!r || !r->decode_gbps.known()) {
      assumptions_.push_back("no CPU kernel rate for " + std::string(dtype_name(t)) +
                             ": assumed bandwidth-bound at DRAM speed (optimistic)");
    }
    if (!r || !r->prefill_gops.known()) missing_prefill = true;
  }
  if (missing_prefill) {
    assumptions_.push_back("CPU prefill rate not measured for every type: " + std::string(kNominalCpuEfficiency.source) +
                           " (" + std::to_string(total_cores_) + " cores" +
                           (hw_.cpu.amx ? ", AMX" : hw_.cpu.avx512 ? ", AVX-512" : hw_.cpu.avx2 ? ", AVX2" : "") + ")");
  }
  if (hw_.numa.empty() || !hw_.numa[0].read_gbps.known()) {
    assumptions_.push_back("no DRAM bandwidth in the profile: assumed 20 GB/s per node");
  }
  if (hw_.numa.size() > 1 && !hw_.cross_numa_gbps.known()) {
    assumptions_.push_back("no cross-NUMA bandwidth in the profile: assumed half a node's local bandwidth");
  }
  for (const GpuSpec& g : hw_.gpus) {
    if (!g.gemv_gbps.known()) {
      assumptions_.push_back(g.name + ": quantized GEMV assumed at 80 % of device memory bandwidth");
    }
    if (!g.h2d_gbps.known()) {
      assumptions_.push_back(g.name + ": host->device copies assumed at 80 % of PCIe " + std::to_string(g.pcie_gen) +
                             ".0 x" + std::to_string(g.pcie_width) + " peak");
    }
  }
  if (m_.is_moe() && !hw_.gpus.empty()) assumptions_.push_back(kSyncLatency.source);
  if (!hw_.gpus.empty()) assumptions_.push_back(kGpuGemmEfficiency.source);
  if (m_.is_moe()) {
    assumptions_.push_back("routing assumed uniform over experts (real models skew: a popularity-aware GPU cache "
                           "would do better than modelled)");
  }
}

double CostModel::pick(const Figure& f, int which) const {
  if (which == kSlow && f.lo > 0) return f.lo;
  if (which == kFast && f.hi > 0) return f.hi;
  return f.value;
}

double CostModel::node_gbps(size_t node, int which) const {
  if (node < hw_.numa.size() && hw_.numa[node].read_gbps.known()) return pick(hw_.numa[node].read_gbps, which);
  return 20.0;
}

double CostModel::dram_gbps(int which) const {
  const size_t n = std::max<size_t>(hw_.numa.size(), 1);
  if (n == 1) return node_gbps(0, which);
  // Pages interleaved over all nodes, every core reading: each node's
  // cores get 1/n of their bytes locally and the rest across the link.
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    double local = node_gbps(i, which);
    double cross = hw_.cross_numa_gbps.known() ? pick(hw_.cross_numa_gbps, which) : local / 2;
    total += 1.0 / ((1.0 / n) / local + ((n - 1.0) / n) / cross);
  }
  return total;
}

double CostModel::gpu_mem_gbps(const GpuSpec& g, int which) const {
  if (g.gemv_gbps.known()) return pick(g.gemv_gbps, which);
  if (g.mem_gbps.known()) return 0.8 * pick(g.mem_gbps, which);
  return 500.0;
}

double CostModel::gpu_flops(const GpuSpec& g, int which) const {
  const double tf = g.bf16_tflops.known() ? pick(g.bf16_tflops, which) : 50.0;
  return tf * 1e12 * pick(kGpuGemmEfficiency, which);
}

double CostModel::cpu_attn_flops(int which) const {
  for (const KernelRate& k : hw_.cpu_kernels) {
    if (k.type == DType::kF32 && k.prefill_gops.known()) return pick(k.prefill_gops, which) * 1e9;
  }
  for (const KernelRate& k : hw_.cpu_kernels) {
    if (k.type == DType::kF16 && k.prefill_gops.known()) return pick(k.prefill_gops, which) * 1e9;
  }
  // Nominal f32 FMA throughput of the vector units at the stated efficiency.
  const CpuSpec& c = hw_.cpu;
  const double per_cycle = c.avx512 ? 64 : c.avx2 ? 32 : 8;
  return total_cores_ * (c.base_ghz > 0 ? c.base_ghz : 2.5) * 1e9 * per_cycle * pick(kNominalCpuEfficiency, which);
}

double CostModel::nominal_cpu_ops(int which) const {
  // Multiply-adds x 2 per cycle per core for quantized GEMM: AMX tiles,
  // AVX-512 (VNNI) or AVX2 FMA lanes, times the share real kernels reach.
  const CpuSpec& c = hw_.cpu;
  const double per_cycle = c.amx ? 1024 : c.avx512 ? 64 : c.avx2 ? 32 : 8;
  const double ghz = c.base_ghz > 0 ? c.base_ghz : 2.5;
  return total_cores_ * ghz * 1e9 * per_cycle * pick(kNominalCpuEfficiency, which);
}

CostModel::KernelCost CostModel::kernel_cost(DType t, int which) const {
  const double bpp = dtype_bits_per_weight(t) / 8.0;
  const KernelRate* r = nullptr;
  for (const KernelRate& k : hw_.cpu_kernels) {
    if (k.type == t) r = &k;
  }
  // Two-point fit: t(rows) = a + rows * d per parameter, through the 1-row
  // (decode) and 512-row (prefill) rates. Without a decode rate the kernel
  // is taken as bandwidth-bound (the caller's memory term); without a
  // prefill rate, the CPU's nominal throughput stands in.
  const double t1 = r && r->decode_gbps.known() ? bpp / (pick(r->decode_gbps, which) * 1e9) : 0.0;
  const double ops = r && r->prefill_gops.known() ? pick(r->prefill_gops, which) * 1e9 : nominal_cpu_ops(which);
  const double t512 = 1024.0 / ops;
  KernelCost c;
  c.d = std::max(0.0, (t512 - t1) / 511.0);
  c.a = std::max(0.0, t1 - c.d);
  return c;
}

double CostModel::cpu_matmul_s(DType t, double params, double bytes, double rows, double gbps, double core_frac,
                               int which) const {
  const KernelCost k = kernel_cost(t, which);
  const double compute = params * (k.a + rows * k.d) / std::max(core_frac, 1e-9);
  const double memory = bytes / (gbps * 1e9);
  return std::max(compute, memory);
}

CostModel::GpuRates CostModel::gpu_rates(const Placement& p, int which) const {
  GpuRates g;
  if (p.gpu < 0 || static_cast<size_t>(p.gpu) >= hw_.gpus.size()) return g;
  const GpuSpec& spec = hw_.gpus[static_cast<size_t>(p.gpu)];
  g.mem = gpu_mem_gbps(spec, which) * 1e9;
  g.flops = gpu_flops(spec, which);
  const double link = spec.pcie_gen >= 5 ? 50 : spec.pcie_gen == 4 ? 25 : 12;
  g.h2d = (spec.h2d_gbps.known() ? pick(spec.h2d_gbps, which) : 0.8 * link * std::max(spec.pcie_width, 1) / 16.0) * 1e9;
  return g;
}

StepBreakdown CostModel::step(const Placement& p, double b, uint32_t context, int which) const {
  const ModelDims& d = m_.dims;
  const bool gpu = p.gpu >= 0 && static_cast<size_t>(p.gpu) < hw_.gpus.size();
  const GpuRates g = gpu_rates(p, which);
  const double D = distinct_experts(d.n_expert, d.n_expert_used, b);
  const double rows_per_expert = D > 0 ? b * d.n_expert_used / D : 0;
  std::set<uint32_t> gpu_exp(p.gpu_expert_layers.begin(), p.gpu_expert_layers.end());

  // NUMA: share of CPU-side expert traffic per node; one interleaved pseudo-node otherwise.
  std::vector<double> share = p.node_traffic;
  const bool partitioned = p.numa_partitioned && share.size() > 1;
  if (!partitioned) share = {1.0};
  std::vector<double> core_frac(share.size(), 1.0), node_bw(share.size(), dram_gbps(which));
  if (partitioned) {
    for (size_t i = 0; i < share.size(); ++i) {
      core_frac[i] = i < hw_.numa.size() ? double(std::max(hw_.numa[i].cores, 1)) / total_cores_ : 1.0;
      node_bw[i] = node_gbps(i, which);
    }
  }
  const double dram_experts = double(p.nvme_expert_bytes);
  double cpu_side_routed = dram_experts;
  for (uint64_t x : p.node_expert_bytes) cpu_side_routed += double(x);
  const double nvme_frac = cpu_side_routed > 0 ? dram_experts / cpu_side_routed : 0;
  double nvme_gbps = 2.0;
  if (!hw_.storage.empty()) {
    const StorageSpec& s = hw_.storage[0];
    nvme_gbps = s.rand_read_gbps.known() ? pick(s.rand_read_gbps, which)
                : s.seq_read_gbps.known() ? 0.6 * pick(s.seq_read_gbps, which)
                                          : 2.0;
  }

  const double dram_all = dram_gbps(which), attn_rate = cpu_attn_flops(which);
  std::vector<double> node_s(share.size(), 0.0);
  double gpu_bytes = 0, gpu_fl = 0, gpu_par_bytes = 0, gpu_par_fl = 0, cpu_other = 0, nvme_bytes = 0;
  uint32_t cpu_moe_layers = 0;
  std::set<uint32_t> cpu_moe;
  for (const TensorDesc& t : m_.shape.tensors) {
    const double params = double(tensor_elems(t)), bytes = double(t.n_bytes);
    bool on_gpu = false;
    if (gpu) {
      if (t.layer >= 0) on_gpu = p.layer_on_gpu(static_cast<uint32_t>(t.layer), d.n_layer);
      else on_gpu = t.role == TensorRole::kEmbedding ? p.embeddings_on_gpu : p.output_on_gpu;
    }
    if (t.role == TensorRole::kEmbedding) continue;  // one row per token
    if (t.role == TensorRole::kRoutedExpert) {
      const double pe = params / d.n_expert, be = bytes / d.n_expert;
      const uint32_t L = static_cast<uint32_t>(t.layer);
      if (gpu && gpu_exp.count(L)) {
        gpu_par_bytes += D * be;
        gpu_par_fl += 2.0 * b * d.n_expert_used * pe;
        continue;
      }
      cpu_moe.insert(L);
      nvme_bytes += nvme_frac * D * be;
      for (size_t i = 0; i < share.size(); ++i) {
        node_s[i] += cpu_matmul_s(t.dtype, share[i] * D * pe, share[i] * D * be,
                                  rows_per_expert, node_bw[i], core_frac[i], which);
      }
      continue;
    }
    if (on_gpu) {
      const bool parallel = t.role == TensorRole::kSharedExpert;  // does not wait for the routed experts
      (parallel ? gpu_par_bytes : gpu_bytes) += bytes;
      (parallel ? gpu_par_fl : gpu_fl) += 2.0 * b * params;
    } else {
      cpu_other += cpu_matmul_s(t.dtype, params, bytes, b, dram_all, 1.0, which);
    }
  }
  cpu_moe_layers = static_cast<uint32_t>(cpu_moe.size());
  // Attention over the cache: per layer, KV bytes read and FLOPs per position.
  const double kv_layer = double(m_.kv_bytes_per_token) / d.n_layer;
  const double fl_layer = double(m_.attn_flops_per_position) / d.n_layer;
  for (uint32_t L = 0; L < d.n_layer; ++L) {
    const double kv = b * context * kv_layer, fl = b * context * fl_layer;
    if (gpu && p.layer_on_gpu(L, d.n_layer)) {
      gpu_bytes += kv;
      gpu_fl += fl;
    } else {
      cpu_other += std::max(kv / (dram_all * 1e9), fl / attn_rate);
    }
  }

  StepBreakdown s;
  double routed = 0;
  for (double x : node_s) routed = std::max(routed, x);
  routed *= imbalance(share, D);
  const double nvme = nvme_bytes / (nvme_gbps * 1e9);
  double gpu_serial = 0, gpu_par = 0, pcie = 0, sync = 0;
  if (gpu) {
    gpu_serial = std::max(gpu_bytes / g.mem, gpu_fl / g.flops);
    gpu_par = std::max(gpu_par_bytes / g.mem, gpu_par_fl / g.flops);
    // Hidden rows (f32) to the host and results back per CPU MoE layer, and
    // once each way where the layer stack leaves the GPU.
    double crossings = cpu_moe_layers + (p.n_gpu_layers < d.n_layer ? 1 : 0);
    pcie = crossings * 2.0 * b * d.n_embd * 4.0 / g.h2d;
    sync = crossings * pick(kSyncLatency, which == kFast ? kSlow : which == kSlow ? kFast : kValue);
  }
  const double cpu_part = routed + nvme;
  double total, overlap = 0;
  if (gpu) {
    const double par = std::max(cpu_part, gpu_par);
    overlap = par - (cpu_part + gpu_par);
    total = gpu_serial + cpu_other + pcie + sync + par;
  } else {
    total = cpu_part + cpu_other;
  }
  auto fig = [](double v) { return Figure{v, v, v, ""}; };
  s.dram_experts = fig(routed);
  s.cpu_other = fig(cpu_other);
  s.gpu = fig(gpu_serial + gpu_par);
  s.pcie = fig(pcie);
  s.nvme = fig(nvme);
  s.sync = fig(sync);
  s.overlap = fig(overlap);
  s.total = fig(total);
  return s;
}

DecodeEstimate CostModel::decode(const Placement& p, uint32_t batch, uint32_t context) const {
  DecodeEstimate e;
  e.batch = std::max<uint32_t>(batch, 1);
  e.context = context;
  e.distinct_experts = distinct_experts(m_.dims.n_expert, m_.dims.n_expert_used, e.batch);
  const bool gpu = p.gpu >= 0 && static_cast<size_t>(p.gpu) < hw_.gpus.size();
  StepBreakdown s[3];
  for (int w = 0; w < 3; ++w) {
    s[w] = step(p, e.batch, context, w);
    if (gpu && e.batch >= 2) {
      // Two micro-batches alternate: the GPU works on one while the CPU
      // computes the other's experts; each reads its own experts.
      StepBreakdown h = step(p, e.batch / 2.0, context, w);
      const double gpu_side = h.gpu.value + h.pcie.value, cpu_side = h.dram_experts.value + h.nvme.value + h.cpu_other.value;
      const double alt = 2 * (std::max(gpu_side, cpu_side) + h.sync.value);
      if (alt < s[w].total.value) {
        auto x2 = [](Figure f) { return Figure{2 * f.value, 2 * f.value, 2 * f.value, ""}; };
        StepBreakdown m{x2(h.dram_experts), x2(h.cpu_other), x2(h.gpu), x2(h.pcie), x2(h.nvme), x2(h.sync), {}, {}};
        const double sum = m.dram_experts.value + m.cpu_other.value + m.gpu.value + m.pcie.value + m.nvme.value +
                           m.sync.value;
        m.overlap = Figure{alt - sum, alt - sum, alt - sum, ""};
        m.total = Figure{alt, alt, alt, ""};
        s[w] = m;
      }
    }
  }
  auto range = [&](Figure StepBreakdown::*f) {
    return make_range((s[0].*f).value, (s[1].*f).value, (s[2].*f).value, "seconds per step");
  };
  e.step.dram_experts = range(&StepBreakdown::dram_experts);
  e.step.cpu_other = range(&StepBreakdown::cpu_other);
  e.step.gpu = range(&StepBreakdown::gpu);
  e.step.pcie = range(&StepBreakdown::pcie);
  e.step.nvme = range(&StepBreakdown::nvme);
  e.step.sync = range(&StepBreakdown::sync);
  e.step.overlap = range(&StepBreakdown::overlap);
  e.step.total = range(&StepBreakdown::total);
  auto tps = [&](double t) { return t > 0 ? e.batch / t : 0.0; };
  e.tok_s = make_range(tps(s[0].total.value), tps(s[1].total.value), tps(s[2].total.value), "tokens per second");
  e.tok_s_per_seq = make_range(e.tok_s.value / e.batch, e.tok_s.lo / e.batch, e.tok_s.hi / e.batch, "tokens per second");
  struct Part {
    double v;
    const char* name;
  } parts[] = {{e.step.dram_experts.value, "DRAM bandwidth / CPU kernels (routed experts)"},
               {e.step.cpu_other.value, "CPU: attention and non-expert weights"},
               {e.step.gpu.value, "GPU memory bandwidth (resident weights, KV cache)"},
               {e.step.pcie.value, "PCIe transfers"},
               {e.step.nvme.value, "NVMe reads (experts that did not fit in DRAM)"},
               {e.step.sync.value, "GPU<->CPU synchronization"}};
  const Part* best = &parts[0];
  for (const Part& x : parts) {
    if (x.v > best->v) best = &x;
  }
  e.bottleneck = best->name;
  return e;
}

double CostModel::prefill_part(const Placement& p, uint32_t prompt, uint32_t ubatch, PrefillStrategy strategy,
                               int which, double* cpu_s, double* stream_s, double* resident_s) const {
  const ModelDims& d = m_.dims;
  const bool gpu = p.gpu >= 0 && static_cast<size_t>(p.gpu) < hw_.gpus.size();
  const double P = std::max<uint32_t>(prompt, 1);
  const double U = std::min<double>(std::max<uint32_t>(ubatch, 1), P);
  const GpuRates g = gpu_rates(p, which);
  std::set<uint32_t> gpu_exp(p.gpu_expert_layers.begin(), p.gpu_expert_layers.end());
  std::vector<double> share = p.node_traffic;
  const bool partitioned = p.numa_partitioned && share.size() > 1;
  if (!partitioned) share = {1.0};

  // Whole micro-batches and the remainder.
  const double n_full = std::floor(P / U), rest = P - n_full * U;
  auto per_ubatch = [&](auto&& f) { return n_full * f(U) + (rest > 0 ? f(rest) : 0.0); };
  const double imb_full = imbalance(share, distinct_experts(d.n_expert, d.n_expert_used, U));
  const double imb_rest = rest > 0 ? imbalance(share, distinct_experts(d.n_expert, d.n_expert_used, rest)) : 1.0;

  const double dram_all = dram_gbps(which), attn_rate = cpu_attn_flops(which);
  double resident = 0, cpu_routed = 0, stream = 0, gpu_experts_fl = 0;
  for (const TensorDesc& t : m_.shape.tensors) {
    if (t.role == TensorRole::kEmbedding) continue;
    const double params = double(tensor_elems(t)), bytes = double(t.n_bytes);
    bool on_gpu = false;
    if (gpu) on_gpu = t.layer >= 0 ? p.layer_on_gpu(static_cast<uint32_t>(t.layer), d.n_layer) : p.output_on_gpu;
    if (t.role == TensorRole::kOutput) {
      // A prompt needs logits of the last position of each micro-batch only
      // (the runtime computes no others): one row per micro-batch.
      const double n_ub = n_full + (rest > 0 ? 1 : 0);
      resident += n_ub * (on_gpu ? bytes / g.mem : cpu_matmul_s(t.dtype, params, bytes, 1, dram_all, 1.0, which));
      continue;
    }
    if (t.role == TensorRole::kRoutedExpert) {
      const double pe = params / d.n_expert, be = bytes / d.n_expert;
      if (gpu && gpu_exp.count(static_cast<uint32_t>(t.layer))) {
        gpu_experts_fl += 2.0 * P * d.n_expert_used * pe;
        continue;
      }
      cpu_routed += per_ubatch([&](double u) {
        const double D = distinct_experts(d.n_expert, d.n_expert_used, u);
        const double rows = D > 0 ? u * d.n_expert_used / D : 0;
        double worst = 0;
        for (size_t i = 0; i < share.size(); ++i) {
          const double cf = partitioned && i < hw_.numa.size() ? double(std::max(hw_.numa[i].cores, 1)) / total_cores_ : 1.0;
          const double bw = partitioned ? node_gbps(i, which) : dram_all;
          worst = std::max(worst, cpu_matmul_s(t.dtype, share[i] * D * pe, share[i] * D * be, rows, bw, cf, which));
        }
        return worst * (u == U ? imb_full : imb_rest);
      });
      if (gpu) {
        const double us = std::min<double>(P, std::max<double>(kStreamUbatch, U));
        const double n_sb = ceil_div(P, us);
        const double D = distinct_experts(d.n_expert, d.n_expert_used, us);
        const double copy = D * be / g.h2d, fl = 2.0 * us * d.n_expert_used * pe / g.flops;
        stream += n_sb * std::max(copy, fl);  // double-buffered: copy of the next overlaps compute
      }
      continue;
    }
    if (on_gpu) {
      resident += 2.0 * P * params / g.flops;
    } else {
      resident += per_ubatch([&](double u) { return cpu_matmul_s(t.dtype, params, bytes, u, dram_all, 1.0, which); });
    }
  }
  // Causal attention: position j attends to j earlier positions.
  const double fl_layer = double(m_.attn_flops_per_position) / d.n_layer;
  const double pairs = P * (P + 1) / 2;
  for (uint32_t L = 0; L < d.n_layer; ++L) {
    resident += gpu && p.layer_on_gpu(L, d.n_layer) ? pairs * fl_layer / g.flops : pairs * fl_layer / attn_rate;
  }
  if (gpu) resident += gpu_experts_fl / g.flops;
  *cpu_s = cpu_routed;
  *stream_s = gpu ? stream : 0;
  *resident_s = resident;
  const double experts = strategy == PrefillStrategy::kGpuStream && gpu ? stream : cpu_routed;
  return resident + experts;
}

PrefillEstimate CostModel::prefill_with(const Placement& p, uint32_t prompt, uint32_t ubatch, PrefillStrategy s) const {
  PrefillEstimate e;
  e.prompt = std::max<uint32_t>(prompt, 1);
  e.strategy = s;
  double t[3], c[3], st[3], r[3];
  for (int w = 0; w < 3; ++w) t[w] = prefill_part(p, e.prompt, ubatch, s, w, &c[w], &st[w], &r[w]);
  e.seconds = make_range(t[0], t[1], t[2], "seconds");
  e.tok_s = make_range(e.prompt / t[0], e.prompt / t[1], e.prompt / t[2], "tokens per second");
  e.cpu_experts_s = make_range(c[0], c[1], c[2]);
  e.stream_experts_s = make_range(st[0], st[1], st[2]);
  e.resident_s = make_range(r[0], r[1], r[2]);
  return e;
}

PrefillEstimate CostModel::prefill(const Placement& p, uint32_t prompt, uint32_t ubatch) const {
  PrefillEstimate cpu = prefill_with(p, prompt, ubatch, PrefillStrategy::kCpu);
  const bool gpu = p.gpu >= 0 && static_cast<size_t>(p.gpu) < hw_.gpus.size();
  if (!gpu || !m_.is_moe()) return cpu;
  PrefillEstimate st = prefill_with(p, prompt, ubatch, PrefillStrategy::kGpuStream);
  return st.seconds.value < cpu.seconds.value ? st : cpu;
}

uint32_t CostModel::stream_threshold(const Placement& p, uint32_t ubatch) const {
  const bool gpu = p.gpu >= 0 && static_cast<size_t>(p.gpu) < hw_.gpus.size();
  if (!gpu || !m_.is_moe()) return 0;
  auto wins = [&](uint32_t P) {
    double c, s, r;
    double tc = prefill_part(p, P, ubatch, PrefillStrategy::kCpu, kValue, &c, &s, &r);
    (void)tc;
    return s < c;
  };
  uint32_t lo = 1, hi = 0;
  for (uint32_t P = 16; P <= (1u << 20); P *= 2) {
    if (wins(P)) {
      hi = P;
      break;
    }
    lo = P;
  }
  if (hi == 0) return 0;
  if (lo == 1 && wins(1)) return 1;
  // To within ~2 %: the threshold is a rule of thumb, not a cliff.
  while (hi - lo > std::max<uint32_t>(1, lo / 64)) {
    uint32_t mid = lo + (hi - lo) / 2;
    (wins(mid) ? hi : lo) = mid;
  }
  return hi;
}

Figure CostModel::time_to_first_token(const Placement& p, uint32_t prompt, uint32_t ubatch) const {
  PrefillEstimate pf = prefill(p, prompt, ubatch);
  DecodeEstimate d = decode(p, 1, prompt);
  return make_range(pf.seconds.value + d.step.total.value, pf.seconds.lo + d.step.total.lo,
                    pf.seconds.hi + d.step.total.hi, "seconds");
}

}  // namespace strata
