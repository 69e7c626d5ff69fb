// The loops the DRAM read-bandwidth probes time (runtime/eval/bandwidth_probe.h
// for the benchmarks, offload/calibrate.cpp for the planner): each sums the
// 64-bit words of a buffer with independent accumulators, so no load waits on
// an add. Which loop reads fastest depends on the CPU: on a 2-core Zen 5 VM,
// 40 passes alternating over 1 GiB, 64-byte loads read 37-42 GB/s without
// software prefetch and 46-50 with it, 32-byte loads 42-49 and 43-51. The
// qgemm kernels prefetch their weights; a probe without prefetch, or with the
// wrong width, reads less than they can and their share of it overstates
// them. A probe times every loop here and keeps the fastest, so "measured
// bandwidth" is what this CPU read, not what one loop did.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace strata {

struct ReadLoop {
  const char* name;  // "avx512", "avx512+prefetch", "avx2", ...
  // Sum of p[0..n_words); p 64-byte aligned, n_words a multiple of 16.
  uint64_t (*sum)(const uint64_t* p, uint64_t n_words);
};

// The loops this CPU runs: its widest loads (AVX-512, AVX2, else SSE2), and
// AVX2 too where it has AVX-512, each without and with a software prefetch
// 4 KiB ahead (as the qgemm kernels prefetch their weights).
std::vector<ReadLoop> read_loops();

// The loop a probe's pass runs: passes [0, n_untimed) set up (a warm-up read
// runs loop 0), and timed pass i (pass n_untimed + i) runs loop i % loops.size(),
// the turns best_read_loop expects.
const ReadLoop& read_loop_of_pass(const std::vector<ReadLoop>& loops, int pass, int n_untimed);

// Timed passes that took turns over n_loops loops (pass i ran loop
// i % n_loops), as GB/s: the loop with the highest median, its passes and
// that median.
struct BestReadLoop {
  size_t loop = 0;
  std::vector<double> gbps;
  double median_gbps = 0;
};
BestReadLoop best_read_loop(const std::vector<double>& gbps, size_t n_loops);

}  // namespace strata
