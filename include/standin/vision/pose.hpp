#pragma once
// Pose data shared by the vision stage and its consumers (pipeline, compose, CLI):
// per-frame people with OpenPose-18 body keypoints (what the pose guider was trained on) and
// the raw BlazePose-33 landmarks, the selected target and its soft mask; pose-map rendering;
// poses.json reading/writing (schema: docs/VISION_CPP.md).
//
// Coordinates are always SOURCE pixels (x right, y down, pixel centres at integer + 0.5 is
// NOT assumed: a landmark at normalised u maps to u * width). A keypoint that is not
// detected has score 0.
#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "standin/core/error.hpp"

namespace standin::vision {

struct Keypoint {
  float x = 0, y = 0;
  float score = 0;  // 0..1 (BlazePose: visibility; OpenPose neck: min of the two shoulders)
  // Depth in source pixels (BlazePose's z scaled like x), origin at the hips' mid-point,
  // smaller = nearer the camera; NaN = unknown (older poses.json files, other tools).
  float z = std::numeric_limits<float>::quiet_NaN();
};

// OpenPose-18 ("COCO-18") body order used by the public Animate Anyone checkpoints.
enum OpenPose18 : int {
  kNose = 0, kNeck, kRShoulder, kRElbow, kRWrist, kLShoulder, kLElbow, kLWrist,
  kRHip, kRKnee, kRAnkle, kLHip, kLKnee, kLAnkle, kREye, kLEye, kREar, kLEar,
};
constexpr int kOpenPoseCount = 18;
constexpr int kBlazePoseCount = 33;
using Body18 = std::array<Keypoint, kOpenPoseCount>;

// BlazePose 33 -> OpenPose 18 (neck = mean of the shoulders' x, y and z, score = min of theirs).
// `landmarks` must hold at least 33 entries; fewer gives an all-zero-score body.
Body18 blazepose_to_openpose(const std::vector<Keypoint>& landmarks);
// BlazePose index for each OpenPose joint (-1 for the neck, which is derived).
extern const std::array<int, kOpenPoseCount> kBlazeForOpenPose;

struct PersonPose {
  int track_id = -1;                 // stable across frames of one video
  Body18 body{};                     // OpenPose-18 order
  std::vector<Keypoint> landmarks;   // BlazePose 33 (may be empty when read from other tools)
  cv::Rect2f box;                    // person box in source pixels (from the landmarks)
  float score = 0;                   // presence / detection confidence 0..1
};

struct FrameAnalysis {
  int64_t frame_index = 0;
  std::vector<PersonPose> people;
  int target = -1;       // index into `people` of the selected person, -1 = none this frame
  cv::Mat target_mask;   // CV_8U 0..255 at source size, soft (feathered); empty when target < 0
  // Soft masks of TrackerOptions::mask_tracks seen this frame, by track id (not in poses.json).
  std::map<int, cv::Mat> track_masks;

  const PersonPose* target_person() const {
    return target >= 0 && target < static_cast<int>(people.size()) ? &people[target] : nullptr;
  }
};

// The reference image's character.
struct ReferenceAnalysis {
  PersonPose person;   // track_id 0
  cv::Mat mask;        // CV_8U 0..255 at image size
  cv::Rect crop;       // box around the character with margin, inside the image
  bool found = false;  // false: no person detected (callers decide whether that is an error)
};

// ---- pose maps -----------------------------------------------------------------------------
constexpr float kPoseScoreThreshold = 0.3f;
// Drawn in pose maps (and used for retargeting and colour anchoring): score >= the threshold
// and a finite position.
bool keypoint_shown(const Keypoint& k);
// A keypoint in canvas pixels through a 2x3 affine (CV_32F or CV_64F); empty = identity.
cv::Point2d to_canvas(const cv::Mat& source_to_canvas, const Keypoint& k);
constexpr int kPoseStickWidth = 4;
constexpr int kPoseJointRadius = 4;
// OpenPose limb pairs (0-based joint indices) and their RGB colours, in drawing order.
extern const std::array<std::array<int, 2>, 17> kOpenPoseLimbs;
extern const std::array<cv::Vec3b, 18> kOpenPoseColors;  // RGB

// Draws one skeleton on black: limbs as filled ellipses of half-width `kPoseStickWidth` in
// their colour, the limb layer dimmed to 60 %, then joints as discs of radius 4 in full
// colour (the DWPose / Moore-AnimateAnyone convention). Keypoints with score < 0.3 are hidden.
// `source_to_canvas`: 2x3 affine (CV_32F or CV_64F) from source pixels to canvas pixels;
// empty = identity. Output: CV_8UC3 RGB of `canvas` size.
cv::Mat render_pose_map(const Body18& body, cv::Size canvas, const cv::Mat& source_to_canvas = {});
// Same, several skeletons on one canvas (limbs of all people, dimmed, then all joints).
cv::Mat render_pose_map(const std::vector<Body18>& bodies, cv::Size canvas, const cv::Mat& source_to_canvas = {});
// BlazePose hand and face detail on top of a pose map, for bundles trained with it (model.json
// conditioning.pose_hands_face; docs/BUNDLE.md). Per hand: wrist -> thumb, wrist -> index,
// wrist -> pinky and index -> pinky as 2 px lines in rainbow colours, the three finger points as
// blue discs of radius 2; face: eye corners (inner/outer) and mouth corners as white discs of
// radius 2 (the nose, eyes and ears are already body joints). Points with visibility < 0.3 are
// hidden. `landmarks`: the 33 BlazePose landmarks (fewer: nothing is drawn).
void draw_hands_and_face(cv::Mat& canvas_rgb, const std::vector<Keypoint>& landmarks,
                         const cv::Mat& source_to_canvas = {});
// The skeleton's relative depth (pose modulation's second input): the pose map's limb ellipses
// and joint discs, each filled with its depth value (a limb: the mean of its joints' values),
// drawn far to near (ties in the pose map's drawing order) so nearer parts cover farther ones.
// Output: CV_32F of `canvas` size, 0 where nothing is drawn. scripts/standin_train/
// conditions.py's render_depth_map is the same function (tests/python/test_train_conditions.py).
cv::Mat render_depth_map(const Body18& body, cv::Size canvas, const cv::Mat& source_to_canvas = {});
// Per-joint depth-map values in [0.02, 1]: 0.5 at the hips' mid depth, nearer = brighter, one
// body height (the shown joints' vertical extent, at least 1 px) in front of the hips = 1; a
// joint without z takes the hips' depth. nullopt when the depth is unknown (a hip hidden or
// without z): render_depth_map then draws every part at 0.5.
std::optional<std::array<float, kOpenPoseCount>> joint_depth_values(const Body18& body);
// Draws the skeleton onto an existing RGB image in place (overlays; not dimmed). Thinner
// sticks/joints suit small people in overlays.
void draw_skeleton(cv::Mat& rgb, const Body18& body, const cv::Mat& source_to_canvas = {},
                   int stick_width = kPoseStickWidth, int joint_radius = kPoseJointRadius);

// ---- poses.json ----------------------------------------------------------------------------
struct PoseTrackInfo {
  int width = 0, height = 0;   // source frame size
  int fps_num = 0, fps_den = 1;
  int64_t frame_count = 0;     // frames written (filled in by the writer)
  std::string source;          // input path, informational
  std::string models;          // which landmark model, informational
};

struct PoseTrack {
  PoseTrackInfo info;
  std::vector<FrameAnalysis> frames;  // target_mask left empty (masks live in mask.mp4)
};

// Reads and validates a poses.json. Every problem is Error::bad_input naming the file and the
// field ("poses.json: frames[3].people[0].body[5]: expected [x, y, score] numbers").
// The file must be a regular file of at most kMaxPosesJsonBytes (core/files.hpp); it is parsed
// as a stream, one frame at a time, so memory holds the track, not the JSON document.
// Frames must have non-negative, strictly increasing indices; body arrays 18 entries,
// landmarks 0 or 33; scores in [0, 1]; coordinates finite.
Result<PoseTrack> read_pose_track(const std::string& path);
Result<std::vector<FrameAnalysis>> read_poses_json(const std::string& path);
// Parses JSON text (for tests and for callers that already hold the bytes). `name` prefixes messages.
Result<PoseTrack> parse_pose_track(const std::string& json_text, const std::string& name = "poses.json");

// Whole-file writer (atomic: temp file + rename; an existing file is replaced only with
// `overwrite`, see AtomicOutput).
Status write_poses_json(const std::string& path, const PoseTrackInfo& info, const std::vector<FrameAnalysis>& frames,
                        bool overwrite = false);

// Streaming writer: one frame at a time, bounded memory, atomic on finish().
// Destroying it without finish() leaves no file behind.
class PosesJsonWriter {
 public:
  static Result<PosesJsonWriter> open(const std::string& path, const PoseTrackInfo& info, bool overwrite = false);
  PosesJsonWriter(PosesJsonWriter&&) noexcept;
  PosesJsonWriter& operator=(PosesJsonWriter&&) noexcept;
  ~PosesJsonWriter();
  Status write(const FrameAnalysis& frame);
  Status finish();
  int64_t frames_written() const;

 private:
  struct Impl;
  explicit PosesJsonWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace standin::vision
