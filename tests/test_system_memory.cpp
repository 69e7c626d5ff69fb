// runtime/base/system_memory.h: available memory, anonymous pages for
// repacked weights, and the byte progress reporter many threads share.
#include "runtime/base/system_memory.h"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

namespace strata {
namespace {

TEST(SystemMemory, AvailableMemoryAndPages) {
  EXPECT_GT(available_memory_bytes(), 0u);  // Linux has /proc/meminfo
  EXPECT_TRUE(fits_in_available_memory(1));
  EXPECT_FALSE(fits_in_available_memory(available_memory_bytes()));
  const size_t bytes = (4u << 20) + 5;
  auto* p = static_cast<uint8_t*>(map_pages(bytes));
  ASSERT_NE(p, nullptr);
  for (size_t i = 0; i < bytes; i += 4096) ASSERT_EQ(p[i], 0) << i;  // zeroed
  std::memset(p, 7, bytes);
  unmap_pages(p, bytes);
  unmap_pages(nullptr, 0);  // nothing to do
}

// Four threads add 1000 pieces each: every report is above the one before,
// reports are about 1% apart, and the last one is the total.
TEST(SystemMemory, ByteProgressNeverGoesBackAndEndsAtTheTotal) {
  constexpr uint64_t kPiece = 3, kPieces = 4000, kTotal = kPiece * kPieces;
  std::vector<uint64_t> seen;  // guarded by ByteProgress: one call at a time
  ByteProgress progress(
      [&](uint64_t done, uint64_t total) {
        EXPECT_EQ(total, kTotal);
        seen.push_back(done);
      },
      kTotal);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (uint64_t i = 0; i < kPieces / 4; ++i) progress.add(kPiece);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), kTotal);
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GT(seen[i], seen[i - 1]) << i;
  EXPECT_LE(seen.size(), 101u);
  ByteProgress quiet(nullptr, 10);  // counts only
  quiet.add(10);
}

}  // namespace
}  // namespace strata
