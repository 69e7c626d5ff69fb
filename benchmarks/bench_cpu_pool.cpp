// Dispatch cost of the CPU pool (Google Benchmark; --benchmark_format=json):
// what one fork/join costs beyond the work it runs, the floor under every
// parallel product of a decode step (about seven per layer).
//
//   fork_join/<op>/threads:T/spin:S
//     an op whose items do nothing: parallel_for over T items of one, or
//     run_on_all, back to back. spin 100: idle threads poll (the default,
//     what decode sees); spin 0: they sleep on the futex between ops, so
//     every op pays a wake-up. Counter join_wait_us: the caller's wait at the
//     join beyond its own share, per op.
//   work/threads:T
//     the same op with ~20 us of arithmetic per thread, for scale.
// Threads are pinned one per core (this machine's topology).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include "offload/cpu_pool.h"
#include "offload/topology.h"

namespace strata {
namespace {

std::unique_ptr<CpuPool> make_pool(int n_threads, int spin_us) {
  auto topo = Topology::this_machine();
  if (!topo.is_ok()) return nullptr;
  CpuPoolOptions o;
  o.n_threads = n_threads;
  o.spin_us = spin_us;
  auto pool = CpuPool::create(*topo, o);
  return pool.is_ok() ? std::move(pool.value()) : nullptr;
}

void report(benchmark::State& state, CpuPool& pool) {
  const CpuPoolStats s = pool.stats();
  const double ops = double(std::max<uint64_t>(1, s.n_ops));
  state.counters["join_wait_us"] = double(s.join_wait_ns) / 1e3 / ops;
  state.counters["wakeups_per_op"] = double(s.n_wakeups) / ops;
}

void BM_ForkJoinFor(benchmark::State& state, int n_threads, int spin_us) {
  auto pool = make_pool(n_threads, spin_us);
  if (!pool) return state.SkipWithError("no pool on this machine");
  volatile int sink = 0;
  for (auto _ : state) {
    pool->parallel_for(n_threads, 1, [&](int64_t b, int64_t, int) { sink = int(b); });
  }
  report(state, *pool);
}

void BM_ForkJoinAll(benchmark::State& state, int n_threads, int spin_us) {
  auto pool = make_pool(n_threads, spin_us);
  if (!pool) return state.SkipWithError("no pool on this machine");
  volatile int sink = 0;
  for (auto _ : state) pool->run_on_all([&](int t) { sink = t; });
  report(state, *pool);
}

void BM_Work(benchmark::State& state, int n_threads) {
  auto pool = make_pool(n_threads, 100);
  if (!pool) return state.SkipWithError("no pool on this machine");
  for (auto _ : state) {
    pool->run_on_all([&](int t) {
      float x = float(t);
      for (int i = 0; i < 20000; ++i) x = x * 0.999f + 1.0f;  // ~20 us, dependent chain
      benchmark::DoNotOptimize(x);
    });
  }
  report(state, *pool);
}

void register_all() {
  auto topo = Topology::this_machine();
  const int n_cores = topo.is_ok() ? int(topo->cores().size()) : 1;
  std::vector<int> counts;
  for (int t = 1; t < n_cores; t *= 2) counts.push_back(t);
  counts.push_back(n_cores);
  for (int t : counts) {
    for (int spin : {100, 0}) {
      const std::string suffix = "/threads:" + std::to_string(t) + "/spin:" + std::to_string(spin);
      benchmark::RegisterBenchmark(("fork_join/parallel_for" + suffix).c_str(), BM_ForkJoinFor, t, spin)
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("fork_join/run_on_all" + suffix).c_str(), BM_ForkJoinAll, t, spin)
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
    benchmark::RegisterBenchmark(("work/threads:" + std::to_string(t)).c_str(), BM_Work, t)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
  }
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  strata::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
