// The hybrid step. Per MoE layer, on two streams:
//
//   compute: [start] pre -> x_moe, ids, weights to pinned host -> [d2h]
//            [shared_start] shared -> [shared_done] wait(routed_ready)
//            [combine_start] hidden += routed + shared [end]
//   host:    wait(d2h) -> CPU experts (host function) -> routed to device
//            -> [routed_ready]
//
// Every read is ordered after its producer by stream order or an event:
// the host function reads the pinned copies after d2h; the copy back reads
// host_routed after the host function (same stream); the combine reads
// `routed` after routed_ready. One set of buffers serves every layer since
// layer L+1's `pre` follows layer L's combine on the compute stream, and
// layer L+1's host work waits for its own d2h, which follows that combine.
#include "offload/hybrid_scheduler.h"

#include <algorithm>
#include <chrono>

namespace strata {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Status named(const std::string& layer, const char* what, Status st) {
  if (st.is_ok()) return st;
  return Status(st.code(), layer + ": " + what + ": " + st.message());
}

}  // namespace

struct HybridScheduler::LayerEvents {
  std::unique_ptr<DeviceEvent> start, d2h, shared_start, shared_done, routed_ready, combine_start, end;
};

struct HybridScheduler::GraphEntry {
  int64_t n_rows = 0;
  const HybridLayer* layers = nullptr;
  size_t n_layers = 0;
  std::unique_ptr<DeviceGraph> graph;
};

HybridScheduler::HybridScheduler(Device& device, ExpertExecutor& executor, const HybridConfig& config)
    : dev_(device), executor_(executor), cfg_(config) {}

HybridScheduler::~HybridScheduler() {
  // Nothing may still run against the buffers and events below.
  if (compute_) (void)dev_.sync(*compute_);
  if (host_) (void)dev_.sync(*host_);
}

Result<std::unique_ptr<HybridScheduler>> HybridScheduler::create(Device& device, ExpertExecutor& executor,
                                                                 const HybridConfig& config) {
  if (config.n_embd < 1 || config.max_rows < 1 || config.n_used < 0) {
    return invalid_argument("hybrid scheduler: expected n_embd >= 1, max_rows >= 1 and n_used >= 0, got " +
                            std::to_string(config.n_embd) + ", " + std::to_string(config.max_rows) + ", " +
                            std::to_string(config.n_used));
  }
  std::unique_ptr<HybridScheduler> s(new HybridScheduler(device, executor, config));
  STRATA_ASSIGN_OR_RETURN(s->compute_, device.create_stream());
  STRATA_ASSIGN_OR_RETURN(s->host_, device.create_stream());
  STRATA_ASSIGN_OR_RETURN(s->origin_, device.create_event());
  const uint64_t rows = uint64_t(config.max_rows), e = uint64_t(config.n_embd), k = uint64_t(config.n_used);
  auto take = [&](MemKind kind, uint64_t bytes, const char* what) -> Result<void*> {
    STRATA_ASSIGN_OR_RETURN(DeviceBuffer b, device.alloc(kind, bytes, std::string("hybrid scheduler ") + what));
    void* p = b.data();
    s->mem_.push_back(std::move(b));
    return p;
  };
  HybridBuffers& b = s->bufs_;
  STRATA_ASSIGN_OR_RETURN(void* p, take(MemKind::kDevice, rows * e * 4, "hidden rows"));
  b.hidden = static_cast<float*>(p);
  STRATA_ASSIGN_OR_RETURN(p, take(MemKind::kDevice, rows * e * 4, "expert input rows"));
  b.x_moe = static_cast<float*>(p);
  STRATA_ASSIGN_OR_RETURN(p, take(MemKind::kDevice, rows * e * 4, "shared expert rows"));
  b.shared = static_cast<float*>(p);
  STRATA_ASSIGN_OR_RETURN(p, take(MemKind::kDevice, rows * e * 4, "routed expert rows"));
  b.routed = static_cast<float*>(p);
  if (k > 0) {
    STRATA_ASSIGN_OR_RETURN(p, take(MemKind::kDevice, rows * k * 4, "expert ids"));
    b.ids = static_cast<int32_t*>(p);
    STRATA_ASSIGN_OR_RETURN(p, take(MemKind::kDevice, rows * k * 4, "expert weights"));
    b.weights = static_cast<float*>(p);
    STRATA_ASSIGN_OR_RETURN(p, take(MemKind::kPinnedHost, rows * k * 4, "pinned expert ids"));
    b.host_ids = static_cast<int32_t*>(p);
    STRATA_ASSIGN_OR_RETURN(p, take(MemKind::kPinnedHost, rows * k * 4, "pinned expert weights"));
    b.host_weights = static_cast<float*>(p);
  }
  STRATA_ASSIGN_OR_RETURN(p, take(MemKind::kPinnedHost, rows * e * 4, "pinned expert input rows"));
  b.host_x = static_cast<float*>(p);
  STRATA_ASSIGN_OR_RETURN(p, take(MemKind::kPinnedHost, rows * e * 4, "pinned routed rows"));
  b.host_routed = static_cast<float*>(p);
  return s;
}

Status HybridScheduler::ensure_layer_events(size_t n_layers) {
  while (events_.size() < n_layers) {
    auto ev = std::make_unique<LayerEvents>();
    for (auto* e : {&ev->start, &ev->d2h, &ev->shared_start, &ev->shared_done, &ev->routed_ready, &ev->combine_start,
                    &ev->end}) {
      STRATA_ASSIGN_OR_RETURN(*e, dev_.create_event());
    }
    events_.push_back(std::move(ev));
  }
  if (clocks_.size() < n_layers) clocks_.resize(n_layers);
  return Status::ok();
}

Status HybridScheduler::enqueue_step(std::span<const HybridLayer> layers, int64_t n_rows) {
  DeviceStream& S = *compute_;
  DeviceStream& H = *host_;
  const uint64_t row_bytes = uint64_t(cfg_.n_embd) * 4, k_bytes = uint64_t(cfg_.n_used) * 4;
  STRATA_RETURN_IF_ERROR(dev_.enqueue_host(S, [this] { host_origin_ = now_s(); }));
  STRATA_RETURN_IF_ERROR(dev_.record(*origin_, S));
  for (size_t i = 0; i < layers.size(); ++i) {
    const HybridLayer& L = layers[i];
    LayerEvents& E = *events_[i];
    STRATA_RETURN_IF_ERROR(dev_.record(*E.start, S));
    if (L.pre) STRATA_RETURN_IF_ERROR(named(L.name, "device work before the experts", L.pre(S, bufs_)));
    if (L.experts) {
      STRATA_RETURN_IF_ERROR(dev_.copy_to_host(S, bufs_.host_x, bufs_.x_moe, uint64_t(n_rows) * row_bytes));
      STRATA_RETURN_IF_ERROR(dev_.copy_to_host(S, bufs_.host_ids, bufs_.ids, uint64_t(n_rows) * k_bytes));
      STRATA_RETURN_IF_ERROR(dev_.copy_to_host(S, bufs_.host_weights, bufs_.weights, uint64_t(n_rows) * k_bytes));
      STRATA_RETURN_IF_ERROR(dev_.record(*E.d2h, S));
      STRATA_RETURN_IF_ERROR(dev_.wait(H, *E.d2h));
      // The host function captures only stable state (this, the layer's
      // index, name and expert tensors, the row count): a captured graph
      // calls it again at every launch.
      STRATA_RETURN_IF_ERROR(dev_.enqueue_host(H, [this, i, experts = L.experts, name = L.name, n_rows] {
        {
          std::lock_guard<std::mutex> lock(status_mu_);
          if (!step_status_.is_ok()) return;  // an earlier layer failed: the step is over
        }
        clocks_[i].cpu_start = now_s() - host_origin_;
        ExpertRouting r;
        r.x = bufs_.host_x;
        r.n_rows = n_rows;
        r.n_used = cfg_.n_used;
        r.ids = bufs_.host_ids;
        r.weights = bufs_.host_weights;
        Status st = executor_.run(*experts, r, bufs_.host_routed);
        clocks_[i].cpu_end = now_s() - host_origin_;
        if (!st.is_ok()) {
          std::lock_guard<std::mutex> lock(status_mu_);
          if (step_status_.is_ok()) step_status_ = named(name, "routed experts", st);
        }
      }));
      STRATA_RETURN_IF_ERROR(dev_.copy_to_device(H, bufs_.routed, bufs_.host_routed, uint64_t(n_rows) * row_bytes));
      STRATA_RETURN_IF_ERROR(dev_.record(*E.routed_ready, H));
    }
    STRATA_RETURN_IF_ERROR(dev_.record(*E.shared_start, S));
    if (L.shared) STRATA_RETURN_IF_ERROR(named(L.name, "shared expert", L.shared(S, bufs_)));
    STRATA_RETURN_IF_ERROR(dev_.record(*E.shared_done, S));
    if (L.experts) STRATA_RETURN_IF_ERROR(dev_.wait(S, *E.routed_ready));
    STRATA_RETURN_IF_ERROR(dev_.record(*E.combine_start, S));
    if (L.experts || L.shared) {
      const float* a = L.experts ? bufs_.routed : bufs_.shared;
      const float* b = L.experts && L.shared ? bufs_.shared : nullptr;
      STRATA_RETURN_IF_ERROR(named(L.name, "combine", dev_.add(S, bufs_.hidden, a, b, n_rows * cfg_.n_embd)));
    }
    STRATA_RETURN_IF_ERROR(dev_.record(*E.end, S));
  }
  return Status::ok();
}

Status HybridScheduler::finish_step(std::span<const HybridLayer> layers, Status enqueue_status) {
  // Drain both streams whatever happened: nothing may still run against the
  // buffers when the caller regains control.
  Status s1 = dev_.sync(*compute_);
  Status s2 = dev_.sync(*host_);
  STRATA_RETURN_IF_ERROR(enqueue_status);
  STRATA_RETURN_IF_ERROR(s1);
  STRATA_RETURN_IF_ERROR(s2);
  {
    std::lock_guard<std::mutex> lock(status_mu_);
    STRATA_RETURN_IF_ERROR(step_status_);
  }
  ++n_steps_;
  return collect_timing(layers);
}

Status HybridScheduler::collect_timing(std::span<const HybridLayer> layers) {
  HybridStepTiming t;
  double busy = 0, cpu = 0, sync_sum = 0;
  int n_moe = 0;
  double first = 0, last = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    LayerEvents& E = *events_[i];
    auto at = [&](DeviceEvent& e) { return dev_.elapsed_s(*origin_, e); };
    STRATA_ASSIGN_OR_RETURN(const double start, at(*E.start));
    STRATA_ASSIGN_OR_RETURN(const double sh0, at(*E.shared_start));
    STRATA_ASSIGN_OR_RETURN(const double sh1, at(*E.shared_done));
    STRATA_ASSIGN_OR_RETURN(const double comb, at(*E.combine_start));
    STRATA_ASSIGN_OR_RETURN(const double end, at(*E.end));
    HybridLayerTiming L;
    L.name = layers[i].name;
    L.wall_s = end - start;
    L.device_busy_s = (sh1 - start) + (end - comb);
    L.sync_s = comb - sh1;
    L.shared_start_s = sh0;
    L.shared_end_s = sh1;
    if (layers[i].experts) {
      L.cpu_start_s = clocks_[i].cpu_start;
      L.cpu_end_s = clocks_[i].cpu_end;
      L.cpu_busy_s = L.cpu_end_s - L.cpu_start_s;
      L.overlap_s = std::max(0.0, std::min(L.cpu_end_s, sh1) - std::max(L.cpu_start_s, sh0));
      sync_sum += L.sync_s;
      ++n_moe;
    }
    busy += L.device_busy_s;
    cpu += L.cpu_busy_s;
    if (i == 0) first = start;
    last = end;
    t.layers.push_back(std::move(L));
  }
  t.wall_s = last - first;
  if (t.wall_s > 0) {
    t.device_idle_pct = std::clamp(100.0 * (1.0 - busy / t.wall_s), 0.0, 100.0);
    t.cpu_idle_pct = std::clamp(100.0 * (1.0 - cpu / t.wall_s), 0.0, 100.0);
  }
  t.sync_per_layer_s = n_moe ? sync_sum / n_moe : 0.0;
  timing_ = std::move(t);
  return Status::ok();
}

namespace {

Status check_step(std::span<const HybridLayer> layers, int64_t n_rows, const HybridConfig& cfg) {
  if (n_rows < 1 || n_rows > cfg.max_rows) {
    return invalid_argument("hybrid step: expected 1.." + std::to_string(cfg.max_rows) + " rows, got " +
                            std::to_string(n_rows));
  }
  for (const HybridLayer& L : layers) {
    if (!L.experts) continue;
    if (cfg.n_used < 1) {
      return invalid_argument(L.name + ": a MoE layer needs n_used >= 1 in the scheduler's config");
    }
    if (L.experts->n_embd() != cfg.n_embd) {
      return invalid_argument(L.name + ": expected experts of width " + std::to_string(cfg.n_embd) + ", got " +
                              std::to_string(L.experts->n_embd()));
    }
  }
  return Status::ok();
}

}  // namespace

Status HybridScheduler::run_step(std::span<const HybridLayer> layers, int64_t n_rows) {
  STRATA_RETURN_IF_ERROR(check_step(layers, n_rows, cfg_));
  STRATA_RETURN_IF_ERROR(ensure_layer_events(layers.size()));
  step_status_ = Status::ok();
  std::fill(clocks_.begin(), clocks_.end(), LayerClock{});
  bufs_.n_rows = n_rows;
  return finish_step(layers, enqueue_step(layers, n_rows));
}

Status HybridScheduler::run_step_graph(std::span<const HybridLayer> layers, int64_t n_rows) {
  STRATA_RETURN_IF_ERROR(check_step(layers, n_rows, cfg_));
  STRATA_RETURN_IF_ERROR(ensure_layer_events(layers.size()));
  GraphEntry* entry = nullptr;
  for (auto& g : graphs_) {
    if (g->n_rows == n_rows && g->layers == layers.data() && g->n_layers == layers.size()) entry = g.get();
  }
  bufs_.n_rows = n_rows;
  if (!entry) {
    // A graph for other layers (a different model) is of no further use.
    std::erase_if(graphs_, [&](const auto& g) { return g->layers != layers.data() || g->n_layers != layers.size(); });
    auto g = std::make_unique<GraphEntry>();
    g->n_rows = n_rows;
    g->layers = layers.data();
    g->n_layers = layers.size();
    STRATA_ASSIGN_OR_RETURN(g->graph, dev_.capture(*compute_, [&] { return enqueue_step(layers, n_rows); }));
    ++n_captures_;
    entry = g.get();
    graphs_.push_back(std::move(g));
  }
  step_status_ = Status::ok();
  std::fill(clocks_.begin(), clocks_.end(), LayerClock{});
  return finish_step(layers, dev_.launch(*entry->graph, *compute_));
}

}  // namespace strata
