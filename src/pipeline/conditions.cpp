// Pure condition functions shared by generate.cpp and tools/dump_conditions (conditions.hpp).
#include "standin/pipeline/conditions.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include <opencv2/imgproc.hpp>

namespace standin::pipeline {

cv::Mat source_to_work_affine(const compose::WorkGeometry& g) {
  return (cv::Mat_<double>(2, 3) << g.scale(), 0, -g.scale() * g.crop.x, 0, g.scale_y(), -g.scale_y() * g.crop.y);
}

at::Tensor to_tensor_m11(const cv::Mat& rgb) {
  cv::Mat f;
  rgb.convertTo(f, CV_32FC3, 1.0 / 127.5, -1.0);
  return at::from_blob(f.data, {1, f.rows, f.cols, 3}, at::kFloat).permute({0, 3, 1, 2}).contiguous();
}

Result<ReferenceInputs> reference_inputs(const cv::Mat& image, const cv::Rect& crop, cv::Size work, int clip_size) {
  const cv::Rect inside = crop & cv::Rect(0, 0, image.cols, image.rows);
  if (inside.empty())
    return Error::bad_input("reference crop (" + std::to_string(crop.x) + ", " + std::to_string(crop.y) + ", " +
                            std::to_string(crop.width) + "x" + std::to_string(crop.height) + ") is outside the " +
                            std::to_string(image.cols) + "x" + std::to_string(image.rows) + " image");
  const compose::WorkGeometry geometry = compose::fit_box(image.size(), work, cv::Rect2d(crop), 0.0);
  ReferenceInputs out;
  out.work_rgb = compose::to_work(image, geometry, cv::INTER_LINEAR, cv::Scalar::all(255));
  out.image = to_tensor_m11(out.work_rgb);

  const cv::Mat region = image(inside);
  const double s = static_cast<double>(clip_size) / std::min(region.cols, region.rows);
  cv::Mat resized;
  cv::resize(region, resized, cv::Size(std::max(clip_size, static_cast<int>(std::lround(region.cols * s))),
                                       std::max(clip_size, static_cast<int>(std::lround(region.rows * s)))),
             0, 0, cv::INTER_CUBIC);
  const cv::Mat centre = resized(cv::Rect((resized.cols - clip_size) / 2, (resized.rows - clip_size) / 2, clip_size, clip_size));
  cv::Mat f;
  centre.convertTo(f, CV_32FC3, 1.0 / 255);
  auto clip = at::from_blob(f.data, {1, clip_size, clip_size, 3}, at::kFloat).permute({0, 3, 1, 2}).clone();
  const auto mean = at::tensor({0.48145466f, 0.4578275f, 0.40821073f}).view({1, 3, 1, 1});
  const auto std = at::tensor({0.26862954f, 0.26130258f, 0.27577711f}).view({1, 3, 1, 1});
  out.clip = (clip - mean) / std;
  return out;
}

}  // namespace standin::pipeline
