#pragma once
// Internal: the converted MediaPipe networks (TorchScript) and the constants in vision.json.
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "standin/core/error.hpp"
#include "standin/vision/blazepose.hpp"

namespace standin::vision::detail {

struct DetectorOutput {
  std::vector<float> boxes;   // num_boxes x num_coords
  std::vector<float> scores;  // num_boxes (logits)
  int num_boxes = 0;
};

struct LandmarkOutput {
  std::vector<float> landmarks;  // 39 x 5 (x, y, z, visibility logit, presence logit), crop pixels
  float pose_flag = 0;           // presence probability
  cv::Mat segmentation;          // CV_32F probability at the model's mask size (crop coords), may be empty
  cv::Mat heatmap;               // CV_32F, 39 rows of hm_h*hm_w logits, may be empty
  int heatmap_w = 0, heatmap_h = 0;
};

struct VisionConfig {
  blazepose::AnchorOptions anchors;
  blazepose::DecodeOptions decode;
  float nms_threshold = 0.3f;
  float roi_scale = 1.25f;
  float landmark_roi_scale = 1.25f;
  cv::Size detector_size{224, 224};
  float detector_range_lo = -1, detector_range_hi = 1;
  cv::Size landmark_size{256, 256};
  float landmark_range_lo = 0, landmark_range_hi = 1;
  bool landmark_border_replicate = true;
  bool segmentation_sigmoid = true;    // landmark model's mask is logits
  bool pose_flag_sigmoid = false;      // pose flag already a probability
  int heatmap_kernel = 7;
  float heatmap_min_confidence = 0.5f;
  blazepose::OneEuroOptions smoothing{30, 0.05f, 80.0f, 1.0f};
  blazepose::OneEuroOptions aux_smoothing{30, 0.01f, 10.0f, 1.0f};
  float visibility_alpha = 0.1f;
};

class VisionModels {
 public:
  // Reads dir/vision.json, loads the detector and pose_landmark_<variant>, dry-runs both.
  // batch: several inputs in one network call where the models take it (TrackerOptions::
  // batch_networks); pad_batches: -1 = on CUDA only (see detect/landmarks), 0 = never, 1 = always.
  static Result<std::unique_ptr<VisionModels>> load(const std::string& dir, const std::string& variant,
                                                    const std::string& device, bool batch = true,
                                                    int pad_batches = -1);
  ~VisionModels();

  const VisionConfig& config() const;
  const std::string& description() const;
  // One result per input, in order. rgb_inputs: CV_8UC3 at detector_size (already letterboxed);
  // rgb_crops: CV_8UC3 at landmark_size (the ROI crops). All in one network call when batched()
  // (on a GPU a call costs about the same for one image or a few), else one call per input
  // (batching off, or models converted before batching worked: batch 1 only, found at load).
  Result<std::vector<DetectorOutput>> detect(const std::vector<cv::Mat>& rgb_inputs);
  Result<std::vector<LandmarkOutput>> landmarks(const std::vector<cv::Mat>& rgb_crops, bool want_segmentation);
  bool batched() const;
  // Network calls detect/landmarks make for this many inputs.
  int64_t calls_for(size_t inputs) const;

  struct Impl;

 private:
  explicit VisionModels(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Where models live when --vision-models is not given.
std::string default_models_dir();

}  // namespace standin::vision::detail
