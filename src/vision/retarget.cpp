// Pose retargeting: bone-length ratios from the reference pose, applied frame by frame.
#include "standin/vision/retarget.hpp"

#include <algorithm>
#include <cmath>

namespace standin::vision {

// The OpenPose-18 limbs of kOpenPoseLimbs, oriented away from the neck; parents come first.
const std::array<std::array<int, 2>, 17> kRetargetTree = {{
    {kNeck, kRShoulder}, {kRShoulder, kRElbow}, {kRElbow, kRWrist},
    {kNeck, kLShoulder}, {kLShoulder, kLElbow}, {kLElbow, kLWrist},
    {kNeck, kRHip},      {kRHip, kRKnee},       {kRKnee, kRAnkle},
    {kNeck, kLHip},      {kLHip, kLKnee},       {kLKnee, kLAnkle},
    {kNeck, kNose},      {kNose, kREye},        {kREye, kREar},
    {kNose, kLEye},      {kLEye, kLEar},
}};

namespace {

float bone_length(const Body18& body, const std::array<int, 2>& bone) {
  const Keypoint& a = body[bone[0]];
  const Keypoint& b = body[bone[1]];
  return std::hypot(b.x - a.x, b.y - a.y);
}

float median(std::vector<float> values) {
  const size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid), values.end());
  if (values.size() % 2) return values[mid];
  const float upper = values[mid];
  return 0.5f * (upper + *std::max_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid)));
}

}  // namespace

RetargetPlan plan_retarget(const Body18& reference, const std::vector<Body18>& driving) {
  RetargetPlan plan;
  plan.ratio.fill(1.0f);
  std::array<float, 17> reference_length{}, driving_length{};
  double reference_sum = 0, driving_sum = 0;
  for (size_t i = 0; i < kRetargetTree.size(); ++i) {
    const auto& bone = kRetargetTree[i];
    if (!keypoint_shown(reference[bone[0]]) || !keypoint_shown(reference[bone[1]])) continue;
    const float r = bone_length(reference, bone);
    if (!(r > 0.5f)) continue;  // coincident joints carry no length
    std::vector<float> lengths;
    for (const Body18& body : driving)
      if (keypoint_shown(body[bone[0]]) && keypoint_shown(body[bone[1]])) lengths.push_back(bone_length(body, bone));
    if (lengths.empty()) continue;
    const float d = median(std::move(lengths));
    if (!(d > 0.5f)) continue;
    reference_length[i] = r;
    driving_length[i] = d;
    plan.measured[i] = true;
    ++plan.bones_measured;
    reference_sum += r;
    driving_sum += d;
  }
  if (plan.bones_measured == 0) return plan;
  plan.scale = static_cast<float>(driving_sum / reference_sum);
  for (size_t i = 0; i < kRetargetTree.size(); ++i)
    if (plan.measured[i]) plan.ratio[i] = plan.scale * reference_length[i] / driving_length[i];
  return plan;
}

Body18 apply_retarget(const Body18& driving, const RetargetPlan& plan) {
  Body18 out = driving;
  if (!plan.usable()) return out;
  // How far each joint moved; a hidden joint moves with its parent so that a shown descendant
  // of it still follows the body.
  std::array<cv::Point2f, kOpenPoseCount> shift{};
  for (size_t i = 0; i < kRetargetTree.size(); ++i) {
    const int parent = kRetargetTree[i][0], child = kRetargetTree[i][1];
    const Keypoint& p = driving[parent];
    const Keypoint& c = driving[child];
    if (keypoint_shown(p) && keypoint_shown(c)) {
      const float r = plan.ratio[i];
      out[child].x = out[parent].x + (c.x - p.x) * r;
      out[child].y = out[parent].y + (c.y - p.y) * r;
      shift[child] = {out[child].x - c.x, out[child].y - c.y};
    } else {
      shift[child] = shift[parent];
      out[child].x = c.x + shift[child].x;
      out[child].y = c.y + shift[child].y;
    }
  }
  return out;
}

}  // namespace standin::vision
