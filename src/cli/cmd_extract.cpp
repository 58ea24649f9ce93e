// `standin extract -i VIDEO -o DIR`: per-frame poses and the target's mask, streamed frame by
// frame into DIR/poses.json, DIR/pose.mp4, DIR/mask.mp4 and DIR/overlay.mp4 (all atomic).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <set>

#include <opencv2/imgproc.hpp>

#include "commands.hpp"
#include "standin/core/log.hpp"
#include "standin/pipeline/generate.hpp"
#include "standin/core/files.hpp"
#include "standin/core/output.hpp"
#include "standin/core/progress.hpp"
#include "standin/media/video.hpp"
#include "standin/pipeline/memory.hpp"
#include "standin/vision/tracker.hpp"

namespace standin::cli {

namespace {

namespace fs = std::filesystem;

// Source dimmed where there is no mask, the target's mask tinted, every skeleton drawn,
// track ids written next to the boxes (the target's box in white).
cv::Mat make_overlay(const cv::Mat& rgb, const vision::FrameAnalysis& fa) {
  cv::Mat out = rgb.clone();
  if (!fa.target_mask.empty()) {
    cv::Mat tint(rgb.size(), CV_8UC3, cv::Scalar(0, 200, 255));
    cv::Mat blended;
    cv::addWeighted(rgb, 0.55, tint, 0.45, 0, blended);
    // out = rgb + (blended - rgb) * mask / 255
    cv::Mat m3;
    cv::cvtColor(fa.target_mask, m3, cv::COLOR_GRAY2RGB);
    cv::Mat mf, bf, rf;
    m3.convertTo(mf, CV_32FC3, 1.0 / 255);
    blended.convertTo(bf, CV_32FC3);
    rgb.convertTo(rf, CV_32FC3);
    cv::Mat res = rf + (bf - rf).mul(mf);
    res.convertTo(out, CV_8UC3);
  }
  for (size_t i = 0; i < fa.people.size(); ++i) {
    const auto& p = fa.people[i];
    // Sticks scaled to the person so small people stay visible under their skeleton.
    const int stick = std::clamp(static_cast<int>(p.box.height / 60), 1, vision::kPoseStickWidth);
    vision::draw_skeleton(out, p.body, {}, stick, stick + 1);
    const bool target = static_cast<int>(i) == fa.target;
    const cv::Scalar colour = target ? cv::Scalar(255, 255, 255) : cv::Scalar(128, 128, 128);
    cv::rectangle(out, cv::Rect(p.box), colour, 1);
    cv::putText(out, std::to_string(p.track_id), cv::Point(static_cast<int>(p.box.x) + 2, static_cast<int>(p.box.y) + 14),
                cv::FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv::LINE_AA);
  }
  return out;
}

std::string ranges_text(const std::vector<int64_t>& frames) {
  std::string s;
  size_t i = 0, shown = 0;
  while (i < frames.size()) {
    size_t j = i;
    while (j + 1 < frames.size() && frames[j + 1] == frames[j] + 1) ++j;
    if (shown++ == 12) {
      s += ", ...";
      break;
    }
    if (!s.empty()) s += ", ";
    s += std::to_string(frames[i]);
    if (j > i) s += "-" + std::to_string(frames[j]);
    i = j + 1;
  }
  return s;
}

}  // namespace

Status run_extract(const CommandLine& line) {
  const ExtractOptions& o = line.extract;
  STANDIN_ASSIGN_OR_RETURN(const int person, parse_person(o.person));

  STANDIN_ASSIGN_OR_RETURN(auto reader, media::VideoReader::open(o.input));
  const media::VideoInfo info = reader.info();
  // Frames this large cannot be analysed and encoded three times over on this machine: say so
  // before loading the models, not after the first frames fill the memory.
  STANDIN_TRY(pipeline::check_memory(
      {{o.input + ": " + std::to_string(info.width) + "x" + std::to_string(info.height) + " frames",
        static_cast<double>(info.width) * info.height * pipeline::kExtractBytesPerPixel, ExitCode::bad_input,
        "scale the video down first (e.g. ffmpeg -i IN -vf scale=1920:-2 OUT)"}},
      memory_budget_bytes(), pipeline::resident_bytes()));

  vision::TrackerOptions topt;
  topt.target_track = person;
  topt.landmark_model = o.landmark_model;
  topt.max_people = o.max_people;
  vision::set_smoothing_strength(topt, o.pose_smoothing);
  topt.fps = info.fps.valid() ? info.fps.value() : 30.0;
  STANDIN_ASSIGN_OR_RETURN(auto tracker, vision::PersonTracker::create(
                                                o.vision_models.empty() ? pipeline::default_vision_dir() : o.vision_models,
                                                concrete_device(o.device), topt));

  // The folder is made only once input and models are known to be good.
  std::error_code ec;
  const auto folder = fs::status(o.output_dir, ec);
  bool created_folder = false;
  if (!fs::exists(folder)) {
    fs::create_directories(o.output_dir, ec);
    if (ec) return Error::bad_input(o.output_dir + ": cannot create the output folder (" + ec.message() + ")");
    created_folder = true;
  } else if (!fs::is_directory(folder)) {
    return Error::bad_input(o.output_dir + ": exists and is not a folder; give a folder for the outputs");
  }
  // A failed extract leaves nothing behind, not even the folder it made (once it is empty
  // again: the outputs' temporaries are removed before this runs, being declared later).
  struct RemoveIfEmpty {
    std::string path;
    bool armed;
    ~RemoveIfEmpty() {
      std::error_code ignored;
      if (armed && fs::is_empty(path, ignored)) fs::remove(path, ignored);
    }
  } folder_guard{o.output_dir, created_folder};
  const std::string out_json = (fs::path(o.output_dir) / "poses.json").string();
  const std::string out_pose = (fs::path(o.output_dir) / "pose.mp4").string();
  const std::string out_mask = (fs::path(o.output_dir) / "mask.mp4").string();
  const std::string out_overlay = (fs::path(o.output_dir) / "overlay.mp4").string();
  for (const auto& p : {out_json, out_pose, out_mask, out_overlay})
    STANDIN_TRY(check_output_path(p, line.global.overwrite, {o.input}));

  vision::PoseTrackInfo pinfo;
  pinfo.width = info.width;
  pinfo.height = info.height;
  pinfo.fps_num = info.fps.num;
  pinfo.fps_den = info.fps.den;
  pinfo.source = o.input;
  pinfo.models = "blazepose_" + topt.landmark_model;
  STANDIN_ASSIGN_OR_RETURN(auto poses, vision::PosesJsonWriter::open(out_json, pinfo, line.global.overwrite));

  media::WriterOptions wopt;
  wopt.fps = info.fps.valid() ? info.fps : media::Rational{25, 1};
  wopt.time_base = info.time_base;
  wopt.preset = "veryfast";
  STANDIN_ASSIGN_OR_RETURN(auto pose_out, AtomicOutput::create(out_pose, line.global.overwrite));
  STANDIN_ASSIGN_OR_RETURN(auto mask_out, AtomicOutput::create(out_mask, line.global.overwrite));
  STANDIN_ASSIGN_OR_RETURN(auto overlay_out, AtomicOutput::create(out_overlay, line.global.overwrite));
  const auto open_writer = [&](const AtomicOutput& out) {
    media::WriterOptions named = wopt;
    named.name_in_messages = out.destination();
    return media::VideoWriter::open(out.temp_path(), info.width, info.height, named);
  };
  STANDIN_ASSIGN_OR_RETURN(auto pose_writer, open_writer(pose_out));
  STANDIN_ASSIGN_OR_RETURN(auto mask_writer, open_writer(mask_out));
  STANDIN_ASSIGN_OR_RETURN(auto overlay_writer, open_writer(overlay_out));

  log::info("extract: {} ({}x{}, {} frames{}) -> {}", o.input, info.width, info.height, info.frame_count,
               info.frame_count_exact ? "" : " est.", o.output_dir);
  Progress progress("extract", info.frame_count > 0 ? info.frame_count : 0);
  const auto start = std::chrono::steady_clock::now();
  double tracker_s = 0;
  int64_t frames = 0, frames_with_people = 0;
  std::vector<int64_t> missing;
  std::set<int> track_ids;
  media::Frame frame;
  while (true) {
    STANDIN_TRY(check_interrupted());
    STANDIN_ASSIGN_OR_RETURN(bool got, reader.read(frame));
    if (!got) break;
    const auto t0 = std::chrono::steady_clock::now();
    STANDIN_ASSIGN_OR_RETURN(vision::FrameAnalysis fa, tracker.process(frame.rgb, frames));
    tracker_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!fa.people.empty()) ++frames_with_people;
    for (const auto& p : fa.people) track_ids.insert(p.track_id);
    if (fa.target < 0) missing.push_back(frames);
    STANDIN_TRY(poses.write(fa));

    media::Frame out;
    out.pts = frame.pts;
    const vision::PersonPose* target = fa.target_person();
    out.rgb = target ? vision::render_pose_map(target->body, frame.rgb.size()) : cv::Mat::zeros(frame.rgb.size(), CV_8UC3);
    STANDIN_TRY(pose_writer.write(out));
    if (fa.target_mask.empty()) {
      out.rgb = cv::Mat::zeros(frame.rgb.size(), CV_8UC3);
    } else {
      cv::cvtColor(fa.target_mask, out.rgb, cv::COLOR_GRAY2RGB);
    }
    STANDIN_TRY(mask_writer.write(out));
    out.rgb = make_overlay(frame.rgb, fa);
    STANDIN_TRY(overlay_writer.write(out));
    ++frames;
    progress.advance();
  }
  progress.finish();
  if (frames == 0)  // nothing was committed: outputs of an empty video would only mislead
    return Error::bad_input(o.input + ": the video track has no frames that decode; nothing was written");
  STANDIN_TRY(pose_writer.finish());
  STANDIN_TRY(mask_writer.finish());
  STANDIN_TRY(overlay_writer.finish());
  STANDIN_TRY(check_interrupted());
  STANDIN_TRY(poses.finish());
  STANDIN_TRY(pose_out.commit());
  STANDIN_TRY(mask_out.commit());
  STANDIN_TRY(overlay_out.commit());
  folder_guard.armed = false;

  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log::info("extract: {} frames in {:.1f} s ({:.2f} frames/s; tracker alone {:.2f} frames/s), {} track(s)", frames, total_s,
               total_s > 0 ? frames / total_s : 0.0, tracker_s > 0 ? frames / tracker_s : 0.0, track_ids.size());
  if (frames_with_people == 0) {
    log::warn("extract: no person found in {} ({} frames): poses.json holds an empty track, the pose and mask videos are black",
                 o.input, frames);
  } else if (!missing.empty()) {
    log::warn("extract: the target ({}) is missing in {} of {} frames: {}", person < 0 ? std::string("auto") : std::to_string(person),
                 missing.size(), frames, ranges_text(missing));
  }
  return Status::success();
}

}  // namespace standin::cli
