// Tensor element types as GGUF numbers them (ggml_type ids), with their block
// geometry. Ids are part of the file format and must never be renumbered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace strata {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  // 4 and 5 were Q4_2 and Q4_3, removed from the format.
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  // 31..33 were Q4_0_4_4, Q4_0_4_8, Q4_0_8_8 (repacked at load time now).
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  // 36..38 were IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8.
  kMXFP4 = 39,
  kNVFP4 = 40,
  kQ1_0 = 41,
};

inline constexpr uint32_t kDTypeIdLimit = 42;  // ids are < this

struct DTypeTraits {
  std::string_view name;  // lower-case, as users type it: "q4_k", "bf16"
  uint32_t block_elems;   // elements per block (1 for plain types)
  uint32_t block_bytes;   // bytes per block
  bool known;             // false for unassigned/removed ids
};

// Traits of type id `id`; .known is false for ids the format does not define.
const DTypeTraits& dtype_traits_by_id(uint32_t id);
inline const DTypeTraits& dtype_traits(DType t) { return dtype_traits_by_id(static_cast<uint32_t>(t)); }

inline std::string_view dtype_name(DType t) { return dtype_traits(t).name; }
inline bool dtype_id_is_known(uint32_t id) { return dtype_traits_by_id(id).known; }

// Parse a user-typed name ("Q4_K", "q4_k", "bf16"); nullopt if unknown.
std::optional<DType> dtype_from_name(std::string_view name);

// Bytes of a row of `n_elems` elements. nullopt if n_elems is not a multiple
// of the block size or the byte count overflows uint64.
std::optional<uint64_t> dtype_row_bytes(DType t, uint64_t n_elems);

// Bits per weight, for reports.
inline double dtype_bits_per_weight(DType t) {
  const auto& tr = dtype_traits(t);
  return 8.0 * tr.block_bytes / tr.block_elems;
}

}  // namespace strata
