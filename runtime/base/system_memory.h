// What the operating system can give without swapping, for deciding whether
// a model's weights are read in up front (they fit) or paged from disk as
// used (they do not).
#pragma once

#include <cstdint>

namespace strata {

// MemAvailable (free plus reclaimable page cache); 0 if unknown.
uint64_t available_memory_bytes();

// `bytes` fit in 90% of the available memory (true when it is unknown).
bool fits_in_available_memory(uint64_t bytes);

}  // namespace strata
