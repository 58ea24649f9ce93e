// replace / animate, top to bottom:
//   1. analyse the source once (tracker, or the user's --poses/--mask): per frame a skeleton, a
//      box and the shape-agnostic mask (run-length encoded), plus one framing for the video;
//   2. prepare the reference (crop around the character, CLIP input);
//   3. generate: the generator pulls scene conditions frame by frame from a second decode of the
//      source and pose maps drawn from the stored skeletons;
//   4. composite each decoded frame into a third decode of the source and encode it, with the
//      source's timestamps and audio, into a temporary file renamed over the output at the end.
#include "standin/core/log.hpp"
#include "standin/pipeline/generate.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/version.h>

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
#include "standin/vision/mask.hpp"
#include "standin/vision/pose.hpp"
#include "standin/vision/tracker.hpp"

namespace fs = std::filesystem;

namespace standin::pipeline {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Grows the agnostic mask a little past the blocks so the model redraws the character's edge.
constexpr int kAgnosticDilatePx = 4;

struct FrameTrack {
  bool present = false;
  vision::Body18 body{};
  cv::Rect box;
  RleMask agnostic;  // source size; empty when absent
};

struct Analysis {
  media::VideoInfo info;
  std::vector<FrameTrack> frames;
  cv::Rect2d union_box;
  int64_t frames_with_person = 0;
  std::set<int> track_ids;  // every person track seen (tracker or poses file)
  double seconds = 0;
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

Result<Analysis> analyze_poses_only(const vision::PoseTrack& track, const media::VideoInfo& timeline) {
  Analysis analysis;
  analysis.info = timeline;
  analysis.frames.resize(static_cast<size_t>(timeline.frame_count));
  for (const auto& fa : track.frames) {
    for (const auto& p : fa.people) analysis.track_ids.insert(p.track_id);
    const vision::PersonPose* person = fa.target_person();
    if (!person && !fa.people.empty()) person = &fa.people.front();
    if (!person) continue;
    auto& frame = analysis.frames[static_cast<size_t>(fa.frame_index)];
    frame.body = person->body;
    frame.box = person->box;
    frame.present = true;
    ++analysis.frames_with_person;
    const cv::Rect2d box(person->box);
    analysis.union_box = analysis.union_box.area() > 0 ? (analysis.union_box | box) : box;
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
Result<Analysis> analyze(const GenerateRequest& req, std::optional<vision::PersonTracker>& tracker,
                         bool join_objects, const std::optional<vision::PoseTrack>& poses_only,
                         const media::VideoInfo& timeline) {
  if (req.input.empty()) return analyze_poses_only(*poses_only, timeline);
  const auto start = Clock::now();
  STANDIN_ASSIGN_OR_RETURN(auto reader, open_video(req.input, /*scan=*/true));
  Analysis analysis;
  analysis.info = reader.info();
  const auto& info = analysis.info;
  if (info.frame_count <= 0) return Error::bad_input(req.input + ": no video frames");

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

  analysis.frames.resize(static_cast<size_t>(info.frame_count));
  size_t next_pose = 0;
  Progress progress("analysing", info.frame_count);
  int64_t decoded = 0;
  for (int64_t i = 0;; ++i) {
    STANDIN_TRY(check_interrupted());
    media::Frame frame;
    STANDIN_ASSIGN_OR_RETURN(bool got, reader.read(frame));
    if (!got) break;
    decoded = i + 1;
    if (i >= info.frame_count) analysis.frames.emplace_back();  // container under-counted

    vision::FrameAnalysis tracked;
    if (tracker) {
      STANDIN_ASSIGN_OR_RETURN(tracked, tracker->process(frame.rgb, i));
      for (const auto& p : tracked.people) analysis.track_ids.insert(p.track_id);
    }
    FrameTrack& track = analysis.frames[static_cast<size_t>(i)];
    if (poses) {
      while (next_pose < poses->frames.size() && poses->frames[next_pose].frame_index < i) ++next_pose;
      if (next_pose < poses->frames.size() && poses->frames[next_pose].frame_index == i) {
        const auto& fa = poses->frames[next_pose];
        for (const auto& p : fa.people) analysis.track_ids.insert(p.track_id);
        const vision::PersonPose* person = fa.target_person();
        if (!person && req.person >= 0)
          for (const auto& p : fa.people)
            if (p.track_id == req.person) person = &p;
        if (!person && !fa.people.empty()) person = &fa.people.front();
        if (person) {
          track.body = person->body;
          track.box = person->box;
          track.present = true;
        }
      }
    } else if (const auto* person = tracked.target_person()) {
      track.body = person->body;
      track.box = person->box;
      track.present = true;
    }

    cv::Mat character;
    if (mask_reader) {
      STANDIN_ASSIGN_OR_RETURN(auto m, next_frame(*mask_reader, i));
      character = gray_of(m.rgb);
    } else if (!tracked.target_mask.empty()) {
      character = tracked.target_mask;
    } else if (track.present) {
      character = cv::Mat::zeros(frame.rgb.size(), CV_8U);
      cv::rectangle(character, track.box & cv::Rect(0, 0, frame.rgb.cols, frame.rgb.rows), cv::Scalar(255), cv::FILLED);
    }
    cv::Mat objects;
    if (object_reader) {
      STANDIN_ASSIGN_OR_RETURN(auto m, next_frame(*object_reader, i));
      objects = gray_of(m.rgb) > 127;
    }
    if (!character.empty() && cv::countNonZero(character > 127) > 0) {
      cv::Mat agnostic = vision::shape_agnostic_mask_inference(character > 127, {}, kAgnosticDilatePx);
      if (!objects.empty()) {
        cv::dilate(objects, objects, cv::getStructuringElement(cv::MORPH_ELLIPSE, {2 * kAgnosticDilatePx + 1, 2 * kAgnosticDilatePx + 1}));
        agnostic |= objects;
      }
      track.agnostic = RleMask::encode(agnostic);
      const cv::Rect box = vision::mask_bounding_box(agnostic);
      analysis.union_box = analysis.union_box.area() > 0 ? (analysis.union_box | cv::Rect2d(box)) : cv::Rect2d(box);
      track.present = true;
    }
    if (track.present) ++analysis.frames_with_person;
    progress.advance();
  }
  progress.finish();
  if (decoded == 0) return Error::bad_input(req.input + ": no frame could be decoded; the file is damaged");
  if (decoded < static_cast<int64_t>(analysis.frames.size())) {
    // A truncated or damaged tail: render what decodes rather than nothing, and say so.
    log::warn("{}: only {} of {} frames could be decoded (truncated or damaged file); the output has {}", req.input,
                 decoded, analysis.frames.size(), decoded);
    analysis.frames.resize(static_cast<size_t>(decoded));
  }
  analysis.seconds = seconds_since(start);
  return analysis;
}

// --- reference ------------------------------------------------------------------------------

Result<ReferenceInputs> prepare_reference(const GenerateRequest& req, const cv::Mat& image, cv::Size work,
                                            int clip_size, std::optional<vision::PersonTracker>& tracker) {
  cv::Rect box(0, 0, image.cols, image.rows);
  if (tracker) {
    STANDIN_ASSIGN_OR_RETURN(auto ref, tracker->analyze_reference(image));
    if (!ref.found)
      return Error::bad_input(req.reference + ": no person found in the reference image; use a picture that shows the character's body");
    box = ref.crop;
  }
  auto prepared = reference_inputs(image, box, work, clip_size);
  if (!prepared.ok()) return prepared.error().with_context(req.reference);
  return prepared;
}

// --- pass 2: conditions ---------------------------------------------------------------------

class SceneConditions final : public diffusion::ConditionSource {
 public:
  SceneConditions(const Analysis& analysis, const compose::WorkGeometry& geometry, Mode mode,
                  std::optional<media::VideoReader> source, std::optional<media::VideoReader> objects)
      : analysis_(analysis), geometry_(geometry), mode_(mode), source_(std::move(source)), objects_(std::move(objects)) {}

  int64_t num_frames() const override { return static_cast<int64_t>(analysis_.frames.size()); }

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
      STANDIN_ASSIGN_OR_RETURN(auto frame, next_frame(*source_, i));
      const FrameTrack& track = analysis_.frames[static_cast<size_t>(i)];
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
        STANDIN_ASSIGN_OR_RETURN(auto obj, next_frame(*objects_, i));
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
      const FrameTrack& track = analysis_.frames[static_cast<size_t>(i)];
      if (!track.present) continue;
      cv::Mat map = vision::render_pose_map(track.body, geometry_.work, affine);
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
      const FrameTrack& track = analysis_.frames[static_cast<size_t>(i)];
      if (!track.present) continue;
      const cv::Mat map = vision::render_depth_map(track.body, geometry_.work, affine);
      out[i - begin] = at::from_blob(map.data, {1, H, W}, at::kFloat).clone();
    }
    return out;
  }

 private:
  const Analysis& analysis_;
  const compose::WorkGeometry& geometry_;
  Mode mode_;
  std::optional<media::VideoReader> source_;
  std::optional<media::VideoReader> objects_;
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

cv::Mat overlay_of(const cv::Mat& source, const FrameTrack& track) {
  cv::Mat overlay = source.clone();
  if (!track.agnostic.empty()) {
    cv::Mat tint(source.size(), CV_8UC3, cv::Scalar(255, 0, 160));
    cv::Mat blended;
    cv::addWeighted(source, 0.6, tint, 0.4, 0, blended);
    blended.copyTo(overlay, track.agnostic.decode());
  }
  if (track.present) vision::draw_skeleton(overlay, track.body);
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
  // which LibTorch reports itself (exit 5, "out of memory") when it runs out.
  // The whole clip's latents live at once: latents, noise, the window accumulator, the model
  // output and the next latents (float32), plus the scene latents and mask (bundle dtype).
  const double latent_bytes = on_cpu ? latent_px * (config.latent_channels * 4.0 * 5 + (config.latent_channels + 1) * dtype_bytes) : 0;
  const double per_frame = latent_bytes + static_cast<double>(sizeof(FrameTrack));
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

}  // namespace

std::string default_bundle_dir() {
  if (const char* env = std::getenv("STANDIN_BUNDLE"); env && *env) return env;
  const std::string found = first_existing({fs::path("models/tiny"), executable_dir() / ".." / "models" / "tiny"});
  return found.empty() ? "models/tiny" : found;
}

std::string default_vision_dir() {
  if (const char* env = std::getenv("STANDIN_VISION_MODELS"); env && *env) return env;
  const std::string found = first_existing({fs::path("models/vision"), executable_dir() / ".." / "models" / "vision"});
  return found.empty() ? "models/vision" : found;
}

Status run_generate(const GenerateRequest& req) {
  const auto run_start = Clock::now();
  // Inputs first (regular files only: nothing here can wait on a FIFO), then every output:
  // nothing is loaded before the command can succeed.
  for (const auto& [path, what] : {std::pair{req.input, "video"}, std::pair{req.reference, "reference image"},
                                   std::pair{req.mask, "mask video"}, std::pair{req.poses, "poses file"},
                                   std::pair{req.object_mask, "object mask video"}}) {
    if (!path.empty()) STANDIN_TRY(check_regular_file(path, what));
  }
  if (req.input.empty() && (req.mode == Mode::replace || req.poses.empty()))
    return Error::usage("a source video (-i) is needed");
  STANDIN_TRY(check_output_path(req.output, req.overwrite, {req.input, req.reference, req.mask, req.poses, req.object_mask}));
  STANDIN_TRY(media::check_video_output(req.output));
  if (!req.preview.empty()) {
    STANDIN_TRY(check_output_path(req.preview, req.overwrite, {req.input, req.reference, req.output}));
    STANDIN_TRY(media::check_video_output(req.preview));
  }
  // Checked now, not after the render: a bad metrics path must not cost a whole run.
  if (!req.metrics.empty())
    STANDIN_TRY(check_output_path(req.metrics, req.overwrite, {req.input, req.reference, req.output}));
  STANDIN_ASSIGN_OR_RETURN(const cv::Mat reference_image, media::read_image(req.reference));

  // Bundle.
  const auto load_start = Clock::now();
  std::optional<diffusion::DType> dtype;
  if (!req.dtype.empty()) {
    STANDIN_ASSIGN_OR_RETURN(auto d, diffusion::parse_dtype(req.dtype));
    dtype = d;
  }
  const std::string bundle_dir = req.bundle.empty() ? default_bundle_dir() : req.bundle;
  STANDIN_ASSIGN_OR_RETURN(auto bundle, diffusion::Bundle::load(bundle_dir, diffusion::DeviceSpec{req.device}, dtype));
  const auto& config = bundle.config();
  const double load_s = seconds_since(load_start);

  diffusion::SamplingSettings settings = diffusion::SamplingSettings::from_bundle(config);
  if (!std::isfinite(req.cfg)) return Error::usage("--cfg must be a finite number");
  if (req.steps > 0) settings.steps = req.steps;
  if (req.cfg >= 0) settings.cfg = req.cfg;
  if (req.window > 0) settings.window = req.window;
  if (req.overlap >= 0) {
    settings.overlap = req.overlap;
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
  std::string sampler_name = req.sampler;
  std::replace(sampler_name.begin(), sampler_name.end(), '-', '_');
  STANDIN_ASSIGN_OR_RETURN(settings.sampler, diffusion::parse_sampler(sampler_name));
  settings.beta_schedule = req.beta_schedule;
  const std::string beta_schedule = settings.scheduler_config(config).beta_schedule;  // the one used
  settings.seed = req.seed;
  STANDIN_TRY(settings.validate(config));
  const cv::Size work(req.width > 0 ? req.width : config.width, req.height > 0 ? req.height : config.height);
  if (work.width % config.size_multiple || work.height % config.size_multiple)
    return Error::usage("--size " + std::to_string(work.width) + "x" + std::to_string(work.height) +
                        ": this bundle needs multiples of " + std::to_string(config.size_multiple));

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

  // Vision, unless the user brought both poses and masks.
  std::optional<vision::PersonTracker> tracker;
  const bool need_tracker = req.mode == Mode::replace ? (req.poses.empty() || req.mask.empty()) : req.poses.empty();
  // (animate needs no masks: the whole frame is redrawn)
  const std::string vision_dir = req.vision_models.empty() ? default_vision_dir() : req.vision_models;
  std::error_code vision_ec;
  if (need_tracker || fs::exists(vision_dir, vision_ec)) {
    vision::TrackerOptions options;
    options.target_track = req.person;
    options.landmark_model = req.landmark_model;
    options.max_people = req.max_people;
    if (!req.input.empty() && timeline.fps.valid()) options.fps = timeline.fps.value();  // smoothing works in seconds
    auto created = vision::PersonTracker::create(vision_dir, req.device, options);
    if (created.ok()) {
      tracker.emplace(std::move(created).value());
    } else if (need_tracker) {
      return created.error().with_context("pose/mask tracker (or pass --poses and --mask)");
    } else {
      log::warn("vision models unusable ({}); using the whole reference image", created.error().message);
    }
  }

  // 1. Reference first: a bad reference fails before the long video pass.
  const auto ref_start = Clock::now();
  STANDIN_ASSIGN_OR_RETURN(auto reference, prepare_reference(req, reference_image, work, config.clip_size, tracker));
  const double reference_prep_s = seconds_since(ref_start);
  // 2. Analysis.
  STANDIN_ASSIGN_OR_RETURN(auto analysis, analyze(req, tracker, bundle.object_guider() != nullptr, poses_only, timeline));
  poses_only.reset();
  const auto& info = analysis.info;
  const std::string source_name = req.input.empty() ? req.poses : req.input;
  if (analysis.frames_with_person == 0) {
    if (req.person >= 0 && !analysis.track_ids.count(req.person)) {
      std::string found;
      for (int id : analysis.track_ids) found += (found.empty() ? "" : ", ") + std::to_string(id);
      return Error::usage("--person " + std::to_string(req.person) + ": " + source_name + " has no track " +
                          std::to_string(req.person) +
                          (found.empty() ? " (nobody was found at all)" : " (its tracks: " + found + ")") +
                          "; see the ids with `standin extract`, or use --person auto");
    }
    return Error::bad_input(source_name + ": no person found in any frame; pass --mask/--poses or choose another video");
  }
  log::info("{}: {} frames {}x{} at {:.3f} fps; person in {} frames", source_name, analysis.frames.size(), info.width,
               info.height, info.fps.value(), analysis.frames_with_person);
  // One framing for the whole clip, around everywhere the character goes.
  const cv::Rect2d frame_rect(0, 0, info.width, info.height);
  const std::string boxes_from = !req.mask.empty() ? req.mask : !req.poses.empty() ? req.poses : req.input;
  if (!(analysis.union_box.area() > 0) || !((analysis.union_box & frame_rect).area() > 0))
    return Error::bad_input(boxes_from + ": the character's boxes are empty or outside the " + std::to_string(info.width) +
                            "x" + std::to_string(info.height) + " frame" +
                            (boxes_from == req.poses ? "; check the \"box\" values of the poses file" : ""));
  const compose::WorkGeometry geometry = compose::fit_box({info.width, info.height}, work, analysis.union_box);
  if (Status valid = geometry.validate(); !valid.ok()) return valid.error().with_context(boxes_from);
  const compose::Compositor compositor(geometry, compose::FeatherOptions::for_source(geometry.source));

  tracker.reset();  // free the vision models before the diffusion work

  // 3 + 4. Generation streaming into the compositor and the encoder.
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
  SceneConditions conditions(analysis, geometry, req.mode, std::move(scene_source), std::move(objects));

  std::optional<media::VideoReader> composite_source;
  if (!req.input.empty()) {
    STANDIN_ASSIGN_OR_RETURN(auto r, open_video(req.input));
    composite_source.emplace(std::move(r));
  }

  int64_t written = 0;
  auto sink = [&](int64_t first, const at::Tensor& frames) -> Status {
    for (int64_t k = 0; k < frames.size(0); ++k) {
      STANDIN_TRY(check_interrupted());
      const int64_t index = first + k;
      media::Frame source;
      if (composite_source) {
        STANDIN_ASSIGN_OR_RETURN(source, next_frame(*composite_source, index));
      } else {  // animate from a poses file: a black stand-in for the preview, nominal timestamps
        source.rgb = cv::Mat::zeros(info.height, info.width, CV_8UC3);
        source.pts = index;
      }
      const FrameTrack& track = analysis.frames[static_cast<size_t>(index)];
      const cv::Mat generated_work = tensor_to_rgb(frames[k]);
      media::Frame out;
      out.pts = source.pts;
      if (req.mode == Mode::animate) {
        out.rgb = generated_work;
      } else if (track.agnostic.empty()) {
        out.rgb = source.rgb;  // nobody to replace here: the source frame, untouched
      } else {
        STANDIN_ASSIGN_OR_RETURN(out.rgb, compositor.composite(source.rgb, generated_work, track.agnostic.decode()));
      }
      STANDIN_TRY(writer.write(out));
      if (preview_writer) {
        const cv::Mat panel = preview_panel(source.rgb, overlay_of(source.rgb, track), out.rgb, kPreviewHeight);
        media::Frame pf;
        pf.rgb = panel;
        pf.pts = source.pts;
        STANDIN_TRY(preview_writer->write(pf));
      }
      ++written;
    }
    return Status::success();
  };

  // --cache: resume after the last finished denoising step of an identical earlier run.
  std::optional<RunCache> cache;
  if (!req.cache.empty()) {
    const nlohmann::json key = {
        {"mode", req.mode == Mode::replace ? "replace" : "animate"}, {"device", req.device},
        {"dtype", std::string(c10::toString(bundle.dtype()))}, {"work", {work.width, work.height}},
        {"steps", settings.steps}, {"cfg", settings.cfg}, {"window", settings.window},
        {"overlap", settings.overlap}, {"sampler", sampler_name}, {"beta_schedule", beta_schedule},
        {"seed", settings.seed}, {"person", req.person},
        {"frames", analysis.frames.size()}, {"version", 1}};
    STANDIN_ASSIGN_OR_RETURN(auto c, RunCache::open(req.cache, key.dump(),
                                                    {req.input, req.reference, req.mask, req.poses, req.object_mask,
                                                     (fs::path(bundle_dir) / "model.json").string()}));
    cache.emplace(std::move(c));
    CacheShape shape;
    shape.steps = settings.steps;
    shape.latent_sizes = {1, config.latent_channels, static_cast<int64_t>(analysis.frames.size()),
                          work.height / config.vae_scale_factor, work.width / config.vae_scale_factor};
    if (auto saved = cache->load(shape)) {
      log::info("resuming from {} after step {} of {}", cache->folder(), saved->next_step, settings.steps);
      settings.resume = diffusion::SamplingSettings::StepState{saved->next_step, saved->latents, saved->sampler_state};
    }
    // Saving costs a copy of the latents: small ones after every step, large ones (long videos)
    // at most every 20 s, and always after the last step.
    auto last_save = Clock::now();
    const int total_steps = settings.steps;
    settings.on_step = [&cache, last_save, total_steps](const diffusion::SamplingSettings::StepState& state) mutable {
      const bool small = state.latents.numel() * 4 < (int64_t{64} << 20);
      if (!small && state.next_step < total_steps && seconds_since(last_save) < 20.0) return Status::success();
      last_save = Clock::now();
      return cache->save(CachedStep{state.next_step, state.latents, state.sampler_history});
    };
  }

  diffusion::Generator generator(bundle);
  diffusion::GenerationInputs inputs{reference.image, reference.clip, &conditions, {}};
  const auto gen_start = Clock::now();
  STANDIN_ASSIGN_OR_RETURN(auto generated, generator.generate(inputs, settings, sink));
  const double generate_s = seconds_since(gen_start);
  if (written != static_cast<int64_t>(analysis.frames.size()))
    return Error::runtime("wrote " + std::to_string(written) + " of " + std::to_string(analysis.frames.size()) + " frames");
  STANDIN_TRY(writer.finish());
  STANDIN_TRY(output.commit());
  if (cache) cache->clear();
  if (preview_writer) {
    STANDIN_TRY(preview_writer->finish());
    STANDIN_TRY(preview_output->commit());
  }

  const auto& stats = generated.stats;
  const double total_s = seconds_since(run_start);
  log::info("wrote {} ({} frames) in {:.1f} s", req.output, written, total_s);
  if (!req.metrics.empty()) {
    nlohmann::json metrics = {
        {"input", req.input}, {"reference", req.reference}, {"output", req.output},
        {"mode", req.mode == Mode::replace ? "replace" : "animate"},
        {"bundle", bundle_dir}, {"device", req.device}, {"dtype", std::string(c10::toString(bundle.dtype()))},
        {"frames", written}, {"source_size", {info.width, info.height}}, {"work_size", {work.width, work.height}},
        {"fps", {info.fps.num, info.fps.den}},
        {"settings", {{"steps", settings.steps}, {"cfg", settings.cfg}, {"window", settings.window},
                      {"overlap", settings.overlap}, {"sampler", sampler_name},
                      {"beta_schedule", beta_schedule}, {"seed", settings.seed}}},
        {"crop", {geometry.crop.x, geometry.crop.y, geometry.crop.width, geometry.crop.height}},
        {"seconds", {{"load_bundle", load_s}, {"analysis", analysis.seconds}, {"reference_prep", reference_prep_s},
                     {"reference_features", stats.reference_s}, {"conditions", stats.conditions_s},
                     {"denoise", stats.denoise_s}, {"decode_composite_encode", stats.decode_s},
                     {"generate_total", generate_s}, {"total", total_s}}},
        {"windows", stats.windows}, {"unet_calls", stats.unet_calls},
        {"seconds_per_frame", total_s / std::max<int64_t>(1, written)},
    };
    STANDIN_TRY(write_file_atomically(req.metrics, metrics.dump(2) + "\n", req.overwrite, "metrics file"));
  }
  return Status::success();
}

}  // namespace standin::pipeline
