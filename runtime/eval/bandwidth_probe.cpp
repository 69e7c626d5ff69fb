// The read-bandwidth probe: persistent threads meet at a barrier, each sums
// its slice with one of the read loops (cpu_kernels/read_loops.h), and the
// pass ends when the last thread reaches the barrier again. The loops take
// turns, pass by pass, and the fastest one's passes are the result.
#include "runtime/eval/bandwidth_probe.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sched.h>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>

#include "cpu_kernels/read_loops.h"

namespace strata {
namespace {

// A new thread inherits its creator's CPU affinity: a caller that CpuPool
// pinned to one core (any thread that ran a pool op) would put every probe
// thread on that core and measure half the machine or less. The kernel
// keeps only the CPUs this process may use.
void allow_every_cpu() {
  cpu_set_t all;
  CPU_ZERO(&all);
  for (int c = 0; c < CPU_SETSIZE; ++c) CPU_SET(c, &all);
  (void)sched_setaffinity(0, sizeof all, &all);
}

uint64_t parse_cache_size(const std::string& s) {
  // "32K", "4096K", "260M"
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (end == s.c_str()) return 0;
  switch (*end) {
    case 'K': return v << 10;
    case 'M': return v << 20;
    case 'G': return v << 30;
    default: return v;
  }
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace

uint64_t last_level_cache_bytes() {
  uint64_t best = 0;
  int best_level = -1;
  for (int i = 0; i < 16; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::ifstream level_in(dir + "level"), size_in(dir + "size"), type_in(dir + "type");
    if (!level_in || !size_in) break;
    int level = 0;
    std::string size, type;
    level_in >> level;
    size_in >> size;
    type_in >> type;
    if (type == "Instruction") continue;
    const uint64_t bytes = parse_cache_size(size);
    if (level > best_level || (level == best_level && bytes > best)) best_level = level, best = bytes;
  }
  return best;
}

Result<BandwidthProbeResult> probe_read_bandwidth(const BandwidthProbeOptions& o) {
  BandwidthProbeResult r;
  r.llc_bytes = last_level_cache_bytes();
  r.n_threads = o.n_threads > 0 ? o.n_threads : int(std::max(1u, std::thread::hardware_concurrency()));
  uint64_t bytes = o.buffer_bytes;
  if (bytes == 0) {
    bytes = std::max<uint64_t>(4 * r.llc_bytes, uint64_t(1) << 30);
    // Never more than a quarter of physical memory.
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) bytes = std::min<uint64_t>(bytes, uint64_t(pages) * uint64_t(page) / 4);
  }
  const uint64_t align = 4096;
  bytes = std::max<uint64_t>(align * uint64_t(r.n_threads), bytes / align * align);
  r.buffer_bytes = bytes;
  if (o.n_runs < 1) return invalid_argument("probe runs: expected at least 1, got " + std::to_string(o.n_runs));

  std::unique_ptr<uint64_t, FreeDeleter> buf(static_cast<uint64_t*>(std::aligned_alloc(align, bytes)));
  if (!buf) return out_of_memory("bandwidth probe: cannot allocate " + std::to_string(bytes) + " bytes");
  const uint64_t n_words = bytes / 8;
  const int n_t = r.n_threads;
  // Slices are whole 128-byte lines of 16 words (the buffer is 4096-aligned).
  const uint64_t n_lines = n_words / 16;
  auto slice = [&](int t, uint64_t& b, uint64_t& e) {
    b = 16 * (n_lines * uint64_t(t) / uint64_t(n_t));
    e = 16 * (n_lines * uint64_t(t + 1) / uint64_t(n_t));
  };
  const std::vector<ReadLoop> loops = read_loops();
  const int n_loops = static_cast<int>(loops.size());

  // Pass 0 writes the buffer (first touch), pass 1 reads it untimed, passes
  // 2.. are timed, n_runs per loop, the loops taking turns. Thread 0 is the
  // calling thread and keeps the clock.
  std::barrier sync(n_t);
  std::atomic<uint64_t> sink{0};  // keeps the reads from being optimized away
  const int n_pass = o.n_runs * n_loops + 2;
  auto work = [&](int t, int pass) {
    uint64_t b, e;
    slice(t, b, e);
    uint64_t* w = buf.get();
    if (pass == 0) {
      for (uint64_t i = b; i < e; ++i) w[i] = i * 0x9E3779B97F4A7C15ull;
    } else {
      sink.fetch_add(read_loop_of_pass(loops, pass, 2).sum(w + b, e - b), std::memory_order_relaxed);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < n_t; ++t) {
    pool.emplace_back([&, t] {
      allow_every_cpu();
      for (int pass = 0; pass < n_pass; ++pass) {
        sync.arrive_and_wait();
        work(t, pass);
        sync.arrive_and_wait();
      }
    });
  }
  for (int pass = 0; pass < n_pass; ++pass) {
    sync.arrive_and_wait();
    const auto t0 = std::chrono::steady_clock::now();
    work(0, pass);
    sync.arrive_and_wait();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (pass >= 2) r.gbps.push_back(double(bytes) / s / 1e9);
  }
  for (auto& th : pool) th.join();

  BestReadLoop best = best_read_loop(r.gbps, loops.size());
  r.kernel = loops[best.loop].name;
  r.gbps = std::move(best.gbps);
  r.median_gbps = best.median_gbps;
  return r;
}

}  // namespace strata
