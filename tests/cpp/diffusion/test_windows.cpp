#include <gtest/gtest.h>

#include "standin/diffusion/generator.hpp"

namespace standin::diffusion {
namespace {

std::vector<int64_t> starts(int64_t T, int window, int overlap) {
  std::vector<int64_t> s;
  for (const auto& w : plan_windows(T, window, overlap)) s.push_back(w.start);
  return s;
}

TEST(Windows, PlanPerSamplingMd) {
  EXPECT_EQ(starts(20, 8, 2), (std::vector<int64_t>{0, 6, 12}));
  EXPECT_EQ(starts(21, 8, 2), (std::vector<int64_t>{0, 6, 12, 13}));
  EXPECT_EQ(starts(9, 8, 2), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(starts(8, 8, 2), (std::vector<int64_t>{0}));
  EXPECT_EQ(starts(5, 8, 2), (std::vector<int64_t>{0}));
  EXPECT_EQ(plan_windows(5, 8, 2)[0].length, 5);
  EXPECT_EQ(starts(8, 4, 0), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(starts(48, 24, 4), (std::vector<int64_t>{0, 20, 24}));
  EXPECT_EQ(starts(6, 3, 5), (std::vector<int64_t>{0, 1, 2, 3}));  // stride at least 1
  EXPECT_TRUE(plan_windows(0, 8, 2).empty());
}

TEST(Windows, CoverEveryFrameAndEndAtTheLast) {
  for (int64_t T = 1; T < 60; ++T)
    for (int window : {1, 4, 8, 24})
      for (int overlap = 0; overlap < window; overlap += 3) {
        const auto ws = plan_windows(T, window, overlap);
        std::vector<int> covered(T, 0);
        for (const auto& w : ws) {
          ASSERT_GE(w.start, 0);
          ASSERT_LE(w.end(), T);
          for (int64_t f = w.start; f < w.end(); ++f) covered[f]++;
        }
        for (int64_t f = 0; f < T; ++f) ASSERT_GT(covered[f], 0) << T << " " << window << " " << overlap;
        ASSERT_EQ(ws.back().end(), T);
      }
}

TEST(Settings, Validate) {
  SamplingSettings s;
  EXPECT_TRUE(s.validate().ok());
  s.overlap = s.window;
  EXPECT_EQ(s.validate().error().code, ExitCode::usage);
  s = SamplingSettings{};
  s.steps = 0;
  EXPECT_FALSE(s.validate().ok());
}

}  // namespace
}  // namespace standin::diffusion
