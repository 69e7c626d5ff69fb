// Status and Result: values, errors and the propagation macros.
#include <gtest/gtest.h>

#include "runtime/base/status.h"

namespace strata {
namespace {

Result<int> parse_positive(int x) {
  if (x <= 0) return invalid_argument("expected > 0, got " + std::to_string(x));
  return x;
}

Result<int> doubled(int x) {
  STRATA_ASSIGN_OR_RETURN(int v, parse_positive(x));
  return 2 * v;
}

Status check_all(std::initializer_list<int> xs) {
  for (int x : xs) STRATA_RETURN_IF_ERROR(parse_positive(x).status());
  return Status::ok();
}

TEST(Status, OkAndError) {
  EXPECT_TRUE(Status::ok().is_ok());
  Status s = invalid_format("file.gguf: magic: expected GGUF");
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidFormat);
  EXPECT_EQ(s.to_string(), "invalid format: file.gguf: magic: expected GGUF");
}

TEST(Status, ResultPropagates) {
  auto ok = doubled(21);
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(*ok, 42);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("got -1"), std::string::npos);
  EXPECT_TRUE(check_all({1, 2, 3}).is_ok());
  EXPECT_FALSE(check_all({1, 0, 3}).is_ok());
}

TEST(Status, ResultFromOkStatusIsAnError) {
  Result<int> r = Status::ok();
  EXPECT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace strata
