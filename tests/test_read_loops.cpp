// The read loops of the bandwidth probes: each sums exactly what it reads,
// and a probe keeps the loop with the best median.
#include "cpu_kernels/read_loops.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <set>
#include <string>

#include "runtime/base/rng.h"

namespace strata {
namespace {

TEST(ReadLoops, EachSumsEveryWordItIsGiven) {
  const std::vector<ReadLoop> loops = read_loops();
  ASSERT_GE(loops.size(), 2u);
  constexpr uint64_t kWords = 4096 + 48;
  std::unique_ptr<uint64_t, decltype(&std::free)> buf(
      static_cast<uint64_t*>(std::aligned_alloc(64, kWords * sizeof(uint64_t))), &std::free);
  Xoshiro256 rng(7);
  for (uint64_t i = 0; i < kWords; ++i) buf.get()[i] = rng.next();
  for (uint64_t n : {uint64_t(16), uint64_t(32), uint64_t(528), kWords}) {
    uint64_t want = 0;
    for (uint64_t i = 0; i < n; ++i) want += buf.get()[i];
    for (const ReadLoop& loop : loops) EXPECT_EQ(loop.sum(buf.get(), n), want) << loop.name << " over " << n;
  }
}

TEST(ReadLoops, WidestLoadsWithAndWithoutPrefetch) {
  std::set<std::string> names;
  for (const ReadLoop& loop : read_loops()) names.insert(loop.name);
  const std::string widest = __builtin_cpu_supports("avx512f") ? "avx512"
                             : __builtin_cpu_supports("avx2") ? "avx2"
                                                              : "sse2";
  EXPECT_TRUE(names.count(widest)) << widest;
  EXPECT_TRUE(names.count(widest + "+prefetch")) << widest;
}

TEST(ReadLoops, TimedPassesTakeTurnsAfterTheUntimedOnes) {
  const std::vector<ReadLoop> loops = read_loops();
  const size_t n = loops.size();
  EXPECT_EQ(&read_loop_of_pass(loops, 0, 2), &loops[0]);
  EXPECT_EQ(&read_loop_of_pass(loops, 1, 2), &loops[0]);
  for (int i = 0; i < 3 * int(n); ++i) EXPECT_EQ(&read_loop_of_pass(loops, 2 + i, 2), &loops[size_t(i) % n]) << i;
}

TEST(ReadLoops, BestIsTheHighestMedianNotTheHighestPass) {
  // Passes took turns over three loops: loop 0 had one lucky pass, loop 1 is
  // steadily faster, loop 2 ran one pass fewer.
  const std::vector<double> gbps = {10, 20, 5, 50, 21, 6, 11, 19};
  const BestReadLoop best = best_read_loop(gbps, 3);
  EXPECT_EQ(best.loop, 1u);
  EXPECT_EQ(best.gbps, (std::vector<double>{20, 21, 19}));
  EXPECT_EQ(best.median_gbps, 20);
  const BestReadLoop only = best_read_loop({5, 6}, 1);
  EXPECT_EQ(only.loop, 0u);
  EXPECT_EQ(only.gbps.size(), 2u);
}

}  // namespace
}  // namespace strata
