#include "runtime/base/system_memory.h"

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

}  // namespace strata
