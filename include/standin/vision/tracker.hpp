#pragma once
// Person tracker on MediaPipe BlazePose converted to TorchScript (models/vision, see
// docs/VISION.md for the conversion and docs/VISION_CPP.md for the C++ side):
//   detector (224x224, SSD anchors, weighted NMS) -> ROI (alignment-point rule) ->
//   landmarks 256x256 (33 + 2 aux points, segmentation) -> next frame's ROI from the landmarks,
//   re-detecting when a track is lost -> One Euro smoothing -> refined soft mask.
// Several people are tracked with IoU-matched identities; one of them is the target.
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "standin/core/error.hpp"
#include "standin/vision/mask.hpp"
#include "standin/vision/pose.hpp"

namespace standin::vision {

struct TrackerOptions {
  std::string landmark_model = "full";  // lite | full | heavy (must exist in vision.json)
  int target_track = -1;               // -1 = auto (largest / most central track); N = track id N
  int max_people = 4;                  // tracks kept at once
  float detection_threshold = 0.5f;    // detector score to start a track
  float presence_threshold = 0.5f;     // landmark presence below this = track lost
  // Detector passes on overlapping square tiles as well as the whole frame, for people that
  // are small in the frame (surveillance footage). 0 = whole frame only; -1 = auto (tiles
  // when the frame's short side exceeds 2x the detector input).
  int detection_tiles = -1;
  int detect_interval = 8;             // also run the detector every N frames to find newcomers (0 = only when no track)
  int max_missed = 15;                 // frames a lost track keeps its id for re-association
  int relock_after = 5;                // auto target: frames the chosen person may be missing before another is chosen
  bool smooth = true;                  // One Euro filter on landmarks
  float smooth_min_cutoff = 0.05f;     // One Euro parameters in normalised units (MediaPipe's pose defaults)
  float smooth_beta = 80.0f;
  float smooth_derivate_cutoff = 1.0f;
  bool segmentation = true;            // per-frame target mask
  // Also refine the masks of these track ids (FrameAnalysis::track_masks), for replacing several
  // people in one run; each track keeps its own temporal mask state.
  std::vector<int> mask_tracks;
  MaskRefineOptions mask;
  // The detector's tiles and the landmarks of every tracked person in one network call each
  // (false: one image per call; results equal up to the summation order of batched kernels).
  bool batch_networks = true;
  // Batches padded to fixed sizes (every new batch size costs seconds of one-time set-up on
  // CUDA): -1 = on CUDA only, 0 = never, 1 = always.
  int pad_batches = -1;
  double fps = 30.0;                   // for the smoothing filter
  int threads = 0;                     // torch intra-op threads, 0 = leave as is
};

// --pose-smoothing: 0 = off, 1 = MediaPipe's One Euro settings (the default), larger = smoother
// (min cutoff and beta divided by the strength: less jitter, more lag on fast moves).
// Strength must be finite and >= 0 (callers validate; negative values count as 0).
void set_smoothing_strength(TrackerOptions& options, double strength);

// Cumulative work counters (for logs and benchmarks). Runs count images through a network,
// calls count network calls (a frame's tiles or tracked people share one call).
struct TrackerStats {
  int64_t frames = 0;
  int64_t detector_runs = 0, landmark_runs = 0;
  int64_t detector_calls = 0, landmark_calls = 0;
  double detector_s = 0, landmark_s = 0, mask_s = 0, total_s = 0;

  // The work done since `before` (an earlier reading of the same counters).
  TrackerStats since(const TrackerStats& before) const {
    TrackerStats d;
    d.frames = frames - before.frames;
    d.detector_runs = detector_runs - before.detector_runs;
    d.landmark_runs = landmark_runs - before.landmark_runs;
    d.detector_calls = detector_calls - before.detector_calls;
    d.landmark_calls = landmark_calls - before.landmark_calls;
    d.detector_s = detector_s - before.detector_s;
    d.landmark_s = landmark_s - before.landmark_s;
    d.mask_s = mask_s - before.mask_s;
    d.total_s = total_s - before.total_s;
    return d;
  }
};

class PersonTracker {
 public:
  // models_dir: folder with vision.json and the .pt files (empty = "models/vision" next to the
  // working directory, then $STANDIN_VISION_MODELS). device: "cpu" | "cuda" | "cuda:N".
  // Missing/corrupt models -> Error::model; bad device -> Error::usage.
  static Result<PersonTracker> create(const std::string& models_dir, const std::string& device,
                                      TrackerOptions options = {});
  PersonTracker(PersonTracker&&) noexcept;
  PersonTracker& operator=(PersonTracker&&) noexcept;
  ~PersonTracker();

  // rgb_frame: CV_8UC3 RGB. Frames must come in order; `index` is recorded in the result.
  Result<FrameAnalysis> process(const cv::Mat& rgb_frame, int64_t index);
  // Single image, no temporal state (detector always, no smoothing, no EMA).
  Result<ReferenceAnalysis> analyze_reference(const cv::Mat& rgb_image);
  void reset();

  const TrackerOptions& options() const;
  // Frames so far where the target (or, in auto mode, any person) was missing.
  int64_t frames_without_target() const;
  const TrackerStats& stats() const;

 private:
  struct Impl;
  explicit PersonTracker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The reference crop of analyze_reference: the character's area (landmarks box joined with the
// mask's box) grown by 10 % of its size on each side, outward to whole pixels, clipped to the
// image. (scripts/standin_train/conditions.py's reference_crop ports it.)
cv::Rect reference_crop(const cv::Rect2f& area, cv::Size image);

// Convenience: one-shot reference analysis (creates a tracker).
Result<ReferenceAnalysis> analyze_reference(const cv::Mat& rgb_image, const std::string& models_dir,
                                            const std::string& device, const TrackerOptions& options = {});

}  // namespace standin::vision
