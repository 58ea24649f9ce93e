#include <gtest/gtest.h>

#include "standin/core/error.hpp"

namespace standin {
namespace {

Result<int> parse_positive(int x) {
  if (x <= 0) return Error::bad_input("need a positive number, got " + std::to_string(x));
  return x;
}

Result<int> doubled(int x) {
  STANDIN_ASSIGN_OR_RETURN(int v, parse_positive(x));
  return v * 2;
}

Status check(int x) {
  STANDIN_TRY(parse_positive(x));
  return Status::success();
}

TEST(Result, CarriesValueOrError) {
  auto good = doubled(4);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good.value(), 8);

  auto bad = doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ExitCode::bad_input);
  EXPECT_EQ(bad.error().message, "need a positive number, got -1");
}

TEST(Status, PropagatesThroughTry) {
  EXPECT_TRUE(check(3).ok());
  const Status s = check(0);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(static_cast<int>(s.error().code), 3);
}

TEST(Error, ContextKeepsExitCode) {
  const Error e = Error::model("sha256 mismatch").with_context("vae_decoder.pt");
  EXPECT_EQ(e.code, ExitCode::model);
  EXPECT_EQ(e.message, "vae_decoder.pt: sha256 mismatch");
}

}  // namespace
}  // namespace standin
