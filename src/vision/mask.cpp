// Shape-agnostic masks (Animate Anyone 2) and mask refinement.
#include "standin/vision/mask.hpp"

#include <algorithm>

#include <opencv2/imgproc.hpp>

namespace standin::vision {

namespace {

cv::Mat ellipse_kernel(int radius) {
  return cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * radius + 1, 2 * radius + 1));
}

}  // namespace

cv::Rect mask_bounding_box(const cv::Mat& mask, int threshold) {
  if (mask.empty()) return {};
  cv::Mat bin;
  if (mask.type() == CV_8U) {
    bin = mask > threshold;
  } else {
    cv::Mat m8;
    mask.convertTo(m8, CV_8U);
    bin = m8 > threshold;
  }
  std::vector<cv::Point> pts;
  cv::findNonZero(bin, pts);
  if (pts.empty()) return {};
  return cv::boundingRect(pts);
}

cv::Mat shape_agnostic_mask(const cv::Mat& mask, cv::Rect box, int k_h, int k_w) {
  CV_Assert(mask.type() == CV_8U);
  cv::Mat out = cv::Mat::zeros(mask.size(), CV_8U);
  box &= cv::Rect(0, 0, mask.cols, mask.rows);
  if (box.empty()) return out;
  k_h = std::clamp(k_h, 1, box.height);
  k_w = std::clamp(k_w, 1, box.width);
  const int bh = (box.height + k_h - 1) / k_h;
  const int bw = (box.width + k_w - 1) / k_w;
  for (int y = box.y; y < box.y + box.height; y += bh) {
    for (int x = box.x; x < box.x + box.width; x += bw) {
      const cv::Rect block(x, y, std::min(bw, box.x + box.width - x), std::min(bh, box.y + box.height - y));
      double mx = 0;
      cv::minMaxLoc(mask(block), nullptr, &mx);
      if (mx > 0) out(block).setTo(cv::Scalar(mx));
    }
  }
  return out;
}

cv::Mat shape_agnostic_mask_inference(const cv::Mat& mask, cv::Rect box, int dilate_px, int blocks) {
  if (box.empty()) box = mask_bounding_box(mask);
  const int k_h = blocks > 0 ? blocks : std::max(1, box.height / 10);
  const int k_w = blocks > 0 ? blocks : std::max(1, box.width / 10);
  cv::Mat out = shape_agnostic_mask(mask, box, k_h, k_w);
  if (dilate_px > 0) cv::dilate(out, out, ellipse_kernel(dilate_px));
  return out;
}

std::optional<MaskMode> parse_mask_mode(const std::string& name) {
  if (name == "agnostic") return MaskMode::agnostic;
  if (name == "tight") return MaskMode::tight;
  if (name == "box") return MaskMode::box;
  return std::nullopt;
}

const char* to_string(MaskMode mode) {
  switch (mode) {
    case MaskMode::agnostic: return "agnostic";
    case MaskMode::tight: return "tight";
    case MaskMode::box: return "box";
  }
  return "agnostic";
}

cv::Mat redraw_region(const cv::Mat& character, MaskMode mode, int dilate_px, int blocks) {
  CV_Assert(character.type() == CV_8U);
  const cv::Mat binary = character > 0;
  if (mode == MaskMode::agnostic) return shape_agnostic_mask_inference(binary, {}, dilate_px, blocks);
  cv::Mat out;
  if (mode == MaskMode::tight) {
    out = binary;
  } else {
    out = cv::Mat::zeros(character.size(), CV_8U);
    const cv::Rect box = mask_bounding_box(binary);
    if (!box.empty()) out(box).setTo(255);
  }
  if (dilate_px > 0) cv::dilate(out, out, ellipse_kernel(dilate_px));
  return out;
}

cv::Mat shape_agnostic_mask_training(const cv::Mat& mask, cv::Rect box, std::mt19937& rng,
                                     const AgnosticTrainingOptions& o) {
  if (box.empty()) box = mask_bounding_box(mask);
  if (box.empty()) return cv::Mat::zeros(mask.size(), CV_8U);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  const int lo = std::max(1, o.block_min_px), hi = std::max(lo, o.block_max_px);
  std::uniform_int_distribution<int> block(lo, hi);
  const int block_h = block(rng), block_w = block(rng);
  cv::Mat source = mask;  // replaced (never written through) when the box grows
  if (o.scale_max > o.scale_min && unit(rng) < o.scale_probability) {
    // Pretend the character is larger: grow the box about its centre and the mask with it,
    // so the agnostic mask can exceed the character's silhouette.
    std::uniform_real_distribution<float> scale(o.scale_min, o.scale_max);
    const float sx = scale(rng), sy = scale(rng);
    const float cx = box.x + box.width * 0.5f, cy = box.y + box.height * 0.5f;
    const float w = box.width * sx, h = box.height * sy;
    const int grow = static_cast<int>(std::max(w - box.width, h - box.height) / 2);
    box = cv::Rect(cvRound(cx - w / 2), cvRound(cy - h / 2), cvRound(w), cvRound(h));
    if (grow > 0) {
      cv::Mat grown;
      cv::dilate(mask, grown, ellipse_kernel(grow));
      source = grown;
    }
  }
  return shape_agnostic_mask(source, box, std::max(1, box.height / block_h), std::max(1, box.width / block_w));
}

cv::Mat MaskRefiner::refine(const cv::Mat& probability, cv::Rect person_box) {
  cv::Mat p;
  if (probability.type() == CV_32F) {
    p = probability;
  } else {
    probability.convertTo(p, CV_32F, probability.depth() == CV_8U ? 1.0 / 255.0 : 1.0);
  }
  const float a = std::clamp(options_.ema, 0.0f, 1.0f);
  if (state_.empty() || state_.size() != p.size() || a >= 1.0f) {
    state_ = p.clone();
  } else {
    cv::addWeighted(p, a, state_, 1.0f - a, 0.0, state_);
  }
  cv::Mat bin = state_ > options_.threshold;  // CV_8U 0/255
  if (options_.open_px > 0) cv::morphologyEx(bin, bin, cv::MORPH_OPEN, ellipse_kernel(options_.open_px));
  if (options_.close_px > 0) cv::morphologyEx(bin, bin, cv::MORPH_CLOSE, ellipse_kernel(options_.close_px));
  if (options_.keep_largest) {
    cv::Mat labels, stats, centroids;
    const int n = cv::connectedComponentsWithStats(bin, labels, stats, centroids, 8, CV_32S);
    if (n > 2) {
      int largest = 0, best = 0;
      for (int i = 1; i < n; ++i) {
        const int area = stats.at<int>(i, cv::CC_STAT_AREA);
        if (area > best) best = area, largest = i;
      }
      std::vector<uchar> keep(n, 0);
      for (int i = 1; i < n; ++i) {
        const cv::Rect r(stats.at<int>(i, cv::CC_STAT_LEFT), stats.at<int>(i, cv::CC_STAT_TOP),
                         stats.at<int>(i, cv::CC_STAT_WIDTH), stats.at<int>(i, cv::CC_STAT_HEIGHT));
        const int area = stats.at<int>(i, cv::CC_STAT_AREA);
        const bool in_box = !person_box.empty() && (r & person_box).area() > 0 && area * 20 >= best;
        keep[i] = (i == largest || in_box) ? 255 : 0;
      }
      // labels are CV_32S; map through a loop (n is small, the image is not).
      for (int y = 0; y < bin.rows; ++y) {
        const int* l = labels.ptr<int>(y);
        uchar* b = bin.ptr<uchar>(y);
        for (int x = 0; x < bin.cols; ++x) b[x] = keep[l[x]];
      }
    }
  }
  if (options_.dilate_px > 0) cv::dilate(bin, bin, ellipse_kernel(options_.dilate_px));
  if (options_.feather_px > 0) {
    const int k = 2 * options_.feather_px + 1;
    cv::GaussianBlur(bin, bin, cv::Size(k, k), options_.feather_px / 2.0);
  }
  return bin;
}

}  // namespace standin::vision
