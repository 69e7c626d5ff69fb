// The execution device the hybrid scheduler drives: ordered streams, events
// as fences and timers, async copies between device memory and pinned host
// memory, host functions in stream order, a byte-budgeted memory pool
// (--gpu-budget), graph capture of a fixed sequence of work, and the op
// launches the device side of a layer needs. Two implementations: CUDA
// (device_cuda.cpp, on gpu_kernels) and CPU (device_cpu.cpp: a worker thread
// per stream running closures in order, on the cpu_kernels references), so
// scheduling logic is tested on machines without a GPU.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "cpu_kernels/moe_route.h"
#include "cpu_kernels/rope.h"
#include "runtime/base/bytes.h"
#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace strata {

// "24GiB", "24 GiB", "24000MB", "1.5TiB", "512M", "4096": binary units
// (KiB MiB GiB TiB, and K M G T alone), decimal units (KB MB GB TB), B or no
// unit for bytes; case-insensitive, one optional space before the unit.
// Errors name the text and what was expected.
Result<uint64_t> parse_byte_size(std::string_view text);

enum class DeviceKind : uint8_t { kCpu, kCuda };
enum class MemKind : uint8_t {
  kDevice,      // device memory, counted against the budget
  kPinnedHost,  // page-locked host memory: the host side of async copies
};

// Opaque handles; each implementation defines its own.
class DeviceStream {
 public:
  virtual ~DeviceStream() = default;
};
class DeviceEvent {
 public:
  virtual ~DeviceEvent() = default;
};
class DeviceGraph {
 public:
  virtual ~DeviceGraph() = default;
};

class Device;

// A device or pinned-host allocation from a Device's pool; returns to the
// pool when destroyed. Must not outlive its Device.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }
  void reset();

  void* data() const { return data_; }
  uint64_t bytes() const { return bytes_; }
  MemKind kind() const { return kind_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  friend class Device;
  Device* owner_ = nullptr;
  void* data_ = nullptr;
  uint64_t bytes_ = 0;
  MemKind kind_ = MemKind::kDevice;
};

struct DeviceMemoryStats {
  uint64_t budget_bytes = 0;       // device bytes the pool may hold (live + cached)
  uint64_t device_live_bytes = 0;  // in buffers handed out
  uint64_t device_cached_bytes = 0;// freed, kept for reuse
  uint64_t device_peak_bytes = 0;  // most live + cached at once
  uint64_t pinned_live_bytes = 0;
  uint64_t n_device_allocs = 0;    // allocations from the system (cache misses)
};

// ---- op descriptions (pointers are this device's memory) --------------------

// A weight matrix, or a stack of n_mat (matrix m at data + m * mat_bytes,
// 0: dense stacking), rows of n_in elements of `type` in GGUF layout.
struct DeviceWeight {
  DType type = DType::kF32;
  const void* data = nullptr;
  int64_t n_in = 0;
  int64_t n_out = 0;
  int64_t n_mat = 1;
  uint64_t mat_bytes = 0;
};

// A paged 16-bit KV cache layer; see gpu_kernels/attention.cuh (GpuKvLayer).
struct DeviceKvLayer {
  DType dtype = DType::kF16;  // kF16 or kBF16
  void* k = nullptr;
  void* v = nullptr;          // null: values are read from the key rows (MLA)
  int64_t block_stride = 0;   // elements
  int32_t block_size = 16;
  int32_t k_width = 0;
  int32_t v_width = 0;
  const int32_t* block_table = nullptr;
  int32_t max_blocks = 0;     // table entries per sequence
};

// Attention of n_tokens tokens; see gpu_kernels/attention.cuh (AttnArgs).
struct DeviceAttention {
  const float* q = nullptr;
  int64_t q_token_stride = 0, q_head_stride = 0;
  float* out = nullptr;
  int64_t out_token_stride = 0, out_head_stride = 0;
  int32_t n_head = 0, n_head_kv = 0, d_k = 0, d_v = 0;
  float scale = 1.0f;
  const int32_t* seq = nullptr;
  const int32_t* pos = nullptr;
  int64_t n_tokens = 0;
  bool prefill = false;  // tokens of one sequence (tiled kernel) rather than decode (split KV)
};

// Routing of the route op: the CPU kernels' (cpu_kernels/moe_route.h), which
// is also runtime/layers/moe_ffn.h's MoeConfig.
using DeviceRouteConfig = MoeRouteParams;

class Device {
 public:
  virtual ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  virtual DeviceKind kind() const = 0;
  virtual std::string name() const = 0;

  // ---- streams, events, host functions
  virtual Result<std::unique_ptr<DeviceStream>> create_stream() = 0;
  virtual Result<std::unique_ptr<DeviceEvent>> create_event() = 0;
  // The event completes when all work enqueued on `s` so far has completed.
  virtual Status record(DeviceEvent& e, DeviceStream& s) = 0;
  // Work enqueued on `s` after this waits for the event's latest record (as
  // of this call); an event never recorded is complete.
  virtual Status wait(DeviceStream& s, DeviceEvent& e) = 0;
  virtual Status sync(DeviceEvent& e) = 0;
  virtual Status sync(DeviceStream& s) = 0;
  // Seconds from `from` to `to`, both recorded and completed.
  virtual Result<double> elapsed_s(DeviceEvent& from, DeviceEvent& to) = 0;
  // Runs fn on a host thread after everything enqueued on `s` before it;
  // later work on `s` waits for it. fn must not call this Device (CUDA
  // forbids API calls from host functions) and reports failure by its own
  // means (the scheduler keeps a step status).
  virtual Status enqueue_host(DeviceStream& s, std::function<void()> fn) = 0;

  // ---- copies, in stream order (host pointers should be kPinnedHost)
  virtual Status copy_to_device(DeviceStream& s, void* dst, const void* src, uint64_t bytes) = 0;
  virtual Status copy_to_host(DeviceStream& s, void* dst, const void* src, uint64_t bytes) = 0;
  virtual Status copy_on_device(DeviceStream& s, void* dst, const void* src, uint64_t bytes) = 0;
  virtual Status fill_zero(DeviceStream& s, void* dst, uint64_t bytes) = 0;

  // ---- memory: device bytes live + cached stay within the budget; a freed
  // buffer is cached and reused by the next allocation of the same size
  // (rounded to 256 bytes); an allocation that does not fit first drops the
  // cache, then fails with out_of_memory saying by how much it is over.
  Result<DeviceBuffer> alloc(MemKind kind, uint64_t bytes, std::string_view what);
  DeviceMemoryStats memory() const;
  uint64_t budget_bytes() const { return budget_; }
  // Frees the cached (unused) device buffers.
  void trim();

  // ---- graphs: record what `enqueue` puts on `s` (and on streams that wait
  // on events of `s` during it) as one replayable unit; nothing runs until
  // launch. The enqueued work must be a fixed sequence: pointers and sizes
  // it passes are baked in, so buffers stay allocated while the graph lives.
  virtual Result<std::unique_ptr<DeviceGraph>> capture(DeviceStream& s, const std::function<Status()>& enqueue) = 0;
  virtual Status launch(DeviceGraph& g, DeviceStream& s) = 0;

  // ---- ops of a layer's device side, enqueued on `s`; f32 activations,
  // rows contiguous unless a stride is given. Argument errors are returned
  // at enqueue time.
  // out[t] = row ids[t] of the table (n_vocab rows of n_embd elements).
  virtual Status embed(DeviceStream& s, const DeviceWeight& table, const int32_t* ids, int64_t n_tokens,
                       float* out) = 0;
  // y[r] = rmsnorm(x[r]) * w (w: n floats or null); y may be x.
  virtual Status rms_norm(DeviceStream& s, const float* x, const float* w, int64_t n_rows, int64_t n, float eps,
                          float* y) = 0;
  // y[r*y_stride + o] = W_m[o] . x[r*x_stride], m = r % w.n_mat.
  virtual Status matmul(DeviceStream& s, const DeviceWeight& w, const float* x, int64_t x_stride, int64_t n_rows,
                        float* y, int64_t y_stride) = 0;
  // RoPE of n_heads heads per token at x + t*row_stride + offset (head_stride
  // apart) at position pos[t]; p.freq_factors, when set, is this device's memory.
  virtual Status rope(DeviceStream& s, const RopeParams& p, const int32_t* pos, float* x, int64_t n_tokens,
                      int64_t row_stride, int64_t offset, int64_t n_heads, int64_t head_stride) = 0;
  // out[i] = silu(gate[i]) * up[i].
  virtual Status swiglu(DeviceStream& s, const float* gate, const float* up, float* out, int64_t n) = 0;
  // y[i] += a[i] (+ b[i] when b is not null), i < n.
  virtual Status add(DeviceStream& s, float* y, const float* a, const float* b, int64_t n) = 0;
  virtual Status copy_rows(DeviceStream& s, const float* src, int64_t src_stride, float* dst, int64_t dst_stride,
                           int64_t n_rows, int64_t n_cols) = 0;
  // ids/weights of n_used experts per row of n_expert logits (bias: n_expert or null).
  virtual Status route(DeviceStream& s, const DeviceRouteConfig& c, const float* logits, int64_t n_rows,
                       const float* bias, int32_t* ids, float* weights) = 0;
  // Rows k (k_width floats) and v (v_width, when the layer has values) of each
  // token into the cache at (seq[t], pos[t]).
  virtual Status kv_store(DeviceStream& s, const DeviceKvLayer& kv, const int32_t* seq, const int32_t* pos,
                          int64_t n_tokens, const float* k, const float* v) = 0;
  // Attention per gpu_kernels/attention.cuh; `workspace` holds
  // attention_workspace_floats() floats of this device's memory.
  virtual size_t attention_workspace_floats(const DeviceKvLayer& kv, const DeviceAttention& a) const = 0;
  virtual Status attention(DeviceStream& s, const DeviceKvLayer& kv, const DeviceAttention& a, float* workspace,
                           size_t workspace_floats) = 0;

 protected:
  // budget_bytes: device bytes the pool may hold.
  explicit Device(uint64_t budget_bytes) : budget_(budget_bytes) {}
  virtual Result<void*> raw_alloc(MemKind kind, uint64_t bytes) = 0;
  virtual void raw_free(MemKind kind, void* p) = 0;
  // Implementations call this first in their destructor, so the cache is
  // freed while their raw_free still works.
  void release_pool();

 private:
  friend class DeviceBuffer;
  void give_back(MemKind kind, void* p, uint64_t bytes);

  uint64_t budget_;
  mutable std::mutex mu_;
  DeviceMemoryStats stats_;
  std::multimap<uint64_t, void*> cache_;  // device buffers by size
};

struct CpuDeviceOptions {
  uint64_t budget_bytes = 0;  // 0: no limit
  // Before each task a stream worker sleeps a random 0..jitter_us: tests use
  // it to shake out missing dependencies (work that only happens to run in
  // the right order).
  int jitter_us = 0;
  uint64_t seed = 1;
};

// The CPU device: "device memory" is host memory, every stream a worker
// thread running its tasks in order, events fences with steady-clock times,
// graphs replay the enqueue function. Ops use the cpu_kernels references.
std::unique_ptr<Device> make_cpu_device(const CpuDeviceOptions& options = {});

// The CUDA device `index` with a memory budget (0: the device's free memory
// at creation). Fails with the runtime's reason when there is no such device,
// and with unsupported when strata was built without CUDA.
Result<std::unique_ptr<Device>> make_cuda_device(int index, uint64_t budget_bytes);

}  // namespace strata
