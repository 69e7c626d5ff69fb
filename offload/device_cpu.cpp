// The CPU Device: each stream is a worker thread running its closures in
// order; events are fences (a generation counter per event, recorded and
// completed in stream order, with the steady-clock time of completion);
// graph capture records the enqueued work and replays it; the ops run the
// cpu_kernels references on host memory. It exists so the hybrid
// scheduler's ordering, overlap, buffer reuse and error handling are tested
// without a GPU, with the same semantics the CUDA device has.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/attention_ref.h"
#include "cpu_kernels/matmul_ref.h"
#include "cpu_kernels/norm.h"
#include "cpu_kernels/quant_ref.h"
#include "offload/device.h"
#include "runtime/base/half.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

class CpuStream final : public DeviceStream {
 public:
  CpuStream(int jitter_us, uint64_t seed) : jitter_us_(jitter_us), rng_(seed), th_([this] { loop(); }) {}
  ~CpuStream() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    th_.join();
  }
  void push(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      q_.push_back(std::move(task));
    }
    cv_.notify_all();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !q_.empty(); });
        if (q_.empty()) return;  // stopping, and everything enqueued has run
        task = std::move(q_.front());
        q_.pop_front();
      }
      if (jitter_us_ > 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, jitter_us_)(rng_)));
      }
      task();
    }
  }

  int jitter_us_;
  std::mt19937_64 rng_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool stop_ = false;
  std::thread th_;  // last: starts after the members it uses
};

struct CpuEvent final : DeviceEvent {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t recorded = 0;   // records issued
  uint64_t completed = 0;  // records whose preceding work has run
  Clock::time_point time{};

  void complete(uint64_t gen) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (gen > completed) {
        completed = gen;
        time = Clock::now();
      }
    }
    cv.notify_all();
  }
  void wait_for(uint64_t gen) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return completed >= gen; });
  }
};

// What a capture recorded: plain tasks, and event records/waits, which are
// re-issued at each launch so their generations are those of that launch.
struct CapturedOp {
  enum Kind { kTask, kRecord, kWait } kind;
  CpuStream* stream;
  CpuEvent* event;
  std::function<void()> task;
};

struct CpuGraph final : DeviceGraph {
  std::vector<CapturedOp> ops;
};

float load16(DType t, const void* base, int64_t i) {
  const uint16_t b = static_cast<const uint16_t*>(base)[i];
  return t == DType::kF16 ? f16_to_f32(b) : bf16_to_f32(b);
}
void store16(DType t, void* base, int64_t i, float v) {
  static_cast<uint16_t*>(base)[i] = t == DType::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
}
int64_t kv_row(const DeviceKvLayer& kv, int32_t seq, int32_t p, int32_t width) {
  const int64_t b = kv.block_table[int64_t(seq) * kv.max_blocks + p / kv.block_size];
  return b * kv.block_stride + int64_t(p % kv.block_size) * width;
}

Status check_weight(const char* op, const DeviceWeight& w) {
  if (!matmul_supports(w.type) || !w.data || w.n_in <= 0 || w.n_out < 0 || w.n_mat < 1 ||
      !dtype_row_bytes(w.type, uint64_t(w.n_in))) {
    return invalid_argument(std::string(op) + ": expected a weight of a decodable type with n_in a multiple of its block, got " +
                            std::string(dtype_name(w.type)) + " n_in=" + std::to_string(w.n_in));
  }
  return Status::ok();
}

class CpuDevice final : public Device {
 public:
  explicit CpuDevice(const CpuDeviceOptions& o) : Device(o.budget_bytes), opt_(o) {}
  ~CpuDevice() override { release_pool(); }

  DeviceKind kind() const override { return DeviceKind::kCpu; }
  std::string name() const override { return "cpu"; }

  Result<std::unique_ptr<DeviceStream>> create_stream() override {
    return std::unique_ptr<DeviceStream>(std::make_unique<CpuStream>(opt_.jitter_us, opt_.seed + n_streams_++));
  }
  Result<std::unique_ptr<DeviceEvent>> create_event() override {
    return std::unique_ptr<DeviceEvent>(std::make_unique<CpuEvent>());
  }

  Status record(DeviceEvent& e, DeviceStream& s) override {
    auto& ev = static_cast<CpuEvent&>(e);
    auto& st = static_cast<CpuStream&>(s);
    if (capturing()) {
      graph_->ops.push_back({CapturedOp::kRecord, &st, &ev, {}});
      return Status::ok();
    }
    uint64_t gen;
    {
      std::lock_guard<std::mutex> lock(ev.mu);
      gen = ++ev.recorded;
    }
    st.push([&ev, gen] { ev.complete(gen); });
    return Status::ok();
  }
  Status wait(DeviceStream& s, DeviceEvent& e) override {
    auto& ev = static_cast<CpuEvent&>(e);
    auto& st = static_cast<CpuStream&>(s);
    if (capturing()) {
      graph_->ops.push_back({CapturedOp::kWait, &st, &ev, {}});
      return Status::ok();
    }
    uint64_t target;
    {
      std::lock_guard<std::mutex> lock(ev.mu);
      target = ev.recorded;
    }
    if (target > 0) st.push([&ev, target] { ev.wait_for(target); });
    return Status::ok();
  }
  Status sync(DeviceEvent& e) override {
    auto& ev = static_cast<CpuEvent&>(e);
    uint64_t target;
    {
      std::lock_guard<std::mutex> lock(ev.mu);
      target = ev.recorded;
    }
    ev.wait_for(target);
    return Status::ok();
  }
  Status sync(DeviceStream& s) override {
    if (capturing()) return invalid_argument("sync: a stream cannot be synchronized while capturing a graph");
    CpuEvent fence;
    fence.recorded = 1;
    static_cast<CpuStream&>(s).push([&fence] { fence.complete(1); });
    fence.wait_for(1);
    return Status::ok();
  }
  Result<double> elapsed_s(DeviceEvent& from, DeviceEvent& to) override {
    auto& a = static_cast<CpuEvent&>(from);
    auto& b = static_cast<CpuEvent&>(to);
    Clock::time_point ta, tb;
    bool done;
    {
      std::scoped_lock lock(a.mu, b.mu);
      done = a.completed > 0 && b.completed > 0 && a.completed == a.recorded && b.completed == b.recorded;
      ta = a.time;
      tb = b.time;
    }
    if (!done) return invalid_argument("elapsed_s: both events must be recorded and completed");
    return std::chrono::duration<double>(tb - ta).count();
  }
  Status enqueue_host(DeviceStream& s, std::function<void()> fn) override {
    push(s, std::move(fn));
    return Status::ok();
  }

  Status copy_to_device(DeviceStream& s, void* dst, const void* src, uint64_t bytes) override {
    return copy(s, dst, src, bytes);
  }
  Status copy_to_host(DeviceStream& s, void* dst, const void* src, uint64_t bytes) override {
    return copy(s, dst, src, bytes);
  }
  Status copy_on_device(DeviceStream& s, void* dst, const void* src, uint64_t bytes) override {
    return copy(s, dst, src, bytes);
  }
  Status fill_zero(DeviceStream& s, void* dst, uint64_t bytes) override {
    if (bytes && !dst) return invalid_argument("fill_zero: null destination");
    push(s, [=] { std::memset(dst, 0, bytes); });
    return Status::ok();
  }

  Result<std::unique_ptr<DeviceGraph>> capture(DeviceStream& s, const std::function<Status()>& enqueue) override {
    if (graph_) return invalid_argument("capture: a capture is already in progress");
    auto g = std::make_unique<CpuGraph>();
    graph_ = g.get();
    capture_thread_ = std::this_thread::get_id();
    Status st = enqueue();
    graph_ = nullptr;
    if (!st.is_ok()) return st;
    return std::unique_ptr<DeviceGraph>(std::move(g));
  }
  Status launch(DeviceGraph& g, DeviceStream& s) override {
    for (const CapturedOp& op : static_cast<CpuGraph&>(g).ops) {
      switch (op.kind) {
        case CapturedOp::kTask: op.stream->push(op.task); break;
        case CapturedOp::kRecord: STRATA_RETURN_IF_ERROR(record(*op.event, *op.stream)); break;
        case CapturedOp::kWait: STRATA_RETURN_IF_ERROR(wait(*op.stream, *op.event)); break;
      }
    }
    return Status::ok();
  }

  Status embed(DeviceStream& s, const DeviceWeight& table, const int32_t* ids, int64_t n_tokens, float* out) override {
    STRATA_RETURN_IF_ERROR(check_weight("embed", table));
    const uint64_t rb = *dtype_row_bytes(table.type, uint64_t(table.n_in));
    push(s, [=] {
      for (int64_t t = 0; t < n_tokens; ++t) {
        float* o = out + t * table.n_in;
        const int32_t id = ids[t];
        if (id < 0 || id >= table.n_out) {
          std::fill(o, o + table.n_in, std::numeric_limits<float>::quiet_NaN());
          continue;
        }
        (void)dequantize_row_ref(table.type, static_cast<const uint8_t*>(table.data) + uint64_t(id) * rb, o, table.n_in);
      }
    });
    return Status::ok();
  }
  Status rms_norm(DeviceStream& s, const float* x, const float* w, int64_t n_rows, int64_t n, float eps,
                  float* y) override {
    if (n < 1 || n_rows < 0) return invalid_argument("rms_norm: expected n >= 1 and n_rows >= 0");
    push(s, [=] {
      for (int64_t r = 0; r < n_rows; ++r) strata::rms_norm(x + r * n, w, n, eps, y + r * n);
    });
    return Status::ok();
  }
  Status matmul(DeviceStream& s, const DeviceWeight& w, const float* x, int64_t x_stride, int64_t n_rows, float* y,
                int64_t y_stride) override {
    STRATA_RETURN_IF_ERROR(check_weight("matmul", w));
    if (x_stride < w.n_in || y_stride < w.n_out || n_rows < 0) {
      return invalid_argument("matmul: expected strides >= the matrix sizes and n_rows >= 0");
    }
    const uint64_t mat_bytes = w.mat_bytes ? w.mat_bytes : uint64_t(w.n_out) * *dtype_row_bytes(w.type, uint64_t(w.n_in));
    push(s, [=] {
      if (w.n_mat == 1) {
        matmul_ref(w.type, w.data, w.n_in, w.n_out, x, x_stride, n_rows, y, y_stride);
        return;
      }
      for (int64_t r = 0; r < n_rows; ++r) {
        matmul_ref(w.type, static_cast<const uint8_t*>(w.data) + uint64_t(r % w.n_mat) * mat_bytes, w.n_in, w.n_out,
                   x + r * x_stride, x_stride, 1, y + r * y_stride, y_stride);
      }
    });
    return Status::ok();
  }
  Status rope(DeviceStream& s, const RopeParams& p, const int32_t* pos, float* x, int64_t n_tokens, int64_t row_stride,
              int64_t offset, int64_t n_heads, int64_t head_stride) override {
    if (p.n_dims < 2 || p.n_dims % 2 != 0 || head_stride < p.n_dims) {
      return invalid_argument("rope: expected an even n_dims >= 2 <= head_stride, got " + std::to_string(p.n_dims));
    }
    push(s, [=] {
      std::vector<float> cs(size_t(p.n_dims));
      for (int64_t t = 0; t < n_tokens; ++t) {
        rope_cos_sin(p, pos[t], cs.data());
        rope_apply(p, cs.data(), x + t * row_stride + offset, n_heads, head_stride);
      }
    });
    return Status::ok();
  }
  Status swiglu(DeviceStream& s, const float* gate, const float* up, float* out, int64_t n) override {
    push(s, [=] { strata::swiglu(gate, up, out, n); });
    return Status::ok();
  }
  Status add(DeviceStream& s, float* y, const float* a, const float* b, int64_t n) override {
    push(s, [=] {
      for (int64_t i = 0; i < n; ++i) y[i] += b ? a[i] + b[i] : a[i];
    });
    return Status::ok();
  }
  Status copy_rows(DeviceStream& s, const float* src, int64_t src_stride, float* dst, int64_t dst_stride,
                   int64_t n_rows, int64_t n_cols) override {
    if (src_stride < n_cols || dst_stride < n_cols) return invalid_argument("copy_rows: expected strides >= n_cols");
    push(s, [=] {
      for (int64_t r = 0; r < n_rows; ++r) std::memcpy(dst + r * dst_stride, src + r * src_stride, size_t(n_cols) * 4);
    });
    return Status::ok();
  }
  Status route(DeviceStream& s, const DeviceRouteConfig& c, const float* logits, int64_t n_rows, const float* bias,
               int32_t* ids, float* weights) override {
    if (c.n_expert < 1 || c.n_used < 1 || c.n_used > c.n_expert ||
        (c.n_groups > 1 && c.n_group_used < c.n_groups && (c.n_expert % c.n_groups != 0 || c.n_group_used < 1))) {
      return invalid_argument("route: expected 1 <= n_used <= n_expert and groups dividing the experts");
    }
    push(s, [=] {
      std::vector<float> scratch(size_t(2 * c.n_expert));
      for (int64_t r = 0; r < n_rows; ++r) {
        moe_route_row(c, logits + r * c.n_expert, bias, ids + r * c.n_used, weights + r * c.n_used, scratch.data());
      }
    });
    return Status::ok();
  }
  Status kv_store(DeviceStream& s, const DeviceKvLayer& kv, const int32_t* seq, const int32_t* pos, int64_t n_tokens,
                  const float* k, const float* v) override {
    STRATA_RETURN_IF_ERROR(check_kv("kv_store", kv));
    push(s, [=] {
      for (int64_t t = 0; t < n_tokens; ++t) {
        const int64_t kr = kv_row(kv, seq[t], pos[t], kv.k_width);
        for (int32_t i = 0; i < kv.k_width; ++i) store16(kv.dtype, kv.k, kr + i, k[t * kv.k_width + i]);
        if (!kv.v) continue;
        const int64_t vr = kv_row(kv, seq[t], pos[t], kv.v_width);
        for (int32_t i = 0; i < kv.v_width; ++i) store16(kv.dtype, kv.v, vr + i, v[t * kv.v_width + i]);
      }
    });
    return Status::ok();
  }
  size_t attention_workspace_floats(const DeviceKvLayer& kv, const DeviceAttention& a) const override { return 0; }
  Status attention(DeviceStream& s, const DeviceKvLayer& kv, const DeviceAttention& a, float* workspace,
                   size_t workspace_floats) override {
    STRATA_RETURN_IF_ERROR(check_kv("attention", kv));
    if (a.n_head < 1 || a.n_head_kv < 1 || a.n_head % a.n_head_kv != 0 || a.d_k < 1 || a.d_v < 1) {
      return invalid_argument("attention: expected n_head a multiple of n_head_kv and positive head sizes");
    }
    push(s, [=] {
      const int32_t group = a.n_head / a.n_head_kv;
      std::vector<float> kbuf, vbuf, scores;
      for (int64_t t = 0; t < a.n_tokens; ++t) {
        const int32_t sq = a.seq[t], n_kv = a.pos[t] + 1;
        kbuf.resize(size_t(n_kv) * a.d_k);
        vbuf.resize(size_t(n_kv) * a.d_v);
        scores.resize(size_t(n_kv));
        for (int32_t g = 0; g < a.n_head_kv; ++g) {
          for (int32_t p = 0; p < n_kv; ++p) {
            const int64_t kr = kv_row(kv, sq, p, kv.k_width) + int64_t(g) * a.d_k;
            for (int32_t i = 0; i < a.d_k; ++i) kbuf[size_t(p) * a.d_k + i] = load16(kv.dtype, kv.k, kr + i);
            const int64_t vr = kv.v ? kv_row(kv, sq, p, kv.v_width) + int64_t(g) * a.d_v : kr;
            for (int32_t i = 0; i < a.d_v; ++i) {
              vbuf[size_t(p) * a.d_v + i] = load16(kv.dtype, kv.v ? kv.v : kv.k, vr + i);
            }
          }
          for (int32_t h = g * group; h < (g + 1) * group; ++h) {
            attention_head_ref(a.q + t * a.q_token_stride + h * a.q_head_stride, kbuf.data(), a.d_k, vbuf.data(),
                               a.d_v, a.d_k, a.d_v, n_kv, a.scale, scores.data(),
                               a.out + t * a.out_token_stride + h * a.out_head_stride);
          }
        }
      }
    });
    return Status::ok();
  }

 protected:
  Result<void*> raw_alloc(MemKind kind, uint64_t bytes) override {
    void* p = std::aligned_alloc(256, bytes);
    if (!p) return out_of_memory("host allocation of " + format_bytes(bytes) + " failed");
    return p;
  }
  void raw_free(MemKind kind, void* p) override { std::free(p); }

 private:
  static Status check_kv(const char* op, const DeviceKvLayer& kv) {
    if ((kv.dtype != DType::kF16 && kv.dtype != DType::kBF16) || !kv.k || !kv.block_table || kv.block_size < 1 ||
        kv.max_blocks < 1 || kv.k_width < 1 || (kv.v && kv.v_width < 1)) {
      return invalid_argument(std::string(op) + ": expected a complete f16/bf16 KV layer");
    }
    return Status::ok();
  }
  bool capturing() const { return graph_ && std::this_thread::get_id() == capture_thread_; }
  void push(DeviceStream& s, std::function<void()> task) {
    auto& st = static_cast<CpuStream&>(s);
    if (capturing()) {
      graph_->ops.push_back({CapturedOp::kTask, &st, nullptr, std::move(task)});
    } else {
      st.push(std::move(task));
    }
  }
  Status copy(DeviceStream& s, void* dst, const void* src, uint64_t bytes) {
    if (bytes && (!dst || !src)) return invalid_argument("copy: null pointer");
    push(s, [=] { std::memcpy(dst, src, bytes); });
    return Status::ok();
  }

  CpuDeviceOptions opt_;
  uint64_t n_streams_ = 0;
  CpuGraph* graph_ = nullptr;
  std::thread::id capture_thread_;
};

}  // namespace

std::unique_ptr<Device> make_cpu_device(const CpuDeviceOptions& options) {
  return std::make_unique<CpuDevice>(options);
}

}  // namespace strata
