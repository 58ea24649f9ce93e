#pragma once
// The model's conditions that are pure functions of their inputs (no decoding, no networks):
// used by replace/animate (generate.cpp) and by tools/dump_conditions, through which
// tests/python/test_train_conditions.py checks that training (scripts/standin_train/
// conditions.py) makes the same conditions as inference.
#include <ATen/ATen.h>
#include <opencv2/core.hpp>

#include "standin/compose/compositor.hpp"
#include "standin/core/error.hpp"

namespace standin::pipeline {

// Source pixels -> work pixels as a 2x3 CV_64F affine: where pose and depth maps are drawn.
cv::Mat source_to_work_affine(const compose::WorkGeometry& geometry);

// CV_8UC3 RGB -> float32 [1,3,H,W] in [-1, 1].
at::Tensor to_tensor_m11(const cv::Mat& rgb);

struct ReferenceInputs {
  at::Tensor image;  // [1,3,H,W] in [-1,1]: the work canvas
  at::Tensor clip;   // [1,3,S,S] CLIP-normalised
  cv::Mat work_rgb;  // the work canvas, CV_8UC3 RGB (also shown in the preview)
};

// The reference keeps its aspect ratio: `crop` (image pixels, typically the character's box
// with a margin) fitted into the work canvas over white, the background the public
// checkpoints' references mostly have. CLIP input: the crop (clipped to the image) with its
// shortest side resized to `clip_size` (bicubic), centre-cropped, CLIP mean/std.
// Error::bad_input when the crop does not overlap the image.
Result<ReferenceInputs> reference_inputs(const cv::Mat& image, const cv::Rect& crop, cv::Size work, int clip_size);

}  // namespace standin::pipeline
