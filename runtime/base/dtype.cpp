// The dtype table: block geometry of every GGUF tensor type id.
#include "runtime/base/dtype.h"

#include <array>
#include <cctype>
#include <string>

#include "runtime/base/quant_blocks.h"

namespace strata {
namespace {

constexpr DTypeTraits kUnknown{"unknown", 1, 1, false};

constexpr std::array<DTypeTraits, kDTypeIdLimit> make_table() {
  std::array<DTypeTraits, kDTypeIdLimit> t{};
  for (auto& e : t) e = kUnknown;
  auto set = [&](DType d, std::string_view name, uint32_t elems, uint32_t bytes) {
    t[static_cast<uint32_t>(d)] = DTypeTraits{name, elems, bytes, true};
  };
  set(DType::kF32, "f32", 1, 4);
  set(DType::kF16, "f16", 1, 2);
  set(DType::kQ4_0, "q4_0", kQK4_0, sizeof(BlockQ4_0));
  set(DType::kQ4_1, "q4_1", kQK4_1, sizeof(BlockQ4_1));
  set(DType::kQ5_0, "q5_0", kQK5_0, sizeof(BlockQ5_0));
  set(DType::kQ5_1, "q5_1", kQK5_1, sizeof(BlockQ5_1));
  set(DType::kQ8_0, "q8_0", kQK8_0, sizeof(BlockQ8_0));
  set(DType::kQ8_1, "q8_1", kQK8_1, sizeof(BlockQ8_1));
  set(DType::kQ2_K, "q2_k", kQK_K, sizeof(BlockQ2_K));
  set(DType::kQ3_K, "q3_k", kQK_K, sizeof(BlockQ3_K));
  set(DType::kQ4_K, "q4_k", kQK_K, sizeof(BlockQ4_K));
  set(DType::kQ5_K, "q5_k", kQK_K, sizeof(BlockQ5_K));
  set(DType::kQ6_K, "q6_k", kQK_K, sizeof(BlockQ6_K));
  set(DType::kQ8_K, "q8_k", kQK_K, sizeof(BlockQ8_K));
  set(DType::kIQ2_XXS, "iq2_xxs", kQK_K, sizeof(BlockIQ2_XXS));
  set(DType::kIQ2_XS, "iq2_xs", kQK_K, sizeof(BlockIQ2_XS));
  set(DType::kIQ3_XXS, "iq3_xxs", kQK_K, sizeof(BlockIQ3_XXS));
  set(DType::kIQ1_S, "iq1_s", kQK_K, sizeof(BlockIQ1_S));
  set(DType::kIQ4_NL, "iq4_nl", kQK4_NL, sizeof(BlockIQ4_NL));
  set(DType::kIQ3_S, "iq3_s", kQK_K, sizeof(BlockIQ3_S));
  set(DType::kIQ2_S, "iq2_s", kQK_K, sizeof(BlockIQ2_S));
  set(DType::kIQ4_XS, "iq4_xs", kQK_K, sizeof(BlockIQ4_XS));
  set(DType::kI8, "i8", 1, 1);
  set(DType::kI16, "i16", 1, 2);
  set(DType::kI32, "i32", 1, 4);
  set(DType::kI64, "i64", 1, 8);
  set(DType::kF64, "f64", 1, 8);
  set(DType::kIQ1_M, "iq1_m", kQK_K, sizeof(BlockIQ1_M));
  set(DType::kBF16, "bf16", 1, 2);
  set(DType::kTQ1_0, "tq1_0", kQK_K, sizeof(BlockTQ1_0));
  set(DType::kTQ2_0, "tq2_0", kQK_K, sizeof(BlockTQ2_0));
  set(DType::kMXFP4, "mxfp4", kQK_MXFP4, sizeof(BlockMXFP4));
  set(DType::kNVFP4, "nvfp4", kQK_NVFP4, sizeof(BlockNVFP4));
  set(DType::kQ1_0, "q1_0", kQK1_0, sizeof(BlockQ1_0));
  return t;
}

constexpr auto kTable = make_table();

}  // namespace

const DTypeTraits& dtype_traits_by_id(uint32_t id) {
  if (id >= kDTypeIdLimit) return kUnknown;
  return kTable[id];
}

std::optional<DType> dtype_from_name(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (uint32_t id = 0; id < kDTypeIdLimit; ++id) {
    if (kTable[id].known && kTable[id].name == lower) return static_cast<DType>(id);
  }
  return std::nullopt;
}

std::optional<uint64_t> dtype_row_bytes(DType t, uint64_t n_elems) {
  const auto& tr = dtype_traits(t);
  if (!tr.known || n_elems % tr.block_elems != 0) return std::nullopt;
  uint64_t n_blocks = n_elems / tr.block_elems;
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(n_blocks, static_cast<uint64_t>(tr.block_bytes), &bytes)) return std::nullopt;
  return bytes;
}

}  // namespace strata
