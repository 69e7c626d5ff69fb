// What the operating system can give without swapping, for deciding whether
// a model's weights are read in up front (they fit) or paged from disk as
// used (they do not).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>

namespace strata {

// MemAvailable (free plus reclaimable page cache); 0 if unknown.
uint64_t available_memory_bytes();

// `bytes` fit in 90% of the available memory (true when it is unknown).
bool fits_in_available_memory(uint64_t bytes);

// Anonymous, zeroed pages for weights the process rewrites at load
// (repacked copies), asked to be huge pages where the kernel gives them;
// null when the system refuses. Release with unmap_pages(p, bytes).
void* map_pages(size_t bytes);
void unmap_pages(void* p, size_t bytes);

// Reports bytes done of a total from many threads: about every 1% and once
// at the end, one call at a time, the count never going back. Null `report`:
// counts only.
class ByteProgress {
 public:
  ByteProgress(std::function<void(uint64_t done, uint64_t total)> report, uint64_t total)
      : report_(std::move(report)), total_(total) {}
  void add(uint64_t bytes);

 private:
  std::function<void(uint64_t, uint64_t)> report_;
  uint64_t total_;
  std::atomic<uint64_t> done_{0};
  std::mutex mu_;
  uint64_t reported_ = 0;
};

}  // namespace strata
