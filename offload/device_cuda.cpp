// The CUDA Device: streams and events are CUDA's, host functions go through
// cudaLaunchHostFunc, graphs are stream captures instantiated once and
// replayed with cudaGraphLaunch, and the ops are the gpu_kernels launchers.
// Built only with STRATA_HAVE_CUDA. Every entry point selects the device
// first, since the calling thread's current device may be another one.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "gpu_kernels/attention.cuh"
#include "gpu_kernels/dequant.cuh"
#include "gpu_kernels/elementwise.cuh"
#include "gpu_kernels/gemm.cuh"
#include "gpu_kernels/gemv.cuh"
#include "gpu_kernels/rmsnorm.cuh"
#include "gpu_kernels/rope.cuh"
#include "gpu_kernels/router.cuh"
#include "offload/device.h"

namespace strata {
namespace {

Status cuda_ok(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::ok();
  return internal_error(std::string(what) + ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

struct CudaStream final : DeviceStream {
  cudaStream_t s = nullptr;
  ~CudaStream() override {
    if (s) cudaStreamDestroy(s);
  }
};

struct CudaEvent final : DeviceEvent {
  cudaEvent_t e = nullptr;
  ~CudaEvent() override {
    if (e) cudaEventDestroy(e);
  }
};

// A host function's closure. Outside a capture it is freed after its one
// call; inside a capture the graph owns it, since every launch calls it again.
struct HostFn {
  std::function<void()> fn;
  bool graph_owned = false;
};

void CUDART_CB host_trampoline(void* p) {
  auto* h = static_cast<HostFn*>(p);
  h->fn();
  if (!h->graph_owned) delete h;
}

struct CudaGraph final : DeviceGraph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  std::vector<std::unique_ptr<HostFn>> host_fns;
  ~CudaGraph() override {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
  }
};

cudaStream_t cs(DeviceStream& s) { return static_cast<CudaStream&>(s).s; }

gpu::GpuKvLayer to_gpu(const DeviceKvLayer& kv) {
  gpu::GpuKvLayer g;
  g.dtype = kv.dtype;
  g.k = kv.k;
  g.v = kv.v;
  g.block_stride = kv.block_stride;
  g.block_size = kv.block_size;
  g.k_width = kv.k_width;
  g.v_width = kv.v_width;
  g.block_table = kv.block_table;
  g.max_blocks = kv.max_blocks;
  return g;
}

gpu::AttnArgs to_gpu(const DeviceAttention& a) {
  gpu::AttnArgs g;
  g.q = a.q;
  g.q_token_stride = a.q_token_stride;
  g.q_head_stride = a.q_head_stride;
  g.out = a.out;
  g.out_token_stride = a.out_token_stride;
  g.out_head_stride = a.out_head_stride;
  g.n_head = a.n_head;
  g.n_head_kv = a.n_head_kv;
  g.d_k = a.d_k;
  g.d_v = a.d_v;
  g.scale = a.scale;
  g.seq = a.seq;
  g.pos = a.pos;
  g.n_tokens = a.n_tokens;
  return g;
}

// Above this many rows a product goes to the bf16 tensor-core GEMM.
constexpr int64_t kGemvMaxRows = 8;
constexpr uint64_t kGemmScratchBytes = 64ull << 20;

class CudaDevice final : public Device {
 public:
  CudaDevice(int index, uint64_t budget, std::string name, int sm_count)
      : Device(budget), index_(index), name_(std::move(name)), sm_count_(sm_count) {}
  ~CudaDevice() override {
    cudaSetDevice(index_);
    gemm_scratch_.reset();
    release_pool();
    if (cublas_) cublasDestroy(cublas_);
  }

  DeviceKind kind() const override { return DeviceKind::kCuda; }
  std::string name() const override { return name_; }

  Result<std::unique_ptr<DeviceStream>> create_stream() override {
    STRATA_RETURN_IF_ERROR(use());
    auto st = std::make_unique<CudaStream>();
    STRATA_RETURN_IF_ERROR(cuda_ok(cudaStreamCreateWithFlags(&st->s, cudaStreamNonBlocking), "cudaStreamCreate"));
    return std::unique_ptr<DeviceStream>(std::move(st));
  }
  Result<std::unique_ptr<DeviceEvent>> create_event() override {
    STRATA_RETURN_IF_ERROR(use());
    auto ev = std::make_unique<CudaEvent>();
    STRATA_RETURN_IF_ERROR(cuda_ok(cudaEventCreate(&ev->e), "cudaEventCreate"));
    return std::unique_ptr<DeviceEvent>(std::move(ev));
  }
  Status record(DeviceEvent& e, DeviceStream& s) override {
    STRATA_RETURN_IF_ERROR(use());
    return cuda_ok(cudaEventRecord(static_cast<CudaEvent&>(e).e, cs(s)), "cudaEventRecord");
  }
  Status wait(DeviceStream& s, DeviceEvent& e) override {
    STRATA_RETURN_IF_ERROR(use());
    return cuda_ok(cudaStreamWaitEvent(cs(s), static_cast<CudaEvent&>(e).e, 0), "cudaStreamWaitEvent");
  }
  Status sync(DeviceEvent& e) override {
    STRATA_RETURN_IF_ERROR(use());
    return cuda_ok(cudaEventSynchronize(static_cast<CudaEvent&>(e).e), "cudaEventSynchronize");
  }
  Status sync(DeviceStream& s) override {
    STRATA_RETURN_IF_ERROR(use());
    return cuda_ok(cudaStreamSynchronize(cs(s)), "cudaStreamSynchronize");
  }
  Result<double> elapsed_s(DeviceEvent& from, DeviceEvent& to) override {
    STRATA_RETURN_IF_ERROR(use());
    float ms = 0;
    STRATA_RETURN_IF_ERROR(cuda_ok(
        cudaEventElapsedTime(&ms, static_cast<CudaEvent&>(from).e, static_cast<CudaEvent&>(to).e), "cudaEventElapsedTime"));
    return double(ms) * 1e-3;
  }
  Status enqueue_host(DeviceStream& s, std::function<void()> fn) override {
    STRATA_RETURN_IF_ERROR(use());
    auto h = std::make_unique<HostFn>();
    h->fn = std::move(fn);
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    STRATA_RETURN_IF_ERROR(cuda_ok(cudaStreamIsCapturing(cs(s), &capture), "cudaStreamIsCapturing"));
    HostFn* raw = h.get();
    if (capture == cudaStreamCaptureStatusActive) {
      h->graph_owned = true;
      std::lock_guard<std::mutex> lock(capture_mu_);
      capture_host_fns_.push_back(std::move(h));
    } else {
      h.release();
    }
    const cudaError_t err = cudaLaunchHostFunc(cs(s), host_trampoline, raw);
    if (err != cudaSuccess && !raw->graph_owned) delete raw;
    return cuda_ok(err, "cudaLaunchHostFunc");
  }

  Status copy_to_device(DeviceStream& s, void* dst, const void* src, uint64_t bytes) override {
    return copy(s, dst, src, bytes, cudaMemcpyHostToDevice, "copy_to_device");
  }
  Status copy_to_host(DeviceStream& s, void* dst, const void* src, uint64_t bytes) override {
    return copy(s, dst, src, bytes, cudaMemcpyDeviceToHost, "copy_to_host");
  }
  Status copy_on_device(DeviceStream& s, void* dst, const void* src, uint64_t bytes) override {
    return copy(s, dst, src, bytes, cudaMemcpyDeviceToDevice, "copy_on_device");
  }
  Status fill_zero(DeviceStream& s, void* dst, uint64_t bytes) override {
    STRATA_RETURN_IF_ERROR(use());
    return cuda_ok(cudaMemsetAsync(dst, 0, bytes, cs(s)), "fill_zero");
  }

  Result<std::unique_ptr<DeviceGraph>> capture(DeviceStream& s, const std::function<Status()>& enqueue) override {
    STRATA_RETURN_IF_ERROR(use());
    {
      std::lock_guard<std::mutex> lock(capture_mu_);
      if (capturing_) return invalid_argument("capture: a capture is already in progress");
      capturing_ = true;
      capture_host_fns_.clear();
    }
    auto g = std::make_unique<CudaGraph>();
    // Thread-local mode: other threads may keep using CUDA (e.g. loading
    // weights) while this thread captures.
    Status st = cuda_ok(cudaStreamBeginCapture(cs(s), cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    if (st.is_ok()) {
      Status body = enqueue();
      Status end = cuda_ok(cudaStreamEndCapture(cs(s), &g->graph), "cudaStreamEndCapture");
      st = body.is_ok() ? end : body;
    }
    {
      std::lock_guard<std::mutex> lock(capture_mu_);
      g->host_fns = std::move(capture_host_fns_);
      capture_host_fns_.clear();
      capturing_ = false;
    }
    STRATA_RETURN_IF_ERROR(st);
    STRATA_RETURN_IF_ERROR(cuda_ok(cudaGraphInstantiate(&g->exec, g->graph, 0), "cudaGraphInstantiate"));
    return std::unique_ptr<DeviceGraph>(std::move(g));
  }
  Status launch(DeviceGraph& g, DeviceStream& s) override {
    STRATA_RETURN_IF_ERROR(use());
    return cuda_ok(cudaGraphLaunch(static_cast<CudaGraph&>(g).exec, cs(s)), "cudaGraphLaunch");
  }

  Status embed(DeviceStream& s, const DeviceWeight& table, const int32_t* ids, int64_t n_tokens, float* out) override {
    STRATA_RETURN_IF_ERROR(use());
    return gpu::embed_rows(table.type, table.data, table.n_in, table.n_out, ids, n_tokens, out, table.n_in, cs(s));
  }
  Status rms_norm(DeviceStream& s, const float* x, const float* w, int64_t n_rows, int64_t n, float eps,
                  float* y) override {
    STRATA_RETURN_IF_ERROR(use());
    return gpu::rms_norm_rows(x, n, w, n, n_rows, eps, y, n, cs(s));
  }
  Status matmul(DeviceStream& s, const DeviceWeight& w, const float* x, int64_t x_stride, int64_t n_rows, float* y,
                int64_t y_stride) override {
    STRATA_RETURN_IF_ERROR(use());
    if (w.n_mat == 1 && n_rows > kGemvMaxRows) {
      STRATA_RETURN_IF_ERROR(ensure_gemm(s));
      return gpu::gemm_bf16(cublas_, w.type, w.data, w.n_in, w.n_out, x, x_stride, n_rows, y, y_stride,
                            gemm_scratch_.data(), gemm_scratch_.bytes(), cs(s));
    }
    gpu::GemvArgs a;
    a.type = w.type;
    a.w = w.data;
    a.n_in = w.n_in;
    a.n_out = w.n_out;
    a.n_mat = w.n_mat;
    a.mat_bytes = w.mat_bytes;
    a.x = x;
    a.x_stride = x_stride;
    a.y = y;
    a.y_stride = y_stride;
    a.n_rows = n_rows;
    return gpu::gemv(a, cs(s));
  }
  Status rope(DeviceStream& s, const RopeParams& p, const int32_t* pos, float* x, int64_t n_tokens, int64_t row_stride,
              int64_t offset, int64_t n_heads, int64_t head_stride) override {
    STRATA_RETURN_IF_ERROR(use());
    gpu::GpuRopeParams g;
    g.n_dims = p.n_dims;
    g.neox = p.style == RopeStyle::kNeox;
    g.freq_base = p.freq_base;
    g.freq_scale = p.freq_scale;
    g.ext_factor = p.ext_factor;
    g.attn_factor = p.attn_factor;
    g.beta_fast = p.beta_fast;
    g.beta_slow = p.beta_slow;
    g.n_ctx_orig = p.n_ctx_orig;
    g.freq_factors = p.freq_factors;
    return gpu::rope_rows(g, pos, x, n_tokens, row_stride, offset, n_heads, head_stride, cs(s));
  }
  Status swiglu(DeviceStream& s, const float* gate, const float* up, float* out, int64_t n) override {
    STRATA_RETURN_IF_ERROR(use());
    return gpu::swiglu(gate, up, out, n, cs(s));
  }
  Status add(DeviceStream& s, float* y, const float* a, const float* b, int64_t n) override {
    STRATA_RETURN_IF_ERROR(use());
    return gpu::add_rows(y, a, b, 1, n, n, cs(s));
  }
  Status copy_rows(DeviceStream& s, const float* src, int64_t src_stride, float* dst, int64_t dst_stride,
                   int64_t n_rows, int64_t n_cols) override {
    STRATA_RETURN_IF_ERROR(use());
    return gpu::copy_rows(src, src_stride, dst, dst_stride, n_rows, n_cols, cs(s));
  }
  Status route(DeviceStream& s, const DeviceRouteConfig& c, const float* logits, int64_t n_rows, const float* bias,
               int32_t* ids, float* weights) override {
    STRATA_RETURN_IF_ERROR(use());
    return gpu::moe_route_rows(c, logits, c.n_expert, n_rows, bias, ids, weights, cs(s));
  }
  Status kv_store(DeviceStream& s, const DeviceKvLayer& kv, const int32_t* seq, const int32_t* pos, int64_t n_tokens,
                  const float* k, const float* v) override {
    STRATA_RETURN_IF_ERROR(use());
    return gpu::kv_store(to_gpu(kv), seq, pos, n_tokens, k, kv.k_width, v, kv.v_width, cs(s));
  }
  size_t attention_workspace_floats(const DeviceKvLayer& kv, const DeviceAttention& a) const override {
    if (a.prefill) return 0;
    const gpu::AttnArgs g = to_gpu(a);
    return gpu::attention_decode_workspace_floats(g, splits(kv, g));
  }
  Status attention(DeviceStream& s, const DeviceKvLayer& kv, const DeviceAttention& a, float* workspace,
                   size_t workspace_floats) override {
    STRATA_RETURN_IF_ERROR(use());
    const gpu::AttnArgs g = to_gpu(a);
    if (a.prefill) return gpu::attention_prefill(to_gpu(kv), g, cs(s));
    return gpu::attention_decode(to_gpu(kv), g, splits(kv, g), workspace, workspace_floats, cs(s));
  }

 protected:
  Result<void*> raw_alloc(MemKind kind, uint64_t bytes) override {
    STRATA_RETURN_IF_ERROR(use());
    void* p = nullptr;
    const cudaError_t err = kind == MemKind::kDevice ? cudaMalloc(&p, bytes) : cudaHostAlloc(&p, bytes, cudaHostAllocDefault);
    if (err != cudaSuccess) {
      cudaGetLastError();
      return out_of_memory(std::string(kind == MemKind::kDevice ? "cudaMalloc" : "cudaHostAlloc") + " of " +
                           format_bytes(bytes) + " failed: " + cudaGetErrorString(err));
    }
    return p;
  }
  void raw_free(MemKind kind, void* p) override {
    cudaSetDevice(index_);
    if (kind == MemKind::kDevice) {
      cudaFree(p);
    } else {
      cudaFreeHost(p);
    }
  }

 private:
  Status use() { return cuda_ok(cudaSetDevice(index_), "cudaSetDevice"); }
  // Split count from the cache's capacity, not the current lengths, so a
  // captured decode step stays valid as sequences grow.
  int32_t splits(const DeviceKvLayer& kv, const gpu::AttnArgs& g) const {
    return gpu::attention_decode_splits(g, kv.max_blocks * kv.block_size, sm_count_);
  }
  Status copy(DeviceStream& s, void* dst, const void* src, uint64_t bytes, cudaMemcpyKind kind, const char* what) {
    STRATA_RETURN_IF_ERROR(use());
    return cuda_ok(cudaMemcpyAsync(dst, src, bytes, kind, cs(s)), what);
  }
  // cuBLAS and its scratch are made on the first prompt-sized product, never
  // inside a capture (allocation is not capturable).
  Status ensure_gemm(DeviceStream& s) {
    if (cublas_ && gemm_scratch_.data()) return Status::ok();
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    STRATA_RETURN_IF_ERROR(cuda_ok(cudaStreamIsCapturing(cs(s), &capture), "cudaStreamIsCapturing"));
    if (capture != cudaStreamCaptureStatusNone) {
      return invalid_argument("matmul: the first prompt-sized product must run before any graph capture");
    }
    if (!cublas_ && cublasCreate(&cublas_) != CUBLAS_STATUS_SUCCESS) {
      cublas_ = nullptr;
      return internal_error("cublasCreate failed");
    }
    STRATA_ASSIGN_OR_RETURN(gemm_scratch_, alloc(MemKind::kDevice, kGemmScratchBytes, "GEMM scratch"));
    return Status::ok();
  }

  int index_;
  std::string name_;
  int sm_count_;
  cublasHandle_t cublas_ = nullptr;
  DeviceBuffer gemm_scratch_;
  std::mutex capture_mu_;
  bool capturing_ = false;
  std::vector<std::unique_ptr<HostFn>> capture_host_fns_;
};

}  // namespace

Result<std::unique_ptr<Device>> make_cuda_device(int index, uint64_t budget_bytes) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return not_found(std::string("no CUDA device: ") + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
  }
  if (n == 0) return not_found("no CUDA device visible");
  if (index < 0 || index >= n) {
    return not_found("CUDA device " + std::to_string(index) + " does not exist (" + std::to_string(n) + " visible)");
  }
  STRATA_RETURN_IF_ERROR(cuda_ok(cudaSetDevice(index), "cudaSetDevice"));
  cudaDeviceProp prop{};
  STRATA_RETURN_IF_ERROR(cuda_ok(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties"));
  size_t free_b = 0, total_b = 0;
  STRATA_RETURN_IF_ERROR(cuda_ok(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo"));
  const uint64_t budget = budget_bytes ? budget_bytes : uint64_t(free_b);
  return std::unique_ptr<Device>(std::make_unique<CudaDevice>(index, budget, prop.name, prop.multiProcessorCount));
}

}  // namespace strata
