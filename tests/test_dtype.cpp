// The dtype table: GGUF type ids, block geometry, names, row sizes, halves.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "runtime/base/dtype.h"
#include "runtime/base/half.h"

namespace strata {
namespace {

TEST(DType, IdsAndGeometryFollowTheFormat) {
  struct Row { DType t; uint32_t id, elems, bytes; const char* name; };
  const Row rows[] = {
      {DType::kF32, 0, 1, 4, "f32"},        {DType::kF16, 1, 1, 2, "f16"},         {DType::kQ4_0, 2, 32, 18, "q4_0"},
      {DType::kQ4_1, 3, 32, 20, "q4_1"},    {DType::kQ5_0, 6, 32, 22, "q5_0"},     {DType::kQ5_1, 7, 32, 24, "q5_1"},
      {DType::kQ8_0, 8, 32, 34, "q8_0"},    {DType::kQ8_1, 9, 32, 36, "q8_1"},     {DType::kQ2_K, 10, 256, 84, "q2_k"},
      {DType::kQ3_K, 11, 256, 110, "q3_k"}, {DType::kQ4_K, 12, 256, 144, "q4_k"},  {DType::kQ5_K, 13, 256, 176, "q5_k"},
      {DType::kQ6_K, 14, 256, 210, "q6_k"}, {DType::kQ8_K, 15, 256, 292, "q8_k"},  {DType::kIQ4_NL, 20, 32, 18, "iq4_nl"},
      {DType::kIQ4_XS, 23, 256, 136, "iq4_xs"}, {DType::kBF16, 30, 1, 2, "bf16"},  {DType::kMXFP4, 39, 32, 17, "mxfp4"},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(static_cast<uint32_t>(r.t), r.id) << r.name;
    const auto& tr = dtype_traits(r.t);
    EXPECT_TRUE(tr.known) << r.name;
    EXPECT_EQ(tr.block_elems, r.elems) << r.name;
    EXPECT_EQ(tr.block_bytes, r.bytes) << r.name;
    EXPECT_EQ(tr.name, r.name);
    EXPECT_EQ(dtype_from_name(r.name), r.t);
  }
  EXPECT_EQ(dtype_from_name("Q4_K"), DType::kQ4_K);
  EXPECT_FALSE(dtype_from_name("q4_2").has_value());
  for (uint32_t removed : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 99u, 0xffffffffu}) {
    EXPECT_FALSE(dtype_id_is_known(removed)) << removed;
  }
}

TEST(DType, RowBytes) {
  EXPECT_EQ(dtype_row_bytes(DType::kQ4_K, 7168), 7168u / 256 * 144);
  EXPECT_EQ(dtype_row_bytes(DType::kF32, 3), 12u);
  EXPECT_FALSE(dtype_row_bytes(DType::kQ4_K, 100).has_value());  // not a whole block
  EXPECT_FALSE(dtype_row_bytes(DType::kF32, std::numeric_limits<uint64_t>::max()).has_value());  // overflow
  EXPECT_DOUBLE_EQ(dtype_bits_per_weight(DType::kQ4_K), 4.5);
}

TEST(Half, F16RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    EXPECT_EQ(f32_to_f16(f), h) << std::hex << h;
  }
}

TEST(Half, F16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);          // halfway to 65536: rounds to inf
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);   // halfway, even stays
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);  // halfway, odd rounds up
  EXPECT_EQ(f32_to_f16(0x1p-24f), 0x0001);          // smallest subnormal
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);          // halfway to 0: even
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_FLOAT_EQ(f16_to_f32(0x0001), 0x1p-24f);
}

TEST(Half, BF16) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);            // halfway, even
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);        // halfway, odd up
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
}

}  // namespace
}  // namespace strata
