#pragma once
// How the source frame maps onto the work canvas: a crop around the character with the work
// aspect ratio, scaled uniformly (never distorted); parts of the crop outside the frame are
// padding. One framing serves the whole video so the background does not shake.
#include <opencv2/core.hpp>

namespace standin::pipeline {

struct Framing {
  cv::Size source;
  cv::Size work;
  cv::Rect2d crop;  // in source pixels; may extend past the frame (padding)

  // `box` empty = the whole frame (letterbox). `margin` grows the box by that fraction of its
  // size on each side before fitting the aspect ratio.
  static Framing around(cv::Size source, cv::Size work, cv::Rect2d box, double margin = 0.15);

  double scale() const { return work.width / crop.width; }
  cv::Mat source_to_work() const;  // 2x3 CV_64F

  // Source-sized image -> work canvas (low-passed when shrinking, padding = `border`).
  cv::Mat to_work(const cv::Mat& image, int interpolation, const cv::Scalar& border = cv::Scalar::all(0)) const;
  // Work-sized image -> source size (pixels outside the crop: `border`).
  cv::Mat to_source(const cv::Mat& image, int interpolation) const;
};

}  // namespace standin::pipeline
