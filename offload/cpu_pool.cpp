// CpuPool: fork/join over persistent threads. One op at a time: the caller
// writes the op, opens it, bumps epoch_ and works on its own share; workers
// that see the new epoch take chunks too, each finished chunk counted in
// done_; the caller returns when all chunks are done and no worker is still
// looking at the op. Idle threads poll for spin_us before sleeping on the
// epoch's futex, so back-to-back ops (a decode step) never pay a wake-up, and
// a thread that wakes late never holds up an op that is already done.
#include "offload/cpu_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// The pool whose op this thread is running (null outside ops) and its thread
// index there: an op started from inside an op runs inline with that index.
thread_local const CpuPool* tl_pool = nullptr;
thread_local int tl_thread = 0;
// The pool this thread last pinned itself for as a caller (thread 0).
thread_local const CpuPool* tl_bound_for = nullptr;

// Polls `done` for up to spin_us, checking the clock every 64 polls.
template <class Done>
bool spin_until(Done done, int spin_us) {
  if (spin_us <= 0) return done();
  const auto limit = Clock::now() + std::chrono::microseconds(spin_us);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (Clock::now() >= limit) return done();
  }
}

}  // namespace

Result<std::vector<CpuThreadPlace>> cpu_pool_places(const Topology& topo, int n_threads) {
  const auto& nodes = topo.numa_nodes();
  const auto& cores = topo.cores();
  if (cores.empty()) return invalid_argument("thread pool: the topology has no cores");
  if (n_threads < 0) return invalid_argument("thread pool: expected a thread count >= 0, got " + std::to_string(n_threads));
  const int n_cores = int(cores.size());
  if (n_threads == 0) n_threads = n_cores;
  if (n_threads > n_cores) {
    return invalid_argument("thread pool: expected at most " + std::to_string(n_cores) +
                            " threads (one per physical core), got " + std::to_string(n_threads));
  }
  // Threads per node in proportion to its cores (largest remainders first,
  // lower node on ties), so that a node's experts get that node's share.
  std::vector<int> per_node(nodes.size(), 0);
  std::vector<std::pair<int64_t, int>> rest;
  int given = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const int64_t num = int64_t(n_threads) * int64_t(nodes[i].cores.size());
    per_node[i] = int(num / n_cores);
    given += per_node[i];
    rest.push_back({-(num % n_cores), int(i)});
  }
  std::sort(rest.begin(), rest.end());
  for (size_t k = 0; given < n_threads && k < rest.size(); ++k) {
    const int i = rest[k].second;
    if (per_node[size_t(i)] < int(nodes[size_t(i)].cores.size())) ++per_node[size_t(i)], ++given;
  }
  std::vector<CpuThreadPlace> places;
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (int k = 0; k < per_node[i]; ++k) places.push_back({nodes[i].cores[size_t(k)], int(i)});
  }
  // Cores hwloc left without a node (not expected; guard anyway).
  for (int c = 0; int(places.size()) < n_threads && c < n_cores; ++c) {
    const bool used = std::any_of(places.begin(), places.end(), [&](const CpuThreadPlace& p) { return p.core == c; });
    if (!used) places.push_back({c, cores[size_t(c)].numa});
  }
  return places;
}

Result<std::unique_ptr<CpuPool>> CpuPool::create(const Topology& topology, const CpuPoolOptions& options) {
  STRATA_ASSIGN_OR_RETURN(std::vector<CpuThreadPlace> places, cpu_pool_places(topology, options.n_threads));
  return std::make_unique<CpuPool>(std::move(places), &topology, options);
}

CpuPool::CpuPool(std::vector<CpuThreadPlace> places, const Topology* topology, const CpuPoolOptions& options)
    : places_(std::move(places)), spin_us_(options.spin_us) {
  if (places_.empty()) places_.push_back({});
  int max_node = 0;
  for (const auto& p : places_) max_node = std::max(max_node, p.numa);
  if (topology) max_node = std::max(max_node, int(topology->numa_nodes().size()) - 1);
  max_node = std::min(max_node, kMaxNodes - 1);
  threads_of_node_.resize(size_t(max_node) + 1);
  for (size_t t = 0; t < places_.size(); ++t) {
    places_[t].numa = std::clamp(places_[t].numa, 0, max_node);
    threads_of_node_[size_t(places_[t].numa)].push_back(int(t));
  }
  for (auto& a : node_next_) a.store(0, std::memory_order_relaxed);
  pinned_ = options.pin && topology && topology->is_this_system() &&
            std::all_of(places_.begin(), places_.end(), [](const CpuThreadPlace& p) { return p.core >= 0; });
  if (pinned_) topology_ = *topology;
  for (int t = 1; t < n_threads(); ++t) threads_.emplace_back([this, t] { worker_main(t); });
}

CpuPool::~CpuPool() {
  stop_.store(true, std::memory_order_seq_cst);
  epoch_.fetch_add(1, std::memory_order_seq_cst);
  epoch_.notify_all();
  for (auto& t : threads_) t.join();
}

void CpuPool::worker_main(int thread) {
  // A failed bind (cpuset restrictions in a container) only costs locality.
  if (pinned_) (void)topology_->bind_this_thread_to_core(places_[size_t(thread)].core);
  tl_pool = this;
  tl_thread = thread;
  uint32_t last = 0;  // the last op this thread ran or saw closed
  for (;;) {
    const bool woke = spin_until([&] { return epoch_.load(std::memory_order_acquire) != last; }, spin_us_);
    if (!woke) {
      // Dekker pair with fork_join: either the caller sees n_sleeping_ > 0 and
      // notifies, or this thread sees the new epoch before sleeping.
      n_sleeping_.fetch_add(1, std::memory_order_seq_cst);
      while (epoch_.load(std::memory_order_seq_cst) == last) epoch_.wait(last, std::memory_order_seq_cst);
      n_sleeping_.fetch_sub(1, std::memory_order_seq_cst);
    }
    // The epoch first, then the stop flag: the destructor sets stop_ before it
    // bumps epoch_, so a worker that has read the bumped epoch sees the stop.
    // (The other order could take the destructor's epoch as seen after an
    // earlier look at stop_ and sleep on it for good.)
    const uint32_t seen = epoch_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    // Announce, then look: the caller closes an op and then waits for
    // active_ == 0, so an op is either seen closed or stays readable.
    active_.fetch_add(1, std::memory_order_seq_cst);
    if (!closed_.load(std::memory_order_seq_cst)) {
      const uint32_t op = op_id_;
      if (op != last) {
        run_share(thread);
        last = op;
      }
    } else {
      last = seen;
    }
    if (active_.fetch_sub(1, std::memory_order_seq_cst) == 1 && caller_sleeping_.load(std::memory_order_seq_cst)) {
      active_.notify_one();
    }
  }
}

void CpuPool::finish(int32_t units) {
  if (done_.fetch_add(units, std::memory_order_seq_cst) + units == total_ &&
      caller_sleeping_.load(std::memory_order_seq_cst)) {
    done_.notify_one();
  }
}

void CpuPool::run_share(int thread) {
  switch (kind_) {
    case Kind::kAll:
      (*all_fn_)(thread);
      finish(1);
      return;
    case Kind::kFor:
      for (;;) {
        const int64_t b = next_.fetch_add(grain_, std::memory_order_relaxed);
        if (b >= n_) return;
        (*for_fn_)(b, std::min(n_, b + grain_), thread);
        finish(1);
      }
    case Kind::kNodes: {
      auto drain = [&](int node) {
        for (;;) {
          const int64_t i = node_next_[node].fetch_add(1, std::memory_order_relaxed);
          if (i >= node_n_[node]) return;
          (*nodes_fn_)(node, i, thread);
          finish(1);
        }
      };
      const int own = places_[size_t(thread)].numa;
      if (own < n_op_nodes_) drain(own);
      for (int node = 0; node < n_op_nodes_; ++node) {
        if (node_orphan_[node]) drain(node);
      }
      return;
    }
  }
}

void CpuPool::fork_join() {
  if (pinned_ && tl_bound_for != this) {
    (void)topology_->bind_this_thread_to_core(places_[0].core);
    tl_bound_for = this;
  }
  tl_pool = this;
  tl_thread = 0;
  if (threads_.empty()) {
    run_share(0);
    tl_pool = nullptr;
    return;
  }
  // Open the op (see the field comments in the header for the protocol).
  op_id_ = epoch_.load(std::memory_order_relaxed) + 1;
  done_.store(0, std::memory_order_relaxed);
  closed_.store(false, std::memory_order_seq_cst);
  epoch_.fetch_add(1, std::memory_order_seq_cst);
  if (n_sleeping_.load(std::memory_order_seq_cst) > 0) {
    epoch_.notify_all();
    n_wakeups_.fetch_add(1, std::memory_order_relaxed);
  }
  run_share(0);
  tl_pool = nullptr;
  const auto t0 = Clock::now();
  // Wait for `counter` to reach `target`, polling first, then on its futex.
  auto wait_for = [&](std::atomic<int32_t>& counter, int32_t target) {
    if (spin_until([&] { return counter.load(std::memory_order_acquire) == target; }, spin_us_)) return;
    caller_sleeping_.store(1, std::memory_order_seq_cst);
    for (int32_t v; (v = counter.load(std::memory_order_seq_cst)) != target;) counter.wait(v, std::memory_order_seq_cst);
    caller_sleeping_.store(0, std::memory_order_relaxed);
  };
  wait_for(done_, total_);
  closed_.store(true, std::memory_order_seq_cst);
  wait_for(active_, 0);
  n_ops_.fetch_add(1, std::memory_order_relaxed);
  join_wait_ns_.fetch_add(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()),
                          std::memory_order_relaxed);
}

void CpuPool::parallel_for(int64_t n, int64_t grain, FnRef<void(int64_t, int64_t, int)> fn) {
  if (n <= 0) return;
  // At most 2^30 chunks, so the op's count fits done_.
  grain = std::max<int64_t>({grain, 1, (n + (int64_t(1) << 30) - 1) >> 30});
  if (tl_pool) {  // nested: inline on this thread
    for (int64_t b = 0; b < n; b += grain) fn(b, std::min(n, b + grain), tl_thread);
    return;
  }
  std::lock_guard<std::mutex> lock(submit_);
  if (n <= grain || threads_.empty()) {
    tl_pool = this;
    tl_thread = 0;
    for (int64_t b = 0; b < n; b += grain) fn(b, std::min(n, b + grain), 0);
    tl_pool = nullptr;
    return;
  }
  kind_ = Kind::kFor;
  n_ = n;
  grain_ = grain;
  total_ = int32_t((n + grain - 1) / grain);
  for_fn_ = &fn;
  next_.store(0, std::memory_order_relaxed);
  fork_join();
}

void CpuPool::run_on_all(FnRef<void(int)> fn) {
  if (tl_pool) {
    fn(tl_thread);
    return;
  }
  std::lock_guard<std::mutex> lock(submit_);
  kind_ = Kind::kAll;
  total_ = n_threads();
  all_fn_ = &fn;
  fork_join();
}

void CpuPool::parallel_for_nodes(std::span<const int64_t> n_per_node, FnRef<void(int, int64_t, int)> fn) {
  if (tl_pool) {
    for (size_t node = 0; node < n_per_node.size(); ++node) {
      for (int64_t i = 0; i < n_per_node[node]; ++i) fn(int(node), i, tl_thread);
    }
    return;
  }
  std::lock_guard<std::mutex> lock(submit_);
  int64_t total = 0;
  for (int64_t c : n_per_node) total += c;
  if (total == 0) return;
  // Without workers, or with more nodes than the pool knows (a caller's
  // mistake, see the header), everything runs here in order.
  if (threads_.empty() || n_per_node.size() > threads_of_node_.size()) {
    tl_pool = this;
    tl_thread = 0;
    for (size_t node = 0; node < n_per_node.size(); ++node) {
      for (int64_t i = 0; i < n_per_node[node]; ++i) fn(int(node), i, 0);
    }
    tl_pool = nullptr;
    return;
  }
  kind_ = Kind::kNodes;
  total_ = int32_t(total);
  nodes_fn_ = &fn;
  n_op_nodes_ = int(n_per_node.size());
  for (int node = 0; node < n_op_nodes_; ++node) {
    node_n_[node] = n_per_node[size_t(node)];
    node_orphan_[node] = threads_of_node_[size_t(node)].empty();
    node_next_[node].store(0, std::memory_order_relaxed);
  }
  fork_join();
}

CpuPoolStats CpuPool::stats() const {
  CpuPoolStats s;
  s.n_ops = n_ops_.load(std::memory_order_relaxed);
  s.join_wait_ns = join_wait_ns_.load(std::memory_order_relaxed);
  s.n_wakeups = n_wakeups_.load(std::memory_order_relaxed);
  return s;
}

void CpuPool::reset_stats() {
  n_ops_.store(0, std::memory_order_relaxed);
  join_wait_ns_.store(0, std::memory_order_relaxed);
  n_wakeups_.store(0, std::memory_order_relaxed);
}

}  // namespace strata
