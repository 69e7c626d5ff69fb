// The hybrid step: per MoE layer, the device runs attention, the router and
// top-k; the normed hidden rows, ids and weights go to pinned host memory;
// the CPU runs the routed experts (ExpertExecutor) while the device runs the
// shared expert; the routed sum comes back and the device adds routed +
// shared into the residual. Written against Device, with each layer's device
// work as callables, so the same code drives a GPU or the CPU test device.
//
// A step is a fixed sequence of enqueues on two streams - `compute` (device
// work and the small copies) and `host` (the CPU experts as a host function,
// the copy back) - joined by events, with one synchronization at its end.
// That makes it capturable as one graph (run_step_graph): the CPU work
// becomes host-function nodes, nothing depends on values only known at
// enqueue time, and the buffers are allocated once, at create().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "offload/device.h"
#include "offload/expert_executor.h"

namespace strata {

// The step's buffers (allocated once, for max_rows rows). Device memory
// unless noted; the layer callables read and write these.
struct HybridBuffers {
  float* hidden = nullptr;   // [rows][n_embd] the residual stream; the caller fills it before a step
  float* x_moe = nullptr;    // [rows][n_embd] normed rows the experts read (written by `pre`)
  int32_t* ids = nullptr;    // [rows][n_used] chosen experts (written by `pre`)
  float* weights = nullptr;  // [rows][n_used] their weights (written by `pre`)
  float* shared = nullptr;   // [rows][n_embd] shared expert / dense FFN output (written by `shared`)
  float* routed = nullptr;   // [rows][n_embd] routed experts' weighted sum (copied back from the CPU)
  // Pinned host copies the CPU experts read and write.
  float* host_x = nullptr;
  int32_t* host_ids = nullptr;
  float* host_weights = nullptr;
  float* host_routed = nullptr;
  int64_t n_rows = 0;        // rows of the current step
};

using DeviceWork = std::function<Status(DeviceStream& s, const HybridBuffers& b)>;

struct HybridLayer {
  std::string name;  // "blk.3": errors and timings name the layer
  // Device: everything up to the experts' input - attention and its residual
  // add into `hidden`, the FFN norm into `x_moe`, router and top-k into
  // `ids`/`weights` (MoE layers only).
  DeviceWork pre;
  // Device, overlapping the CPU experts: the shared expert(s) (or a dense
  // layer's FFN) into `shared`. Empty: nothing to add besides the routed sum.
  DeviceWork shared;
  // The routed experts, run on the CPU by the executor; null for a dense layer.
  const ExpertLayer* experts = nullptr;
};

struct HybridConfig {
  int64_t n_embd = 0;
  int32_t n_used = 0;    // experts per token (0: no MoE layers)
  int64_t max_rows = 1;  // tokens per step at most
};

// Where one layer's time went (seconds). Device times come from events,
// CPU times from the host function's clock, both on the step's time axis.
struct HybridLayerTiming {
  std::string name;
  double wall_s = 0;         // the layer's start to its end on the device stream
  double device_busy_s = 0;  // pre + copies out + shared + combine
  double cpu_busy_s = 0;     // the executor's run
  double sync_s = 0;         // device idle: shared expert done -> routed sum arrived
  double overlap_s = 0;      // CPU experts and device shared expert running at once
  double cpu_start_s = 0, cpu_end_s = 0;        // on the step's axis
  double shared_start_s = 0, shared_end_s = 0;  // on the step's axis
};

struct HybridStepTiming {
  std::vector<HybridLayerTiming> layers;
  double wall_s = 0;
  double device_idle_pct = 0;     // 100 * (1 - sum device_busy / wall)
  double cpu_idle_pct = 0;        // 100 * (1 - sum cpu_busy / wall)
  double sync_per_layer_s = 0;    // mean sync_s over the MoE layers
};

class HybridScheduler {
 public:
  // Allocates the buffers (device and pinned) and the streams and events.
  // Errors: bad sizes; memory beyond the device budget (saying by how much).
  static Result<std::unique_ptr<HybridScheduler>> create(Device& device, ExpertExecutor& executor,
                                                         const HybridConfig& config);
  ~HybridScheduler();

  // Buffers for n_rows rows (the pointers never change).
  const HybridBuffers& buffers() const { return bufs_; }
  DeviceStream& compute_stream() { return *compute_; }
  const HybridConfig& config() const { return cfg_; }

  // Enqueues every layer for n_rows rows and waits for the step. An error -
  // a callable's at enqueue, or the executor's while the step runs - stops
  // the step (no later layer's CPU experts run) and is returned with the
  // layer's name. The device work already enqueued is waited for first.
  Status run_step(std::span<const HybridLayer> layers, int64_t n_rows);

  // The same step as a captured graph: captured on the first call for a
  // given n_rows (and again when `layers` changes), replayed afterwards. The
  // callables run only during capture, so everything they enqueue must read
  // its varying inputs (positions, tokens) from device buffers.
  Status run_step_graph(std::span<const HybridLayer> layers, int64_t n_rows);

  // Timings of the last successful step.
  const HybridStepTiming& last_timing() const { return timing_; }
  // Steps run and graphs captured since create().
  int64_t n_steps() const { return n_steps_; }
  int64_t n_captures() const { return n_captures_; }

 private:
  struct LayerEvents;
  struct LayerClock {
    double cpu_start = 0, cpu_end = 0;  // host clock, seconds since the step's origin
  };

  HybridScheduler(Device& device, ExpertExecutor& executor, const HybridConfig& config);
  Status enqueue_step(std::span<const HybridLayer> layers, int64_t n_rows);
  Status finish_step(std::span<const HybridLayer> layers, Status enqueue_status);
  Status collect_timing(std::span<const HybridLayer> layers);
  Status ensure_layer_events(size_t n_layers);

  Device& dev_;
  ExpertExecutor& executor_;
  HybridConfig cfg_;
  std::unique_ptr<DeviceStream> compute_, host_;
  std::vector<DeviceBuffer> mem_;
  HybridBuffers bufs_;
  std::vector<std::unique_ptr<LayerEvents>> events_;
  std::unique_ptr<DeviceEvent> origin_;
  // Written by host functions during a step, read after it is synchronized.
  std::vector<LayerClock> clocks_;
  double host_origin_ = 0;  // host clock at the step's start, seconds
  Status step_status_;
  std::mutex status_mu_;
  HybridStepTiming timing_;
  int64_t n_steps_ = 0, n_captures_ = 0;
  struct GraphEntry;
  std::vector<std::unique_ptr<GraphEntry>> graphs_;
};

}  // namespace strata
