// The device interface on the CPU device (byte sizes, the budgeted pool,
// stream order, events, graphs, ops against the references) and the hybrid
// scheduler on it: results equal a serial reference bit for bit under random
// scheduling jitter, CPU experts overlap the device's shared expert, buffers
// are reused across steps, errors stop the step naming the layer, graph
// replay equals direct enqueue, and per-layer timings are reported.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/attention_ref.h"
#include "cpu_kernels/matmul_ref.h"
#include "cpu_kernels/norm.h"
#include "offload/device.h"
#include "offload/expert_executor.h"
#include "offload/hybrid_scheduler.h"
#include "runtime/base/half.h"
#include "runtime/layers/moe_ffn.h"

namespace strata {
namespace {

using std::chrono::milliseconds;

// ---- byte sizes -------------------------------------------------------------

TEST(ByteSize, ParsesBinaryAndDecimalUnits) {
  EXPECT_EQ(parse_byte_size("24GiB").value(), 24ull << 30);
  EXPECT_EQ(parse_byte_size("24000MB").value(), 24000000000ull);
  EXPECT_EQ(parse_byte_size("24 gib").value(), 24ull << 30);
  EXPECT_EQ(parse_byte_size("1.5TiB").value(), 3ull << 39);
  EXPECT_EQ(parse_byte_size("512M").value(), 512ull << 20);
  EXPECT_EQ(parse_byte_size("0.5K").value(), 512u);
  EXPECT_EQ(parse_byte_size("4096").value(), 4096u);
  EXPECT_EQ(parse_byte_size("  80GB ").value(), 80000000000ull);
  EXPECT_EQ(parse_byte_size("7B").value(), 7u);
}

TEST(ByteSize, RejectsBadTextWithAClearError) {
  for (const char* bad : {"", "GiB", "-5GB", "24XB", "24 GiB of VRAM", "1.2.3G", "1e3GB", "999999999999TB"}) {
    Result<uint64_t> r = parse_byte_size(bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find(std::string("\"") + bad + "\""), std::string::npos) << r.status().message();
  }
  EXPECT_NE(parse_byte_size("24XB").status().message().find("unknown unit \"XB\""), std::string::npos);
}

TEST(ByteSize, Formats) {
  EXPECT_EQ(format_bytes(17), "17 B");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(24ull << 30), "24.00 GiB");
}

// ---- the pool -----------------------------------------------------------------

TEST(DevicePool, AllocationBeyondBudgetSaysByHowMuch) {
  CpuDeviceOptions o;
  o.budget_bytes = 1 << 20;
  auto dev = make_cpu_device(o);
  auto a = dev->alloc(MemKind::kDevice, 768 << 10, "attention weights");
  ASSERT_TRUE(a.is_ok());
  auto b = dev->alloc(MemKind::kDevice, 512 << 10, "KV cache");
  ASSERT_FALSE(b.is_ok());
  EXPECT_EQ(b.status().code(), StatusCode::kOutOfMemory);
  const std::string& m = b.status().message();
  EXPECT_NE(m.find("KV cache needs 512.00 KiB"), std::string::npos) << m;
  EXPECT_NE(m.find("over by 256.00 KiB"), std::string::npos) << m;
  // Pinned host memory is not device memory: not counted against the budget.
  EXPECT_TRUE(dev->alloc(MemKind::kPinnedHost, 2 << 20, "staging").is_ok());
}

TEST(DevicePool, FreedBuffersAreReusedAndDroppedUnderPressure) {
  CpuDeviceOptions o;
  o.budget_bytes = 1 << 20;
  auto dev = make_cpu_device(o);
  void* first = nullptr;
  {
    auto a = dev->alloc(MemKind::kDevice, 300 << 10, "a");
    ASSERT_TRUE(a.is_ok());
    first = a->data();
  }
  EXPECT_EQ(dev->memory().device_cached_bytes, 300u << 10);
  {
    auto again = dev->alloc(MemKind::kDevice, 300 << 10, "a again");
    ASSERT_TRUE(again.is_ok());
    EXPECT_EQ(again->data(), first);
    EXPECT_EQ(dev->memory().n_device_allocs, 1u);
  }
  // 900 KiB fits only once the cached 300 KiB are dropped.
  auto big = dev->alloc(MemKind::kDevice, 900 << 10, "big");
  ASSERT_TRUE(big.is_ok()) << big.status().message();
  EXPECT_EQ(dev->memory().device_cached_bytes, 0u);
  EXPECT_EQ(dev->memory().device_live_bytes, 900u << 10);
}

// ---- streams, events, graphs -----------------------------------------------------

TEST(CpuDevice, StreamsRunInOrderAndEventsOrderAcrossStreams) {
  CpuDeviceOptions o;
  o.jitter_us = 200;
  auto dev = make_cpu_device(o);
  auto a = dev->create_stream().value();
  auto b = dev->create_stream().value();
  auto ev = dev->create_event().value();
  std::vector<int> order;
  std::mutex mu;
  std::atomic<int> seen_by_b{-1};
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(dev->enqueue_host(*a, [&, i] {
                  std::lock_guard<std::mutex> l(mu);
                  order.push_back(i);
                }).is_ok());
    if (i == 19) {
      ASSERT_TRUE(dev->record(*ev, *a).is_ok());
    }
  }
  ASSERT_TRUE(dev->wait(*b, *ev).is_ok());
  ASSERT_TRUE(dev->enqueue_host(*b, [&] {
                std::lock_guard<std::mutex> l(mu);
                seen_by_b = int(order.size());
              }).is_ok());
  ASSERT_TRUE(dev->sync(*a).is_ok());
  ASSERT_TRUE(dev->sync(*b).is_ok());
  ASSERT_EQ(order.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(order[size_t(i)], i);
  EXPECT_GE(seen_by_b.load(), 20);  // b ran only after a's first 20 tasks
}

TEST(CpuDevice, WaitingOnAnUnrecordedEventDoesNotBlock) {
  auto dev = make_cpu_device();
  auto s = dev->create_stream().value();
  auto ev = dev->create_event().value();
  ASSERT_TRUE(dev->wait(*s, *ev).is_ok());
  bool ran = false;
  ASSERT_TRUE(dev->enqueue_host(*s, [&] { ran = true; }).is_ok());
  ASSERT_TRUE(dev->sync(*s).is_ok());
  EXPECT_TRUE(ran);
}

TEST(CpuDevice, ElapsedTimeBetweenEvents) {
  auto dev = make_cpu_device();
  auto s = dev->create_stream().value();
  auto e0 = dev->create_event().value();
  auto e1 = dev->create_event().value();
  EXPECT_FALSE(dev->elapsed_s(*e0, *e1).is_ok());  // not recorded yet
  ASSERT_TRUE(dev->record(*e0, *s).is_ok());
  ASSERT_TRUE(dev->enqueue_host(*s, [] { std::this_thread::sleep_for(milliseconds(20)); }).is_ok());
  ASSERT_TRUE(dev->record(*e1, *s).is_ok());
  ASSERT_TRUE(dev->sync(*e1).is_ok());
  const double dt = dev->elapsed_s(*e0, *e1).value();
  EXPECT_GE(dt, 0.019);
}

TEST(CpuDevice, GraphReplaysTheCapturedWorkWithFreshEvents) {
  CpuDeviceOptions o;
  o.jitter_us = 100;
  auto dev = make_cpu_device(o);
  auto s = dev->create_stream().value();
  auto h = dev->create_stream().value();
  auto ev = dev->create_event().value();
  std::atomic<int> produced{0}, consumed_ok{0}, enqueue_calls{0};
  auto graph = dev->capture(*s, [&]() -> Status {
    ++enqueue_calls;
    STRATA_RETURN_IF_ERROR(dev->enqueue_host(*s, [&] {
      std::this_thread::sleep_for(milliseconds(2));
      ++produced;
    }));
    STRATA_RETURN_IF_ERROR(dev->record(*ev, *s));
    STRATA_RETURN_IF_ERROR(dev->wait(*h, *ev));
    // The consumer must see the producer of its own launch.
    return dev->enqueue_host(*h, [&] { consumed_ok += produced.load() == consumed_ok.load() + 1; });
  });
  ASSERT_TRUE(graph.is_ok()) << graph.status().message();
  EXPECT_EQ(produced.load(), 0);  // capture runs nothing
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(dev->launch(**graph, *s).is_ok());
    ASSERT_TRUE(dev->sync(*s).is_ok());
    ASSERT_TRUE(dev->sync(*h).is_ok());
  }
  EXPECT_EQ(enqueue_calls.load(), 1);
  EXPECT_EQ(produced.load(), 5);
  EXPECT_EQ(consumed_ok.load(), 5);
}

// ---- ops against the references ---------------------------------------------------

std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = g(rng);
  return v;
}

TEST(CpuDevice, RouteMatchesMoeRoute) {
  auto dev = make_cpu_device();
  auto s = dev->create_stream().value();
  struct Case {
    DeviceRouteConfig d;
    bool bias;
  };
  std::vector<Case> cases;
  {
    DeviceRouteConfig c;  // qwen-style: softmax, top-4 of 60, normalized
    c.n_expert = 60;
    c.n_used = 4;
    c.norm_w = true;
    cases.push_back({c, false});
    c = {};  // DeepSeek-V3 style: sigmoid, bias, 8 groups keep 4 by top-2 sums, top-8, scaled
    c.sigmoid = true;
    c.n_expert = 64;
    c.n_used = 8;
    c.norm_w = true;
    c.w_scale = 2.5f;
    c.n_groups = 8;
    c.n_group_used = 4;
    cases.push_back({c, true});
    c.group_top2 = false;  // DeepSeek-V2 style group score
    c.sigmoid = false;
    cases.push_back({c, false});
  }
  for (const Case& cs : cases) {
    const int64_t rows = 5;
    std::vector<float> logits = randn(static_cast<size_t>(rows * cs.d.n_expert), 7);
    for (int i = 0; i < 6; ++i) logits[size_t(i)] = 0.25f;  // exact ties in row 0
    std::vector<float> bias = randn(static_cast<size_t>(cs.d.n_expert), 8, 0.1f);
    std::vector<int32_t> ids(static_cast<size_t>(rows * cs.d.n_used));
    std::vector<float> w(ids.size());
    ASSERT_TRUE(dev->route(*s, cs.d, logits.data(), rows, cs.bias ? bias.data() : nullptr, ids.data(), w.data()).is_ok());
    ASSERT_TRUE(dev->sync(*s).is_ok());
    const MoeConfig& m = cs.d;
    std::vector<float> scratch(static_cast<size_t>(2 * m.n_expert));
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<int32_t> rid(static_cast<size_t>(m.n_used));
      std::vector<float> rw(static_cast<size_t>(m.n_used));
      moe_route_row(m, logits.data() + r * m.n_expert, cs.bias ? bias.data() : nullptr, rid.data(), rw.data(),
                scratch.data());
      for (int k = 0; k < m.n_used; ++k) {
        EXPECT_EQ(ids[size_t(r * m.n_used + k)], rid[size_t(k)]) << "row " << r << " k " << k;
        EXPECT_EQ(w[size_t(r * m.n_used + k)], rw[size_t(k)]) << "row " << r << " k " << k;
      }
    }
  }
}

// A paged f16 cache (block size 4, blocks out of order) against
// attention_head_ref over the same rounded rows.
TEST(CpuDevice, PagedAttentionMatchesReference) {
  for (DType kvt : {DType::kF16, DType::kBF16}) {
    auto dev = make_cpu_device();
    auto s = dev->create_stream().value();
    const int32_t H = 6, Hkv = 2, dk = 8, dv = 6, n_pos = 11, bs = 4, max_blocks = 3;
    DeviceKvLayer kv;
    kv.dtype = kvt;
    kv.block_size = bs;
    kv.k_width = Hkv * dk;
    kv.v_width = Hkv * dv;
    kv.block_stride = int64_t(bs) * std::max(kv.k_width, kv.v_width);
    kv.max_blocks = max_blocks;
    std::vector<uint16_t> kbuf(static_cast<size_t>(kv.block_stride * max_blocks)), vbuf(kbuf.size());
    std::vector<int32_t> table = {2, 0, 1};
    kv.k = kbuf.data();
    kv.v = vbuf.data();
    kv.block_table = table.data();
    std::vector<float> k = randn(static_cast<size_t>(n_pos * kv.k_width), 1), v = randn(static_cast<size_t>(n_pos * kv.v_width), 2);
    std::vector<int32_t> seq(static_cast<size_t>(n_pos), 0), pos(static_cast<size_t>(n_pos));
    for (int32_t p = 0; p < n_pos; ++p) pos[size_t(p)] = p;
    ASSERT_TRUE(dev->kv_store(*s, kv, seq.data(), pos.data(), n_pos, k.data(), v.data()).is_ok());
    std::vector<float> q = randn(static_cast<size_t>(H * dk), 3), out(static_cast<size_t>(H * dv));
    DeviceAttention a;
    a.q = q.data();
    a.q_head_stride = dk;
    a.q_token_stride = H * dk;
    a.out = out.data();
    a.out_head_stride = dv;
    a.out_token_stride = H * dv;
    a.n_head = H;
    a.n_head_kv = Hkv;
    a.d_k = dk;
    a.d_v = dv;
    a.scale = 0.3f;
    const int32_t last = n_pos - 1;
    a.seq = seq.data();
    a.pos = &last;
    a.n_tokens = 1;
    ASSERT_TRUE(dev->attention(*s, kv, a, nullptr, 0).is_ok());
    ASSERT_TRUE(dev->sync(*s).is_ok());
    auto round16 = [&](float x) { return kvt == DType::kF16 ? f16_to_f32(f32_to_f16(x)) : bf16_to_f32(f32_to_bf16(x)); };
    for (int32_t h = 0; h < H; ++h) {
      const int32_t g = h / (H / Hkv);
      std::vector<float> kr(static_cast<size_t>(n_pos * dk)), vr(static_cast<size_t>(n_pos * dv)), scores(static_cast<size_t>(n_pos)), ref(static_cast<size_t>(dv));
      for (int32_t p = 0; p < n_pos; ++p) {
        for (int i = 0; i < dk; ++i) kr[size_t(p * dk + i)] = round16(k[size_t(p * kv.k_width + g * dk + i)]);
        for (int i = 0; i < dv; ++i) vr[size_t(p * dv + i)] = round16(v[size_t(p * kv.v_width + g * dv + i)]);
      }
      attention_head_ref(q.data() + h * dk, kr.data(), dk, vr.data(), dv, dk, dv, n_pos, 0.3f, scores.data(), ref.data());
      for (int i = 0; i < dv; ++i) EXPECT_EQ(out[size_t(h * dv + i)], ref[size_t(i)]) << "head " << h;
    }
  }
}

// ---- the hybrid scheduler ------------------------------------------------------------

// A small MoE model whose device side runs as CPU-device ops: per layer an
// RMSNorm into x_moe, an f32 router, top-k, and a SwiGLU shared expert.
struct ToyModel {
  static constexpr int64_t kEmbd = 64, kFf = 32, kExperts = 8;
  static constexpr int32_t kUsed = 2;
  struct Layer {
    std::vector<float> norm, router, sh_gate, sh_up, sh_down;
    std::vector<float> ex_gate, ex_up, ex_down;
    ExpertLayer experts;
  };
  std::vector<Layer> layers;
  DeviceRouteConfig route;
  MoeConfig moe;

  explicit ToyModel(int n_layers) {
    route.n_expert = int32_t(kExperts);
    route.n_used = kUsed;
    route.norm_w = true;
    moe.n_expert = route.n_expert;
    moe.n_used = route.n_used;
    moe.norm_w = true;
    layers.resize(size_t(n_layers));
    uint64_t seed = 100;
    const float se = 1.0f / std::sqrt(float(kEmbd)), sf = 1.0f / std::sqrt(float(kFf));
    for (size_t i = 0; i < layers.size(); ++i) {
      Layer& L = layers[i];
      L.norm = randn(kEmbd, seed++, 0.2f);
      for (float& x : L.norm) x += 1.0f;
      L.router = randn(kExperts * kEmbd, seed++, se);
      L.sh_gate = randn(kFf * kEmbd, seed++, se);
      L.sh_up = randn(kFf * kEmbd, seed++, se);
      L.sh_down = randn(kEmbd * kFf, seed++, sf);
      L.ex_gate = randn(kExperts * kFf * kEmbd, seed++, se);
      L.ex_up = randn(kExperts * kFf * kEmbd, seed++, se);
      L.ex_down = randn(kExperts * kEmbd * kFf, seed++, sf);
      auto tensor = [&](ExpertTensor& t, const std::vector<float>& d, const char* what, int64_t n_in, int64_t n_out) {
        t.name = "blk." + std::to_string(i) + "." + what;
        t.type = DType::kF32;
        t.data = d.data();
        t.n_in = n_in;
        t.n_out = n_out;
        t.n_expert = kExperts;
        t.expert_bytes = uint64_t(n_in * n_out * 4);
      };
      tensor(L.experts.gate, L.ex_gate, "ffn_gate_exps.weight", kEmbd, kFf);
      tensor(L.experts.up, L.ex_up, "ffn_up_exps.weight", kEmbd, kFf);
      tensor(L.experts.down, L.ex_down, "ffn_down_exps.weight", kFf, kEmbd);
      L.experts.layer = int(i);
    }
  }

  static DeviceWeight w(const std::vector<float>& d, int64_t n_in, int64_t n_out) {
    DeviceWeight x;
    x.type = DType::kF32;
    x.data = d.data();
    x.n_in = n_in;
    x.n_out = n_out;
    return x;
  }

  // Serial host reference for n_rows rows: the same functions in the same order.
  void reference(std::vector<float>& hidden, int64_t n_rows, ExpertExecutor& ex, std::vector<bool> dense = {}) const {
    std::vector<float> x(hidden.size()), logits(static_cast<size_t>(n_rows * kExperts)), g(static_cast<size_t>(n_rows * kFf)),
        u(size_t(n_rows * kFf)), sh(hidden.size()), routed(hidden.size()), scratch(size_t(2 * kExperts));
    std::vector<int32_t> ids(static_cast<size_t>(n_rows * kUsed));
    std::vector<float> wts(ids.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      const Layer& L = layers[i];
      for (int64_t r = 0; r < n_rows; ++r) rms_norm(hidden.data() + r * kEmbd, L.norm.data(), kEmbd, 1e-6f, x.data() + r * kEmbd);
      matmul_ref(DType::kF32, L.sh_gate.data(), kEmbd, kFf, x.data(), kEmbd, n_rows, g.data(), kFf);
      matmul_ref(DType::kF32, L.sh_up.data(), kEmbd, kFf, x.data(), kEmbd, n_rows, u.data(), kFf);
      swiglu(g.data(), u.data(), u.data(), n_rows * kFf);
      matmul_ref(DType::kF32, L.sh_down.data(), kFf, kEmbd, u.data(), kFf, n_rows, sh.data(), kEmbd);
      const bool is_dense = i < dense.size() && dense[i];
      if (is_dense) {
        for (size_t j = 0; j < hidden.size(); ++j) hidden[j] += sh[j];
        continue;
      }
      matmul_ref(DType::kF32, L.router.data(), kEmbd, kExperts, x.data(), kEmbd, n_rows, logits.data(), kExperts);
      for (int64_t r = 0; r < n_rows; ++r) {
        moe_route_row(moe, logits.data() + r * kExperts, nullptr, ids.data() + r * kUsed, wts.data() + r * kUsed,
                  scratch.data());
      }
      ExpertRouting rt;
      rt.x = x.data();
      rt.n_rows = n_rows;
      rt.n_used = kUsed;
      rt.ids = ids.data();
      rt.weights = wts.data();
      ASSERT_TRUE(ex.run(L.experts, rt, routed.data()).is_ok());
      for (size_t j = 0; j < hidden.size(); ++j) hidden[j] += routed[j] + sh[j];
    }
  }
};

// The device side of the toy model as HybridLayers, with scratch buffers.
struct ToyDeviceSide {
  std::vector<float> logits, g, u;
  std::vector<HybridLayer> layers;
  std::atomic<int> pre_calls{0};

  ToyDeviceSide(Device& dev, const ToyModel& m, int64_t max_rows, std::vector<bool> dense = {})
      : logits(size_t(max_rows * ToyModel::kExperts)), g(size_t(max_rows * ToyModel::kFf)), u(g.size()) {
    for (size_t i = 0; i < m.layers.size(); ++i) {
      const ToyModel::Layer& L = m.layers[i];
      const bool is_dense = i < dense.size() && dense[i];
      HybridLayer h;
      h.name = "blk." + std::to_string(i);
      h.pre = [&dev, &L, &m, this, is_dense](DeviceStream& s, const HybridBuffers& b) -> Status {
        ++pre_calls;
        const int64_t E = ToyModel::kEmbd;
        STRATA_RETURN_IF_ERROR(dev.rms_norm(s, b.hidden, L.norm.data(), b.n_rows, E, 1e-6f, b.x_moe));
        if (is_dense) return Status::ok();
        STRATA_RETURN_IF_ERROR(
            dev.matmul(s, ToyModel::w(L.router, E, ToyModel::kExperts), b.x_moe, E, b.n_rows, logits.data(), ToyModel::kExperts));
        return dev.route(s, m.route, logits.data(), b.n_rows, nullptr, b.ids, b.weights);
      };
      h.shared = [&dev, &L, this](DeviceStream& s, const HybridBuffers& b) -> Status {
        const int64_t E = ToyModel::kEmbd, F = ToyModel::kFf;
        STRATA_RETURN_IF_ERROR(dev.matmul(s, ToyModel::w(L.sh_gate, E, F), b.x_moe, E, b.n_rows, g.data(), F));
        STRATA_RETURN_IF_ERROR(dev.matmul(s, ToyModel::w(L.sh_up, E, F), b.x_moe, E, b.n_rows, u.data(), F));
        STRATA_RETURN_IF_ERROR(dev.swiglu(s, g.data(), u.data(), u.data(), b.n_rows * F));
        return dev.matmul(s, ToyModel::w(L.sh_down, F, E), u.data(), F, b.n_rows, b.shared, E);
      };
      h.experts = is_dense ? nullptr : &L.experts;
      layers.push_back(std::move(h));
    }
  }
};

HybridConfig toy_config(int64_t max_rows) {
  HybridConfig c;
  c.n_embd = ToyModel::kEmbd;
  c.n_used = ToyModel::kUsed;
  c.max_rows = max_rows;
  return c;
}

// An executor that takes a fixed time, and a shared expert that keeps the
// device stream busy as long: the two must run at the same time.
class SlowExecutor final : public ExpertExecutor {
 public:
  SlowExecutor(ExpertExecutor& inner, milliseconds delay, int fail_at_call = -1)
      : inner_(inner), delay_(delay), fail_at_(fail_at_call) {}
  Status check_layer(const ExpertLayer& l) const override { return inner_.check_layer(l); }
  Status run(const ExpertLayer& l, const ExpertRouting& r, float* out) override {
    const int call = calls++;
    std::this_thread::sleep_for(delay_);
    if (call == fail_at_) return io_error("expert store read failed for " + l.down.name);
    return inner_.run(l, r, out);
  }
  std::atomic<int> calls{0};

 private:
  ExpertExecutor& inner_;
  milliseconds delay_;
  int fail_at_;
};

// With random delays before every task on both streams, any read that is
// not ordered after its producer would see stale data; results must equal
// the serial reference exactly, step after step, at every row count. The
// step runs three ways: as is, with the CPU experts slower than the device
// (a missing wait before the combine would read an old routed sum), and with
// the device slower than the CPU (a missing wait before the experts would
// read old pinned rows).
TEST(HybridScheduler, MatchesSerialReferenceUnderJitter) {
  for (int mode = 0; mode < 3; ++mode) {
    CpuDeviceOptions o;
    o.jitter_us = 300;
    o.seed = uint64_t(mode + 1);
    auto dev = make_cpu_device(o);
    ToyModel model(4);
    const std::vector<bool> dense = {true, false, false, false};  // a leading dense layer, as DeepSeek has
    auto inner = make_cpu_expert_executor();
    SlowExecutor ex(*inner, milliseconds(mode == 1 ? 4 : 0));
    auto ref_ex = make_cpu_expert_executor();
    auto sched = HybridScheduler::create(*dev, ex, toy_config(4)).value();
    ToyDeviceSide side(*dev, model, 4, dense);
    if (mode == 2) {
      for (HybridLayer& L : side.layers) {
        for (DeviceWork* w : {&L.pre, &L.shared}) {
          DeviceWork inner_work = *w;
          *w = [&dev, inner_work](DeviceStream& s, const HybridBuffers& b) -> Status {
            STRATA_RETURN_IF_ERROR(dev->enqueue_host(s, [] { std::this_thread::sleep_for(milliseconds(4)); }));
            return inner_work(s, b);
          };
        }
      }
    }
    for (int64_t rows : {1, 3, 4, 2}) {
      std::vector<float> h = randn(size_t(rows * ToyModel::kEmbd), 40 + uint64_t(rows));
      std::memcpy(sched->buffers().hidden, h.data(), h.size() * 4);  // CPU device: device memory is host memory
      ASSERT_TRUE(sched->run_step(side.layers, rows).is_ok());
      model.reference(h, rows, *ref_ex, dense);
      for (size_t j = 0; j < h.size(); ++j) {
        ASSERT_EQ(sched->buffers().hidden[j], h[j]) << "mode " << mode << " rows " << rows << " elem " << j;
      }
    }
  }
}

TEST(HybridScheduler, ReusesItsBuffersAcrossSteps) {
  auto dev = make_cpu_device();
  ToyModel model(3);
  auto ex = make_cpu_expert_executor();
  auto sched = HybridScheduler::create(*dev, *ex, toy_config(2)).value();
  ToyDeviceSide side(*dev, model, 2);
  const HybridBuffers before = sched->buffers();
  const DeviceMemoryStats mem0 = dev->memory();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(sched->run_step(side.layers, 1 + i % 2).is_ok());
  const DeviceMemoryStats mem1 = dev->memory();
  EXPECT_EQ(mem1.n_device_allocs, mem0.n_device_allocs);
  EXPECT_EQ(mem1.device_live_bytes, mem0.device_live_bytes);
  EXPECT_EQ(mem1.pinned_live_bytes, mem0.pinned_live_bytes);
  EXPECT_EQ(sched->buffers().hidden, before.hidden);
  EXPECT_EQ(sched->buffers().host_routed, before.host_routed);
  EXPECT_EQ(sched->n_steps(), 5);
}

TEST(HybridScheduler, CpuExpertsOverlapTheDeviceSharedExpert) {
  auto dev = make_cpu_device();
  ToyModel model(3);
  auto inner = make_cpu_expert_executor();
  SlowExecutor ex(*inner, milliseconds(40));
  auto sched = HybridScheduler::create(*dev, ex, toy_config(1)).value();
  ToyDeviceSide side(*dev, model, 1);
  for (HybridLayer& L : side.layers) {
    DeviceWork shared = L.shared;
    L.shared = [&dev, shared](DeviceStream& s, const HybridBuffers& b) -> Status {
      STRATA_RETURN_IF_ERROR(dev->enqueue_host(s, [] { std::this_thread::sleep_for(milliseconds(40)); }));
      return shared(s, b);
    };
  }
  ASSERT_TRUE(sched->run_step(side.layers, 1).is_ok());
  const HybridStepTiming& t = sched->last_timing();
  ASSERT_EQ(t.layers.size(), 3u);
  for (const HybridLayerTiming& L : t.layers) {
    EXPECT_GE(L.cpu_busy_s, 0.039) << L.name;
    EXPECT_GE(L.shared_end_s - L.shared_start_s, 0.039) << L.name;
    // Both started within the same layer window; most of the shorter one overlaps.
    EXPECT_GE(L.overlap_s, 0.5 * 0.040) << L.name << ": cpu [" << L.cpu_start_s << ", " << L.cpu_end_s << "] shared ["
                                        << L.shared_start_s << ", " << L.shared_end_s << "]";
    EXPECT_GE(L.sync_s, 0.0);
  }
  EXPECT_GE(t.device_idle_pct, 0.0);
  EXPECT_LE(t.device_idle_pct, 100.0);
  EXPECT_LE(t.cpu_idle_pct, 100.0);
  EXPECT_GT(t.wall_s, 0.0);
}

TEST(HybridScheduler, ExecutorErrorStopsTheStepNamingTheLayer) {
  auto dev = make_cpu_device();
  ToyModel model(4);
  auto inner = make_cpu_expert_executor();
  SlowExecutor ex(*inner, milliseconds(0), /*fail_at_call=*/2);
  auto sched = HybridScheduler::create(*dev, ex, toy_config(1)).value();
  ToyDeviceSide side(*dev, model, 1);
  Status st = sched->run_step(side.layers, 1);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_NE(st.message().find("blk.2: routed experts: expert store read failed for blk.2.ffn_down_exps.weight"),
            std::string::npos)
      << st.message();
  EXPECT_EQ(ex.calls.load(), 3);  // layer 3's experts never ran
  // The scheduler is usable again after a failed step.
  SlowExecutor ok(*inner, milliseconds(0));
  auto sched2 = HybridScheduler::create(*dev, ok, toy_config(1)).value();
  EXPECT_TRUE(sched2->run_step(side.layers, 1).is_ok());
}

TEST(HybridScheduler, DeviceWorkErrorNamesTheLayer) {
  auto dev = make_cpu_device();
  ToyModel model(3);
  auto ex = make_cpu_expert_executor();
  auto sched = HybridScheduler::create(*dev, *ex, toy_config(1)).value();
  ToyDeviceSide side(*dev, model, 1);
  side.layers[1].shared = [](DeviceStream&, const HybridBuffers&) -> Status {
    return unsupported("no kernel for q1_0 weights");
  };
  Status st = sched->run_step(side.layers, 1);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(), "blk.1: shared expert: no kernel for q1_0 weights");
}

TEST(HybridScheduler, RejectsBadSizesAndBudgets) {
  auto dev = make_cpu_device();
  ToyModel model(1);
  auto ex = make_cpu_expert_executor();
  auto sched = HybridScheduler::create(*dev, *ex, toy_config(2)).value();
  ToyDeviceSide side(*dev, model, 2);
  Status st = sched->run_step(side.layers, 3);
  EXPECT_EQ(st.message(), "hybrid step: expected 1..2 rows, got 3");
  HybridConfig bad = toy_config(2);
  bad.n_embd = 32;
  auto narrow = HybridScheduler::create(*dev, *ex, bad).value();
  EXPECT_NE(narrow->run_step(side.layers, 1).message().find("blk.0: expected experts of width 32, got 64"),
            std::string::npos);
  CpuDeviceOptions o;
  o.budget_bytes = 1024;
  auto small = make_cpu_device(o);
  auto r = HybridScheduler::create(*small, *ex, toy_config(64));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kOutOfMemory);
  EXPECT_NE(r.status().message().find("hybrid scheduler hidden rows needs 16.00 KiB"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("over by 15.00 KiB"), std::string::npos) << r.status().message();
}

// The captured step replays the device work and the CPU experts without
// calling the layer callables again, and gives the direct path's results.
TEST(HybridScheduler, GraphReplayEqualsDirectSteps) {
  CpuDeviceOptions o;
  o.jitter_us = 100;
  auto dev = make_cpu_device(o);
  ToyModel model(3);
  auto ex = make_cpu_expert_executor();
  auto ref_ex = make_cpu_expert_executor();
  auto sched = HybridScheduler::create(*dev, *ex, toy_config(2)).value();
  ToyDeviceSide side(*dev, model, 2);
  for (int step = 0; step < 3; ++step) {
    std::vector<float> h = randn(static_cast<size_t>(2 * ToyModel::kEmbd), 77 + uint64_t(step));
    std::memcpy(sched->buffers().hidden, h.data(), h.size() * 4);
    ASSERT_TRUE(sched->run_step_graph(side.layers, 2).is_ok());
    model.reference(h, 2, *ref_ex);
    for (size_t j = 0; j < h.size(); ++j) ASSERT_EQ(sched->buffers().hidden[j], h[j]) << "step " << step;
  }
  EXPECT_EQ(sched->n_captures(), 1);
  EXPECT_EQ(side.pre_calls.load(), 3);  // once per layer, at capture
  EXPECT_EQ(sched->last_timing().layers.size(), 3u);
  // Another row count is another graph.
  ASSERT_TRUE(sched->run_step_graph(side.layers, 1).is_ok());
  EXPECT_EQ(sched->n_captures(), 2);
}

}  // namespace
}  // namespace strata
