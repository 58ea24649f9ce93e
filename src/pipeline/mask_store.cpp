#include "mask_store.hpp"

namespace standin::pipeline {

RleMask RleMask::encode(const cv::Mat& mask8, int threshold) {
  CV_Assert(mask8.type() == CV_8UC1);
  RleMask rle;
  rle.size_ = mask8.size();
  bool value = false;
  uint32_t run = 0;
  for (int y = 0; y < mask8.rows; ++y) {
    const uint8_t* row = mask8.ptr<uint8_t>(y);
    for (int x = 0; x < mask8.cols; ++x) {
      const bool on = row[x] > threshold;
      if (on != value) {
        rle.runs_.push_back(run);
        run = 0;
        value = on;
      }
      ++run;
    }
  }
  rle.runs_.push_back(run);
  return rle;
}

cv::Mat RleMask::decode() const {
  if (empty()) return {};
  cv::Mat out(size_, CV_8UC1, cv::Scalar(0));
  uint8_t* data = out.ptr<uint8_t>(0);  // freshly allocated, so continuous
  size_t position = 0;
  bool value = false;
  for (uint32_t run : runs_) {
    if (value) std::fill(data + position, data + position + run, uint8_t{255});
    position += run;
    value = !value;
  }
  return out;
}

}  // namespace standin::pipeline
