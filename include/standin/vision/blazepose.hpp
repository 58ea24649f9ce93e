#pragma once
// BlazePose geometry without any network: SSD anchors, detector output decoding, weighted NMS,
// letterboxing, detection/landmarks -> rotated ROI, ROI crop transforms, One Euro filter.
// The rules and constants are MediaPipe's published pose graph options
// (pose_detection.pbtxt, pose_detection_to_roi.pbtxt, pose_landmarks_to_roi.pbtxt,
// pose_landmark_filtering.pbtxt); vision.json may override the numbers.
#include <array>
#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

namespace standin::vision::blazepose {

// ---- anchors (SsdAnchorsCalculator) --------------------------------------------------------
struct AnchorOptions {
  int num_layers = 5;
  float min_scale = 0.1484375f;
  float max_scale = 0.75f;
  int input_height = 224, input_width = 224;
  float anchor_offset_x = 0.5f, anchor_offset_y = 0.5f;
  std::vector<int> strides{8, 16, 32, 32, 32};
  std::vector<float> aspect_ratios{1.0f};
  bool reduce_boxes_in_lowest_layer = false;
  float interpolated_scale_aspect_ratio = 1.0f;
  bool fixed_anchor_size = true;
};

struct Anchor {
  float x_center, y_center, w, h;  // normalised to the detector input
};

std::vector<Anchor> generate_anchors(const AnchorOptions& options = {});

// ---- detections (TensorsToDetectionsCalculator) --------------------------------------------
struct DecodeOptions {
  int num_coords = 12;
  int num_keypoints = 4;
  int keypoint_coord_offset = 4;
  bool reverse_output_order = true;  // boxes stored as x, y, w, h
  float x_scale = 224, y_scale = 224, w_scale = 224, h_scale = 224;
  float score_clipping = 100.0f;
  float min_score = 0.5f;
};

struct Detection {
  cv::Rect2f box;                       // xmin, ymin, w, h (normalised or pixels, see caller)
  std::array<cv::Point2f, 4> keypoints; // 0 hip centre, 1 full-body scale/rotation point,
                                        // 2 shoulder centre, 3 upper-body scale point
  float score = 0;
};

// boxes: num_boxes x num_coords raw regressors; scores: num_boxes raw logits.
// Returns detections with score >= min_score, coordinates normalised to the detector input.
std::vector<Detection> decode_detections(const float* boxes, const float* scores, int num_boxes,
                                         const std::vector<Anchor>& anchors, const DecodeOptions& options = {});

float iou(const cv::Rect2f& a, const cv::Rect2f& b);

// MediaPipe's WEIGHTED non-maximum suppression: highest score first; every remaining
// detection overlapping it by more than `iou_threshold` is merged into it (box and keypoints
// averaged with score weights; the score stays the top one's) and removed.
std::vector<Detection> weighted_nms(std::vector<Detection> detections, float iou_threshold = 0.3f,
                                    int max_detections = -1);

// ---- letterbox (ImageToTensorCalculator keep_aspect_ratio + DetectionLetterboxRemoval) ----
struct Letterbox {
  cv::Size image, input;
  float scale = 1;            // image px -> input px
  float pad_x = 0, pad_y = 0; // input px of padding on the left / top
  cv::Mat image_to_input() const;  // 2x3 CV_64F
};
Letterbox make_letterbox(cv::Size image, cv::Size input);
// Normalised detector-input coordinates -> image pixels.
Detection remove_letterbox(const Detection& d, const Letterbox& lb);

// ---- ROI -----------------------------------------------------------------------------------
struct Roi {
  cv::Point2f center;   // image pixels
  float width = 0, height = 0;  // image pixels
  float rotation = 0;   // radians; crop x-axis = (cos, sin) in the image
  bool valid() const { return width > 1 && height > 1; }
};

float normalize_radians(float angle);

// AlignmentPointsRectsCalculator + RectTransformationCalculator: centre at `start`, rotation
// making start->end point "up" (target_angle, default 90 deg), side 2*|end-start|, then
// square_long and scaled by `scale`.
Roi roi_from_alignment(cv::Point2f start, cv::Point2f end, float scale = 1.25f,
                       float target_angle = static_cast<float>(CV_PI / 2));

// 2x3 CV_64F affine mapping the ROI onto a crop of `crop_size` (image -> crop) and back.
cv::Mat roi_image_to_crop(const Roi& roi, cv::Size crop_size);
cv::Mat roi_crop_to_image(const Roi& roi, cv::Size crop_size);
// Crop point (pixels of the crop) -> image pixels.
cv::Point2f crop_to_image(const Roi& roi, cv::Size crop_size, cv::Point2f p);

// Axis-aligned bounding box of the rotated ROI.
cv::Rect2f roi_bounds(const Roi& roi);

// ---- One Euro filter (LandmarksSmoothingCalculator, one_euro_filter) -----------------------
struct OneEuroOptions {
  float frequency = 30;      // Hz, used when timestamps are missing
  float min_cutoff = 0.05f;
  float beta = 80.0f;
  float derivate_cutoff = 1.0f;
};

class OneEuroFilter {
 public:
  explicit OneEuroFilter(OneEuroOptions options = {}) : o_(options) {}
  // `value_scale` multiplies the derivative (MediaPipe: 1 / object scale in pixels) so the
  // filter behaves the same for small and large people. dt_s <= 0 -> 1 / frequency.
  float apply(float value, double dt_s, float value_scale = 1.0f);
  void reset() { initialized_ = false; }

 private:
  OneEuroOptions o_;
  bool initialized_ = false;
  float x_prev_ = 0, dx_prev_ = 0;
};

}  // namespace standin::vision::blazepose
