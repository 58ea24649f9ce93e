// BlazePose -> OpenPose-18 mapping and pose-map rendering (DWPose / Moore-AnimateAnyone style).
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
  body[kNeck] = {0.5f * (l.x + r.x), 0.5f * (l.y + r.y), std::min(l.score, r.score)};
  return body;
}

namespace {

cv::Point2d transform(const cv::Mat& m, const Keypoint& k) {
  if (m.empty()) return {k.x, k.y};
  cv::Mat md;
  m.convertTo(md, CV_64F);
  const double* a = md.ptr<double>(0);
  const double* b = md.ptr<double>(1);
  return {a[0] * k.x + a[1] * k.y + a[2], b[0] * k.x + b[1] * k.y + b[2]};
}

bool shown(const Keypoint& k) {
  return k.score >= kPoseScoreThreshold && std::isfinite(k.x) && std::isfinite(k.y);
}

void draw_limbs(cv::Mat& canvas, const Body18& body, const cv::Mat& m, double dim, int stick = kPoseStickWidth) {
  for (size_t i = 0; i < kOpenPoseLimbs.size(); ++i) {
    const Keypoint& ka = body[kOpenPoseLimbs[i][0]];
    const Keypoint& kb = body[kOpenPoseLimbs[i][1]];
    if (!shown(ka) || !shown(kb)) continue;
    const cv::Point2d a = transform(m, ka), b = transform(m, kb);
    const cv::Point2d mid = 0.5 * (a + b);
    const double length = std::hypot(a.x - b.x, a.y - b.y);
    const double angle = std::atan2(a.y - b.y, a.x - b.x) * 180.0 / CV_PI;
    std::vector<cv::Point> poly;
    cv::ellipse2Poly(cv::Point(static_cast<int>(mid.x), static_cast<int>(mid.y)),
                     cv::Size(static_cast<int>(length / 2), stick), static_cast<int>(angle), 0, 360, 1, poly);
    const cv::Vec3b c = kOpenPoseColors[i];
    cv::fillConvexPoly(canvas, poly, cv::Scalar(c[0] * dim, c[1] * dim, c[2] * dim), cv::LINE_8);
  }
}

void draw_joints(cv::Mat& canvas, const Body18& body, const cv::Mat& m, int radius = kPoseJointRadius) {
  for (int j = 0; j < kOpenPoseCount; ++j) {
    if (!shown(body[j])) continue;
    const cv::Point2d p = transform(m, body[j]);
    const cv::Vec3b c = kOpenPoseColors[j];
    cv::circle(canvas, cv::Point(static_cast<int>(p.x), static_cast<int>(p.y)), radius,
               cv::Scalar(c[0], c[1], c[2]), cv::FILLED, cv::LINE_8);
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

void draw_skeleton(cv::Mat& rgb, const Body18& body, const cv::Mat& m, int stick_width, int joint_radius) {
  if (rgb.empty() || rgb.type() != CV_8UC3) return;
  draw_limbs(rgb, body, m, 1.0, std::max(1, stick_width));
  draw_joints(rgb, body, m, std::max(1, joint_radius));
}

}  // namespace standin::vision
