// BlazePose -> OpenPose-18 mapping and pose-map rendering (DWPose / Moore-AnimateAnyone style).
#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "standin/vision/pose.hpp"

namespace standin::vision {

// BlazePose 33 (MediaPipe pose landmark indices) for each OpenPose-18 joint.
const std::array<int, kOpenPoseCount> kBlazeForOpenPose = {
    0,   // nose
    -1,  // neck = mean(11, 12)
    12,  // right shoulder
    14,  // right elbow
    16,  // right wrist
    11,  // left shoulder
    13,  // left elbow
    15,  // left wrist
    24,  // right hip
    26,  // right knee
    28,  // right ankle
    23,  // left hip
    25,  // left knee
    27,  // left ankle
    5,   // right eye
    2,   // left eye
    8,   // right ear
    7,   // left ear
};

// OpenPose limb sequence (1-based in the original: [2,3],[2,6],[3,4],[4,5],[6,7],[7,8],[2,9],
// [9,10],[10,11],[2,12],[12,13],[13,14],[2,1],[1,15],[15,17],[1,16],[16,18]); only the first
// 17 limbs are drawn by the reference renderers.
const std::array<std::array<int, 2>, 17> kOpenPoseLimbs = {{
    {1, 2}, {1, 5}, {2, 3}, {3, 4}, {5, 6}, {6, 7}, {1, 8}, {8, 9}, {9, 10},
    {1, 11}, {11, 12}, {12, 13}, {1, 0}, {0, 14}, {14, 16}, {0, 15}, {15, 17},
}};

const std::array<cv::Vec3b, 18> kOpenPoseColors = {{
    {255, 0, 0}, {255, 85, 0}, {255, 170, 0}, {255, 255, 0}, {170, 255, 0}, {85, 255, 0},
    {0, 255, 0}, {0, 255, 85}, {0, 255, 170}, {0, 255, 255}, {0, 170, 255}, {0, 85, 255},
    {0, 0, 255}, {85, 0, 255}, {170, 0, 255}, {255, 0, 255}, {255, 0, 170}, {255, 0, 85},
}};

Body18 blazepose_to_openpose(const std::vector<Keypoint>& lm) {
  Body18 body{};
  if (lm.size() < static_cast<size_t>(kBlazePoseCount)) return body;
  for (int j = 0; j < kOpenPoseCount; ++j) {
    if (kBlazeForOpenPose[j] >= 0) body[j] = lm[kBlazeForOpenPose[j]];
  }
  const Keypoint& l = lm[11];
  const Keypoint& r = lm[12];
  body[kNeck] = {0.5f * (l.x + r.x), 0.5f * (l.y + r.y), std::min(l.score, r.score), 0.5f * (l.z + r.z)};
  return body;
}

cv::Point2d to_canvas(const cv::Mat& m, const Keypoint& k) {
  if (m.empty()) return {k.x, k.y};
  cv::Mat md;
  m.convertTo(md, CV_64F);
  const double* a = md.ptr<double>(0);
  const double* b = md.ptr<double>(1);
  return {a[0] * k.x + a[1] * k.y + a[2], b[0] * k.x + b[1] * k.y + b[2]};
}

bool keypoint_shown(const Keypoint& k) {
  return k.score >= kPoseScoreThreshold && std::isfinite(k.x) && std::isfinite(k.y);
}

namespace {

bool limb_shown(const Body18& body, size_t limb) {
  return keypoint_shown(body[kOpenPoseLimbs[limb][0]]) && keypoint_shown(body[kOpenPoseLimbs[limb][1]]);
}

// The limb's ellipse between its two joints (canvas pixels), half-width `stick`.
std::vector<cv::Point> limb_polygon(const Body18& body, size_t limb, const cv::Mat& m, int stick) {
  const cv::Point2d a = to_canvas(m, body[kOpenPoseLimbs[limb][0]]), b = to_canvas(m, body[kOpenPoseLimbs[limb][1]]);
  const cv::Point2d mid = 0.5 * (a + b);
  const double length = std::hypot(a.x - b.x, a.y - b.y);
  const double angle = std::atan2(a.y - b.y, a.x - b.x) * 180.0 / CV_PI;
  std::vector<cv::Point> poly;
  cv::ellipse2Poly(cv::Point(static_cast<int>(mid.x), static_cast<int>(mid.y)),
                   cv::Size(static_cast<int>(length / 2), stick), static_cast<int>(angle), 0, 360, 1, poly);
  return poly;
}

void draw_joint(cv::Mat& canvas, const Keypoint& k, const cv::Mat& m, int radius, const cv::Scalar& colour) {
  const cv::Point2d p = to_canvas(m, k);
  cv::circle(canvas, cv::Point(static_cast<int>(p.x), static_cast<int>(p.y)), radius, colour, cv::FILLED, cv::LINE_8);
}

void draw_limbs(cv::Mat& canvas, const Body18& body, const cv::Mat& m, double dim, int stick = kPoseStickWidth) {
  for (size_t i = 0; i < kOpenPoseLimbs.size(); ++i) {
    if (!limb_shown(body, i)) continue;
    const cv::Vec3b c = kOpenPoseColors[i];
    cv::fillConvexPoly(canvas, limb_polygon(body, i, m, stick), cv::Scalar(c[0] * dim, c[1] * dim, c[2] * dim), cv::LINE_8);
  }
}

void draw_joints(cv::Mat& canvas, const Body18& body, const cv::Mat& m, int radius = kPoseJointRadius) {
  for (int j = 0; j < kOpenPoseCount; ++j) {
    if (!keypoint_shown(body[j])) continue;
    const cv::Vec3b c = kOpenPoseColors[j];
    draw_joint(canvas, body[j], m, radius, cv::Scalar(c[0], c[1], c[2]));
  }
}

}  // namespace

cv::Mat render_pose_map(const std::vector<Body18>& bodies, cv::Size canvas_size, const cv::Mat& m) {
  cv::Mat canvas = cv::Mat::zeros(canvas_size, CV_8UC3);
  for (const auto& b : bodies) draw_limbs(canvas, b, m, 1.0);
  // Limb layer at 60 % (the reference renderers scale the canvas before drawing joints).
  canvas.convertTo(canvas, CV_8UC3, 0.6);
  for (const auto& b : bodies) draw_joints(canvas, b, m);
  return canvas;
}

cv::Mat render_pose_map(const Body18& body, cv::Size canvas, const cv::Mat& m) {
  return render_pose_map(std::vector<Body18>{body}, canvas, m);
}

std::optional<std::array<float, kOpenPoseCount>> joint_depth_values(const Body18& body) {
  const Keypoint& rhip = body[kRHip];
  const Keypoint& lhip = body[kLHip];
  if (!keypoint_shown(rhip) || !keypoint_shown(lhip) || !std::isfinite(rhip.z) || !std::isfinite(lhip.z)) return std::nullopt;
  // Float arithmetic in this order: conditions.py computes the same values in float32.
  const float z0 = 0.5f * (rhip.z + lhip.z);
  float top = std::numeric_limits<float>::infinity(), bottom = -std::numeric_limits<float>::infinity();
  for (const Keypoint& k : body) {
    if (!keypoint_shown(k)) continue;
    top = std::min(top, k.y);
    bottom = std::max(bottom, k.y);
  }
  const float extent = std::max(bottom - top, 1.0f);
  std::array<float, kOpenPoseCount> values{};
  for (int j = 0; j < kOpenPoseCount; ++j) {
    const float z = std::isfinite(body[j].z) ? body[j].z : z0;
    values[j] = std::clamp(0.5f - 0.5f * (z - z0) / extent, 0.02f, 1.0f);
  }
  return values;
}

cv::Mat render_depth_map(const Body18& body, cv::Size canvas_size, const cv::Mat& m) {
  cv::Mat canvas = cv::Mat::zeros(canvas_size, CV_32F);
  std::array<float, kOpenPoseCount> values;
  values.fill(0.5f);
  if (const auto known = joint_depth_values(body)) values = *known;
  // Every shown part with its value; limbs first, then joints (the pose map's drawing order).
  struct Part {
    float value;
    int order;  // < 17: limb index; else 17 + joint index
  };
  std::vector<Part> parts;
  const int limbs = static_cast<int>(kOpenPoseLimbs.size());
  for (int i = 0; i < limbs; ++i)
    if (limb_shown(body, i)) parts.push_back({0.5f * (values[kOpenPoseLimbs[i][0]] + values[kOpenPoseLimbs[i][1]]), i});
  for (int j = 0; j < kOpenPoseCount; ++j)
    if (keypoint_shown(body[j])) parts.push_back({values[j], limbs + j});
  // Far (small) first so nearer parts cover farther ones; ties keep the drawing order.
  std::stable_sort(parts.begin(), parts.end(), [](const Part& a, const Part& b) { return a.value < b.value; });
  for (const Part& p : parts) {
    if (p.order < limbs)
      cv::fillConvexPoly(canvas, limb_polygon(body, p.order, m, kPoseStickWidth), cv::Scalar(p.value), cv::LINE_8);
    else
      draw_joint(canvas, body[p.order - limbs], m, kPoseJointRadius, cv::Scalar(p.value));
  }
  return canvas;
}

void draw_hands_and_face(cv::Mat& canvas, const std::vector<Keypoint>& lm, const cv::Mat& m) {
  if (lm.size() < static_cast<size_t>(kBlazePoseCount) || canvas.type() != CV_8UC3) return;
  // BlazePose indices: wrists 15/16, pinky 17/18, index 19/20, thumb 21/22 (left/right).
  static constexpr std::array<std::array<int, 2>, 4> kHandEdges = {{{0, 3}, {0, 2}, {0, 1}, {2, 1}}};  // offsets: wrist, pinky, index, thumb
  static const std::array<cv::Scalar, 4> kHandColours = {cv::Scalar(255, 0, 0), cv::Scalar(255, 255, 0),
                                                        cv::Scalar(0, 255, 0), cv::Scalar(0, 255, 255)};
  const auto at = [&](int i) {
    const cv::Point2d p = to_canvas(m, lm[static_cast<size_t>(i)]);
    return cv::Point(static_cast<int>(p.x), static_cast<int>(p.y));
  };
  for (const int side : {0, 1}) {
    const int joints[4] = {15 + side, 17 + side, 19 + side, 21 + side};
    for (size_t e = 0; e < kHandEdges.size(); ++e) {
      const int a = joints[kHandEdges[e][0]], b = joints[kHandEdges[e][1]];
      if (keypoint_shown(lm[a]) && keypoint_shown(lm[b])) cv::line(canvas, at(a), at(b), kHandColours[e], 2, cv::LINE_8);
    }
    for (int k = 1; k < 4; ++k)
      if (keypoint_shown(lm[joints[k]])) cv::circle(canvas, at(joints[k]), 2, cv::Scalar(0, 0, 255), cv::FILLED, cv::LINE_8);
  }
  for (const int i : {1, 3, 4, 6, 9, 10})  // eye inner/outer corners, mouth corners
    if (keypoint_shown(lm[i])) cv::circle(canvas, at(i), 2, cv::Scalar(255, 255, 255), cv::FILLED, cv::LINE_8);
}

void draw_skeleton(cv::Mat& rgb, const Body18& body, const cv::Mat& m, int stick_width, int joint_radius) {
  if (rgb.empty() || rgb.type() != CV_8UC3) return;
  draw_limbs(rgb, body, m, 1.0, std::max(1, stick_width));
  draw_joints(rgb, body, m, std::max(1, joint_radius));
}

}  // namespace standin::vision
