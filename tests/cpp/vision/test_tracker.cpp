// Tracker tests on real frames; they need the converted models (models/vision/vision.json,
// made by scripts/mediapipe/convert_all.py) and skip without them.
#include <filesystem>

#include <gtest/gtest.h>

#include "standin/vision/tracker.hpp"

using namespace standin;
using namespace standin::vision;

namespace {
std::string models_dir() { return std::string(STANDIN_SOURCE_DIR) + "/models/vision"; }
bool have_models() { return std::filesystem::exists(models_dir() + "/vision.json"); }
}  // namespace

TEST(Tracker, MissingModelsAreAModelError) {
  auto t = PersonTracker::create("/nonexistent/vision", "cpu");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, ExitCode::model);
  EXPECT_NE(t.error().message.find("vision.json"), std::string::npos);
  auto bad = PersonTracker::create("/nonexistent/vision", "tpu");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ExitCode::usage);
}
