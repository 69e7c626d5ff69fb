// The persistent CPU thread pool every parallel op runs on: one thread per
// core (pinned when the topology is this machine), started once, woken per op
// by a counter (spin briefly, then sleep on a futex), joined when the op's
// chunks are done. The calling thread is thread 0 and works too; no thread is
// created per op.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "offload/topology.h"
#include "runtime/base/status.h"

namespace strata {

// A non-owning reference to a callable (no allocation, two words). The
// callable must outlive every call, which holds for the pool's ops: they
// return only when every thread is done with it.
template <class Sig>
class FnRef;
template <class R, class... A>
class FnRef<R(A...)> {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FnRef>>>
  FnRef(F&& f)  // NOLINT: implicit by design, like std::function
      : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* o, A... a) -> R { return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<A>(a)...); }) {}
  R operator()(A... a) const { return call_(obj_, std::forward<A>(a)...); }

 private:
  void* obj_;
  R (*call_)(void*, A...);
};

// Where a pool thread runs: a core of the topology (-1: not pinned) and the
// NUMA node (index into Topology::numa_nodes()) whose memory is local to it.
struct CpuThreadPlace {
  int core = -1;
  int numa = 0;
};

struct CpuPoolOptions {
  int n_threads = 0;  // 0: one per physical core; at most one per core when pinned
  bool pin = true;    // bind threads to cores (only when the topology is this machine)
  int spin_us = 100;  // how long an idle thread polls for the next op before sleeping
};

// Counters since the pool started (or reset_stats). The caller's join wait is
// the time thread 0 spends between finishing its own share of an op and the
// last thread finishing: the synchronization cost an op pays beyond its work.
struct CpuPoolStats {
  uint64_t n_ops = 0;        // fork/joins (ops run inline on the caller are not counted)
  uint64_t join_wait_ns = 0; // summed over ops
  uint64_t n_wakeups = 0;    // futex wakes the caller had to issue (workers were asleep)
};

class CpuPool {
 public:
  // Threads on the topology's cores in its order (which keeps a node's cores
  // together), `n_threads` of them spread over the nodes in proportion to their
  // cores. Errors: n_threads negative or above the core count when pinning.
  static Result<std::unique_ptr<CpuPool>> create(const Topology& topology, const CpuPoolOptions& options = {});

  // Threads at the given places, thread 0 being the caller; pinned through
  // `topology` when it is given, is this machine and options.pin is set.
  // places must not be empty.
  CpuPool(std::vector<CpuThreadPlace> places, const Topology* topology, const CpuPoolOptions& options = {});
  ~CpuPool();
  CpuPool(const CpuPool&) = delete;
  CpuPool& operator=(const CpuPool&) = delete;

  int n_threads() const { return int(places_.size()); }
  // Node ids run 0..n_nodes()-1 (topology indices); a node may have no thread.
  int n_nodes() const { return int(threads_of_node_.size()); }
  int node_of_thread(int thread) const { return places_[size_t(thread)].numa; }
  const std::vector<int>& threads_of_node(int node) const { return threads_of_node_[size_t(node)]; }
  const std::vector<CpuThreadPlace>& places() const { return places_; }
  bool pinned() const { return pinned_; }

  // fn(begin, end, thread) over [0, n) in chunks of `grain` (> 0) handed out
  // in order to whichever thread asks next. Returns when all chunks are done.
  void parallel_for(int64_t n, int64_t grain, FnRef<void(int64_t, int64_t, int)> fn);
  // fn(thread) once on every thread.
  void run_on_all(FnRef<void(int)> fn);
  // Items that belong to NUMA nodes: n_per_node[node] items of each node
  // (n_per_node.size() <= n_nodes()); fn(node, item, thread) runs item i of a
  // node on one of that node's threads, in order of asking. Items of a node
  // without threads are run by every thread.
  void parallel_for_nodes(std::span<const int64_t> n_per_node, FnRef<void(int, int64_t, int)> fn);

  // Ops from inside an op run inline on the calling thread (no nesting).
  // Ops from several threads at once are serialized.
  CpuPoolStats stats() const;
  void reset_stats();

 private:
  enum class Kind : uint8_t { kFor, kAll, kNodes };
  static constexpr int kMaxNodes = 64;
  void worker_main(int thread);
  void run_share(int thread);
  void finish(int32_t units);
  void fork_join();

  std::vector<CpuThreadPlace> places_;
  std::vector<std::vector<int>> threads_of_node_;
  std::optional<Topology> topology_;  // set when threads are pinned through it
  bool pinned_ = false;
  int spin_us_ = 100;
  std::vector<std::thread> threads_;

  // The current op. The caller writes these while no worker is inside an op
  // (active_ == 0 after the previous op closed), then opens the op
  // (closed_ = false, seq_cst) and bumps epoch_. A worker touches them only
  // after announcing itself in active_ and then reading closed_ == false,
  // which orders its reads after the caller's writes.
  Kind kind_ = Kind::kFor;
  int64_t n_ = 0, grain_ = 0;
  FnRef<void(int64_t, int64_t, int)>* for_fn_ = nullptr;
  FnRef<void(int)>* all_fn_ = nullptr;
  FnRef<void(int, int64_t, int)>* nodes_fn_ = nullptr;
  int64_t node_n_[kMaxNodes] = {};
  bool node_orphan_[kMaxNodes] = {};
  int n_op_nodes_ = 0;
  int32_t total_ = 0;     // units of work (chunks, items, or threads for run_on_all)
  uint32_t op_id_ = 0;    // the epoch this op was published under
  alignas(64) std::atomic<int64_t> next_{0};
  alignas(64) std::atomic<int64_t> node_next_[kMaxNodes];

  // The join waits for the work (done_ == total_), not for every worker to
  // wake: a worker that wakes late (asleep, or descheduled on a busy machine)
  // finds the op closed and goes back to waiting.
  alignas(64) std::atomic<uint32_t> epoch_{0};
  alignas(64) std::atomic<int32_t> done_{0};    // units finished in the current op
  alignas(64) std::atomic<int32_t> active_{0};  // workers that may be reading the op
  alignas(64) std::atomic<bool> closed_{true};
  alignas(64) std::atomic<int32_t> n_sleeping_{0};
  std::atomic<int32_t> caller_sleeping_{0};
  std::atomic<bool> stop_{false};
  std::mutex submit_;

  std::atomic<uint64_t> n_ops_{0}, join_wait_ns_{0}, n_wakeups_{0};
};

// Pool threads the way CpuPool::create places them; exposed for tests and for
// callers that build their own pool.
Result<std::vector<CpuThreadPlace>> cpu_pool_places(const Topology& topology, int n_threads);

}  // namespace strata
