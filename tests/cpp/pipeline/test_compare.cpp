#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include <opencv2/imgproc.hpp>

#include "standin/media/video.hpp"
#include "standin/pipeline/compare.hpp"

namespace fs = std::filesystem;

namespace standin::pipeline {
namespace {

// A moving gradient; `disturb` paints noise into the right half so inside/outside differ.
void write_clip(const std::string& path, int frames, bool disturb, bool mask_video = false) {
  media::WriterOptions options;
  options.fps = {10, 1};
  options.crf = 10;
  auto writer = media::VideoWriter::open(path, 64, 48, options);
  ASSERT_TRUE(writer.ok()) << writer.error().message;
  cv::RNG rng(7);
  for (int i = 0; i < frames; ++i) {
    media::Frame frame;
    frame.rgb = cv::Mat(48, 64, CV_8UC3);
    for (int y = 0; y < 48; ++y)
      for (int x = 0; x < 64; ++x) frame.rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(x * 3 + i, y * 4, 128);
    if (mask_video) {
      frame.rgb.setTo(cv::Scalar::all(0));
      frame.rgb(cv::Rect(32, 0, 32, 48)).setTo(cv::Scalar::all(255));
    }
    if (disturb) {
      cv::Mat noise(48, 32, CV_8UC3);
      rng.fill(noise, cv::RNG::UNIFORM, 0, 255);
      noise.copyTo(frame.rgb(cv::Rect(32, 0, 32, 48)));
    }
    frame.pts = i;
    ASSERT_TRUE(writer->write(frame).ok());
  }
  ASSERT_TRUE(writer->finish().ok());
}

class CompareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("standin-compare-" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const char* name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(CompareTest, IdenticalVideosAreInfinitePsnr) {
  write_clip(path("a.mp4"), 5, false);
  auto report = compare_videos(path("a.mp4"), path("a.mp4"));
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report->frames, 5);
  EXPECT_TRUE(std::isinf(report->whole.psnr_db));
  EXPECT_NEAR(report->whole.ssim, 1.0, 1e-12);
  EXPECT_NE(to_json(*report).find("\"inf\""), std::string::npos);
}

TEST_F(CompareTest, MaskSeparatesChangedRegion) {
  write_clip(path("a.mp4"), 5, false);
  write_clip(path("b.mp4"), 5, true);
  write_clip(path("m.mp4"), 5, false, /*mask_video=*/true);
  auto report = compare_videos(path("a.mp4"), path("b.mp4"), path("m.mp4"));
  ASSERT_TRUE(report.ok()) << report.error().message;
  ASSERT_TRUE(report->inside_mask && report->outside_mask);
  EXPECT_LT(report->inside_mask->psnr_db, 15.0);   // noise vs gradient
  EXPECT_GT(report->outside_mask->psnr_db, 30.0);  // same content, codec + block edges only
  EXPECT_LT(report->whole.psnr_db, report->outside_mask->psnr_db);
  EXPECT_GT(report->whole.psnr_db, report->inside_mask->psnr_db);
  EXPECT_LT(report->inside_mask->ssim, report->outside_mask->ssim);
  EXPECT_LE(report->whole.min_frame_psnr_db, report->outside_mask->psnr_db);
  EXPECT_EQ(report->inside_mask->pixels + report->outside_mask->pixels, report->whole.pixels);
}

TEST_F(CompareTest, MismatchedVideosAreBadInput) {
  write_clip(path("a.mp4"), 5, false);
  write_clip(path("short.mp4"), 3, false);
  auto report = compare_videos(path("a.mp4"), path("short.mp4"));
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code, ExitCode::bad_input);
  EXPECT_NE(report.error().message.find("frame counts differ"), std::string::npos) << report.error().message;
  auto missing = compare_videos(path("a.mp4"), path("missing.mp4"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ExitCode::bad_input);
}

}  // namespace
}  // namespace standin::pipeline
