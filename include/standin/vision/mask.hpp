#pragma once
// Character masks: the shape-agnostic mask of Animate Anyone 2 and the refinement that turns a
// network's per-frame probability map into a clean, temporally stable soft mask.
#include <cstdint>
#include <optional>
#include <random>
#include <string>

#include <opencv2/core.hpp>

namespace standin::vision {

// Block-max mask: inside `box` (clipped to the image) the mask is split into k_h x k_w blocks
// (block height = box.height / k_h rounded up, likewise width) and every block is set to its
// maximum; outside the box the result is 0. Input CV_8U (any values, 0 = background); output
// CV_8U of the same size. The result covers the input inside the box (out >= in there).
// k_h/k_w < 1 are treated as 1.
cv::Mat shape_agnostic_mask(const cv::Mat& mask, cv::Rect box, int k_h, int k_w);

// Inference rule (AA2): k_h = box.height / 10, k_w = box.width / 10 (at least 1), and the
// result dilated by `dilate_px` (0 = none). `box` empty = bounding box of mask > 0.
// `blocks` > 0 replaces the rule: k_h = k_w = blocks (fewer = coarser, hides the source
// silhouette better; more = tighter, fewer halos).
cv::Mat shape_agnostic_mask_inference(const cv::Mat& mask, cv::Rect box = {}, int dilate_px = 0, int blocks = 0);

// Which region of a frame the model redraws (replace's --mask-mode):
//   agnostic  the shape-agnostic block mask (what AA2 trains with; the default);
//   tight     the character mask itself (least background redrawn; the source silhouette shows);
//   box       the character's bounding box, filled (most background redrawn, no shape at all).
enum class MaskMode { agnostic, tight, box };
// "agnostic" | "tight" | "box"; nullopt otherwise.
std::optional<MaskMode> parse_mask_mode(const std::string& name);
const char* to_string(MaskMode mode);
// Character mask (CV_8U, > 0 = character) -> the redraw region (CV_8U 0/255) for `mode`,
// dilated by `dilate_px`; `blocks` as in shape_agnostic_mask_inference (agnostic only).
cv::Mat redraw_region(const cv::Mat& character, MaskMode mode, int dilate_px, int blocks = 0);

struct AgnosticTrainingOptions {
  // Block side in pixels drawn independently per axis in [block_min_px, block_max_px]
  // (k = box side / block side); inference uses 10 px (k = side / 10).
  int block_min_px = 5, block_max_px = 40;
  float scale_min = 1.0f, scale_max = 1.3f;  // box grown about its centre before blocking
  float scale_probability = 0.5f;       // how often the box is rescaled
};
// Training variant: random k per axis and a randomly enlarged box, so that at inference the
// mask may be larger than the character and never shaped like it. Deterministic for a seeded rng.
cv::Mat shape_agnostic_mask_training(const cv::Mat& mask, cv::Rect box, std::mt19937& rng,
                                     const AgnosticTrainingOptions& options = {});

// Bounding box of pixels > threshold (empty Rect when none).
cv::Rect mask_bounding_box(const cv::Mat& mask, int threshold = 0);

struct MaskRefineOptions {
  float threshold = 0.5f;   // probability -> binary core
  int open_px = 2;          // morphological opening radius (removes specks); 0 = off
  int close_px = 4;         // closing radius (fills holes); 0 = off
  int dilate_px = 2;        // grow before feathering so the soft edge lies outside the character
  int feather_px = 5;       // Gaussian feather radius; 0 = hard edge
  float ema = 0.6f;         // temporal weight of the current frame's probability (1 = no smoothing)
  bool keep_largest = true; // keep only the connected component(s) touching the person box
};

// Stateful per-track refinement: probability (CV_32F 0..1, source size) -> soft CV_8U mask.
class MaskRefiner {
 public:
  explicit MaskRefiner(MaskRefineOptions options = {}) : options_(options) {}
  // `person_box` (may be empty) restricts components when keep_largest is on.
  cv::Mat refine(const cv::Mat& probability, cv::Rect person_box = {});
  void reset() { state_.release(); }

 private:
  MaskRefineOptions options_;
  cv::Mat state_;  // EMA of probabilities, CV_32F
};

}  // namespace standin::vision
