#include "runtime/base/system_memory.h"

#include <sys/mman.h>

#include <fstream>
#include <string>

namespace strata {

uint64_t available_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  uint64_t kb = 0;
  while (f >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

bool fits_in_available_memory(uint64_t bytes) {
  const uint64_t avail = available_memory_bytes();
  return avail == 0 || bytes < avail / 10 * 9;
}

void* map_pages(size_t bytes) {
  void* p = mmap(nullptr, bytes == 0 ? 1 : bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  (void)madvise(p, bytes, MADV_HUGEPAGE);  // streaming reads through many pages
  return p;
}

void unmap_pages(void* p, size_t bytes) {
  if (p) munmap(p, bytes == 0 ? 1 : bytes);
}

void ByteProgress::add(uint64_t bytes) {
  const uint64_t now = done_.fetch_add(bytes) + bytes;
  if (!report_) return;
  std::lock_guard<std::mutex> lock(mu_);
  // A thread that takes the lock after a later count was reported says
  // nothing; the last count is the total and is always above.
  if (now > reported_ && (now >= total_ || now - reported_ >= total_ / 100)) {
    reported_ = now;
    report_(now, total_);
  }
}

}  // namespace strata
