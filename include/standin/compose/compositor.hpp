#pragma once
// Work-resolution geometry and compositing (OpenCV only; no Torch).
//
// The generator works on W×H "work" frames. A WorkGeometry says which region of the source
// frame a work frame shows: an axis-aligned `crop` rectangle in SOURCE pixel coordinates that
// is resized to the work size with one scale for both axes (aspect kept, never distorted).
// The crop may extend past the source frame: that part is padding. So
//   * letterboxing (whole frame, padded)       = a crop larger than the source, centred on it;
//   * cropping (around the character or centre) = a crop inside the source.
// to_work() makes work frames from source frames (conditions: environment, masks, pose maps);
// from_work() maps a generated work frame back onto the source; Compositor blends it into the
// ORIGINAL frame through a feathered character mask. Source pixels where the feathered mask is
// 0 are copied, never recomputed, so they stay bit-identical.
//
// Use ONE geometry per clip (e.g. fit_box() on the union of the track's boxes): a geometry
// that changes per frame makes the generated video shake.
#include <cstdint>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>  // cv::INTER_* defaults below

#include "standin/core/error.hpp"

namespace standin::compose {

struct WorkGeometry {
  cv::Size source;  // source frame size
  cv::Size work;    // work frame size
  cv::Rect crop;    // source-pixel region shown by the work frame (may exceed the source = padding)

  // Work pixels per source pixel (the x and y scales differ only by integer rounding of `crop`).
  double scale() const { return crop.width > 0 ? double(work.width) / crop.width : 0.0; }
  double scale_y() const { return crop.height > 0 ? double(work.height) / crop.height : 0.0; }
  // Part of the crop inside the source frame.
  cv::Rect visible() const { return crop & cv::Rect(cv::Point(0, 0), source); }
  bool padded() const { return visible() != crop; }
  // Point mapping (continuous pixel coordinates, pixel centres at +0.5).
  cv::Point2d source_to_work(cv::Point2d p) const;
  cv::Point2d work_to_source(cv::Point2d p) const;
  Status validate() const;
};

enum class FitMode {
  pad,   // whole source visible, padded to the work aspect (letterbox / pillarbox)
  crop,  // work frame filled, the source cut to the work aspect (centred)
};

// Whole-frame fit.
WorkGeometry fit_frame(cv::Size source, cv::Size work, FitMode mode);

// Region of the work aspect around `box` (source pixels) grown by `margin` (fraction of the
// box size on each side): as small as possible while containing the grown box, moved inside the
// source where it fits, centred on the source (and so padded) along an axis where it does not.
// An empty box falls back to fit_frame(pad).
WorkGeometry fit_box(cv::Size source, cv::Size work, const cv::Rect2d& box, double margin = 0.15);

// Source image -> work image (crop, pad, resize). INTER_AREA when shrinking, `upscale`
// (INTER_LINEAR / INTER_CUBIC) when enlarging; INTER_NEAREST keeps label masks binary.
// Padding is `pad_value`, or the replicated edge when `replicate_border`.
cv::Mat to_work(const cv::Mat& source_image, const WorkGeometry& g, int upscale = cv::INTER_LINEAR,
                const cv::Scalar& pad_value = cv::Scalar::all(0), bool replicate_border = false);
// Same for masks: area average when shrinking (soft edges), linear when enlarging.
cv::Mat mask_to_work(const cv::Mat& source_mask, const WorkGeometry& g);

// Work image -> the visible part of its crop at source resolution. `rect` = g.visible().
struct Placed {
  cv::Mat image;  // rect.size(), same type as the work image
  cv::Rect rect;  // in source pixels
};
Placed from_work(const cv::Mat& work_image, const WorkGeometry& g, int interpolation = cv::INTER_CUBIC);

struct FeatherOptions {
  int dilate_px = 8;          // grow the character mask by this many source pixels first
  double sigma_px = 4.0;      // then Gaussian-feather with this sigma (source pixels)
  double zero_below = 1.0 / 1024;  // feathered values under this become exactly 0 (pixel kept)
  double one_above = 1.0 - 1.0 / 1024;  // and over this exactly 1 (pixel fully generated)
  // Defaults that scale with the frame: dilation ≈ 1% of the short side, sigma half of it.
  static FeatherOptions for_source(cv::Size source);
  // An explicit soft-edge width (--feather PX): dilation PX, sigma PX / 2; 0 = a hard edge
  // exactly on the mask.
  static FeatherOptions with_width(int px);
};

// Character mask (CV_8U 0/255 or CV_32F 0..1, source size) -> CV_32F alpha in [0,1]: dilated,
// Gaussian-feathered, snapped to exact 0 / 1 at the tails.
cv::Mat feather_mask(const cv::Mat& mask, const FeatherOptions& options);

// out = original where alpha == 0, generated where alpha == 1, rounded mix between.
// original: CV_8UC3 (or CV_8UC1); generated: same type and size as the region `rect` of the
// original; alpha: CV_32F of the original's size. Pixels outside `rect` are copied.
cv::Mat blend(const cv::Mat& original, const cv::Mat& generated, const cv::Rect& rect, const cv::Mat& alpha);

class Compositor {
 public:
  Compositor(WorkGeometry geometry, FeatherOptions feather);
  // original: CV_8UC3 source frame; generated_work: CV_8UC3 work frame (same channel order);
  // character_mask: source-size mask of the region to replace (the dilated/feathered result of
  // it is where generated pixels appear). Error::bad_input on size/type mismatches.
  Result<cv::Mat> composite(const cv::Mat& original, const cv::Mat& generated_work, const cv::Mat& character_mask) const;
  // The two halves of composite(): the compositing alpha (CV_32F, source size) of a character
  // mask, and the blend through a given alpha (what a matte records).
  cv::Mat alpha(const cv::Mat& character_mask) const { return feather_mask(character_mask, feather_); }
  Result<cv::Mat> composite_with_alpha(const cv::Mat& original, const cv::Mat& generated_work, const cv::Mat& alpha) const;
  const WorkGeometry& geometry() const { return geometry_; }

 private:
  WorkGeometry geometry_;
  FeatherOptions feather_;
};

// Pixel format bridges to the generator's planar float tensors (no Torch here: the caller wraps
// the buffers, e.g. with at::from_blob).
// BGR CV_8UC3 -> planar RGB float [3,H,W] in [-1,1] (or [0,1] when `unit_range`) into `out`.
void bgr8_to_planar_rgb(const cv::Mat& bgr, float* out, bool unit_range = false);
// Planar RGB float [3,H,W] in [-1,1] -> BGR CV_8UC3 (rounded, clamped).
cv::Mat planar_rgb_to_bgr8(const float* planar, int height, int width);

}  // namespace standin::compose
