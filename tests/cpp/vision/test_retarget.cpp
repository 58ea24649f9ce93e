// Issue 13: pose retargeting geometry, mask modes, hand/face detail in pose maps, smoothing
// strength.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include <opencv2/imgproc.hpp>

#include "standin/vision/blazepose.hpp"
#include "standin/vision/mask.hpp"
#include "standin/vision/pose.hpp"
#include "standin/vision/retarget.hpp"
#include "standin/vision/tracker.hpp"

using namespace standin::vision;

namespace {

// An upright figure: neck at (x, y), limbs scaled by `arm`, `leg`, `torso`, `head`.
Body18 figure(float x, float y, float arm, float leg, float torso, float head) {
  Body18 b{};
  auto set = [&](int j, float px, float py) { b[j] = {px, py, 1.0f, 0.0f}; };
  set(kNeck, x, y);
  set(kRShoulder, x - 20 * torso, y);
  set(kLShoulder, x + 20 * torso, y);
  set(kRElbow, x - 20 * torso - 10 * arm, y + 25 * arm);
  set(kLElbow, x + 20 * torso + 10 * arm, y + 25 * arm);
  set(kRWrist, x - 20 * torso - 12 * arm, y + 50 * arm);
  set(kLWrist, x + 20 * torso + 12 * arm, y + 50 * arm);
  set(kRHip, x - 12 * torso, y + 60 * torso);
  set(kLHip, x + 12 * torso, y + 60 * torso);
  set(kRKnee, x - 14 * torso, y + 60 * torso + 40 * leg);
  set(kLKnee, x + 14 * torso, y + 60 * torso + 40 * leg);
  set(kRAnkle, x - 15 * torso, y + 60 * torso + 80 * leg);
  set(kLAnkle, x + 15 * torso, y + 60 * torso + 80 * leg);
  set(kNose, x, y - 20 * head);
  set(kREye, x - 5 * head, y - 25 * head);
  set(kLEye, x + 5 * head, y - 25 * head);
  set(kREar, x - 10 * head, y - 22 * head);
  set(kLEar, x + 10 * head, y - 22 * head);
  return b;
}

float length(const Body18& b, int bone) {
  const auto& e = kRetargetTree[static_cast<size_t>(bone)];
  return std::hypot(b[e[1]].x - b[e[0]].x, b[e[1]].y - b[e[0]].y);
}

float total_length(const Body18& b) {
  float sum = 0;
  for (int i = 0; i < static_cast<int>(kRetargetTree.size()); ++i) sum += length(b, i);
  return sum;
}

}  // namespace

TEST(Retarget, TreeCoversEveryLimbOnceParentsFirst) {
  std::array<bool, kOpenPoseCount> reached{};
  reached[kNeck] = true;
  for (const auto& bone : kRetargetTree) {
    EXPECT_TRUE(reached[bone[0]]) << "parent " << bone[0] << " used before it is placed";
    EXPECT_FALSE(reached[bone[1]]) << "joint " << bone[1] << " placed twice";
    reached[bone[1]] = true;
  }
  for (int j = 0; j < kOpenPoseCount; ++j) EXPECT_TRUE(reached[j]) << j;
}

TEST(Retarget, LimbLengthsTakeTheReferenceProportionsAtTheDriversSize) {
  // Reference: long legs, short arms, big head, drawn at half the driver's size elsewhere.
  const Body18 reference = figure(50, 30, 0.4f, 0.8f, 0.5f, 0.7f);
  std::vector<Body18> driving;
  for (int f = 0; f < 9; ++f) driving.push_back(figure(300 + 7.0f * f, 100 + 2.0f * f, 1.0f, 1.0f, 1.0f, 1.0f));
  const RetargetPlan plan = plan_retarget(reference, driving);
  ASSERT_TRUE(plan.usable());
  EXPECT_EQ(plan.bones_measured, 17);
  // Global factor: the driver's summed bone length over the reference's.
  EXPECT_NEAR(plan.scale, total_length(driving[0]) / total_length(reference), 1e-4);
  for (size_t f = 0; f < driving.size(); ++f) {
    const Body18 out = apply_retarget(driving[f], plan);
    // Root kept: the neck stays where the driver's is.
    EXPECT_FLOAT_EQ(out[kNeck].x, driving[f][kNeck].x);
    EXPECT_FLOAT_EQ(out[kNeck].y, driving[f][kNeck].y);
    // Scale kept: the summed bone length is the driver's.
    EXPECT_NEAR(total_length(out), total_length(driving[f]), 1e-2);
    // Every bone has the reference's length times the global factor.
    for (int i = 0; i < 17; ++i) EXPECT_NEAR(length(out, i), plan.scale * length(reference, i), 1e-3) << "bone " << i;
    // Scores and depth pass through.
    for (int j = 0; j < kOpenPoseCount; ++j) {
      EXPECT_EQ(out[j].score, driving[f][j].score);
      EXPECT_EQ(out[j].z, driving[f][j].z);
    }
  }
}

TEST(Retarget, DirectionsAndForeshorteningAreTheDrivers) {
  const Body18 reference = figure(0, 0, 0.5f, 1.5f, 1.0f, 1.0f);
  std::vector<Body18> driving(11, figure(200, 200, 1, 1, 1, 1));
  // One frame raises and foreshortens the right forearm.
  Body18 odd = driving[0];
  odd[kRWrist] = {odd[kRElbow].x + 5, odd[kRElbow].y - 10, 1.0f, 0.0f};
  driving.push_back(odd);
  const RetargetPlan plan = plan_retarget(reference, driving);  // the median ignores the odd frame
  const Body18 out = apply_retarget(odd, plan);
  const int forearm = 2;  // {kRElbow, kRWrist}
  const cv::Point2f in_dir(odd[kRWrist].x - odd[kRElbow].x, odd[kRWrist].y - odd[kRElbow].y);
  const cv::Point2f out_dir(out[kRWrist].x - out[kRElbow].x, out[kRWrist].y - out[kRElbow].y);
  EXPECT_NEAR(in_dir.x * out_dir.y - in_dir.y * out_dir.x, 0.0, 1e-3);  // parallel
  EXPECT_GT(in_dir.dot(out_dir), 0);                                  // same way
  // Foreshortened in the frame = foreshortened by the same ratio after.
  EXPECT_NEAR(length(out, forearm) / length(odd, forearm), plan.ratio[forearm], 1e-4);
  EXPECT_NEAR(length(odd, forearm), std::hypot(5.0f, 10.0f), 1e-4);
}

TEST(Retarget, HiddenJointsStayHiddenAndFollowTheirParent) {
  const Body18 reference = figure(0, 0, 0.5f, 1.5f, 1.0f, 1.0f);
  std::vector<Body18> driving(5, figure(200, 200, 1, 1, 1, 1));
  const RetargetPlan plan = plan_retarget(reference, driving);
  Body18 frame = driving[0];
  frame[kRKnee].score = 0.0f;  // knee hidden: the ankle moves with the hip
  const Body18 out = apply_retarget(frame, plan);
  EXPECT_EQ(out[kRKnee].score, 0.0f);
  const float hip_dx = out[kRHip].x - frame[kRHip].x, hip_dy = out[kRHip].y - frame[kRHip].y;
  EXPECT_NEAR(out[kRAnkle].x - frame[kRAnkle].x, hip_dx, 1e-4);
  EXPECT_NEAR(out[kRAnkle].y - frame[kRAnkle].y, hip_dy, 1e-4);
}

TEST(Retarget, NothingMeasuredLeavesThePoseAlone) {
  Body18 reference{};  // no reference pose
  std::vector<Body18> driving(3, figure(10, 10, 1, 1, 1, 1));
  const RetargetPlan plan = plan_retarget(reference, driving);
  EXPECT_FALSE(plan.usable());
  const Body18 out = apply_retarget(driving[1], plan);
  for (int j = 0; j < kOpenPoseCount; ++j) {
    EXPECT_EQ(out[j].x, driving[1][j].x);
    EXPECT_EQ(out[j].y, driving[1][j].y);
  }
  // A bone never seen in the driving clip keeps ratio 1.
  std::vector<Body18> no_legs = driving;
  for (auto& b : no_legs) b[kRAnkle].score = 0;
  const RetargetPlan partial = plan_retarget(figure(0, 0, 2, 2, 2, 2), no_legs);
  EXPECT_FALSE(partial.measured[8]);  // {kRKnee, kRAnkle}
  EXPECT_EQ(partial.ratio[8], 1.0f);
}

TEST(MaskModes, TightBoxAndAgnosticWithBlocksAndDilation) {
  cv::Mat character = cv::Mat::zeros(200, 160, CV_8U);
  cv::ellipse(character, {80, 100}, {30, 70}, 0, 0, 360, cv::Scalar(255), cv::FILLED);
  const cv::Rect box = mask_bounding_box(character);
  const cv::Mat tight = redraw_region(character, MaskMode::tight, 0);
  EXPECT_EQ(cv::countNonZero(tight != (character > 0)), 0);
  const cv::Mat boxed = redraw_region(character, MaskMode::box, 0);
  EXPECT_EQ(cv::countNonZero(boxed), box.area());
  EXPECT_EQ(cv::countNonZero(boxed(box) == 0), 0);
  // Agnostic without blocks = today's rule (k = side / 10).
  const cv::Mat agnostic = redraw_region(character, MaskMode::agnostic, 4);
  EXPECT_EQ(cv::norm(agnostic, shape_agnostic_mask_inference(character > 0, {}, 4), cv::NORM_INF), 0);
  // Fewer blocks: coarser, a superset of the finer mask; every mode covers the character.
  const cv::Mat coarse = redraw_region(character, MaskMode::agnostic, 0, 2);
  const cv::Mat fine = redraw_region(character, MaskMode::agnostic, 0, 20);
  EXPECT_EQ(cv::countNonZero(fine & ~coarse), 0);
  EXPECT_GT(cv::countNonZero(coarse), cv::countNonZero(fine));
  EXPECT_EQ(cv::countNonZero(coarse), box.area());  // 2x2 blocks over a centred ellipse: the box
  for (const cv::Mat& m : {tight, boxed, agnostic, coarse, fine}) EXPECT_EQ(cv::countNonZero((character > 0) & (m == 0)), 0);
  EXPECT_GT(cv::countNonZero(tight), 0);
  EXPECT_LT(cv::countNonZero(tight), cv::countNonZero(fine));
  // Dilation grows the region by about the radius.
  const cv::Mat grown = redraw_region(character, MaskMode::box, 5);
  EXPECT_EQ(mask_bounding_box(grown), cv::Rect(box.x - 5, box.y - 5, box.width + 10, box.height + 10));
  EXPECT_EQ(parse_mask_mode("tight"), MaskMode::tight);
  EXPECT_FALSE(parse_mask_mode("loose").has_value());
}

TEST(PoseDetail, HandsAndFaceAreDrawnOnlyWhereLandmarksAre) {
  std::vector<Keypoint> landmarks(kBlazePoseCount);
  for (auto& k : landmarks) k = {0, 0, 0.0f, 0.0f};  // all hidden
  landmarks[15] = {40, 60, 0.9f, 0.0f};            // left wrist
  landmarks[17] = {46, 70, 0.9f, 0.0f};            // left pinky
  landmarks[19] = {42, 72, 0.9f, 0.0f};            // left index
  landmarks[21] = {36, 68, 0.9f, 0.0f};            // left thumb
  landmarks[9] = {70, 20, 0.9f, 0.0f};             // mouth left
  landmarks[10] = {80, 20, 0.2f, 0.0f};            // mouth right, not visible enough
  cv::Mat canvas = cv::Mat::zeros(100, 100, CV_8UC3);
  draw_hands_and_face(canvas, landmarks);
  cv::Mat drawn;
  cv::cvtColor(canvas, drawn, cv::COLOR_RGB2GRAY);
  EXPECT_GT(cv::countNonZero(drawn(cv::Rect(30, 55, 20, 20))), 20);   // the hand
  EXPECT_GT(canvas.at<cv::Vec3b>(20, 70)[0], 200);                     // white mouth point
  EXPECT_EQ(cv::countNonZero(drawn(cv::Rect(77, 17, 7, 7))), 0);       // hidden point not drawn
  EXPECT_EQ(cv::countNonZero(drawn(cv::Rect(0, 0, 30, 100))), 0);      // nothing elsewhere
  // Scaled through an affine, like work-size maps.
  cv::Mat half = cv::Mat::zeros(50, 50, CV_8UC3);
  draw_hands_and_face(half, landmarks, (cv::Mat_<double>(2, 3) << 0.5, 0, 0, 0, 0.5, 0));
  cv::cvtColor(half, drawn, cv::COLOR_RGB2GRAY);
  EXPECT_GT(cv::countNonZero(drawn(cv::Rect(15, 27, 10, 10))), 5);
  // Fewer than 33 landmarks: nothing.
  cv::Mat none = cv::Mat::zeros(100, 100, CV_8UC3);
  draw_hands_and_face(none, std::vector<Keypoint>(5, Keypoint{50, 50, 1.0f, 0.0f}));
  EXPECT_EQ(cv::norm(none, cv::NORM_INF), 0);
}

TEST(PoseSmoothing, StrengthScalesTheOneEuroFilter) {
  TrackerOptions o;
  const TrackerOptions defaults;
  set_smoothing_strength(o, 1.0);
  EXPECT_TRUE(o.smooth);
  EXPECT_FLOAT_EQ(o.smooth_min_cutoff, defaults.smooth_min_cutoff);
  EXPECT_FLOAT_EQ(o.smooth_beta, defaults.smooth_beta);
  set_smoothing_strength(o, 4.0);
  EXPECT_FLOAT_EQ(o.smooth_min_cutoff, defaults.smooth_min_cutoff / 4);
  EXPECT_FLOAT_EQ(o.smooth_beta, defaults.smooth_beta / 4);
  set_smoothing_strength(o, 0.0);
  EXPECT_FALSE(o.smooth);
  // Behaviour: on a still point with jitter, a stronger filter leaves less jitter.
  auto residual_jitter = [](double strength) {
    TrackerOptions t;
    set_smoothing_strength(t, strength);
    blazepose::OneEuroFilter filter({30, t.smooth_min_cutoff, t.smooth_beta, t.smooth_derivate_cutoff});
    std::mt19937 rng(3);
    std::normal_distribution<float> noise(0.0f, 2.0f);
    double sum = 0;
    for (int i = 0; i < 300; ++i) {
      const float out = filter.apply(100.0f + noise(rng), 1.0 / 30, 1.0f / 200);
      if (i >= 50) sum += std::abs(out - 100.0f);
    }
    return sum / 250;
  };
  EXPECT_LT(residual_jitter(4.0), residual_jitter(1.0));
  EXPECT_LT(residual_jitter(1.0), residual_jitter(0.25));
}
