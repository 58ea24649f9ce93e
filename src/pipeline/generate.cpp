// replace / animate, top to bottom:
//   1. analyse the source once (tracker, or the user's --poses/--mask): per frame and per person
//      to replace a skeleton, a box and the region to redraw (run-length encoded), plus one
//      framing per person for the video;
//   2. prepare each reference (crop around the character, CLIP input, its pose and colour);
//   3. generate, one pass per person (one unless --person ID=IMAGE names several): the generator
//      pulls scene conditions frame by frame from a second decode of the source and pose maps
//      drawn from the stored skeletons; a pass covers the frames where its person appears;
//   4. composite each decoded frame into a third decode of the source, person after person, and
//      encode it, with the source's timestamps and audio, into a temporary file renamed over the
//      output at the end (earlier passes' frames wait in lossless temporaries; the last pass
//      streams straight into the compositor).
#include "standin/core/log.hpp"
#include "standin/pipeline/generate.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/version.h>

#include "color_anchor.hpp"
#include "mask_store.hpp"
#include "run_cache.hpp"
#include "standin/compose/compositor.hpp"
#include "standin/core/files.hpp"
#include "standin/core/output.hpp"
#include "standin/core/progress.hpp"
#include "standin/diffusion/bundle.hpp"
#include "standin/diffusion/generator.hpp"
#include "standin/media/image.hpp"
#include "standin/media/video.hpp"
#include "standin/pipeline/conditions.hpp"
#include "standin/pipeline/memory.hpp"
#include "standin/pipeline/presets.hpp"
#include "standin/vision/mask.hpp"
#include "standin/vision/pose.hpp"
#include "standin/vision/retarget.hpp"
#include "standin/vision/tracker.hpp"

namespace fs = std::filesystem;

namespace standin::pipeline {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

struct FrameTrack {
  bool present = false;
  vision::Body18 body{};
  std::vector<vision::Keypoint> landmarks;  // BlazePose 33, kept only for hand/face pose maps
  cv::Rect box;
  RleMask agnostic;  // the region to redraw, source size; empty when absent
};

// One person to replace (replace) or the driving character (animate), over the whole clip.
struct PersonTrack {
  int track_id = -1;  // -1: the single target (--person auto | N)
  std::vector<FrameTrack> frames;
  cv::Rect2d union_box;
  int64_t frames_with_person = 0;
  int64_t first = -1, last = -1;  // first and last frame with the person
  void mark_present(int64_t index) {
    ++frames_with_person;
    if (first < 0) first = index;
    last = index;
  }
  void include_box(const cv::Rect2d& box) { union_box = union_box.area() > 0 ? (union_box | box) : box; }
};

struct Analysis {
  media::VideoInfo info;
  std::vector<PersonTrack> people;  // in --person order; one unless several were named
  std::set<int> track_ids;          // every person track seen (tracker or poses file)
  double seconds = 0;
  double decode_s = 0;              // of `seconds`: reading the video's frames
  vision::TrackerStats tracker;     // the tracker's share of this pass (zero without one)
  int64_t frame_count() const { return static_cast<int64_t>(people.front().frames.size()); }
};

// How the region to redraw is made from a character mask (--mask-mode, --mask-blocks,
// --mask-dilate), resolved in run_generate: each one not given is the bundle's default
// (BundleConfig::Defaults holds the values a bundle that names none gets).
struct MaskSettings {
  vision::MaskMode mode{};
  int blocks = 0;
  int dilate = 0;
};

std::string first_existing(std::initializer_list<fs::path> candidates) {
  std::error_code ec;  // an unreadable candidate is skipped, never thrown
  for (const auto& c : candidates)
    if (!c.empty() && fs::exists(c, ec)) return c.string();
  return {};
}

fs::path executable_dir() {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

Result<media::VideoReader> open_video(const std::string& path, bool scan = false) {
  media::ReaderOptions options;
  options.scan_packets = scan;
  return media::VideoReader::open(path, options);
}

// Reads frame `index` from a reader that must be positioned there (all passes are sequential).
Result<media::Frame> next_frame(media::VideoReader& reader, int64_t index) {
  media::Frame frame;
  STANDIN_ASSIGN_OR_RETURN(bool got, reader.read(frame));
  if (!got)
    return Error::bad_input(reader.path() + ": ended at frame " + std::to_string(index) +
                            ", earlier than its first reading; the file may be truncated");
  return frame;
}

cv::Mat gray_of(const cv::Mat& rgb) {
  cv::Mat gray;
  cv::cvtColor(rgb, gray, cv::COLOR_RGB2GRAY);
  return gray;
}

// --- pass 1: analysis ----------------------------------------------------------------------

// animate with --poses and no driving video: the poses file is the whole timeline. Its size,
// rate and length are checked here, before any work, like a video's header.
Result<media::VideoInfo> poses_timeline(const std::string& path, const vision::PoseTrack& track) {
  media::VideoInfo info;
  info.width = track.info.width;
  info.height = track.info.height;
  if (info.width <= 0 || info.height <= 0)
    return Error::bad_input(path + ": needs \"width\" and \"height\" to animate without a driving video (-i)");
  if (info.width > media::kMaxFrameSide || info.height > media::kMaxFrameSide)
    return Error::bad_input(path + ": frame size " + std::to_string(info.width) + "x" + std::to_string(info.height) +
                            " is larger than supported (max " + std::to_string(media::kMaxFrameSide) + " per side)");
  info.fps = track.info.fps_num > 0 && track.info.fps_den > 0 ? media::Rational{track.info.fps_num, track.info.fps_den}
                                                              : media::Rational{25, 1};
  if (!(info.fps.value() >= 0.01 && info.fps.value() <= 1000))
    return Error::bad_input(path + ": fps " + std::to_string(info.fps.num) + "/" + std::to_string(info.fps.den) +
                            " is outside 0.01..1000 frames per second");
  info.time_base = {info.fps.den, info.fps.num};
  info.frame_count = std::max<int64_t>(track.info.frame_count,
                                       track.frames.empty() ? 0 : track.frames.back().frame_index + 1);
  info.frame_count_exact = true;
  if (info.frame_count <= 0) return Error::bad_input(path + ": no frames");
  return info;
}

Result<Analysis> analyze_poses_only(const vision::PoseTrack& track, const media::VideoInfo& timeline,
                                   bool keep_landmarks) {
  Analysis analysis;
  analysis.info = timeline;
  analysis.people.resize(1);
  PersonTrack& target = analysis.people.front();
  target.frames.resize(static_cast<size_t>(timeline.frame_count));
  for (const auto& fa : track.frames) {
    for (const auto& p : fa.people) analysis.track_ids.insert(p.track_id);
    const vision::PersonPose* person = fa.target_person();
    if (!person && !fa.people.empty()) person = &fa.people.front();
    if (!person) continue;
    auto& frame = target.frames[static_cast<size_t>(fa.frame_index)];
    frame.body = person->body;
    if (keep_landmarks) frame.landmarks = person->landmarks;
    frame.box = person->box;
    frame.present = true;
    target.mark_present(fa.frame_index);
    target.include_box(cv::Rect2d(person->box));
  }
  return analysis;
}

// Opens a per-frame mask video that must match the source's size and frame count.
Result<media::VideoReader> open_matching_mask(const std::string& path, const media::VideoInfo& info) {
  STANDIN_ASSIGN_OR_RETURN(auto m, open_video(path, /*scan=*/true));
  if (m.info().width != info.width || m.info().height != info.height)
    return Error::bad_input(path + ": mask is " + std::to_string(m.info().width) + "x" +
                            std::to_string(m.info().height) + " but the video is " + std::to_string(info.width) + "x" +
                            std::to_string(info.height));
  if (m.info().frame_count != info.frame_count)
    return Error::bad_input(path + ": mask has " + std::to_string(m.info().frame_count) + " frames but the video has " +
                            std::to_string(info.frame_count));
  return m;
}

// join_objects: object regions (--object-mask) become part of the region to redraw, where the
// character is in view, so the object guider can re-draw what the character holds or touches.
// With several people (--person ID=IMAGE) each gets its own track, body and mask by track id.
Result<Analysis> analyze(const GenerateRequest& req, std::optional<vision::PersonTracker>& tracker,
                         bool join_objects, const std::optional<vision::PoseTrack>& poses_only,
                         const media::VideoInfo& timeline, const MaskSettings& masks, bool keep_landmarks) {
  if (req.input.empty()) return analyze_poses_only(*poses_only, timeline, keep_landmarks);
  const auto start = Clock::now();
  STANDIN_ASSIGN_OR_RETURN(auto reader, open_video(req.input, /*scan=*/true));
  Analysis analysis;
  analysis.info = reader.info();
  const auto& info = analysis.info;
  if (info.frame_count <= 0) return Error::bad_input(req.input + ": no video frames");
  const bool several = !req.people.empty();
  analysis.people.resize(several ? req.people.size() : 1);
  for (size_t k = 0; k < req.people.size(); ++k) analysis.people[k].track_id = req.people[k].track_id;

  std::optional<media::VideoReader> mask_reader, object_reader;
  if (!req.mask.empty()) {
    STANDIN_ASSIGN_OR_RETURN(auto m, open_matching_mask(req.mask, info));
    mask_reader.emplace(std::move(m));
  }
  if (join_objects && !req.object_mask.empty()) {
    STANDIN_ASSIGN_OR_RETURN(auto m, open_matching_mask(req.object_mask, info));
    object_reader.emplace(std::move(m));
  }
  std::optional<vision::PoseTrack> poses;
  if (!req.poses.empty()) {
    STANDIN_ASSIGN_OR_RETURN(auto track, vision::read_pose_track(req.poses));
    if (track.info.width && (track.info.width != info.width || track.info.height != info.height))
      return Error::bad_input(req.poses + ": poses are for " + std::to_string(track.info.width) + "x" +
                              std::to_string(track.info.height) + " frames but the video is " +
                              std::to_string(info.width) + "x" + std::to_string(info.height));
    if (!track.frames.empty() && track.frames.back().frame_index >= info.frame_count)
      return Error::bad_input(req.poses + ": has poses for frame " + std::to_string(track.frames.back().frame_index) +
                              " but the video has only " + std::to_string(info.frame_count) + " frames");
    poses.emplace(std::move(track));
  }

  for (auto& person : analysis.people) person.frames.resize(static_cast<size_t>(info.frame_count));
  size_t next_pose = 0;
  Progress progress("analysing", info.frame_count);
  int64_t decoded = 0;
  const vision::TrackerStats tracker_before = tracker ? tracker->stats() : vision::TrackerStats{};
  for (int64_t i = 0;; ++i) {
    STANDIN_TRY(check_interrupted());
    media::Frame frame;
    const auto read_start = Clock::now();
    STANDIN_ASSIGN_OR_RETURN(bool got, reader.read(frame));
    analysis.decode_s += seconds_since(read_start);
    if (!got) break;
    decoded = i + 1;
    if (i >= info.frame_count)  // container under-counted
      for (auto& person : analysis.people) person.frames.emplace_back();

    vision::FrameAnalysis tracked;
    if (tracker) {
      STANDIN_ASSIGN_OR_RETURN(tracked, tracker->process(frame.rgb, i));
      for (const auto& p : tracked.people) analysis.track_ids.insert(p.track_id);
    }
    const vision::FrameAnalysis* from_file = nullptr;
    if (poses) {
      while (next_pose < poses->frames.size() && poses->frames[next_pose].frame_index < i) ++next_pose;
      if (next_pose < poses->frames.size() && poses->frames[next_pose].frame_index == i) {
        from_file = &poses->frames[next_pose];
        for (const auto& p : from_file->people) analysis.track_ids.insert(p.track_id);
      }
    }
    cv::Mat objects;
    if (object_reader) {
      STANDIN_ASSIGN_OR_RETURN(auto m, next_frame(*object_reader, i));
      objects = gray_of(m.rgb) > 127;
    }
    cv::Mat user_mask;
    if (mask_reader) {
      STANDIN_ASSIGN_OR_RETURN(auto m, next_frame(*mask_reader, i));
      user_mask = gray_of(m.rgb);
    }
    for (auto& target : analysis.people) {
      FrameTrack& track = target.frames[static_cast<size_t>(i)];
      // Whose body: the poses file's (the target, the asked-for id, else the first), or the tracker's.
      const auto by_id = [&](const vision::FrameAnalysis& fa, int id) -> const vision::PersonPose* {
        for (const auto& p : fa.people)
          if (p.track_id == id) return &p;
        return nullptr;
      };
      const vision::PersonPose* person = nullptr;
      if (several) {
        person = from_file ? by_id(*from_file, target.track_id) : poses ? nullptr : by_id(tracked, target.track_id);
      } else if (poses) {
        if (from_file) {
          person = from_file->target_person();
          if (!person && req.person >= 0) person = by_id(*from_file, req.person);
          if (!person && !from_file->people.empty()) person = &from_file->people.front();
        }
      } else {
        person = tracked.target_person();
      }
      if (person) {
        track.body = person->body;
        if (keep_landmarks) track.landmarks = person->landmarks;
        track.box = person->box;
        track.present = true;
      }

      cv::Mat character;
      if (!user_mask.empty()) {
        character = user_mask;
      } else if (several && tracked.track_masks.count(target.track_id)) {
        character = tracked.track_masks.at(target.track_id);
      } else if (!several && !tracked.target_mask.empty()) {
        character = tracked.target_mask;
      } else if (track.present) {
        character = cv::Mat::zeros(frame.rgb.size(), CV_8U);
        cv::rectangle(character, track.box & cv::Rect(0, 0, frame.rgb.cols, frame.rgb.rows), cv::Scalar(255), cv::FILLED);
      }
      if (!character.empty() && cv::countNonZero(character > 127) > 0) {
        cv::Mat region = vision::redraw_region(character > 127, masks.mode, masks.dilate, masks.blocks);
        if (!objects.empty()) {
          cv::Mat grown;
          const int r = std::max(masks.dilate, 0);
          cv::dilate(objects, grown, cv::getStructuringElement(cv::MORPH_ELLIPSE, {2 * r + 1, 2 * r + 1}));
          region |= grown;
        }
        track.agnostic = RleMask::encode(region);
        target.include_box(cv::Rect2d(vision::mask_bounding_box(region)));
        track.present = true;
      }
      if (track.present) target.mark_present(i);
    }
    progress.advance();
  }
  progress.finish();
  if (decoded == 0) return Error::bad_input(req.input + ": no frame could be decoded; the file is damaged");
  if (decoded < analysis.frame_count()) {
    // A truncated or damaged tail: render what decodes rather than nothing, and say so.
    log::warn("{}: only {} of {} frames could be decoded (truncated or damaged file); the output has {}", req.input,
                 decoded, analysis.frame_count(), decoded);
    for (auto& person : analysis.people) person.frames.resize(static_cast<size_t>(decoded));
  }
  analysis.seconds = seconds_since(start);
  if (tracker) analysis.tracker = tracker->stats().since(tracker_before);
  return analysis;
}

// --- retargeting ------------------------------------------------------------------------------

// Redraws a person's skeletons with the reference's proportions (vision/retarget.hpp). Hand and
// face landmarks follow their wrist and nose.
int retarget_track(PersonTrack& track, const vision::Body18& reference) {
  std::vector<vision::Body18> driving;
  for (const auto& f : track.frames)
    if (f.present) driving.push_back(f.body);
  const vision::RetargetPlan plan = vision::plan_retarget(reference, driving);
  if (!plan.usable()) return 0;
  for (auto& f : track.frames) {
    if (!f.present) continue;
    const vision::Body18 moved = vision::apply_retarget(f.body, plan);
    if (f.landmarks.size() >= static_cast<size_t>(vision::kBlazePoseCount)) {
      const auto follow = [&](int joint, std::initializer_list<int> points) {
        const float dx = moved[joint].x - f.body[joint].x, dy = moved[joint].y - f.body[joint].y;
        for (int p : points) f.landmarks[static_cast<size_t>(p)].x += dx, f.landmarks[static_cast<size_t>(p)].y += dy;
      };
      follow(vision::kLWrist, {15, 17, 19, 21});
      follow(vision::kRWrist, {16, 18, 20, 22});
      follow(vision::kNose, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
    }
    f.body = moved;
  }
  return plan.bones_measured;
}

// --- reference ------------------------------------------------------------------------------

struct PreparedReference {
  std::string path;
  ReferenceInputs inputs;
  std::optional<vision::Body18> pose;  // the character's skeleton (retargeting)
  std::optional<cv::Vec3d> mean_lab;   // the character's mean colour (--anchor-color)
};

Result<PreparedReference> prepare_reference(const std::string& path, const cv::Mat& image, cv::Size work, int clip_size,
                                            std::optional<vision::PersonTracker>& tracker) {
  PreparedReference prepared;
  prepared.path = path;
  cv::Rect box(0, 0, image.cols, image.rows);
  cv::Mat character = cv::Mat(image.size(), CV_8U, cv::Scalar(255));
  if (tracker) {
    STANDIN_ASSIGN_OR_RETURN(auto ref, tracker->analyze_reference(image));
    if (!ref.found)
      return Error::bad_input(path + ": no person found in the reference image; use a picture that shows the character's body");
    box = ref.crop;
    prepared.pose = ref.person.body;
    if (cv::countNonZero(ref.mask > 127) > 0) character = ref.mask > 127;
  }
  auto inputs = reference_inputs(image, box, work, clip_size);
  if (!inputs.ok()) return inputs.error().with_context(path);
  prepared.inputs = std::move(inputs).value();
  cv::Mat in_crop = cv::Mat::zeros(image.size(), CV_8U);
  in_crop(box & cv::Rect(0, 0, image.cols, image.rows)).setTo(255);
  prepared.mean_lab = mean_lab(image, character & in_crop);
  return prepared;
}

// --- pass 2: conditions ---------------------------------------------------------------------

// One person's conditions over the frames [first, first + count) of the clip.
class SceneConditions final : public diffusion::ConditionSource {
 public:
  SceneConditions(const PersonTrack& track, const compose::WorkGeometry& geometry, Mode mode, int64_t first,
                  int64_t count, bool hands_and_face, std::optional<media::VideoReader> source,
                  std::optional<media::VideoReader> objects)
      : track_(track), geometry_(geometry), mode_(mode), first_(first), count_(count), hands_and_face_(hands_and_face),
        source_(std::move(source)), objects_(std::move(objects)) {}

  int64_t num_frames() const override { return count_; }

  Result<diffusion::SceneChunk> scene(int64_t begin, int64_t end) override {
    const int64_t n = end - begin;
    const int H = geometry_.work.height, W = geometry_.work.width;
    diffusion::SceneChunk chunk;
    chunk.environment = at::zeros({n, 3, H, W});
    chunk.mask = at::ones({n, 1, H, W});
    if (objects_) chunk.objects = at::zeros({n, 3, H, W});
    if (mode_ == Mode::animate) return chunk;  // no scene: redraw everything
    for (int64_t i = begin; i < end; ++i) {
      STANDIN_TRY(check_interrupted());
      const int64_t index = first_ + i;
      STANDIN_ASSIGN_OR_RETURN(auto frame, frame_at(*source_, source_next_, index));
      const FrameTrack& track = track_.frames[static_cast<size_t>(index)];
      cv::Mat mask_work = cv::Mat::zeros(geometry_.work, CV_32F);
      if (!track.agnostic.empty()) {
        // Any coverage counts: the model must redraw every work pixel the character touches.
        cv::threshold(compose::mask_to_work(track.agnostic.decode(), geometry_), mask_work, 0, 255, cv::THRESH_BINARY);
        mask_work.convertTo(mask_work, CV_32F, 1.0 / 255);
      }
      const cv::Mat rgb_work = compose::to_work(frame.rgb, geometry_);
      at::Tensor env = to_tensor_m11(rgb_work)[0];
      at::Tensor mask = at::from_blob(mask_work.data, {1, H, W}, at::kFloat).clone();
      chunk.environment[i - begin] = env * (1 - mask);
      chunk.mask[i - begin] = mask;
      if (objects_) {
        STANDIN_ASSIGN_OR_RETURN(auto obj, frame_at(*objects_, objects_next_, index));
        cv::Mat obj_mask = compose::mask_to_work(gray_of(obj.rgb), geometry_) > 127;
        cv::Mat obj_f;
        obj_mask.convertTo(obj_f, CV_32F, 1.0 / 255);
        chunk.objects[i - begin] = env * at::from_blob(obj_f.data, {1, H, W}, at::kFloat).clone();
      }
    }
    return chunk;
  }

  Result<at::Tensor> pose(int64_t begin, int64_t end) override {
    const int H = geometry_.work.height, W = geometry_.work.width;
    at::Tensor out = at::zeros({end - begin, 3, H, W});
    const cv::Mat affine = source_to_work_affine(geometry_);
    for (int64_t i = begin; i < end; ++i) {
      const FrameTrack& track = track_.frames[static_cast<size_t>(first_ + i)];
      if (!track.present) continue;
      cv::Mat map = vision::render_pose_map(track.body, geometry_.work, affine);
      if (hands_and_face_) vision::draw_hands_and_face(map, track.landmarks, affine);
      cv::Mat f;
      map.convertTo(f, CV_32FC3, 1.0 / 255);
      out[i - begin] = at::from_blob(f.data, {H, W, 3}, at::kFloat).permute({2, 0, 1}).clone();
    }
    return out;
  }

  // Pose-modulation bundles: the skeleton's depth map, drawn like pose() (0 without a person).
  Result<at::Tensor> depth(int64_t begin, int64_t end) override {
    const int H = geometry_.work.height, W = geometry_.work.width;
    at::Tensor out = at::zeros({end - begin, 1, H, W});
    const cv::Mat affine = source_to_work_affine(geometry_);
    for (int64_t i = begin; i < end; ++i) {
      const FrameTrack& track = track_.frames[static_cast<size_t>(first_ + i)];
      if (!track.present) continue;
      const cv::Mat map = vision::render_depth_map(track.body, geometry_.work, affine);
      out[i - begin] = at::from_blob(map.data, {1, H, W}, at::kFloat).clone();
    }
    return out;
  }

 private:
  // The readers are sequential and start at frame 0; a pass that starts later skips ahead.
  static Result<media::Frame> frame_at(media::VideoReader& reader, int64_t& next, int64_t index) {
    for (; next < index; ++next) STANDIN_TRY(next_frame(reader, next));
    STANDIN_ASSIGN_OR_RETURN(auto frame, next_frame(reader, index));
    next = index + 1;
    return frame;
  }

  const PersonTrack& track_;
  const compose::WorkGeometry& geometry_;
  Mode mode_;
  int64_t first_, count_;
  bool hands_and_face_;
  std::optional<media::VideoReader> source_;
  std::optional<media::VideoReader> objects_;
  int64_t source_next_ = 0, objects_next_ = 0;
};

// --- pass 3: compositing --------------------------------------------------------------------

cv::Mat tensor_to_rgb(const at::Tensor& chw_m11) {
  const at::Tensor hwc = ((chw_m11.clamp(-1, 1) + 1) * 127.5).round().to(at::kByte).permute({1, 2, 0}).contiguous();
  return cv::Mat(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_8UC3, hwc.data_ptr()).clone();
}

cv::Mat preview_panel(const cv::Mat& source, const cv::Mat& overlay, const cv::Mat& result, int height) {
  auto fit = [&](const cv::Mat& m) {
    cv::Mat r;
    const int width = std::max(2, static_cast<int>(std::lround(m.cols * static_cast<double>(height) / m.rows)) & ~1);
    cv::resize(m, r, cv::Size(width, height), 0, 0, cv::INTER_AREA);
    return r;
  };
  cv::Mat panel;
  cv::hconcat(std::vector<cv::Mat>{fit(source), fit(overlay), fit(result)}, panel);
  return panel;
}

// The middle preview panel: the source with the compositing alpha tinted (the mask actually
// used, after --mask-mode, --mask-blocks, --mask-dilate and --feather; animate: the redraw
// region), each redraw region outlined, and every skeleton.
cv::Mat overlay_of(const cv::Mat& source, const std::vector<const FrameTrack*>& tracks, const cv::Mat& alpha) {
  cv::Mat overlay = source.clone();
  cv::Mat weight = alpha;
  if (weight.empty()) {
    weight = cv::Mat::zeros(source.size(), CV_32F);
    for (const FrameTrack* track : tracks)
      if (!track->agnostic.empty()) weight.setTo(1.0f, track->agnostic.decode());
  }
  if (cv::countNonZero(weight) > 0) {
    const cv::Scalar tint(255, 0, 160);
    for (int y = 0; y < overlay.rows; ++y) {
      cv::Vec3b* px = overlay.ptr<cv::Vec3b>(y);
      const float* w = weight.ptr<float>(y);
      for (int x = 0; x < overlay.cols; ++x)
        if (w[x] > 0)
          for (int c = 0; c < 3; ++c) px[x][c] = cv::saturate_cast<uchar>(px[x][c] + 0.4f * w[x] * (tint[c] - px[x][c]));
    }
  }
  for (const FrameTrack* track : tracks) {
    if (!track->agnostic.empty()) {
      std::vector<std::vector<cv::Point>> contours;
      cv::findContours(track->agnostic.decode(), contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
      cv::drawContours(overlay, contours, -1, cv::Scalar(255, 255, 255), 1);
    }
    if (track->present) vision::draw_skeleton(overlay, track->body);
  }
  return overlay;
}


// Width of preview_panel's result for these frame sizes.
int preview_panel_width(cv::Size source, cv::Size result, int height) {
  const auto fit = [&](cv::Size m) {
    return std::max(2, static_cast<int>(std::lround(m.width * static_cast<double>(height) / m.height)) & ~1);
  };
  return 2 * fit(source) + fit(result);  // source | overlay (source size) | result
}

// Lower bounds of what a render holds (see pipeline/memory.hpp), from the settings alone.
Status check_generation_memory(const GenerateRequest& req, const media::VideoInfo& timeline, cv::Size work,
                               const diffusion::SamplingSettings& settings, const diffusion::BundleConfig& config,
                               at::ScalarType dtype, bool on_cpu) {
  const double frames = static_cast<double>(timeline.frame_count);
  const double latent_px = static_cast<double>(work.width / config.vae_scale_factor) * (work.height / config.vae_scale_factor);
  const double dtype_bytes = static_cast<double>(c10::elementSize(dtype));
  // Host memory only: on a GPU the latents and the UNet's activations live in device memory,
  // which LibTorch reports itself (exit 5, "out of memory") when it runs out. Several devices
  // (one model replica each) add nothing here: each holds one replica's share on its own.
  // The whole clip's latents live at once: latents, noise, the window accumulator, the model
  // output and the next latents (float32), plus the scene latents and mask (bundle dtype).
  const double latent_bytes = on_cpu ? latent_px * (config.latent_channels * 4.0 * 5 + (config.latent_channels + 1) * dtype_bytes) : 0;
  // Every person replaced keeps a track of the whole clip.
  const double per_frame = latent_bytes + static_cast<double>(sizeof(FrameTrack)) * static_cast<double>(std::max<size_t>(1, req.people.size()));
  std::vector<MemoryTerm> terms;
  const std::string count = std::to_string(timeline.frame_count);
  terms.push_back({req.input.empty() ? req.poses + ": " + count + " frames (frame_count)" : req.input + ": " + count + " frames",
                   frames * per_frame, ExitCode::bad_input, "render a shorter clip (split it) or use a smaller --size"});
  if (on_cpu) {
    // One window in the UNet: at least three feature maps of its first level's width at once,
    // and, on LibTorch 1.x (no fused attention), the attention scores of one head at half the
    // latent resolution (every exported UNet attends there or finer).
    const double window = std::min<double>(settings.window, frames);
    const double batch = settings.cfg > 1.0 && settings.cfg_mode == diffusion::CfgMode::batched ? 2 : 1;
    double window_bytes = batch * window * latent_px * config.pose_channels * dtype_bytes * 3;
#if TORCH_VERSION_MAJOR < 2
    const double tokens = latent_px / 4;
    window_bytes += batch * window * tokens * tokens * dtype_bytes;
#endif
    terms.push_back({"--size " + std::to_string(work.width) + "x" + std::to_string(work.height) + " with --window " +
                         std::to_string(static_cast<int64_t>(window)),
                     window_bytes, ExitCode::usage, "use a smaller --size or --window"});
  }
  if (req.mode == Mode::replace)
    terms.push_back({req.input + ": " + std::to_string(timeline.width) + "x" + std::to_string(timeline.height) + " frames",
                     static_cast<double>(timeline.width) * timeline.height * kCompositeBytesPerPixel, ExitCode::bad_input,
                     "scale the video down first"});
  return check_memory(terms, memory_budget_bytes(), resident_bytes());
}

// One generation pass: a person, its framing and reference, and the frames it covers.
struct PersonPass {
  size_t person = 0;  // index into Analysis::people
  const PreparedReference* reference = nullptr;
  compose::WorkGeometry geometry;
  std::optional<compose::Compositor> compositor;
  int64_t first = 0, count = 0;  // the frames generated: [first, first + count)
  // Passes before the last (several people): their frames wait in a lossless temporary.
  std::optional<AtomicOutput> temporary;
  std::optional<media::VideoReader> generated;
  diffusion::GenerationStats stats;
  int retargeted_bones = 0;
};

// The generated frame with its character region's mean colour moved to the reference's.
cv::Mat anchored_frame(const cv::Mat& work_rgb, const FrameTrack& track, const PersonPass& pass, Mode mode) {
  if (!track.present || !pass.reference->mean_lab) return work_rgb;
  const cv::Size work = pass.geometry.work;
  cv::Mat region = skeleton_region(track.body, work, source_to_work_affine(pass.geometry),
                                   std::max(2, work.height / 24));
  if (mode == Mode::replace && !track.agnostic.empty())
    region &= compose::mask_to_work(track.agnostic.decode(), pass.geometry) > 0;
  return anchor_color(work_rgb, region, *pass.reference->mean_lab, std::max(1, work.height / 64));
}

Status check_settings(const GenerateRequest& req) {
  if (!req.people.empty()) {
    if (req.mode == Mode::animate)
      return Error::usage("--person ID=IMAGE replaces several people of a video; animate draws one character (use -r)");
    if (!req.mask.empty())
      return Error::usage("--mask holds one character's mask; with several --person ID=IMAGE the masks come from the tracker");
    if (!req.object_mask.empty())
      return Error::usage("--object-mask cannot be used with several --person ID=IMAGE (it does not say whose objects they are)");
    std::set<int> ids;
    for (const auto& p : req.people)
      if (!ids.insert(p.track_id).second) return Error::usage("--person " + std::to_string(p.track_id) + "=...: that track is named twice");
  }
  if (!req.matte.empty() && req.mode == Mode::animate)
    return Error::usage("--matte is for replace (animate generates the whole frame, there is nothing to recomposite)");
  if (!req.mask_mode.empty() && !vision::parse_mask_mode(req.mask_mode))
    return Error::usage("--mask-mode must be agnostic, tight or box, got '" + req.mask_mode + "'");
  if (req.mask_blocks > 1024)
    return Error::usage("--mask-blocks must be in 1..1024, got " + std::to_string(req.mask_blocks));
  if (req.mask_dilate > 1024) return Error::usage("--mask-dilate must be in 0..1024 pixels, got " + std::to_string(req.mask_dilate));
  if (req.feather > 1024) return Error::usage("--feather must be in 0..1024 pixels, got " + std::to_string(req.feather));
  if (!std::isfinite(req.pose_smoothing) || req.pose_smoothing < 0 || req.pose_smoothing > 100)
    return Error::usage("--pose-smoothing must be in 0..100, got " + std::to_string(req.pose_smoothing));
  if (req.chain_frames < 0) return Error::usage("--chain-frames must be >= 0");
  return Status::success();
}

}  // namespace

std::string default_bundle_dir() {
  if (const char* env = std::getenv("STANDIN_BUNDLE"); env && *env) return env;
  const std::string found = first_existing({fs::path("models/demo"), executable_dir() / ".." / "models" / "demo"});
  return found.empty() ? "models/demo" : found;
}

std::string default_vision_dir() {
  if (const char* env = std::getenv("STANDIN_VISION_MODELS"); env && *env) return env;
  const std::string found = first_existing({fs::path("models/vision"), executable_dir() / ".." / "models" / "vision"});
  return found.empty() ? "models/vision" : found;
}

Status run_generate(const GenerateRequest& req) {
  const auto run_start = Clock::now();
  STANDIN_TRY(check_settings(req));
  const bool several = !req.people.empty();
  std::vector<std::string> references;
  if (several) {
    for (const auto& p : req.people) references.push_back(p.reference);
  } else {
    references.push_back(req.reference);
  }
  // Inputs first (regular files only: nothing here can wait on a FIFO), then every output:
  // nothing is loaded before the command can succeed.
  std::vector<std::pair<std::string, std::string>> inputs = {{req.input, "video"}};
  for (const auto& r : references) inputs.emplace_back(r, "reference image");
  inputs.insert(inputs.end(), {{req.mask, "mask video"}, {req.poses, "poses file"}, {req.object_mask, "object mask video"}});
  for (const auto& [path, what] : inputs)
    if (!path.empty()) STANDIN_TRY(check_regular_file(path, what));
  if (req.input.empty() && (req.mode == Mode::replace || req.poses.empty()))
    return Error::usage("a source video (-i) is needed");
  std::vector<std::string> input_paths;
  for (const auto& entry : inputs) input_paths.push_back(entry.first);
  STANDIN_TRY(check_output_path(req.output, req.overwrite, input_paths));
  STANDIN_TRY(media::check_video_output(req.output));
  std::vector<std::string> taken = input_paths;
  taken.push_back(req.output);
  if (!req.preview.empty()) {
    STANDIN_TRY(check_output_path(req.preview, req.overwrite, taken));
    STANDIN_TRY(media::check_video_output(req.preview));
    taken.push_back(req.preview);
  }
  if (!req.matte.empty()) {
    STANDIN_TRY(media::check_lossless_output(req.matte));
    STANDIN_TRY(check_output_path(req.matte, req.overwrite, taken));
    taken.push_back(req.matte);
  }
  // Checked now, not after the render: a bad metrics path must not cost a whole run.
  if (!req.metrics.empty()) STANDIN_TRY(check_output_path(req.metrics, req.overwrite, taken));
  std::vector<cv::Mat> reference_images;
  for (const auto& r : references) {
    STANDIN_ASSIGN_OR_RETURN(cv::Mat image, media::read_image(r));
    reference_images.push_back(std::move(image));
  }
  std::optional<Preset> preset;
  if (!req.preset.empty()) {
    STANDIN_ASSIGN_OR_RETURN(auto p, load_preset(req.preset));
    preset.emplace(std::move(p));
  }

  // Bundle.
  const auto load_start = Clock::now();
  std::optional<diffusion::DType> dtype;
  if (!req.dtype.empty()) {
    STANDIN_ASSIGN_OR_RETURN(auto d, diffusion::parse_dtype(req.dtype));
    dtype = d;
  }
  const std::string bundle_dir = req.bundle.empty() ? default_bundle_dir() : req.bundle;
  // One replica of the bundle per device ("cuda" = every visible one); the first is the primary,
  // which also runs the reference encoding, conditions, decoding and the vision models.
  STANDIN_ASSIGN_OR_RETURN(const auto devices, diffusion::resolve_devices(req.device));
  STANDIN_ASSIGN_OR_RETURN(const auto replicas, diffusion::load_replicas(bundle_dir, devices, dtype));
  const diffusion::Bundle& bundle = replicas.front();
  std::vector<const diffusion::Bundle*> replica_list;
  nlohmann::json device_names = nlohmann::json::array();
  for (const auto& replica : replicas) {
    replica_list.push_back(&replica);
    device_names.push_back(replica.device().str());
  }
  if (replicas.size() > 1)
    log::info("model on {} devices ({}): the windows of each step are spread over them", replicas.size(),
              device_names.dump());
  const auto& config = bundle.config();
  const double load_s = seconds_since(load_start);

  // Settings: the command line, then the preset, then the bundle's defaults.
  diffusion::SamplingSettings settings = diffusion::SamplingSettings::from_bundle(config);
  if (!std::isfinite(req.cfg)) return Error::usage("--cfg must be a finite number");
  if (req.steps > 0) settings.steps = req.steps;
  else if (preset && preset->steps) settings.steps = *preset->steps;
  if (req.cfg >= 0) settings.cfg = req.cfg;
  else if (preset && preset->cfg) settings.cfg = *preset->cfg;
  if (req.window > 0) {
    settings.window = req.window;
  } else if (preset && preset->window) {
    settings.window = *preset->window;
    if (config.max_window > 0 && settings.window > config.max_window) {
      log::info("preset {}: window {} is longer than this bundle's {}; using {}", preset->name, settings.window,
                config.max_window, config.max_window);
      settings.window = config.max_window;
    }
  }
  if (req.overlap >= 0) {
    settings.overlap = req.overlap;
  } else if (preset && preset->overlap) {
    settings.overlap = std::min(*preset->overlap, settings.window - 1);
    if (settings.overlap != *preset->overlap)
      log::info("preset {}: overlap {} needs a longer window; using {}", preset->name, *preset->overlap, settings.overlap);
  } else if (settings.overlap >= settings.window) {
    // The user shortened the window and said nothing about the overlap: the bundle's default
    // no longer fits, so take the largest that does rather than blame an option never given.
    log::info("--window {}: using --overlap {} (the bundle's default overlap {} needs a longer window)", settings.window,
              settings.window - 1, settings.overlap);
    settings.overlap = settings.window - 1;
  }
  if (settings.steps > config.scheduler.num_train_timesteps)
    return Error::usage("--steps " + std::to_string(settings.steps) + ": this bundle's scheduler has " +
                        std::to_string(config.scheduler.num_train_timesteps) + " training timesteps, so at most " +
                        std::to_string(config.scheduler.num_train_timesteps) + " steps are possible");
  std::string sampler_name = !req.sampler.empty()              ? req.sampler
                             : preset && preset->sampler ? *preset->sampler
                                                         : config.defaults.sampler;
  std::replace(sampler_name.begin(), sampler_name.end(), '-', '_');
  STANDIN_ASSIGN_OR_RETURN(settings.sampler, diffusion::parse_sampler(sampler_name));
  settings.beta_schedule = req.beta_schedule;
  const std::string beta_schedule = settings.scheduler_config(config).beta_schedule;  // the one used
  settings.seed = req.seed;
  settings.chain_frames = req.chain_frames;
  STANDIN_TRY(settings.validate(config));
  cv::Size work(config.width, config.height);
  if (req.width > 0) {
    work = {req.width, req.height};
  } else if (preset && preset->size) {
    work = {preset->size->first, preset->size->second};
  } else if (preset && preset->work_scale) {
    const auto scaled = scaled_work_size(config.width, config.height, *preset->work_scale, config.size_multiple);
    work = {scaled.first, scaled.second};
  }
  if (work.width % config.size_multiple || work.height % config.size_multiple)
    return Error::usage("--size " + std::to_string(work.width) + "x" + std::to_string(work.height) +
                        ": this bundle needs multiples of " + std::to_string(config.size_multiple));
  const MaskSettings masks{*vision::parse_mask_mode(req.mask_mode.empty() ? config.defaults.mask_mode : req.mask_mode),
                           req.mask_blocks >= 0 ? req.mask_blocks : config.defaults.mask_blocks,
                           req.mask_dilate >= 0 ? req.mask_dilate : config.defaults.mask_dilate};
  const bool retarget = req.retarget.value_or(req.mode == Mode::animate);

  // What will be rendered (frames, size, rate), from the video's header or the poses file,
  // before any work: it decides whether the run fits in memory and what the encoder gets.
  media::VideoInfo timeline;
  std::optional<vision::PoseTrack> poses_only;
  if (!req.input.empty()) {
    STANDIN_ASSIGN_OR_RETURN(auto probe, open_video(req.input, /*scan=*/true));
    timeline = probe.info();
    if (timeline.frame_count <= 0) return Error::bad_input(req.input + ": the video track has no frames");
  } else {
    STANDIN_ASSIGN_OR_RETURN(auto track, vision::read_pose_track(req.poses));
    STANDIN_ASSIGN_OR_RETURN(timeline, poses_timeline(req.poses, track));
    poses_only.emplace(std::move(track));
  }
  STANDIN_TRY(check_generation_memory(req, timeline, work, settings, config, bundle.dtype(), bundle.device().is_cpu()));

  // The outputs are opened now, so a container, size or rate the encoder refuses fails here.
  const cv::Size out_size = req.mode == Mode::replace ? cv::Size(timeline.width, timeline.height) : work;
  media::WriterOptions writer_options;
  writer_options.crf = req.crf;
  writer_options.fps = timeline.fps;
  writer_options.time_base = timeline.time_base;
  writer_options.audio_from = req.input;
  writer_options.name_in_messages = req.output;
  STANDIN_ASSIGN_OR_RETURN(auto output, AtomicOutput::create(req.output, req.overwrite));
  STANDIN_ASSIGN_OR_RETURN(auto writer, media::VideoWriter::open(output.temp_path(), out_size.width, out_size.height, writer_options));
  constexpr int kPreviewHeight = 360;
  std::optional<AtomicOutput> preview_output;
  std::optional<media::VideoWriter> preview_writer;
  if (!req.preview.empty()) {
    media::WriterOptions p = writer_options;
    p.audio_from.clear();
    p.name_in_messages = req.preview;
    STANDIN_ASSIGN_OR_RETURN(auto po, AtomicOutput::create(req.preview, req.overwrite));
    preview_output.emplace(std::move(po));
    const int panel_width = preview_panel_width({timeline.width, timeline.height}, out_size, kPreviewHeight);
    STANDIN_ASSIGN_OR_RETURN(auto pw, media::VideoWriter::open(preview_output->temp_path(), panel_width, kPreviewHeight, p));
    preview_writer.emplace(std::move(pw));
  }
  // The matte: the compositing alpha of every output frame, lossless, same size and timestamps.
  std::optional<AtomicOutput> matte_output;
  std::optional<media::VideoWriter> matte_writer;
  if (!req.matte.empty()) {
    media::WriterOptions m;
    m.codec = media::VideoCodec::ffv1;
    m.gray = true;
    m.fps = timeline.fps;
    m.time_base = timeline.time_base;
    m.name_in_messages = req.matte;
    STANDIN_ASSIGN_OR_RETURN(auto mo, AtomicOutput::create(req.matte, req.overwrite));
    matte_output.emplace(std::move(mo));
    STANDIN_ASSIGN_OR_RETURN(auto mw, media::VideoWriter::open(matte_output->temp_path(), out_size.width, out_size.height, m));
    matte_writer.emplace(std::move(mw));
  }

  // Vision, unless the user brought both poses and masks (several people: masks come from the
  // tracker when there is one, else from the poses' boxes).
  std::optional<vision::PersonTracker> tracker;
  const bool need_tracker = (req.mode == Mode::replace && !several ? (req.poses.empty() || req.mask.empty())
                                                                   : req.poses.empty()) ||
                            (req.retarget.value_or(false));  // an explicit --retarget on needs the reference's pose
  // (animate needs no masks: the whole frame is redrawn)
  const std::string vision_dir = req.vision_models.empty() ? default_vision_dir() : req.vision_models;
  std::error_code vision_ec;
  if (need_tracker || fs::exists(vision_dir, vision_ec)) {
    vision::TrackerOptions options;
    options.target_track = several ? -1 : req.person;
    for (const auto& p : req.people) options.mask_tracks.push_back(p.track_id);
    options.landmark_model = req.landmark_model;
    options.max_people = req.max_people;
    vision::set_smoothing_strength(options, req.pose_smoothing);
    if (!req.input.empty() && timeline.fps.valid()) options.fps = timeline.fps.value();  // smoothing works in seconds
    auto created = vision::PersonTracker::create(vision_dir, bundle.device().str(), options);
    if (created.ok()) {
      tracker.emplace(std::move(created).value());
    } else if (need_tracker) {
      return created.error().with_context(req.retarget.value_or(false) ? "pose tracker (--retarget on needs it for the reference's pose)"
                                                                        : "pose/mask tracker (or pass --poses and --mask)");
    } else {
      log::warn("vision models unusable ({}); using the whole reference image", created.error().message);
    }
  }

  // 1. References first: a bad reference fails before the long video pass.
  const auto ref_start = Clock::now();
  std::vector<PreparedReference> prepared;
  for (size_t k = 0; k < references.size(); ++k) {
    STANDIN_ASSIGN_OR_RETURN(auto r, prepare_reference(references[k], reference_images[k], work, config.clip_size, tracker));
    prepared.push_back(std::move(r));
  }
  reference_images.clear();
  const double reference_prep_s = seconds_since(ref_start);
  // 2. Analysis.
  STANDIN_ASSIGN_OR_RETURN(auto analysis, analyze(req, tracker, bundle.object_guider() != nullptr && !several, poses_only,
                                                  timeline, masks, config.pose_hands_face));
  poses_only.reset();
  const auto& info = analysis.info;
  const int64_t frame_count = analysis.frame_count();
  const std::string source_name = req.input.empty() ? req.poses : req.input;
  const auto track_list = [&] {
    std::string found;
    for (int id : analysis.track_ids) found += (found.empty() ? "" : ", ") + std::to_string(id);
    return found.empty() ? std::string(" (nobody was found at all)") : " (its tracks: " + found + ")";
  };
  for (size_t k = 0; k < analysis.people.size(); ++k) {
    if (analysis.people[k].frames_with_person > 0) continue;
    if (several)
      return Error::usage("--person " + std::to_string(req.people[k].track_id) + "=" + req.people[k].reference + ": " +
                          source_name + " has no track " + std::to_string(req.people[k].track_id) + track_list() +
                          "; see the ids with `standin extract`");
    if (req.person >= 0 && !analysis.track_ids.count(req.person))
      return Error::usage("--person " + std::to_string(req.person) + ": " + source_name + " has no track " +
                          std::to_string(req.person) + track_list() +
                          "; see the ids with `standin extract`, or use --person auto");
    return Error::bad_input(source_name + ": no person found in any frame; pass --mask/--poses or choose another video");
  }
  for (const auto& person : analysis.people)
    log::info("{}: {} frames {}x{} at {:.3f} fps; {} in {} frames", source_name, frame_count, info.width, info.height,
              info.fps.value(), person.track_id >= 0 ? "person " + std::to_string(person.track_id) : std::string("person"),
              person.frames_with_person);

  // One framing per person for the whole clip, around everywhere the character goes.
  const cv::Rect2d frame_rect(0, 0, info.width, info.height);
  const std::string boxes_from = !req.mask.empty() ? req.mask : !req.poses.empty() ? req.poses : req.input;
  const int feather_px = req.feather >= 0 ? req.feather : config.defaults.feather;
  const compose::FeatherOptions feather = feather_px >= 0 ? compose::FeatherOptions::with_width(feather_px)
                                                          : compose::FeatherOptions::for_source({info.width, info.height});
  std::vector<PersonPass> passes(analysis.people.size());
  for (size_t k = 0; k < passes.size(); ++k) {
    PersonTrack& person = analysis.people[k];
    PersonPass& pass = passes[k];
    pass.person = k;
    pass.reference = &prepared[k];
    if (!(person.union_box.area() > 0) || !((person.union_box & frame_rect).area() > 0))
      return Error::bad_input(boxes_from + ": the character's boxes are empty or outside the " + std::to_string(info.width) +
                              "x" + std::to_string(info.height) + " frame" +
                              (boxes_from == req.poses ? "; check the \"box\" values of the poses file" : ""));
    pass.geometry = compose::fit_box({info.width, info.height}, work, person.union_box);
    if (Status valid = pass.geometry.validate(); !valid.ok()) return valid.error().with_context(boxes_from);
    pass.compositor.emplace(pass.geometry, feather);
    // Several people: each pass covers the frames from its person's first to last appearance.
    pass.first = several ? person.first : 0;
    pass.count = several ? person.last - person.first + 1 : frame_count;
    if (retarget) {
      if (pass.reference->pose) {
        pass.retargeted_bones = retarget_track(person, *pass.reference->pose);
        log::info("retargeting to {}: {} of 17 bones measured", pass.reference->path, pass.retargeted_bones);
      } else if (req.retarget.value_or(false)) {
        return Error::bad_input(pass.reference->path + ": no pose found in the reference image to retarget to");
      } else {
        log::warn("{}: no reference pose (no vision models); the driving skeleton is used as it is", pass.reference->path);
      }
    }
  }

  tracker.reset();  // free the vision models before the diffusion work

  // 3 + 4. Generation streaming into the compositor and the encoders.
  std::optional<media::VideoReader> composite_source;
  if (!req.input.empty()) {
    STANDIN_ASSIGN_OR_RETURN(auto r, open_video(req.input));
    composite_source.emplace(std::move(r));
  }
  const bool want_alpha = matte_writer.has_value() || preview_writer.has_value();
  int64_t written = 0;
  // Writes every output frame up to `index`: the source with each person's generated frames
  // composited in order (earlier passes from their temporaries, the current one `generated`).
  const auto write_through = [&](int64_t index, size_t current, const cv::Mat* generated) -> Status {
    for (; written <= index; ++written) {
      STANDIN_TRY(check_interrupted());
      const int64_t i = written;
      media::Frame source;
      if (composite_source) {
        STANDIN_ASSIGN_OR_RETURN(source, next_frame(*composite_source, i));
      } else {  // animate from a poses file: a black stand-in for the preview, nominal timestamps
        source.rgb = cv::Mat::zeros(info.height, info.width, CV_8UC3);
        source.pts = i;
      }
      media::Frame out;
      out.pts = source.pts;
      out.rgb = source.rgb;  // nobody to replace here: the source frame, untouched
      cv::Mat alpha_all;
      std::vector<const FrameTrack*> shown;
      for (size_t k = 0; k < passes.size(); ++k) {
        PersonPass& pass = passes[k];
        const FrameTrack& track = analysis.people[pass.person].frames[static_cast<size_t>(i)];
        shown.push_back(&track);
        if (i < pass.first || i >= pass.first + pass.count) continue;
        cv::Mat work_rgb;
        if (k == current) {
          if (generated == nullptr || i != index)
            return Error::runtime("internal: frame " + std::to_string(i) + " was not generated before it was written");
          work_rgb = *generated;
        } else {
          STANDIN_ASSIGN_OR_RETURN(auto f, next_frame(*pass.generated, i - pass.first));
          work_rgb = f.rgb;
        }
        if (req.mode == Mode::animate) {
          out.rgb = work_rgb;
          continue;
        }
        if (track.agnostic.empty()) continue;
        const cv::Mat alpha = pass.compositor->alpha(track.agnostic.decode());
        STANDIN_ASSIGN_OR_RETURN(out.rgb, pass.compositor->composite_with_alpha(out.rgb, work_rgb, alpha));
        if (want_alpha) {  // "over": what is covered by this person or an earlier one
          if (alpha_all.empty()) alpha_all = alpha;
          else alpha_all = 1.0 - (1.0 - alpha_all).mul(1.0 - alpha);
        }
      }
      STANDIN_TRY(writer.write(out));
      if (preview_writer) {
        const cv::Mat panel = preview_panel(source.rgb, overlay_of(source.rgb, shown, alpha_all), out.rgb, kPreviewHeight);
        media::Frame pf;
        pf.rgb = panel;
        pf.pts = source.pts;
        STANDIN_TRY(preview_writer->write(pf));
      }
      if (matte_writer) {
        media::Frame mf;
        mf.pts = source.pts;
        if (alpha_all.empty()) mf.rgb = cv::Mat::zeros(out_size, CV_8U);
        else alpha_all.convertTo(mf.rgb, CV_8U, 255.0);  // rounded, saturated
        STANDIN_TRY(matte_writer->write(mf));
      }
    }
    return Status::success();
  };

  std::vector<RunCache> caches;
  caches.reserve(passes.size());  // each pass's on_step keeps a pointer to its cache
  double generate_s = 0;
  for (size_t k = 0; k < passes.size(); ++k) {
    PersonPass& pass = passes[k];
    const PersonTrack& person = analysis.people[pass.person];
    const bool last = k + 1 == passes.size();
    if (several)
      log::info("pass {}/{}: person {} -> {}, frames {}..{}", k + 1, passes.size(), person.track_id, pass.reference->path,
                pass.first, pass.first + pass.count - 1);
    std::optional<media::VideoReader> scene_source, objects;
    if (req.mode == Mode::replace) {
      STANDIN_ASSIGN_OR_RETURN(auto r, open_video(req.input));
      scene_source.emplace(std::move(r));
    }
    if (!req.object_mask.empty() && bundle.object_guider()) {
      STANDIN_ASSIGN_OR_RETURN(auto r, open_matching_mask(req.object_mask, info));
      objects.emplace(std::move(r));
    } else if (!req.object_mask.empty()) {
      log::warn("{}: this bundle has no object guider; the object mask is ignored", req.object_mask);
    }
    SceneConditions conditions(person, pass.geometry, req.mode, pass.first, pass.count, config.pose_hands_face,
                               std::move(scene_source), std::move(objects));

    // Earlier passes keep their frames in a lossless temporary next to the output.
    std::optional<media::VideoWriter> held;
    if (!last) {
      STANDIN_ASSIGN_OR_RETURN(auto t, AtomicOutput::create(req.output + ".person" + std::to_string(person.track_id) + ".mkv",
                                                            /*overwrite=*/true));
      pass.temporary.emplace(std::move(t));
      media::WriterOptions h;
      h.codec = media::VideoCodec::ffv1;
      h.fps = timeline.fps;
      h.name_in_messages = "temporary frames for person " + std::to_string(person.track_id);
      STANDIN_ASSIGN_OR_RETURN(auto w, media::VideoWriter::open(pass.temporary->temp_path(), work.width, work.height, h));
      held.emplace(std::move(w));
    }
    auto sink = [&](int64_t first, const at::Tensor& frames) -> Status {
      for (int64_t j = 0; j < frames.size(0); ++j) {
        STANDIN_TRY(check_interrupted());
        const int64_t index = pass.first + first + j;
        cv::Mat generated = tensor_to_rgb(frames[j]);
        if (req.anchor_color)
          generated = anchored_frame(generated, person.frames[static_cast<size_t>(index)], pass, req.mode);
        if (held) {
          media::Frame f;
          f.rgb = generated;
          STANDIN_TRY(held->write(f));
        } else {
          STANDIN_TRY(write_through(index, k, &generated));
        }
      }
      return Status::success();
    };

    // --cache: resume after the last finished denoising step of an identical earlier run.
    diffusion::SamplingSettings pass_settings = settings;
    if (!req.cache.empty()) {
      const nlohmann::json key = {
          {"mode", req.mode == Mode::replace ? "replace" : "animate"}, {"device", req.device},
          {"dtype", std::string(c10::toString(bundle.dtype()))}, {"work", {work.width, work.height}},
          {"steps", settings.steps}, {"cfg", settings.cfg}, {"window", settings.window},
          {"overlap", settings.overlap}, {"sampler", sampler_name}, {"beta_schedule", beta_schedule},
          {"seed", settings.seed}, {"person", several ? person.track_id : req.person},
          {"pass", {k, pass.first, pass.count}}, {"chain_frames", settings.chain_frames},
          {"mask", {vision::to_string(masks.mode), masks.blocks, masks.dilate}}, {"retarget", retarget},
          {"pose_smoothing", req.pose_smoothing}, {"frames", frame_count}, {"version", 2}};
      STANDIN_ASSIGN_OR_RETURN(auto c, RunCache::open(req.cache, key.dump(),
                                                      {req.input, pass.reference->path, req.mask, req.poses, req.object_mask,
                                                       (fs::path(bundle_dir) / "model.json").string()}));
      caches.push_back(std::move(c));
      RunCache* cache = &caches.back();
      CacheShape shape;
      shape.steps = static_cast<int>(settings.resumable_steps(pass.count));
      shape.latent_sizes = {1, config.latent_channels, pass.count, work.height / config.vae_scale_factor,
                            work.width / config.vae_scale_factor};
      if (auto saved = cache->load(shape)) {
        log::info("resuming from {} after step {} of {}", cache->folder(), saved->next_step, shape.steps);
        pass_settings.resume = diffusion::SamplingSettings::StepState{saved->next_step, saved->latents, saved->sampler_state};
      }
      // Saving costs a copy of the latents: small ones after every step, large ones (long videos)
      // at most every 20 s, and always after the last step.
      auto last_save = Clock::now();
      const int total_steps = shape.steps;
      pass_settings.on_step = [cache, last_save, total_steps](const diffusion::SamplingSettings::StepState& state) mutable {
        const bool small = state.latents.numel() * 4 < (int64_t{64} << 20);
        if (!small && state.next_step < total_steps && seconds_since(last_save) < 20.0) return Status::success();
        last_save = Clock::now();
        return cache->save(CachedStep{state.next_step, state.latents, state.sampler_history});
      };
    }

    diffusion::Generator generator(replica_list);
    diffusion::GenerationInputs gen_inputs{pass.reference->inputs.image, pass.reference->inputs.clip, &conditions, {}};
    const auto gen_start = Clock::now();
    STANDIN_ASSIGN_OR_RETURN(auto generated, generator.generate(gen_inputs, pass_settings, sink));
    generate_s += seconds_since(gen_start);
    pass.stats = generated.stats;
    if (held) {
      STANDIN_TRY(held->finish());
      held.reset();
      STANDIN_ASSIGN_OR_RETURN(auto r, open_video(pass.temporary->temp_path()));
      pass.generated.emplace(std::move(r));
    } else {
      STANDIN_TRY(write_through(frame_count - 1, k, nullptr));  // frames after the last person's
    }
  }
  if (written != frame_count)
    return Error::runtime("wrote " + std::to_string(written) + " of " + std::to_string(frame_count) + " frames");
  STANDIN_TRY(writer.finish());
  if (matte_writer) STANDIN_TRY(matte_writer->finish());
  if (preview_writer) STANDIN_TRY(preview_writer->finish());
  STANDIN_TRY(output.commit());
  if (matte_output) STANDIN_TRY(matte_output->commit());
  if (preview_output) STANDIN_TRY(preview_output->commit());
  for (const auto& cache : caches) cache.clear();

  const double total_s = seconds_since(run_start);
  log::info("wrote {} ({} frames) in {:.1f} s", req.output, written, total_s);
  if (!req.metrics.empty()) {
    diffusion::GenerationStats stats;
    nlohmann::json people = nlohmann::json::array();
    for (const auto& pass : passes) {
      const auto& s = pass.stats;
      stats.reference_s += s.reference_s, stats.conditions_s += s.conditions_s, stats.denoise_s += s.denoise_s;
      stats.decode_s += s.decode_s, stats.windows += s.windows, stats.unet_calls += s.unet_calls;
      stats.devices = std::max(stats.devices, s.devices);
      people.push_back({{"track_id", analysis.people[pass.person].track_id}, {"reference", pass.reference->path},
                        {"frames", {pass.first, pass.first + pass.count}},
                        {"crop", {pass.geometry.crop.x, pass.geometry.crop.y, pass.geometry.crop.width, pass.geometry.crop.height}},
                        {"retargeted_bones", pass.retargeted_bones}, {"windows", s.windows}, {"unet_calls", s.unet_calls},
                        {"devices_used", s.devices}});
    }
    const auto& crop = passes.front().geometry.crop;
    nlohmann::json metrics = {
        {"input", req.input}, {"reference", several ? std::string() : req.reference}, {"output", req.output},
        {"mode", req.mode == Mode::replace ? "replace" : "animate"},
        {"bundle", bundle_dir}, {"device", req.device}, {"devices", device_names},
        {"dtype", std::string(c10::toString(bundle.dtype()))},
        {"frames", written}, {"source_size", {info.width, info.height}}, {"work_size", {work.width, work.height}},
        {"fps", {info.fps.num, info.fps.den}},
        {"settings", {{"steps", settings.steps}, {"cfg", settings.cfg}, {"window", settings.window},
                      {"overlap", settings.overlap}, {"sampler", sampler_name},
                      {"beta_schedule", beta_schedule}, {"seed", settings.seed},
                      {"preset", preset ? preset->name : std::string()}, {"chain_frames", settings.chain_frames},
                      {"anchor_color", req.anchor_color}, {"retarget", retarget},
                      {"pose_smoothing", req.pose_smoothing}, {"mask_mode", vision::to_string(masks.mode)},
                      {"mask_blocks", masks.blocks}, {"mask_dilate", masks.dilate},
                      {"feather", {feather.dilate_px, feather.sigma_px}},
                      {"pose_hands_face", config.pose_hands_face}}},
        {"crop", {crop.x, crop.y, crop.width, crop.height}},
        {"people", people},
        {"seconds", {{"load_bundle", load_s}, {"analysis", analysis.seconds}, {"reference_prep", reference_prep_s},
                     {"reference_features", stats.reference_s}, {"conditions", stats.conditions_s},
                     {"denoise", stats.denoise_s}, {"decode_composite_encode", stats.decode_s},
                     {"generate_total", generate_s}, {"total", total_s}}},
        // where the analysis time went (issue 11's analysis target): network calls vs the rest
        {"analysis_detail", {{"decode", analysis.decode_s}, {"tracker", analysis.tracker.total_s},
                             {"detector", analysis.tracker.detector_s}, {"detector_runs", analysis.tracker.detector_runs},
                             {"detector_calls", analysis.tracker.detector_calls},
                             {"landmark", analysis.tracker.landmark_s}, {"landmark_runs", analysis.tracker.landmark_runs},
                             {"landmark_calls", analysis.tracker.landmark_calls},
                             {"mask", analysis.tracker.mask_s}}},
        {"windows", stats.windows}, {"unet_calls", stats.unet_calls}, {"devices_used", stats.devices},
        {"seconds_per_frame", total_s / std::max<int64_t>(1, written)},
    };
    STANDIN_TRY(write_file_atomically(req.metrics, metrics.dump(2) + "\n", req.overwrite, "metrics file"));
  }
  return Status::success();
}

}  // namespace standin::pipeline
