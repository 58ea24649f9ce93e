// Depth maps for pose modulation (render_depth_map, joint_depth_values), the keypoints' z
// through blazepose_to_openpose and poses.json.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>
#include <unistd.h>

#include "standin/vision/pose.hpp"

using namespace standin;
using namespace standin::vision;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Only the given joints shown (score 1); everything else hidden.
Body18 body_with(std::initializer_list<std::pair<int, Keypoint>> joints) {
  Body18 b{};
  for (const auto& [j, k] : joints) b[j] = k;
  return b;
}

// Pixels where a single disc of the pose map's joint radius lands (drawn the same way).
cv::Mat disc(cv::Size size, cv::Point centre) {
  cv::Mat m = cv::Mat::zeros(size, CV_8U);
  cv::circle(m, centre, kPoseJointRadius, cv::Scalar(255), cv::FILLED, cv::LINE_8);
  return m;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("standin_depth_" + std::to_string(::getpid()) + "_" + name)).string();
}

}  // namespace

TEST(DepthMap, JointValuesByHand) {
  // Hips at z -8 and +8 (mid depth 0); shown joints span y 20..100, so one body height = 80.
  const Body18 b = body_with({{kRHip, {20, 60, 1, -8}},
                              {kLHip, {40, 60, 1, 8}},
                              {kNose, {30, 20, 1, -40}},    // 40 px nearer than the hips: 0.5 + 0.25
                              {kRAnkle, {22, 100, 1, kNaN}},  // no z: the hips' depth
                              {kLAnkle, {38, 100, 1, 400}}}); // far past one body height: clamped
  const auto v = joint_depth_values(b);
  ASSERT_TRUE(v.has_value());
  EXPECT_FLOAT_EQ((*v)[kRHip], 0.55f);  // 0.5 - 0.5 * (-8) / 80
  EXPECT_FLOAT_EQ((*v)[kLHip], 0.45f);
  EXPECT_FLOAT_EQ((*v)[kNose], 0.75f);
  EXPECT_FLOAT_EQ((*v)[kRAnkle], 0.5f);
  EXPECT_FLOAT_EQ((*v)[kLAnkle], 0.02f);

  // A hip hidden or without z: the depth is unknown.
  Body18 hidden = b;
  hidden[kLHip].score = 0.1f;
  EXPECT_FALSE(joint_depth_values(hidden).has_value());
  Body18 no_z = b;
  no_z[kRHip].z = kNaN;
  EXPECT_FALSE(joint_depth_values(no_z).has_value());
}

TEST(DepthMap, TwoJointsAtTheirValuesThroughTheAffine) {
  // Only the hips: two discs, no limb (no OpenPose limb joins the hips). Extent 40 px.
  const Body18 b = body_with({{kRHip, {10, 15, 1, -8}}, {kLHip, {20, 35, 1, 8}}});
  const cv::Mat affine = (cv::Mat_<double>(2, 3) << 2, 0, 5, 0, 2, -10);  // canvas = 2 * source + (5, -10)
  const cv::Mat depth = render_depth_map(b, {64, 80}, affine);
  ASSERT_EQ(depth.type(), CV_32F);
  ASSERT_EQ(depth.size(), cv::Size(64, 80));
  const float near = 0.5f + 0.5f * 8 / 20, far = 0.5f - 0.5f * 8 / 20;  // 0.7, 0.3 (y extent 20 source px)
  const cv::Mat r = disc(depth.size(), {25, 20}), l = disc(depth.size(), {45, 60});
  for (int y = 0; y < depth.rows; ++y) {
    for (int x = 0; x < depth.cols; ++x) {
      const float want = r.at<uint8_t>(y, x) ? near : l.at<uint8_t>(y, x) ? far : 0.0f;
      ASSERT_EQ(depth.at<float>(y, x), want) << "at " << x << "," << y;
    }
  }
}

TEST(DepthMap, NearerPartsCoverFartherOnes) {
  // Two overlapping hip discs; a nose without z sets the extent (40 px) and sits at 0.5.
  for (const float sign : {1.0f, -1.0f}) {
    const Body18 b = body_with({{kRHip, {30, 40, 1, -4 * sign}}, {kLHip, {35, 40, 1, 4 * sign}}, {kNose, {32, 0, 1, kNaN}}});
    const cv::Mat depth = render_depth_map(b, {64, 64});
    const float rhip = 0.5f + 0.05f * sign, lhip = 0.5f - 0.05f * sign;
    EXPECT_FLOAT_EQ(depth.at<float>(40, 27), rhip);  // only the right hip's disc
    EXPECT_FLOAT_EQ(depth.at<float>(40, 38), lhip);  // only the left hip's disc
    EXPECT_FLOAT_EQ(depth.at<float>(40, 32), std::max(rhip, lhip)) << "the overlap shows the nearer joint";
    EXPECT_FLOAT_EQ(depth.at<float>(0, 32), 0.5f);
  }
  // A near limb over a far joint: neck (near) -> right hip (far); the limb's value is their mean,
  // so it covers the far hip's disc where they overlap but the near neck's disc covers the limb.
  const Body18 b = body_with({{kNeck, {30, 10, 1, -20}}, {kRHip, {30, 50, 1, 20}}, {kLHip, {50, 50, 1, 20}}});
  const auto v = joint_depth_values(b);
  ASSERT_TRUE(v.has_value());
  const float limb = 0.5f * ((*v)[kNeck] + (*v)[kRHip]);
  const cv::Mat depth = render_depth_map(b, {64, 64});
  EXPECT_FLOAT_EQ(depth.at<float>(10, 30), (*v)[kNeck]);
  EXPECT_FLOAT_EQ(depth.at<float>(47, 30), limb) << "the limb is nearer than the hip it ends on";
  EXPECT_FLOAT_EQ(depth.at<float>(30, 30), limb);
  EXPECT_GT((*v)[kNeck], limb);
  EXPECT_GT(limb, (*v)[kRHip]);
}

TEST(DepthMap, UnknownDepthDrawsTheSkeletonAtOneHalf) {
  Body18 b{};
  const float xs[18] = {50, 50, 38, 32, 30, 62, 68, 70, 44, 43, 42, 56, 57, 58, 47, 53, 44, 56};
  const float ys[18] = {12, 24, 24, 40, 56, 24, 40, 56, 60, 80, 100, 60, 80, 100, 10, 10, 12, 12};
  for (int j = 0; j < kOpenPoseCount; ++j) b[j] = {xs[j], ys[j], 1.0f};  // z unknown (NaN)
  b[kRWrist].score = 0.1f;  // hidden: neither its disc nor its limb
  const cv::Mat depth = render_depth_map(b, {100, 110});
  const cv::Mat pose = render_pose_map(b, {100, 110});
  int drawn = 0;
  for (int y = 0; y < depth.rows; ++y) {
    for (int x = 0; x < depth.cols; ++x) {
      const float d = depth.at<float>(y, x);
      const bool in_pose = pose.at<cv::Vec3b>(y, x) != cv::Vec3b(0, 0, 0);
      ASSERT_TRUE(d == 0.0f || d == 0.5f) << d;
      ASSERT_EQ(d > 0, in_pose) << "depth and pose maps cover the same pixels (at " << x << "," << y << ")";
      drawn += d > 0;
    }
  }
  EXPECT_GT(drawn, 500);
  EXPECT_EQ(depth.at<float>(56, 30), 0.0f);  // the hidden wrist
  // Known z on every joint but a hidden hip: still unknown.
  for (int j = 0; j < kOpenPoseCount; ++j) b[j].z = static_cast<float>(j);
  b[kLHip].score = 0.0f;
  const cv::Mat hipless = render_depth_map(b, {100, 110});
  double lo = 0, hi = 0;
  cv::minMaxLoc(hipless, &lo, &hi, nullptr, nullptr, hipless > 0);
  EXPECT_EQ(lo, 0.5);
  EXPECT_EQ(hi, 0.5);
}

TEST(DepthMap, NeckDepthIsTheShouldersMean) {
  std::vector<Keypoint> lm(kBlazePoseCount);
  for (int i = 0; i < kBlazePoseCount; ++i) lm[i] = {1.0f * i, 2.0f * i, 0.9f, -3.0f * i};
  const Body18 b = blazepose_to_openpose(lm);
  EXPECT_FLOAT_EQ(b[kNeck].z, 0.5f * (-33.0f - 36.0f));
  EXPECT_FLOAT_EQ(b[kRHip].z, -72.0f);  // BlazePose 24
  EXPECT_FLOAT_EQ(b[kNose].z, 0.0f);
}

TEST(PosesJson, DepthRoundTripsAndOldFilesReadAsUnknown) {
  FrameAnalysis f;
  f.frame_index = 0;
  f.target = 0;
  PersonPose p;
  p.track_id = 1;
  p.score = 0.9f;
  p.box = {1, 2, 30, 40};
  for (int j = 0; j < kOpenPoseCount; ++j) p.body[j] = {10.0f + j, 20.0f + j, 0.8f, j % 3 ? -1.25f * j : kNaN};
  for (int i = 0; i < kBlazePoseCount; ++i) p.landmarks.push_back({5.0f + i, 6.0f + i, 0.7f, 0.5f * i - 3});
  f.people.push_back(p);
  const std::string path = temp_path("z.json");
  PoseTrackInfo info;
  info.width = 64;
  info.height = 48;
  ASSERT_TRUE(write_poses_json(path, info, {f}).ok());
  auto track = read_pose_track(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(track.ok()) << track.error().message;
  const PersonPose& q = track->frames.at(0).people.at(0);
  for (int j = 0; j < kOpenPoseCount; ++j) {
    if (std::isnan(p.body[j].z)) {
      EXPECT_TRUE(std::isnan(q.body[j].z)) << "joint " << j;
    } else {
      EXPECT_NEAR(q.body[j].z, p.body[j].z, 0.005) << "joint " << j;
    }
  }
  for (int i = 0; i < kBlazePoseCount; ++i) EXPECT_NEAR(q.landmarks[i].z, p.landmarks[i].z, 0.005);

  // Files without z (older writers, other tools) still read; z is unknown.
  std::string body;
  for (int j = 0; j < kOpenPoseCount; ++j) body += std::string(j ? "," : "") + "[1,2,0.5]";
  auto old = parse_pose_track(R"({"frames":[{"frame":0,"people":[{"track_id":0,"body":[)" + body + "]}]}]}");
  ASSERT_TRUE(old.ok()) << old.error().message;
  EXPECT_TRUE(std::isnan(old->frames[0].people[0].body[5].z));
  EXPECT_FLOAT_EQ(old->frames[0].people[0].body[5].x, 1.0f);

  // A bad z names its field.
  const std::string bad_body = "[1,2,0.5,\"near\"]" + body.substr(9);
  auto bad = parse_pose_track(R"({"frames":[{"frame":0,"people":[{"track_id":0,"body":[)" + bad_body + "]}]}]}");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("frames[0].people[0].body[0][3]"), std::string::npos) << bad.error().message;
}
