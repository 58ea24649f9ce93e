// OpenPose mapping, pose-map rendering, shape-agnostic masks, mask refinement, poses.json.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "standin/vision/mask.hpp"
#include "standin/vision/pose.hpp"

using namespace standin;
using namespace standin::vision;

namespace {

std::vector<Keypoint> blaze_with_index_coords() {
  std::vector<Keypoint> lm(kBlazePoseCount);
  for (int i = 0; i < kBlazePoseCount; ++i) lm[i] = {10.0f * i, 100.0f + i, 0.9f};
  return lm;
}

Body18 standing_body() {
  Body18 b{};
  auto set = [&](int j, float x, float y) { b[j] = {x, y, 1.0f}; };
  set(kNose, 100, 40);
  set(kNeck, 100, 70);
  set(kRShoulder, 80, 70);
  set(kRElbow, 70, 100);
  set(kRWrist, 65, 130);
  set(kLShoulder, 120, 70);
  set(kLElbow, 130, 100);
  set(kLWrist, 135, 130);
  set(kRHip, 90, 140);
  set(kRKnee, 88, 180);
  set(kRAnkle, 86, 220);
  set(kLHip, 110, 140);
  set(kLKnee, 112, 180);
  set(kLAnkle, 114, 220);
  set(kREye, 95, 35);
  set(kLEye, 105, 35);
  set(kREar, 90, 38);
  set(kLEar, 110, 38);
  return b;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("standin_vision_" + std::to_string(::getpid()) + "_" + name)).string();
}

}  // namespace

TEST(OpenPose, BlazePoseIndexMapping) {
  const auto lm = blaze_with_index_coords();
  const Body18 b = blazepose_to_openpose(lm);
  const int expected[18] = {0, -1, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7};
  for (int j = 0; j < 18; ++j) {
    if (expected[j] < 0) continue;
    EXPECT_FLOAT_EQ(b[j].x, 10.0f * expected[j]) << "joint " << j;
  }
  EXPECT_FLOAT_EQ(b[kNeck].x, 0.5f * (110 + 120));
  EXPECT_FLOAT_EQ(b[kNeck].y, 100 + 11.5f);
  auto lm2 = lm;
  lm2[11].score = 0.2f;
  EXPECT_FLOAT_EQ(blazepose_to_openpose(lm2)[kNeck].score, 0.2f);
  EXPECT_FLOAT_EQ(blazepose_to_openpose({})[kNose].score, 0.0f);
}

TEST(PoseMap, ColoursAndPositions) {
  const Body18 b = standing_body();
  const cv::Mat m = render_pose_map(b, {200, 260});
  ASSERT_EQ(m.type(), CV_8UC3);
  ASSERT_EQ(m.size(), cv::Size(200, 260));
  // Joints in full colour (RGB) at their positions (the last drawn wins where discs overlap:
  // check joints away from others).
  for (int j : {kRWrist, kLWrist, kRAnkle, kLAnkle, kRKnee, kLKnee}) {
    const cv::Vec3b px = m.at<cv::Vec3b>(static_cast<int>(b[j].y), static_cast<int>(b[j].x));
    EXPECT_EQ(px, kOpenPoseColors[j]) << "joint " << j;
  }
  // Limb middles are the limb colour at 60 %: right upper leg (limb 7: 8 -> 9).
  const cv::Point mid((90 + 88) / 2, (140 + 180) / 2);
  const cv::Vec3b limb = m.at<cv::Vec3b>(mid);
  const cv::Vec3b c = kOpenPoseColors[7];
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(limb[k], c[k] * 0.6, 1) << "channel " << k;
  // Stick half-width 4: 6 px beside the limb is black.
  EXPECT_EQ(m.at<cv::Vec3b>(mid.y, mid.x - 7), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(m.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 0, 0));
  // Joint radius 4: 6 px from an isolated joint (ankle, below the limb) is black.
  EXPECT_EQ(m.at<cv::Vec3b>(220 + 6, 86), cv::Vec3b(0, 0, 0));
  EXPECT_NE(m.at<cv::Vec3b>(220 + 3, 86), cv::Vec3b(0, 0, 0));
}

TEST(PoseMap, HidesLowConfidenceAndApplies2x3Transform) {
  Body18 b = standing_body();
  b[kRWrist].score = 0.29f;
  cv::Mat m = render_pose_map(b, {200, 260});
  EXPECT_EQ(m.at<cv::Vec3b>(130, 65), cv::Vec3b(0, 0, 0));
  // Empty body draws nothing.
  EXPECT_EQ(cv::countNonZero(render_pose_map(Body18{}, {64, 64}).reshape(1)), 0);
  // Scale by 0.5 and shift by (10, 5): the left ankle lands at (67, 115).
  const cv::Mat t = (cv::Mat_<double>(2, 3) << 0.5, 0, 10, 0, 0.5, 5);
  m = render_pose_map(standing_body(), {120, 140}, t);
  EXPECT_EQ(m.at<cv::Vec3b>(115, 67), kOpenPoseColors[kLAnkle]);
  cv::Mat tf;
  t.convertTo(tf, CV_32F);
  EXPECT_EQ(cv::norm(m, render_pose_map(standing_body(), {120, 140}, tf), cv::NORM_INF), 0);
}

TEST(AgnosticMask, CoversMaskAndHasBlockStructure) {
  cv::Mat mask = cv::Mat::zeros(200, 160, CV_8U);
  cv::ellipse(mask, {80, 100}, {30, 70}, 15, 0, 360, cv::Scalar(255), cv::FILLED);
  const cv::Rect box = mask_bounding_box(mask);
  ASSERT_FALSE(box.empty());
  const int kh = 7, kw = 5;
  const cv::Mat a = shape_agnostic_mask(mask, box, kh, kw);
  // Covers: every mask pixel stays set.
  cv::Mat uncovered = (mask > 0) & (a == 0);
  EXPECT_EQ(cv::countNonZero(uncovered), 0);
  // Nothing outside the box.
  cv::Mat outside = a.clone();
  outside(box).setTo(0);
  EXPECT_EQ(cv::countNonZero(outside), 0);
  // Blocks are constant.
  const int bh = (box.height + kh - 1) / kh, bw = (box.width + kw - 1) / kw;
  int blocks = 0;
  for (int y = box.y; y < box.y + box.height; y += bh)
    for (int x = box.x; x < box.x + box.width; x += bw) {
      const cv::Rect r = cv::Rect(x, y, bw, bh) & box;
      double lo, hi;
      cv::minMaxLoc(a(r), &lo, &hi);
      EXPECT_EQ(lo, hi);
      ++blocks;
    }
  EXPECT_EQ(blocks, kh * kw);
  // It is larger than the mask (shape hidden) but k = 1 fills the whole box.
  EXPECT_GT(cv::countNonZero(a), cv::countNonZero(mask));
  EXPECT_EQ(cv::countNonZero(shape_agnostic_mask(mask, box, 1, 1)), box.area());
  // Soft masks keep the block maximum.
  cv::Mat soft = mask / 2;
  EXPECT_EQ(cv::norm(shape_agnostic_mask(soft, box, kh, kw), a / 2, cv::NORM_INF), 0);
}

TEST(AgnosticMask, InferenceRuleAndTrainingVariant) {
  cv::Mat mask = cv::Mat::zeros(300, 200, CV_8U);
  cv::rectangle(mask, cv::Rect(50, 40, 100, 200), cv::Scalar(255), cv::FILLED);
  cv::circle(mask, {100, 150}, 10, cv::Scalar(0), cv::FILLED);  // a hole
  const cv::Mat inf = shape_agnostic_mask_inference(mask);
  // k = box/10 -> 10 px blocks; the 20 px hole is at least partly filled by block maxima.
  EXPECT_EQ(cv::countNonZero((mask > 0) & (inf == 0)), 0);
  EXPECT_GT(inf.at<uchar>(150, 100), 0);
  const cv::Mat dil = shape_agnostic_mask_inference(mask, {}, 5);
  EXPECT_GT(cv::countNonZero(dil), cv::countNonZero(inf));
  std::mt19937 r1(7), r2(7);
  AgnosticTrainingOptions o;
  o.scale_probability = 1.0f;
  const cv::Mat t1 = shape_agnostic_mask_training(mask, {}, r1, o);
  const cv::Mat t2 = shape_agnostic_mask_training(mask, {}, r2, o);
  EXPECT_EQ(cv::norm(t1, t2, cv::NORM_INF), 0);  // deterministic for a seed
  EXPECT_EQ(cv::countNonZero((mask > 0) & (t1 == 0)), 0);
  EXPECT_GE(cv::countNonZero(t1), cv::countNonZero(inf) * 9 / 10);
  // Different seeds give different masks sooner or later.
  bool differs = false;
  for (int s = 0; s < 10 && !differs; ++s) {
    std::mt19937 r(s);
    differs = cv::norm(shape_agnostic_mask_training(mask, {}, r, o), t1, cv::NORM_INF) > 0;
  }
  EXPECT_TRUE(differs);
  EXPECT_EQ(cv::countNonZero(shape_agnostic_mask_inference(cv::Mat::zeros(10, 10, CV_8U))), 0);
}

TEST(MaskRefiner, CleansFeathersAndStabilises) {
  cv::Mat prob = cv::Mat::zeros(120, 100, CV_32F);
  cv::rectangle(prob, cv::Rect(30, 20, 40, 80), cv::Scalar(0.9), cv::FILLED);
  cv::circle(prob, {50, 60}, 2, cv::Scalar(0.0), cv::FILLED);   // pin hole
  cv::circle(prob, {90, 10}, 1, cv::Scalar(0.9), cv::FILLED);   // speck
  MaskRefineOptions o;
  o.ema = 1.0f;
  MaskRefiner r(o);
  const cv::Mat m = r.refine(prob);
  ASSERT_EQ(m.type(), CV_8U);
  EXPECT_EQ(m.at<uchar>(60, 50), 255);  // hole filled
  EXPECT_EQ(m.at<uchar>(10, 90), 0);    // speck removed
  EXPECT_EQ(m.at<uchar>(5, 5), 0);
  // Soft edge: values strictly between 0 and 255 around the border.
  int soft = 0;
  for (int x = 20; x < 40; ++x) soft += (m.at<uchar>(60, x) > 0 && m.at<uchar>(60, x) < 255);
  EXPECT_GE(soft, 3);
  // Temporal EMA: a one-frame dip of the network's confidence does not punch a hole.
  cv::Mat dip = prob * (0.3 / 0.9);
  MaskRefiner t;  // ema 0.6
  t.refine(prob);
  EXPECT_EQ(t.refine(dip).at<uchar>(60, 50), 255);
  MaskRefiner no_ema(o);
  no_ema.refine(prob);
  EXPECT_EQ(no_ema.refine(dip).at<uchar>(60, 50), 0);
}

TEST(PosesJson, RoundTrip) {
  PoseTrackInfo info;
  info.width = 768;
  info.height = 576;
  info.fps_num = 10;
  info.fps_den = 1;
  info.source = "vtest \"quoted\".avi";
  std::vector<FrameAnalysis> frames(3);
  for (int f = 0; f < 3; ++f) {
    frames[f].frame_index = f * 2;
    if (f == 1) continue;  // a frame without people
    PersonPose p;
    p.track_id = 3;
    p.landmarks = blaze_with_index_coords();
    p.body = blazepose_to_openpose(p.landmarks);
    p.box = {1.5f, 2.25f, 100, 200};
    p.score = 0.875f;
    frames[f].people.push_back(p);
    PersonPose q = p;
    q.track_id = 4;
    q.landmarks.clear();
    frames[f].people.push_back(q);
    frames[f].target = 1;
  }
  const std::string path = temp_path("poses.json");
  ASSERT_TRUE(write_poses_json(path, info, frames).ok());
  auto back = read_pose_track(path);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->info.width, 768);
  EXPECT_EQ(back->info.fps_num, 10);
  EXPECT_EQ(back->info.frame_count, 3);
  EXPECT_EQ(back->info.source, info.source);
  ASSERT_EQ(back->frames.size(), 3u);
  EXPECT_EQ(back->frames[2].frame_index, 4);
  EXPECT_TRUE(back->frames[1].people.empty());
  EXPECT_EQ(back->frames[1].target, -1);
  const auto& p = back->frames[0].people;
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(back->frames[0].target, 1);
  EXPECT_EQ(p[0].track_id, 3);
  EXPECT_EQ(p[1].landmarks.size(), 0u);
  ASSERT_EQ(p[0].landmarks.size(), 33u);
  for (int j = 0; j < 18; ++j) {
    EXPECT_NEAR(p[0].body[j].x, frames[0].people[0].body[j].x, 0.006);
    EXPECT_NEAR(p[0].body[j].y, frames[0].people[0].body[j].y, 0.006);
    EXPECT_NEAR(p[0].body[j].score, frames[0].people[0].body[j].score, 1e-4);
  }
  EXPECT_NEAR(p[0].box.y, 2.25f, 1e-4);
  EXPECT_NEAR(p[0].score, 0.875f, 1e-4);
  auto only_frames = read_poses_json(path);
  ASSERT_TRUE(only_frames.ok());
  EXPECT_EQ(only_frames->size(), 3u);
  std::filesystem::remove(path);
}

TEST(PosesJson, StreamingWriterIsAtomic) {
  const std::string path = temp_path("stream.json");
  {
    auto w = PosesJsonWriter::open(path, {});
    ASSERT_TRUE(w.ok());
    FrameAnalysis f;
    ASSERT_TRUE(w->write(f).ok());
    EXPECT_FALSE(w->write(f).ok());  // indices must increase
    EXPECT_FALSE(std::filesystem::exists(path));
  }  // destroyed without finish: nothing left
  EXPECT_FALSE(std::filesystem::exists(path));
  auto w = PosesJsonWriter::open(path, {});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->finish().ok());
  auto back = read_pose_track(path);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_TRUE(back->frames.empty());  // a video with no frames / no person: valid, empty
  std::filesystem::remove(path);
}

TEST(PosesJson, MalformedInputsNameTheField) {
  const std::string body18 = [] {
    std::string s = "[";
    for (int i = 0; i < 18; ++i) s += std::string(i ? "," : "") + "[1,2,0.5]";
    return s + "]";
  }();
  auto person = [&](const std::string& extra) { return "{\"track_id\":0,\"body\":" + body18 + extra + "}"; };
  struct Case {
    std::string json, needle;
  };
  const std::vector<Case> cases = {
      {"{\"frames\": [", "not valid JSON"},
      {"[1,2]", "top level"},
      {"{}", "missing \"frames\""},
      {"{\"frames\": 3}", "frames: expected an array"},
      {"{\"frames\": [3]}", "frames[0]: expected an object"},
      {"{\"frames\": [{}]}", "frames[0]: missing \"frame\""},
      {"{\"frames\": [{\"frame\": -1}]}", "frames[0].frame: must be >= 0"},
      {"{\"frames\": [{\"frame\": \"0\"}]}", "frames[0].frame: expected an integer"},
      {"{\"frames\": [{\"frame\": 1.5}]}", "frames[0].frame: expected an integer"},
      {"{\"frames\": [{\"frame\": 2}, {\"frame\": 2}]}", "frames[1].frame: frame indices must increase"},
      {"{\"frames\": [{\"frame\": 0, \"people\": {}}]}", "frames[0].people: expected an array"},
      {"{\"frames\": [{\"frame\": 0, \"people\": [{\"body\": []}]}]}", "frames[0].people[0]: missing \"track_id\""},
      {"{\"frames\": [{\"frame\": 0, \"people\": [{\"track_id\": -2, \"body\": []}]}]}", "people[0].track_id"},
      {"{\"frames\": [{\"frame\": 0, \"people\": [{\"track_id\": 0, \"body\": [[1,2,0.5]]}]}]}", "people[0].body: expected an array of 18"},
      {"{\"frames\": [{\"frame\": 0, \"people\": [" + person("") + "], \"target\": 1}]}", "frames[0].target"},
      {"{\"frames\": [{\"frame\": 0, \"people\": [" + person(",\"score\":2") + "]}]}", "people[0].score: must be in [0, 1]"},
      {"{\"frames\": [{\"frame\": 0, \"people\": [" + person(",\"box\":[0,0,-1,2]") + "]}]}", "people[0].box"},
      {"{\"frames\": [{\"frame\": 0, \"people\": [" + person(",\"landmarks\":[[1,2,0.5]]") + "]}]}", "people[0].landmarks"},
      {"{\"frames\": [{\"frame\": 0, \"people\": [{\"track_id\":0,\"body\":" +
           std::string("[[1,2,0.5],[1,\"x\",0.5]") + std::string(",[1,2,0.5]").append("") + "]}]}]}",
       "body: expected an array of 18"},
      {"{\"version\": 2, \"frames\": []}", "version"},
      {"{\"format\": \"other\", \"frames\": []}", "format"},
      {"{\"fps\": [30, 0], \"frames\": []}", "fps"},
  };
  for (const auto& c : cases) {
    auto r = parse_pose_track(c.json, "poses.json");
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_EQ(r.error().code, ExitCode::bad_input) << c.json;
    EXPECT_NE(r.error().message.find(c.needle), std::string::npos) << "message: " << r.error().message << "\nexpected: " << c.needle;
    EXPECT_EQ(r.error().message.rfind("poses.json: ", 0), 0u) << r.error().message;
  }
  // A wrong keypoint inside an 18-array names the exact entry.
  std::string bad = body18;
  bad.replace(bad.find("[1,2,0.5]", 10), 9, "[1,\"y\",0.5]");
  auto r = parse_pose_track("{\"frames\": [{\"frame\": 0, \"people\": [{\"track_id\":0,\"body\":" + bad + "}]}]}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("frames[0].people[0].body[1][1]: expected a number"), std::string::npos) << r.error().message;
  EXPECT_FALSE(read_pose_track("/nonexistent/poses.json").ok());
  EXPECT_EQ(read_pose_track("/nonexistent/poses.json").error().code, ExitCode::bad_input);
}
