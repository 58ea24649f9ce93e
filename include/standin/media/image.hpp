#pragma once
// Still images through FFmpeg (the GPU build's OpenCV has no imgcodecs).
#include <string>

#include <opencv2/core/mat.hpp>

#include "standin/core/error.hpp"

namespace standin::media {

// Any still format the linked FFmpeg decodes (PNG, JPEG, BMP, TIFF, WebP, ...), as CV_8UC3
// RGB. JPEG EXIF orientation is applied when the decoder exports it. Transparent pixels are
// composited over white so a cut-out character keeps a clean background.
// Errors: Error::bad_input naming the file.
Result<cv::Mat> read_image(const std::string& path);

// Writes a CV_8UC3 RGB image as PNG (the path's extension is not inspected).
// Errors: Error::runtime naming the file.
Status write_image(const std::string& path, const cv::Mat& rgb);

}  // namespace standin::media
