// Small formatting helpers shared by the subcommands.
#pragma once

#include <cstdint>
#include <string>

namespace strata::tools {

// 1536 -> "1.50 KiB"; exact bytes below 1 KiB.
std::string human_bytes(uint64_t n);

}  // namespace strata::tools
