// Issue 13: render presets (configs/presets) and colour anchoring.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include <opencv2/imgproc.hpp>

#include "color_anchor.hpp"
#include "standin/pipeline/presets.hpp"

namespace standin::pipeline {
namespace {

TEST(Presets, ShippedPresetsParseAndDiffer) {
  setenv("STANDIN_PRESETS", STANDIN_SOURCE_DIR "/configs/presets", 1);
  const auto names = preset_names();
  for (const char* name : {"preview", "standard", "final"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
    auto p = load_preset(name);
    ASSERT_TRUE(p.ok()) << p.error().message;
    EXPECT_EQ(p->name, name);
    EXPECT_FALSE(p->description.empty());
    ASSERT_TRUE(p->steps.has_value());
    ASSERT_TRUE(p->sampler.has_value());
  }
  const auto preview = load_preset("preview").value();
  const auto final_preset = load_preset("final").value();
  EXPECT_LT(*preview.steps, *final_preset.steps);
  EXPECT_LT(*preview.work_scale, 1.0);
  // A path works too.
  auto by_path = load_preset(STANDIN_SOURCE_DIR "/configs/presets/final.json");
  ASSERT_TRUE(by_path.ok()) << by_path.error().message;
  EXPECT_EQ(by_path->steps, final_preset.steps);
  unsetenv("STANDIN_PRESETS");
}

TEST(Presets, UnknownNamesAndBadFiles) {
  setenv("STANDIN_PRESETS", STANDIN_SOURCE_DIR "/configs/presets", 1);
  auto unknown = load_preset("cinematic");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, ExitCode::usage);
  EXPECT_NE(unknown.error().message.find("preview"), std::string::npos) << unknown.error().message;  // lists known ones
  EXPECT_EQ(load_preset("../../etc/passwd").error().code, ExitCode::bad_input);  // a path: read, then refused
  unsetenv("STANDIN_PRESETS");
  struct Case {
    const char* text;
    const char* message;
  };
  for (const auto& c : std::vector<Case>{
           {R"({"steps": 0})", "\"steps\" must be a whole number in 1..1000"},
           {R"({"steps": 2.5})", "\"steps\" must be a whole number"},
           {R"({"cfg": "high"})", "\"cfg\" must be a number"},
           {R"({"sampler": "euler"})", "\"sampler\" must be \"ddim\" or \"dpmpp-2m\""},
           {R"({"size": "500x700"})", "\"size\" must look like"},
           {R"({"size": "512x768", "work_scale": 0.5})", "not both"},
           {R"({"work_scale": 0})", "\"work_scale\""},
           {R"({"stepz": 4})", "unknown key \"stepz\""},
           {R"([1])", "a preset is a JSON object"},
           {R"({"steps": )", "not valid JSON"},
       }) {
    auto p = parse_preset(c.text, "p.json");
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_EQ(p.error().code, ExitCode::bad_input);
    EXPECT_NE(p.error().message.find(c.message), std::string::npos) << p.error().message;
    EXPECT_EQ(p.error().message.rfind("p.json", 0), 0u) << p.error().message;
  }
  auto ok = parse_preset(R"({"size": "256x384", "steps": 7, "window": 12, "overlap": 3, "cfg": 2})", "p.json");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(*ok->size, std::make_pair(256, 384));
  EXPECT_EQ(*ok->window, 12);
  EXPECT_EQ(*ok->overlap, 3);
  EXPECT_DOUBLE_EQ(*ok->cfg, 2.0);
}

TEST(Presets, WorkScaleRoundsToTheBundlesMultiple) {
  EXPECT_EQ(scaled_work_size(512, 768, 0.5, 64), std::make_pair(256, 384));
  EXPECT_EQ(scaled_work_size(512, 768, 0.75, 64), std::make_pair(384, 576));
  EXPECT_EQ(scaled_work_size(128, 192, 0.75, 16), std::make_pair(96, 144));
  EXPECT_EQ(scaled_work_size(64, 96, 0.1, 16), std::make_pair(16, 16));  // at least one multiple
  EXPECT_EQ(scaled_work_size(64, 96, 1.0, 16), std::make_pair(64, 96));
}

TEST(ColorAnchor, MovesTheRegionsMeanToTheTarget) {
  cv::Mat rgb(64, 48, CV_8UC3, cv::Scalar(40, 90, 160));
  cv::Mat region = cv::Mat::zeros(rgb.size(), CV_8U);
  cv::rectangle(region, cv::Rect(10, 10, 20, 40), 255, cv::FILLED);
  cv::randu(rgb(cv::Rect(10, 10, 20, 40)), cv::Scalar(100, 30, 30), cv::Scalar(180, 80, 90));
  const cv::Vec3d target(55.0, 10.0, -20.0);
  const cv::Mat out = anchor_color(rgb, region, target, 0);
  const auto after = mean_lab(out, region);
  ASSERT_TRUE(after.has_value());
  for (int c = 0; c < 3; ++c) EXPECT_NEAR((*after)[c], target[c], 1.5) << c;  // 8-bit rounding
  // Outside the region nothing moves.
  cv::Mat outside = region == 0;
  cv::Mat diff;
  cv::absdiff(out, rgb, diff);
  cv::Mat diff_gray;
  cv::cvtColor(diff, diff_gray, cv::COLOR_RGB2GRAY);
  EXPECT_EQ(cv::countNonZero(diff_gray & outside), 0);
  // An empty region leaves the frame as it is.
  EXPECT_EQ(cv::norm(anchor_color(rgb, cv::Mat::zeros(rgb.size(), CV_8U), target, 2), rgb, cv::NORM_INF), 0);
  EXPECT_FALSE(mean_lab(rgb, cv::Mat::zeros(rgb.size(), CV_8U)).has_value());
}

TEST(ColorAnchor, SkeletonRegionCoversTheJoints) {
  vision::Body18 body{};
  body[vision::kNeck] = {20, 10, 1.0f, 0.0f};
  body[vision::kRAnkle] = {15, 50, 1.0f, 0.0f};
  body[vision::kLAnkle] = {28, 52, 1.0f, 0.0f};
  body[vision::kNose] = {21, 4, 0.1f, 0.0f};  // hidden: not part of the hull
  const cv::Mat region = skeleton_region(body, {40, 60}, {}, 2);
  EXPECT_EQ(region.at<uchar>(30, 21), 255);
  EXPECT_EQ(region.at<uchar>(3, 21), 0);
  const cv::Mat scaled = skeleton_region(body, {20, 30}, (cv::Mat_<double>(2, 3) << 0.5, 0, 0, 0, 0.5, 0), 0);
  EXPECT_EQ(scaled.at<uchar>(15, 10), 255);
  vision::Body18 nobody{};
  EXPECT_EQ(cv::countNonZero(skeleton_region(nobody, {40, 60}, {}, 2)), 0);
}

}  // namespace
}  // namespace standin::pipeline
