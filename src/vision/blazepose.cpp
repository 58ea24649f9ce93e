// BlazePose geometry: see include/standin/vision/blazepose.hpp. Written from MediaPipe's
// documented calculator options and rules (no network code here).
#include "standin/vision/blazepose.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <opencv2/imgproc.hpp>

namespace standin::vision::blazepose {

namespace {

float anchor_scale(float min_scale, float max_scale, int index, int count) {
  if (count == 1) return 0.5f * (min_scale + max_scale);
  return min_scale + (max_scale - min_scale) * static_cast<float>(index) / static_cast<float>(count - 1);
}

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

std::vector<Anchor> generate_anchors(const AnchorOptions& o) {
  std::vector<Anchor> anchors;
  const int n = std::min<int>(o.num_layers, static_cast<int>(o.strides.size()));
  int layer = 0;
  while (layer < n) {
    std::vector<float> heights, widths;
    // Consecutive layers with the same stride share one feature map.
    int last = layer;
    while (last < n && o.strides[last] == o.strides[layer]) {
      const float scale = anchor_scale(o.min_scale, o.max_scale, last, n);
      if (last == 0 && o.reduce_boxes_in_lowest_layer) {
        const float ratios[3] = {1.0f, 2.0f, 0.5f};
        const float scales[3] = {0.1f, scale, scale};
        for (int i = 0; i < 3; ++i) {
          heights.push_back(scales[i] / std::sqrt(ratios[i]));
          widths.push_back(scales[i] * std::sqrt(ratios[i]));
        }
      } else {
        for (float ar : o.aspect_ratios) {
          heights.push_back(scale / std::sqrt(ar));
          widths.push_back(scale * std::sqrt(ar));
        }
        if (o.interpolated_scale_aspect_ratio > 0) {
          const float next = last == n - 1 ? 1.0f : anchor_scale(o.min_scale, o.max_scale, last + 1, n);
          const float s = std::sqrt(scale * next);
          const float ar = o.interpolated_scale_aspect_ratio;
          heights.push_back(s / std::sqrt(ar));
          widths.push_back(s * std::sqrt(ar));
        }
      }
      ++last;
    }
    const int stride = o.strides[layer];
    const int fh = static_cast<int>(std::ceil(static_cast<float>(o.input_height) / stride));
    const int fw = static_cast<int>(std::ceil(static_cast<float>(o.input_width) / stride));
    for (int y = 0; y < fh; ++y) {
      for (int x = 0; x < fw; ++x) {
        for (size_t k = 0; k < heights.size(); ++k) {
          Anchor a;
          a.x_center = (x + o.anchor_offset_x) / fw;
          a.y_center = (y + o.anchor_offset_y) / fh;
          a.w = o.fixed_anchor_size ? 1.0f : widths[k];
          a.h = o.fixed_anchor_size ? 1.0f : heights[k];
          anchors.push_back(a);
        }
      }
    }
    layer = last;
  }
  return anchors;
}

std::vector<Detection> decode_detections(const float* boxes, const float* scores, int num_boxes,
                                         const std::vector<Anchor>& anchors, const DecodeOptions& o) {
  std::vector<Detection> out;
  const int count = std::min<int>(num_boxes, static_cast<int>(anchors.size()));
  for (int i = 0; i < count; ++i) {
    float logit = scores[i];
    if (o.score_clipping > 0) logit = std::clamp(logit, -o.score_clipping, o.score_clipping);
    const float score = sigmoid(logit);
    if (score < o.min_score) continue;
    const float* r = boxes + static_cast<size_t>(i) * o.num_coords;
    const Anchor& a = anchors[i];
    float xc, yc, w, h;
    if (o.reverse_output_order) {
      xc = r[0]; yc = r[1]; w = r[2]; h = r[3];
    } else {
      yc = r[0]; xc = r[1]; h = r[2]; w = r[3];
    }
    xc = xc / o.x_scale * a.w + a.x_center;
    yc = yc / o.y_scale * a.h + a.y_center;
    w = w / o.w_scale * a.w;
    h = h / o.h_scale * a.h;
    Detection d;
    d.score = score;
    d.box = cv::Rect2f(xc - w / 2, yc - h / 2, w, h);
    for (int k = 0; k < std::min(o.num_keypoints, 4); ++k) {
      const float* kp = r + o.keypoint_coord_offset + 2 * k;
      float kx = o.reverse_output_order ? kp[0] : kp[1];
      float ky = o.reverse_output_order ? kp[1] : kp[0];
      d.keypoints[k] = {kx / o.x_scale * a.w + a.x_center, ky / o.y_scale * a.h + a.y_center};
    }
    out.push_back(d);
  }
  return out;
}

float iou(const cv::Rect2f& a, const cv::Rect2f& b) {
  const float ix = std::max(0.0f, std::min(a.x + a.width, b.x + b.width) - std::max(a.x, b.x));
  const float iy = std::max(0.0f, std::min(a.y + a.height, b.y + b.height) - std::max(a.y, b.y));
  const float inter = ix * iy;
  const float uni = a.area() + b.area() - inter;
  return uni > 0 ? inter / uni : 0.0f;
}

std::vector<Detection> weighted_nms(std::vector<Detection> dets, float iou_threshold, int max_detections) {
  std::stable_sort(dets.begin(), dets.end(), [](const Detection& a, const Detection& b) { return a.score > b.score; });
  std::vector<Detection> out;
  std::vector<bool> used(dets.size(), false);
  for (size_t i = 0; i < dets.size(); ++i) {
    if (used[i]) continue;
    if (max_detections > 0 && static_cast<int>(out.size()) >= max_detections) break;
    const Detection& top = dets[i];
    float wsum = 0;
    float bx0 = 0, by0 = 0, bx1 = 0, by1 = 0;
    std::array<cv::Point2f, 4> kps{};
    for (size_t j = i; j < dets.size(); ++j) {
      if (used[j]) continue;
      if (j != i && iou(top.box, dets[j].box) <= iou_threshold) continue;
      used[j] = true;
      const Detection& d = dets[j];
      const float w = d.score;
      wsum += w;
      bx0 += w * d.box.x;
      by0 += w * d.box.y;
      bx1 += w * (d.box.x + d.box.width);
      by1 += w * (d.box.y + d.box.height);
      for (int k = 0; k < 4; ++k) kps[k] += w * d.keypoints[k];
    }
    Detection merged = top;
    if (wsum > 0) {
      merged.box = cv::Rect2f(bx0 / wsum, by0 / wsum, (bx1 - bx0) / wsum, (by1 - by0) / wsum);
      for (int k = 0; k < 4; ++k) merged.keypoints[k] = kps[k] * (1.0f / wsum);
    }
    out.push_back(merged);
  }
  return out;
}

cv::Mat Letterbox::image_to_input() const {
  cv::Mat m = (cv::Mat_<double>(2, 3) << scale, 0, pad_x, 0, scale, pad_y);
  return m;
}

Letterbox make_letterbox(cv::Size image, cv::Size input) {
  Letterbox lb;
  lb.image = image;
  lb.input = input;
  if (image.width <= 0 || image.height <= 0) return lb;
  lb.scale = std::min(static_cast<float>(input.width) / image.width, static_cast<float>(input.height) / image.height);
  lb.pad_x = 0.5f * (input.width - image.width * lb.scale);
  lb.pad_y = 0.5f * (input.height - image.height * lb.scale);
  return lb;
}

Detection remove_letterbox(const Detection& d, const Letterbox& lb) {
  auto to_image = [&](cv::Point2f p) {
    return cv::Point2f((p.x * lb.input.width - lb.pad_x) / lb.scale, (p.y * lb.input.height - lb.pad_y) / lb.scale);
  };
  Detection out = d;
  const cv::Point2f tl = to_image({d.box.x, d.box.y});
  const cv::Point2f br = to_image({d.box.x + d.box.width, d.box.y + d.box.height});
  out.box = cv::Rect2f(tl.x, tl.y, br.x - tl.x, br.y - tl.y);
  for (int k = 0; k < 4; ++k) out.keypoints[k] = to_image(d.keypoints[k]);
  return out;
}

float normalize_radians(float angle) {
  const float two_pi = static_cast<float>(2 * CV_PI);
  return angle - two_pi * std::floor((angle + static_cast<float>(CV_PI)) / two_pi);
}

Roi roi_from_alignment(cv::Point2f start, cv::Point2f end, float scale, float target_angle) {
  Roi roi;
  const float dx = end.x - start.x, dy = end.y - start.y;
  const float side = 2.0f * std::sqrt(dx * dx + dy * dy);
  roi.center = start;
  roi.rotation = normalize_radians(target_angle - std::atan2(-dy, dx));
  // square_long: the long side in pixels on both axes (already square here), then scaled.
  roi.width = side * scale;
  roi.height = side * scale;
  return roi;
}

cv::Mat roi_crop_to_image(const Roi& roi, cv::Size crop) {
  // image = centre + R(rot) * (sx * (u - cw/2), sy * (v - ch/2))
  const double c = std::cos(roi.rotation), s = std::sin(roi.rotation);
  const double sx = roi.width / crop.width, sy = roi.height / crop.height;
  const double a = c * sx, b = -s * sy, d = s * sx, e = c * sy;
  const double tx = roi.center.x - (a * crop.width / 2.0 + b * crop.height / 2.0);
  const double ty = roi.center.y - (d * crop.width / 2.0 + e * crop.height / 2.0);
  cv::Mat m = (cv::Mat_<double>(2, 3) << a, b, tx, d, e, ty);
  return m;
}

cv::Mat roi_image_to_crop(const Roi& roi, cv::Size crop) {
  cv::Mat inv;
  cv::invertAffineTransform(roi_crop_to_image(roi, crop), inv);
  return inv;
}

cv::Point2f crop_to_image(const Roi& roi, cv::Size crop, cv::Point2f p) {
  const float c = std::cos(roi.rotation), s = std::sin(roi.rotation);
  const float x = (p.x / crop.width - 0.5f) * roi.width;
  const float y = (p.y / crop.height - 0.5f) * roi.height;
  return {roi.center.x + c * x - s * y, roi.center.y + s * x + c * y};
}

cv::Rect2f roi_bounds(const Roi& roi) {
  const cv::RotatedRect rr(roi.center, cv::Size2f(roi.width, roi.height), roi.rotation * 180.0f / static_cast<float>(CV_PI));
  return rr.boundingRect2f();
}

float OneEuroFilter::apply(float value, double dt_s, float value_scale) {
  const double freq = dt_s > 0 ? 1.0 / dt_s : o_.frequency;
  auto alpha = [&](double cutoff) {
    const double tau = 1.0 / (2 * CV_PI * cutoff);
    return 1.0 / (1.0 + tau * freq);
  };
  if (!initialized_) {
    initialized_ = true;
    x_prev_ = value;
    dx_prev_ = 0;
    return value;
  }
  const double dx = (value - x_prev_) * value_scale * freq;
  const double a_d = alpha(o_.derivate_cutoff);
  const double edx = a_d * dx + (1 - a_d) * dx_prev_;
  dx_prev_ = static_cast<float>(edx);
  const double cutoff = o_.min_cutoff + o_.beta * std::abs(edx);
  const double a = alpha(cutoff);
  x_prev_ = static_cast<float>(a * value + (1 - a) * x_prev_);
  return x_prev_;
}

}  // namespace standin::vision::blazepose
