// Byte counts for people: "1.50 KiB", "2.94 GiB"; exact bytes below 1 KiB.
#pragma once

#include <cstdint>
#include <string>

namespace strata {

std::string format_bytes(uint64_t n);

}  // namespace strata
