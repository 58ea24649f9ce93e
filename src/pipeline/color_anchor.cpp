// Colour anchoring to the reference (color_anchor.hpp).
#include "color_anchor.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <opencv2/imgproc.hpp>

namespace standin::pipeline {
namespace {

cv::Mat to_lab(const cv::Mat& rgb) {
  cv::Mat f, lab;
  rgb.convertTo(f, CV_32FC3, 1.0 / 255);
  cv::cvtColor(f, lab, cv::COLOR_RGB2Lab);
  return lab;
}

}  // namespace

std::optional<cv::Vec3d> mean_lab(const cv::Mat& rgb, const cv::Mat& weight) {
  CV_Assert(rgb.type() == CV_8UC3 && weight.size() == rgb.size());
  cv::Mat w;
  if (weight.type() == CV_32F) {
    w = weight;
  } else {
    const cv::Mat nonzero = weight > 0;
    nonzero.convertTo(w, CV_32F, 1.0 / 255);
  }
  const double total = cv::sum(w)[0];
  if (!(total > 1e-3)) return std::nullopt;
  const cv::Mat lab = to_lab(rgb);
  cv::Vec3d sum(0, 0, 0);
  for (int y = 0; y < lab.rows; ++y) {
    const cv::Vec3f* px = lab.ptr<cv::Vec3f>(y);
    const float* wy = w.ptr<float>(y);
    for (int x = 0; x < lab.cols; ++x)
      if (wy[x] != 0.0f)
        for (int c = 0; c < 3; ++c) sum[c] += static_cast<double>(wy[x]) * px[x][c];
  }
  return sum / total;
}

cv::Mat shift_lab(const cv::Mat& rgb, const cv::Vec3d& shift, const cv::Mat& weight) {
  CV_Assert(rgb.type() == CV_8UC3 && weight.type() == CV_32F && weight.size() == rgb.size());
  cv::Mat lab = to_lab(rgb);
  for (int y = 0; y < lab.rows; ++y) {
    cv::Vec3f* px = lab.ptr<cv::Vec3f>(y);
    const float* wy = weight.ptr<float>(y);
    for (int x = 0; x < lab.cols; ++x)
      if (wy[x] != 0.0f)
        for (int c = 0; c < 3; ++c) px[x][c] += static_cast<float>(wy[x] * shift[c]);
  }
  cv::Mat back, out;
  cv::cvtColor(lab, back, cv::COLOR_Lab2RGB);
  back.convertTo(out, CV_8UC3, 255.0);  // rounds and saturates
  return out;
}

cv::Mat skeleton_region(const vision::Body18& body, cv::Size canvas, const cv::Mat& m, int grow_px) {
  cv::Mat region = cv::Mat::zeros(canvas, CV_8U);
  std::vector<cv::Point> points;
  for (const auto& k : body) {
    if (!vision::keypoint_shown(k)) continue;
    const cv::Point2d p = vision::to_canvas(m, k);
    points.emplace_back(static_cast<int>(std::lround(p.x)), static_cast<int>(std::lround(p.y)));
  }
  if (points.size() < 2) return region;
  std::vector<cv::Point> hull;
  cv::convexHull(points, hull);
  cv::fillConvexPoly(region, hull, cv::Scalar(255));
  if (grow_px > 0)
    cv::dilate(region, region, cv::getStructuringElement(cv::MORPH_ELLIPSE, {2 * grow_px + 1, 2 * grow_px + 1}));
  return region;
}

cv::Mat anchor_color(const cv::Mat& rgb, const cv::Mat& region, const cv::Vec3d& target, int soft_px) {
  const auto current = mean_lab(rgb, region);
  if (!current) return rgb;
  cv::Mat weight;
  region.convertTo(weight, CV_32F, 1.0 / 255);
  if (soft_px > 0) cv::GaussianBlur(weight, weight, {2 * soft_px + 1, 2 * soft_px + 1}, soft_px / 2.0);
  return shift_lab(rgb, target - *current, weight);
}

}  // namespace standin::pipeline
