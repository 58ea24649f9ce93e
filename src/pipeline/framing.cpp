#include "framing.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

namespace standin::pipeline {

Framing Framing::around(cv::Size source, cv::Size work, cv::Rect2d box, double margin) {
  Framing f;
  f.source = source;
  f.work = work;
  const double aspect = static_cast<double>(work.width) / work.height;
  if (box.area() <= 0) box = cv::Rect2d(0, 0, source.width, source.height);
  const double grow_x = box.width * margin, grow_y = box.height * margin;
  box = cv::Rect2d(box.x - grow_x, box.y - grow_y, box.width + 2 * grow_x, box.height + 2 * grow_y);
  double width = std::max(box.width, box.height * aspect);
  double height = width / aspect;
  // Never larger than the whole frame letterboxed: more would only add padding.
  const double letterbox_width = std::max<double>(source.width, source.height * aspect);
  if (width > letterbox_width) {
    width = letterbox_width;
    height = width / aspect;
  }
  auto place = [](double centre, double extent, double limit) {
    if (extent >= limit) return (limit - extent) / 2;  // centred, padded both sides
    return std::clamp(centre - extent / 2, 0.0, limit - extent);
  };
  f.crop = cv::Rect2d(place(box.x + box.width / 2, width, source.width),
                      place(box.y + box.height / 2, height, source.height), width, height);
  return f;
}

cv::Mat Framing::source_to_work() const {
  const double s = scale();
  return (cv::Mat_<double>(2, 3) << s, 0, -s * crop.x, 0, s, -s * crop.y);
}

cv::Mat Framing::to_work(const cv::Mat& image, int interpolation, const cv::Scalar& border) const {
  // One exact affine for both directions. When shrinking a lot, low-pass first so thin edges
  // do not alias (warpAffine samples, it does not average).
  const double s = scale();
  cv::Mat source_image = image;
  if (interpolation != cv::INTER_NEAREST && s < 0.5) {
    const double sigma = 0.5 / s;
    cv::GaussianBlur(image, source_image, cv::Size(), sigma, sigma, cv::BORDER_REPLICATE);
  }
  cv::Mat out;
  cv::warpAffine(source_image, out, source_to_work(), work, interpolation, cv::BORDER_CONSTANT, border);
  return out;
}

cv::Mat Framing::to_source(const cv::Mat& image, int interpolation) const {
  cv::Mat out;
  cv::warpAffine(image, out, source_to_work(), source, interpolation | cv::WARP_INVERSE_MAP, cv::BORDER_CONSTANT);
  return out;
}

}  // namespace standin::pipeline
