#include <gtest/gtest.h>

#include <cmath>

#include "standin/core/progress.hpp"

namespace standin {
namespace {

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(Progress::format_duration(0), "0:00");
  EXPECT_EQ(Progress::format_duration(65.4), "1:05");
  EXPECT_EQ(Progress::format_duration(3723), "1:02:03");
  EXPECT_EQ(Progress::format_duration(-1), "?");
  EXPECT_EQ(Progress::format_duration(NAN), "?");
}

}  // namespace
}  // namespace standin
