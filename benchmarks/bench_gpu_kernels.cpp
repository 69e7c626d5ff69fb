// GPU kernel throughput beside a bandwidth peak measured in the same run:
// a device-to-device copy probe (HBM read + write), then GEMV per weight type
// on DeepSeek-V3 shapes (GB/s of weights + activations, % of the probe),
// decode attention over GQA and MLA caches (GB/s of KV read), and the bf16
// prefill GEMM (TFLOP/s). Weights are random block bytes: the kernels' cost
// does not depend on the values. Median of --reps repetitions (default 7),
// each the mean of enough launches to run ~20 ms. --json for scripts.
// --hybrid instead runs the hybrid scheduler on the GPU with DeepSeek-V3
// shaped MoE layers (7168 wide, experts of 2048, 8 used, a shared expert on
// the GPU, routed experts on all CPU cores; no attention) and reports the
// step time, device idle %, CPU idle % and sync time per layer.
#include <cuda_runtime.h>
#include <cublas_v2.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "gpu_kernels/attention.cuh"
#include "gpu_kernels/device_info.cuh"
#include "gpu_kernels/gemm.cuh"
#include "gpu_kernels/gemv.cuh"
#include "offload/cpu_pool.h"
#include "offload/device.h"
#include "offload/expert_executor.h"
#include "offload/hybrid_scheduler.h"
#include "offload/topology.h"
#include "runtime/base/dtype.h"
#include "runtime/base/half.h"
#include "runtime/base/rng.h"

namespace strata {
namespace {

#define CHECK_CUDA(x)                                                                            \
  do {                                                                                           \
    cudaError_t e_ = (x);                                                                        \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "bench_gpu_kernels: %s: %s\n", #x, cudaGetErrorString(e_));          \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

struct Row {
  std::string name;
  double ms = 0;       // median per launch
  double bytes = 0;    // moved per launch
  double flops = 0;    // per launch (GEMM)
  double peak_gbs = 0; // the probe, for the percentage
};

void* dev_alloc(size_t bytes) {
  void* p = nullptr;
  CHECK_CUDA(cudaMalloc(&p, bytes));
  return p;
}

// Random bytes, with every 16-bit word that would be an f16 Inf/NaN cleared,
// so f16/bf16 rows and block scales stay finite.
void fill_random(void* d, size_t bytes, uint64_t seed) {
  std::vector<uint8_t> h(bytes);
  Xoshiro256 rng(seed);
  rng.fill(h.data(), h.size());
  for (size_t i = 1; i < h.size(); i += 2) h[i] &= 0x3b;  // exponent bits below 0x1f for f16 and small for bf16
  CHECK_CUDA(cudaMemcpy(d, h.data(), bytes, cudaMemcpyHostToDevice));
}

// Median over reps of the mean time of one launch of fn, in ms.
double time_ms(const std::function<void()>& fn, int reps) {
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  fn();
  CHECK_CUDA(cudaDeviceSynchronize());
  // Launches per repetition: enough for ~20 ms.
  CHECK_CUDA(cudaEventRecord(a));
  fn();
  CHECK_CUDA(cudaEventRecord(b));
  CHECK_CUDA(cudaEventSynchronize(b));
  float one = 0;
  CHECK_CUDA(cudaEventElapsedTime(&one, a, b));
  const int n = std::clamp(int(20.0 / std::max(one, 0.001f)), 1, 2000);
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    CHECK_CUDA(cudaEventRecord(a));
    for (int i = 0; i < n; ++i) fn();
    CHECK_CUDA(cudaEventRecord(b));
    CHECK_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    t.push_back(double(ms) / n);
  }
  CHECK_CUDA(cudaGetLastError());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void must(const Status& s) {
  if (!s.is_ok()) {
    std::fprintf(stderr, "bench_gpu_kernels: %s\n", s.to_string().c_str());
    std::exit(1);
  }
}

// The hybrid step on DeepSeek-V3-shaped MoE layers (random Q4_K bytes).
int run_hybrid(int n_layers, int n_expert, int64_t n_rows, int reps, bool json) {
  const int64_t E = 7168, F = 2048;
  const int32_t K = 8;
  auto dev_r = make_cuda_device(0, 0);
  if (!dev_r.is_ok()) {
    std::fprintf(stderr, "bench_gpu_kernels: %s\n", dev_r.status().to_string().c_str());
    return 1;
  }
  std::unique_ptr<Device> dev = std::move(*dev_r);
  auto topo = Topology::this_machine();
  if (!topo.is_ok()) {
    std::fprintf(stderr, "bench_gpu_kernels: %s\n", topo.status().to_string().c_str());
    return 1;
  }
  auto pool = CpuPool::create(*topo);
  if (!pool.is_ok()) {
    std::fprintf(stderr, "bench_gpu_kernels: %s\n", pool.status().to_string().c_str());
    return 1;
  }
  CpuExecutorOptions eo;
  eo.pool = std::move(*pool);
  const int n_threads = eo.pool->n_threads();
  auto executor = make_cpu_expert_executor(std::move(eo));
  HybridConfig cfg;
  cfg.n_embd = E;
  cfg.n_used = K;
  cfg.max_rows = n_rows;
  auto sched_r = HybridScheduler::create(*dev, *executor, cfg);
  must(sched_r.status());
  auto sched = std::move(*sched_r);

  const uint64_t q_in_e = *dtype_row_bytes(DType::kQ4_K, E), q_in_f = *dtype_row_bytes(DType::kQ4_K, F);
  std::vector<std::vector<uint8_t>> host_experts;
  std::vector<ExpertLayer> experts(static_cast<size_t>(n_layers));
  std::vector<DeviceBuffer> mem;
  auto dbuf = [&](uint64_t bytes, bool random) {
    DeviceBuffer b = dev->alloc(MemKind::kDevice, bytes, "bench").value();
    if (random) fill_random(b.data(), bytes, bytes);
    else CHECK_CUDA(cudaMemset(b.data(), 0, bytes));
    void* p = b.data();
    mem.push_back(std::move(b));
    return p;
  };
  float* logits = static_cast<float*>(dbuf(uint64_t(n_rows) * n_expert * 4, false));
  float* g = static_cast<float*>(dbuf(uint64_t(n_rows) * F * 4, false));
  float* u = static_cast<float*>(dbuf(uint64_t(n_rows) * F * 4, false));
  DeviceRouteConfig rc;
  rc.sigmoid = true;
  rc.n_expert = n_expert;
  rc.n_used = K;
  rc.norm_w = true;
  rc.w_scale = 2.5f;
  rc.n_groups = n_expert % 8 == 0 ? 8 : 0;
  rc.n_group_used = 4;
  std::vector<HybridLayer> layers;
  Xoshiro256 rng(9);
  for (int l = 0; l < n_layers; ++l) {
    auto tensor = [&](ExpertTensor& t, int64_t n_in, int64_t n_out, uint64_t row) {
      host_experts.emplace_back(size_t(row * uint64_t(n_out) * uint64_t(n_expert)));
      rng.fill(host_experts.back().data(), host_experts.back().size());
      for (size_t i = 1; i < host_experts.back().size(); i += 2) host_experts.back()[i] &= 0x3b;
      t.name = "blk." + std::to_string(l) + ".exps";
      t.type = DType::kQ4_K;
      t.data = host_experts.back().data();
      t.n_in = n_in;
      t.n_out = n_out;
      t.n_expert = n_expert;
      t.expert_bytes = row * uint64_t(n_out);
    };
    ExpertLayer& X = experts[size_t(l)];
    X.layer = l;
    tensor(X.gate, E, F, q_in_e);
    tensor(X.up, E, F, q_in_e);
    tensor(X.down, F, E, q_in_f);
    const float* norm = static_cast<const float*>(dbuf(uint64_t(E) * 4, false));
    DeviceWeight router{DType::kF32, dbuf(uint64_t(E) * n_expert * 4, true), E, n_expert};
    DeviceWeight wg{DType::kQ4_K, dbuf(q_in_e * F, true), E, F}, wu{DType::kQ4_K, dbuf(q_in_e * F, true), E, F};
    DeviceWeight wd{DType::kQ4_K, dbuf(q_in_f * E, true), F, E};
    HybridLayer h;
    h.name = "blk." + std::to_string(l);
    h.pre = [&, norm, router](DeviceStream& s, const HybridBuffers& b) -> Status {
      STRATA_RETURN_IF_ERROR(dev->rms_norm(s, b.hidden, norm, b.n_rows, E, 1e-6f, b.x_moe));
      STRATA_RETURN_IF_ERROR(dev->matmul(s, router, b.x_moe, E, b.n_rows, logits, n_expert));
      return dev->route(s, rc, logits, b.n_rows, nullptr, b.ids, b.weights);
    };
    h.shared = [&, wg, wu, wd](DeviceStream& s, const HybridBuffers& b) -> Status {
      STRATA_RETURN_IF_ERROR(dev->matmul(s, wg, b.x_moe, E, b.n_rows, g, F));
      STRATA_RETURN_IF_ERROR(dev->matmul(s, wu, b.x_moe, E, b.n_rows, u, F));
      STRATA_RETURN_IF_ERROR(dev->swiglu(s, g, u, u, b.n_rows * F));
      return dev->matmul(s, wd, u, F, b.n_rows, b.shared, E);
    };
    h.experts = &experts[size_t(l)];
    layers.push_back(std::move(h));
  }
  CHECK_CUDA(cudaMemset(sched->buffers().hidden, 0, size_t(n_rows * E) * 4));
  for (int graph = 0; graph < 2; ++graph) {
    std::vector<HybridStepTiming> t;
    for (int r = 0; r < reps + 1; ++r) {
      must(graph ? sched->run_step_graph(layers, n_rows) : sched->run_step(layers, n_rows));
      if (r > 0) t.push_back(sched->last_timing());  // the first is warm-up (and capture)
    }
    std::sort(t.begin(), t.end(), [](const auto& a, const auto& b) { return a.wall_s < b.wall_s; });
    const HybridStepTiming& m = t[t.size() / 2];
    // Active bytes a step must read: per layer the chosen experts (at most
    // n_rows * 8 distinct) on the CPU, the shared expert and router on the GPU.
    const double routed_bytes = double(std::min<int64_t>(n_rows * K, n_expert)) * 3.0 * double(q_in_e * F) * n_layers;
    if (json) {
      std::printf("{\"hybrid\": {\"graph\": %s, \"layers\": %d, \"experts\": %d, \"rows\": %lld, \"threads\": %d, "
                  "\"step_ms\": %.3f, \"device_idle_pct\": %.1f, \"cpu_idle_pct\": %.1f, \"sync_per_layer_ms\": %.4f, "
                  "\"routed_gbs\": %.1f}}\n",
                  graph ? "true" : "false", n_layers, n_expert, (long long)n_rows, n_threads, m.wall_s * 1e3,
                  m.device_idle_pct, m.cpu_idle_pct, m.sync_per_layer_s * 1e3, routed_bytes / m.wall_s / 1e9);
    } else {
      std::printf("hybrid%s: %d layers, %d experts (8 used), %lld rows, %d CPU threads: step %.3f ms (median of %d), "
                  "device idle %.1f %%, CPU idle %.1f %%, sync/layer %.4f ms, routed experts at %.1f GB/s\n",
                  graph ? " (graph)" : "", n_layers, n_expert, (long long)n_rows, n_threads, m.wall_s * 1e3, reps,
                  m.device_idle_pct, m.cpu_idle_pct, m.sync_per_layer_s * 1e3, routed_bytes / m.wall_s / 1e9);
    }
  }
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  using namespace strata;
  bool json = false, hybrid = false;
  int reps = 7, layers = 4, experts = 64;
  int64_t hrows = 1;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json")) {
      json = true;
    } else if (!std::strcmp(argv[i], "--hybrid")) {
      hybrid = true;
    } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::max(5, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--layers") && i + 1 < argc) {
      layers = std::max(1, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--experts") && i + 1 < argc) {
      experts = std::clamp(std::atoi(argv[++i]), 8, 1024);
    } else if (!std::strcmp(argv[i], "--rows") && i + 1 < argc) {
      hrows = std::clamp<int64_t>(std::atoll(argv[++i]), 1, 64);
    } else {
      std::fprintf(stderr,
                   "usage: bench_gpu_kernels [--json] [--reps N (>= 5)] [--hybrid [--layers N] [--experts N] [--rows N]]\n");
      return 2;
    }
  }
  if (hybrid) return run_hybrid(layers, experts, hrows, reps, json);
  gpu::CudaDevices devs = gpu::cuda_devices();
  if (devs.devices.empty()) {
    std::fprintf(stderr, "bench_gpu_kernels: no CUDA device: %s\n", devs.reason.c_str());
    return 1;
  }
  const gpu::CudaDeviceInfo& dev = devs.devices[0];
  CHECK_CUDA(cudaSetDevice(0));
  std::vector<Row> rows;

  // HBM probe: a 1 GiB device-to-device copy reads and writes every byte.
  const size_t probe_bytes = size_t(1) << 30;
  void* pa = dev_alloc(probe_bytes);
  void* pb = dev_alloc(probe_bytes);
  CHECK_CUDA(cudaMemset(pa, 1, probe_bytes));
  Row probe{"device copy probe (1 GiB D2D, read + write)"};
  probe.ms = time_ms([&] { CHECK_CUDA(cudaMemcpyAsync(pb, pa, probe_bytes, cudaMemcpyDeviceToDevice)); }, reps);
  probe.bytes = 2.0 * double(probe_bytes);
  const double peak = probe.bytes / (probe.ms * 1e-3) / 1e9;
  probe.peak_gbs = peak;
  rows.push_back(probe);
  CHECK_CUDA(cudaFree(pb));

  // GEMV: DeepSeek-V3 dense/shared FFN and attention-output shapes.
  struct Shape {
    const char* what;
    int64_t n_in, n_out;
  };
  const Shape shapes[] = {{"ffn_gate 7168->18432", 7168, 18432},
                          {"ffn_down 18432->7168", 18432, 7168},
                          {"shexp_up 7168->2048", 7168, 2048},
                          {"attn_out 16384->7168", 16384, 7168}};
  const DType types[] = {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kQ8_0, DType::kBF16, DType::kF16, DType::kF32};
  float* x = static_cast<float*>(dev_alloc(size_t(8) * 18432 * 4));
  float* y = static_cast<float*>(dev_alloc(size_t(8) * 18432 * 4));
  CHECK_CUDA(cudaMemset(x, 0, size_t(8) * 18432 * 4));
  for (DType t : types) {
    for (const Shape& s : shapes) {
      const uint64_t bytes = *dtype_row_bytes(t, uint64_t(s.n_in)) * uint64_t(s.n_out);
      void* w = pa;  // the probe's buffer holds the largest matrix (18432 x 7168 f32 = 528 MB)
      fill_random(w, bytes, 2);
      for (int64_t n_rows : {1, 4}) {
        gpu::GemvArgs a;
        a.type = t;
        a.w = w;
        a.n_in = s.n_in;
        a.n_out = s.n_out;
        a.x = x;
        a.x_stride = s.n_in;
        a.y = y;
        a.y_stride = s.n_out;
        a.n_rows = n_rows;
        must(gpu::gemv(a, nullptr));
        Row r{"gemv " + std::string(dtype_name(t)) + " " + s.what + " x" + std::to_string(n_rows)};
        r.ms = time_ms([&] { (void)gpu::gemv(a, nullptr); }, reps);
        r.bytes = double(bytes) + 4.0 * n_rows * double(s.n_in + s.n_out);
        r.peak_gbs = peak;
        rows.push_back(r);
      }
    }
  }

  // Decode attention: one token per sequence, 8 sequences at a 4096 context.
  for (int mla = 0; mla < 2; ++mla) {
    const int32_t H = mla ? 128 : 64, Hkv = mla ? 1 : 8, dk = mla ? 576 : 128, dv = mla ? 512 : 128;
    const int32_t n_seq = 8, ctx = 4096, bs = 16, max_blocks = ctx / bs;
    gpu::GpuKvLayer kv;
    kv.dtype = DType::kBF16;
    kv.block_size = bs;
    kv.k_width = Hkv * dk;
    kv.v_width = mla ? 0 : Hkv * dv;
    kv.block_stride = int64_t(bs) * std::max(kv.k_width, kv.v_width);
    kv.max_blocks = max_blocks;
    const size_t cache_elems = size_t(kv.block_stride) * n_seq * max_blocks;
    kv.k = dev_alloc(cache_elems * 2);
    kv.v = mla ? nullptr : dev_alloc(cache_elems * 2);
    CHECK_CUDA(cudaMemset(kv.k, 0, cache_elems * 2));
    if (kv.v) CHECK_CUDA(cudaMemset(kv.v, 0, cache_elems * 2));
    std::vector<int32_t> table(static_cast<size_t>(n_seq * max_blocks)), seq(static_cast<size_t>(n_seq)), pos(static_cast<size_t>(n_seq), ctx - 1);
    for (size_t i = 0; i < table.size(); ++i) table[i] = int32_t(i);
    for (int32_t s = 0; s < n_seq; ++s) seq[size_t(s)] = s;
    int32_t* dt = static_cast<int32_t*>(dev_alloc(table.size() * 4));
    int32_t* ds = static_cast<int32_t*>(dev_alloc(seq.size() * 4));
    int32_t* dp = static_cast<int32_t*>(dev_alloc(pos.size() * 4));
    CHECK_CUDA(cudaMemcpy(dt, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(ds, seq.data(), seq.size() * 4, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(dp, pos.data(), pos.size() * 4, cudaMemcpyHostToDevice));
    kv.block_table = dt;
    gpu::AttnArgs a;
    float* q = static_cast<float*>(dev_alloc(size_t(n_seq) * H * dk * 4));
    float* o = static_cast<float*>(dev_alloc(size_t(n_seq) * H * dv * 4));
    CHECK_CUDA(cudaMemset(q, 0, size_t(n_seq) * H * dk * 4));
    a.q = q;
    a.q_token_stride = int64_t(H) * dk;
    a.q_head_stride = dk;
    a.out = o;
    a.out_token_stride = int64_t(H) * dv;
    a.out_head_stride = dv;
    a.n_head = H;
    a.n_head_kv = Hkv;
    a.d_k = dk;
    a.d_v = dv;
    a.scale = 0.1f;
    a.seq = ds;
    a.pos = dp;
    a.n_tokens = n_seq;
    const int32_t splits = gpu::attention_decode_splits(a, ctx, dev.sm_count);
    const size_t ws_floats = gpu::attention_decode_workspace_floats(a, splits);
    float* ws = static_cast<float*>(dev_alloc(ws_floats * 4));
    must(gpu::attention_decode(kv, a, splits, ws, ws_floats, nullptr));
    Row r{std::string(mla ? "attention decode MLA 128 heads d576/512" : "attention decode GQA 64/8 heads d128") +
          ", 8 seqs x 4096, bf16, " + std::to_string(splits) + " splits"};
    r.ms = time_ms([&] { (void)gpu::attention_decode(kv, a, splits, ws, ws_floats, nullptr); }, reps);
    r.bytes = double(n_seq) * ctx * 2.0 * (kv.k_width + kv.v_width);
    r.peak_gbs = peak;
    rows.push_back(r);
    for (void* p : {kv.k, kv.v, static_cast<void*>(dt), static_cast<void*>(ds), static_cast<void*>(dp),
                    static_cast<void*>(q), static_cast<void*>(o), static_cast<void*>(ws)}) {
      if (p) cudaFree(p);
    }
  }

  // Prefill GEMM: 512 rows through ffn_gate 7168 -> 18432, Q4_K.
  {
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
      std::fprintf(stderr, "bench_gpu_kernels: cublasCreate failed\n");
      return 1;
    }
    const int64_t n_in = 7168, n_out = 18432, n_rows = 512;
    const uint64_t wbytes = *dtype_row_bytes(DType::kQ4_K, n_in) * uint64_t(n_out);
    fill_random(pa, wbytes, 3);
    float* xx = static_cast<float*>(dev_alloc(size_t(n_rows * n_in) * 4));
    float* yy = static_cast<float*>(dev_alloc(size_t(n_rows * n_out) * 4));
    CHECK_CUDA(cudaMemset(xx, 0, size_t(n_rows * n_in) * 4));
    const size_t scratch = gpu::gemm_scratch_bytes(n_in, n_rows, 4096);
    void* sc = dev_alloc(scratch);
    must(gpu::gemm_bf16(h, DType::kQ4_K, pa, n_in, n_out, xx, n_in, n_rows, yy, n_out, sc, scratch, nullptr));
    Row r{"gemm_bf16 q4_k 7168->18432 x512 (dequantized 4096-row tiles)"};
    r.ms = time_ms([&] { (void)gpu::gemm_bf16(h, DType::kQ4_K, pa, n_in, n_out, xx, n_in, n_rows, yy, n_out, sc, scratch,
                                              nullptr); },
                   reps);
    r.flops = 2.0 * n_in * n_out * n_rows;
    r.bytes = double(wbytes);
    rows.push_back(r);
    cublasDestroy(h);
  }

  if (json) {
    std::printf("{\"device\": \"%s\", \"sm_count\": %d, \"probe_gbs\": %.1f, \"results\": [\n", dev.name.c_str(),
                dev.sm_count, peak);
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::printf("  {\"name\": \"%s\", \"ms\": %.5f, \"gbs\": %.1f, \"pct_of_probe\": %.1f, \"tflops\": %.2f}%s\n",
                  r.name.c_str(), r.ms, r.bytes / (r.ms * 1e-3) / 1e9,
                  r.peak_gbs > 0 ? 100.0 * r.bytes / (r.ms * 1e-3) / 1e9 / r.peak_gbs : 0.0,
                  r.flops / (r.ms * 1e-3) / 1e12, i + 1 < rows.size() ? "," : "");
    }
    std::printf("]}\n");
  } else {
    std::printf("%s, %d SMs; median of %d repetitions\n", dev.name.c_str(), dev.sm_count, reps);
    std::printf("%-72s %10s %10s %8s %8s\n", "kernel", "ms", "GB/s", "% probe", "TFLOP/s");
    for (const Row& r : rows) {
      const double gbs = r.bytes / (r.ms * 1e-3) / 1e9;
      std::printf("%-72s %10.4f %10.1f %8.1f %8.2f\n", r.name.c_str(), r.ms, gbs,
                  r.peak_gbs > 0 ? 100.0 * gbs / r.peak_gbs : 0.0, r.flops / (r.ms * 1e-3) / 1e12);
    }
  }
  CHECK_CUDA(cudaFree(pa));
  return 0;
}
