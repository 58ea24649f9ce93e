#pragma once
// Per-frame binary masks kept run-length encoded: a 1080p character mask costs a few KB instead
// of 2 MB, so a whole video's masks fit in memory between the analysis and compositing passes.
#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

namespace standin::pipeline {

class RleMask {
 public:
  RleMask() = default;
  // Pixels > threshold become 255, the rest 0.
  static RleMask encode(const cv::Mat& mask8, int threshold = 127);
  cv::Mat decode() const;  // CV_8U 0/255; empty Mat for a default-constructed mask
  bool empty() const { return size_.area() == 0; }
  bool any() const { return runs_.size() > 1; }
  cv::Size size() const { return size_; }
  size_t bytes() const { return runs_.size() * sizeof(uint32_t); }

 private:
  cv::Size size_;
  // Alternating run lengths in row-major order, starting with a run of zeros (possibly 0 long).
  std::vector<uint32_t> runs_;
};

}  // namespace standin::pipeline
