// The CUDA Device (offload/device_cuda.cpp): creation or the reason it
// fails, the budget, stream order with host functions and pinned copies,
// graph capture with host-function nodes replayed, every op against the CPU
// Device's, and the hybrid scheduler on the GPU against the same step on
// the CPU device (direct and as a captured graph), with its timings printed.
#include <atomic>
#include <cstdio>
#include <cstring>

#include "offload/device.h"
#include "offload/expert_executor.h"
#include "offload/hybrid_scheduler.h"
#include "tests/test_gpu_common.h"

namespace strata {
namespace {

using namespace gpu_test;

TEST(CudaDevice, CreatesOrSaysWhyNot) {
  auto d = make_cuda_device(0, 0);
  if (!no_device_reason().empty()) {
    ASSERT_FALSE(d.is_ok());
    EXPECT_NE(d.status().message().find("no CUDA device"), std::string::npos) << d.status().message();
    return;
  }
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  EXPECT_EQ((*d)->kind(), DeviceKind::kCuda);
  EXPECT_FALSE((*d)->name().empty());
  EXPECT_GT((*d)->budget_bytes(), 0u);
  EXPECT_FALSE(make_cuda_device(1000, 0).is_ok());
}

TEST(CudaDevice, BudgetAndPool) {
  STRATA_REQUIRE_CUDA();
  auto dev = make_cuda_device(0, 4 << 20).value();
  auto a = dev->alloc(MemKind::kDevice, 3 << 20, "weights");
  ASSERT_TRUE(a.is_ok());
  auto b = dev->alloc(MemKind::kDevice, 2 << 20, "KV cache");
  ASSERT_FALSE(b.is_ok());
  EXPECT_NE(b.status().message().find("over by 1.00 MiB"), std::string::npos) << b.status().message();
  EXPECT_TRUE(dev->alloc(MemKind::kPinnedHost, 8 << 20, "staging").is_ok());
}

TEST(CudaDevice, HostFunctionsCopiesAndEventsRunInOrder) {
  STRATA_REQUIRE_CUDA();
  auto dev = make_cuda_device(0, 0).value();
  auto s = dev->create_stream().value();
  auto h = dev->create_stream().value();
  auto ev = dev->create_event().value();
  auto pin = dev->alloc(MemKind::kPinnedHost, 1024 * 4, "pinned").value();
  auto back = dev->alloc(MemKind::kPinnedHost, 1024 * 4, "pinned").value();
  auto d = dev->alloc(MemKind::kDevice, 1024 * 4, "device").value();
  float* p = pin.as<float>();
  for (int i = 0; i < 1024; ++i) p[i] = float(i);
  std::atomic<int> stage{0};
  ASSERT_TRUE(dev->copy_to_device(*s, d.data(), p, 4096).is_ok());
  ASSERT_TRUE(dev->add(*s, d.as<float>(), d.as<float>(), nullptr, 1024).is_ok());  // doubles
  ASSERT_TRUE(dev->copy_to_host(*s, back.data(), d.data(), 4096).is_ok());
  ASSERT_TRUE(dev->record(*ev, *s).is_ok());
  ASSERT_TRUE(dev->wait(*h, *ev).is_ok());
  ASSERT_TRUE(dev->enqueue_host(*h, [&] { stage = back.as<float>()[1023] == 2046.0f ? 1 : -1; }).is_ok());
  ASSERT_TRUE(dev->sync(*h).is_ok());
  EXPECT_EQ(stage.load(), 1);
}

TEST(CudaDevice, GraphReplaysKernelsAndHostFunctions) {
  STRATA_REQUIRE_CUDA();
  auto dev = make_cuda_device(0, 0).value();
  auto s = dev->create_stream().value();
  auto h = dev->create_stream().value();
  auto ev = dev->create_event().value();
  auto ev2 = dev->create_event().value();
  auto d = dev->alloc(MemKind::kDevice, 256 * 4, "x").value();
  auto one = dev->alloc(MemKind::kDevice, 256 * 4, "ones").value();
  auto pin = dev->alloc(MemKind::kPinnedHost, 256 * 4, "pinned").value();
  std::vector<float> ones(256, 1.0f);
  CUDA_OK(cudaMemcpy(one.data(), ones.data(), 1024, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemset(d.data(), 0, 1024));
  std::atomic<int> calls{0};
  std::vector<float> seen;
  auto g = dev->capture(*s, [&]() -> Status {
    STRATA_RETURN_IF_ERROR(dev->add(*s, d.as<float>(), one.as<float>(), nullptr, 256));
    STRATA_RETURN_IF_ERROR(dev->copy_to_host(*s, pin.data(), d.data(), 1024));
    STRATA_RETURN_IF_ERROR(dev->record(*ev, *s));
    STRATA_RETURN_IF_ERROR(dev->wait(*h, *ev));
    STRATA_RETURN_IF_ERROR(dev->enqueue_host(*h, [&] {
      ++calls;
      seen.push_back(pin.as<float>()[255]);
    }));
    STRATA_RETURN_IF_ERROR(dev->record(*ev2, *h));
    return dev->wait(*s, *ev2);  // join the forked stream back into the capture
  });
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(dev->launch(**g, *s).is_ok());
    ASSERT_TRUE(dev->sync(*s).is_ok());
  }
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(seen, (std::vector<float>{1.0f, 2.0f, 3.0f}));
}

// ---- the hybrid scheduler on the GPU against the CPU device ---------------------

// One model, its weights in host memory (CPU device, executor) and uploaded
// to the GPU (CUDA device ops).
struct Model {
  static constexpr int64_t E = 256, F = 256, X = 16;
  static constexpr int32_t K = 4;
  struct Layer {
    QuantMatrix router, sh_gate, sh_up, sh_down, ex_gate, ex_up, ex_down;
    std::vector<float> norm;
    ExpertLayer experts;
  };
  std::vector<Layer> layers;
  DeviceRouteConfig route;

  explicit Model(int n) {
    route.n_expert = int32_t(X);
    route.n_used = K;
    route.norm_w = true;
    layers.resize(size_t(n));
    for (int i = 0; i < n; ++i) {
      Layer& L = layers[size_t(i)];
      const uint64_t s = 1000 + uint64_t(i) * 10;
      L.norm = randn(E, s, 0.1f);
      for (float& x : L.norm) x += 1.0f;
      L.router = quant_matrix(DType::kF32, E, X, s + 1, 0.06f);
      L.sh_gate = quant_matrix(DType::kQ4_K, E, F, s + 2, 0.06f);
      L.sh_up = quant_matrix(DType::kQ4_K, E, F, s + 3, 0.06f);
      L.sh_down = quant_matrix(DType::kQ6_K, F, E, s + 4, 0.06f);
      L.ex_gate = quant_matrix(DType::kQ4_K, E, F * X, s + 5, 0.06f);
      L.ex_up = quant_matrix(DType::kQ4_K, E, F * X, s + 6, 0.06f);
      L.ex_down = quant_matrix(DType::kQ4_K, F, E * X, s + 7, 0.06f);
      auto t = [&](ExpertTensor& e, const QuantMatrix& m, int64_t n_in, int64_t n_out) {
        e.name = "blk." + std::to_string(i) + ".exps";
        e.type = m.type;
        e.data = m.bytes.data();
        e.n_in = n_in;
        e.n_out = n_out;
        e.n_expert = X;
        e.expert_bytes = dtype_row_bytes(m.type, uint64_t(n_in)).value() * uint64_t(n_out);
      };
      t(L.experts.gate, L.ex_gate, E, F);
      t(L.experts.up, L.ex_up, E, F);
      t(L.experts.down, L.ex_down, F, E);
      L.experts.layer = i;
    }
  }
};

// The device side of Model on `dev`: weights copied into its memory once.
struct Side {
  std::vector<DeviceBuffer> mem;
  std::vector<HybridLayer> layers;
  float *logits = nullptr, *g = nullptr, *u = nullptr;

  const void* put(Device& dev, const void* src, size_t bytes) {
    DeviceBuffer b = dev.alloc(MemKind::kDevice, bytes, "test weights").value();
    if (dev.kind() == DeviceKind::kCuda) {
      cudaMemcpy(b.data(), src, bytes, cudaMemcpyHostToDevice);
    } else {
      std::memcpy(b.data(), src, bytes);
    }
    const void* p = b.data();
    mem.push_back(std::move(b));
    return p;
  }
  DeviceWeight weight(Device& dev, const QuantMatrix& m) {
    DeviceWeight w;
    w.type = m.type;
    w.data = put(dev, m.bytes.data(), m.bytes.size());
    w.n_in = m.n_in;
    w.n_out = m.n_rows;
    return w;
  }

  float* scratch(Device& dev, int64_t floats) {
    DeviceBuffer b = dev.alloc(MemKind::kDevice, uint64_t(floats) * 4, "test scratch").value();
    float* p = b.as<float>();
    mem.push_back(std::move(b));
    return p;
  }

  Side(Device& dev, const Model& model, int64_t max_rows) {
    logits = scratch(dev, max_rows * Model::X);
    g = scratch(dev, max_rows * Model::F);
    u = scratch(dev, max_rows * Model::F);
    for (size_t i = 0; i < model.layers.size(); ++i) {
      const Model::Layer& L = model.layers[i];
      const float* norm = static_cast<const float*>(put(dev, L.norm.data(), L.norm.size() * 4));
      const DeviceWeight router = weight(dev, L.router), wg = weight(dev, L.sh_gate), wu = weight(dev, L.sh_up),
                         wd = weight(dev, L.sh_down);
      HybridLayer h;
      h.name = "blk." + std::to_string(i);
      h.pre = [&dev, &model, this, norm, router](DeviceStream& s, const HybridBuffers& b) -> Status {
        STRATA_RETURN_IF_ERROR(dev.rms_norm(s, b.hidden, norm, b.n_rows, Model::E, 1e-6f, b.x_moe));
        STRATA_RETURN_IF_ERROR(dev.matmul(s, router, b.x_moe, Model::E, b.n_rows, logits, Model::X));
        return dev.route(s, model.route, logits, b.n_rows, nullptr, b.ids, b.weights);
      };
      h.shared = [&dev, this, wg, wu, wd](DeviceStream& s, const HybridBuffers& b) -> Status {
        STRATA_RETURN_IF_ERROR(dev.matmul(s, wg, b.x_moe, Model::E, b.n_rows, g, Model::F));
        STRATA_RETURN_IF_ERROR(dev.matmul(s, wu, b.x_moe, Model::E, b.n_rows, u, Model::F));
        STRATA_RETURN_IF_ERROR(dev.swiglu(s, g, u, u, b.n_rows * Model::F));
        return dev.matmul(s, wd, u, Model::F, b.n_rows, b.shared, Model::E);
      };
      h.experts = &L.experts;
      layers.push_back(std::move(h));
    }
  }
};

TEST(CudaHybrid, StepMatchesTheCpuDevice) {
  STRATA_REQUIRE_CUDA();
  Model model(6);
  const int64_t rows = 4;
  auto cpu = make_cpu_device();
  auto gpu = make_cuda_device(0, 1ull << 30).value();
  auto ex_cpu = make_cpu_expert_executor();
  auto ex_gpu = make_cpu_expert_executor();
  HybridConfig cfg;
  cfg.n_embd = Model::E;
  cfg.n_used = Model::K;
  cfg.max_rows = rows;
  auto sc = HybridScheduler::create(*cpu, *ex_cpu, cfg).value();
  auto sg = HybridScheduler::create(*gpu, *ex_gpu, cfg).value();
  Side side_cpu(*cpu, model, rows), side_gpu(*gpu, model, rows);
  for (int step = 0; step < 3; ++step) {
    const bool graph = step > 0;
    std::vector<float> h = randn(static_cast<size_t>(rows * Model::E), 500 + uint64_t(step));
    std::memcpy(sc->buffers().hidden, h.data(), h.size() * 4);
    CUDA_OK(cudaMemcpy(sg->buffers().hidden, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
    ASSERT_TRUE(sc->run_step(side_cpu.layers, rows).is_ok());
    Status st = graph ? sg->run_step_graph(side_gpu.layers, rows) : sg->run_step(side_gpu.layers, rows);
    ASSERT_TRUE(st.is_ok()) << st.message();
    std::vector<float> got(h.size()), ref(sc->buffers().hidden, sc->buffers().hidden + h.size());
    CUDA_OK(cudaMemcpy(got.data(), sg->buffers().hidden, got.size() * 4, cudaMemcpyDeviceToHost));
    // Routing on near-tied scores may differ between the two devices' GEMV
    // orders; the residual stream must still agree closely.
    EXPECT_LT(normalized_error(got, ref), 1e-3) << "step " << step << (graph ? " (graph)" : "");
    const HybridStepTiming& t = sg->last_timing();
    std::printf("step %d%s: wall %.3f ms, device idle %.1f %%, CPU idle %.1f %%, sync/layer %.3f ms\n", step,
                graph ? " (graph)" : "", t.wall_s * 1e3, t.device_idle_pct, t.cpu_idle_pct, t.sync_per_layer_s * 1e3);
  }
  EXPECT_EQ(sg->n_captures(), 1);
}

}  // namespace
}  // namespace strata
