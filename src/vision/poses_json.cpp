// poses.json reading (strict validation, errors name the field) and writing (streaming,
// atomic). Schema: docs/VISION_CPP.md.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "standin/core/files.hpp"
#include "standin/core/json_bounded.hpp"
#include "standin/core/output.hpp"
#include "standin/vision/pose.hpp"

namespace standin::vision {

namespace {

using json = nlohmann::json;
constexpr const char* kFormat = "standin-poses";
constexpr int kVersion = 1;

struct Ctx {
  std::string name;
  Error err(const std::string& field, const std::string& what) const {
    return Error::bad_input(name + ": " + field + ": " + what);
  }
};

std::string type_name(const json& j) { return j.type_name(); }

Result<double> get_number(const Ctx& c, const json& j, const std::string& field) {
  if (!j.is_number()) return c.err(field, "expected a number, got " + type_name(j));
  const double v = j.get<double>();
  if (!std::isfinite(v)) return c.err(field, "not a finite number");
  return v;
}

Result<int64_t> get_int(const Ctx& c, const json& j, const std::string& field) {
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number_float()) {
    const double v = j.get<double>();
    if (std::isfinite(v) && v == std::floor(v) && std::abs(v) < 9e15) return static_cast<int64_t>(v);
  }
  return c.err(field, "expected an integer, got " + (j.is_number() ? std::string("a fraction") : type_name(j)));
}

// [x, y, score] or [x, y, score, z] (z: Keypoint::z, written when known; absent = unknown).
Result<Keypoint> get_keypoint(const Ctx& c, const json& j, const std::string& field) {
  if (!j.is_array() || (j.size() != 3 && j.size() != 4)) return c.err(field, "expected [x, y, score] or [x, y, score, z]");
  Keypoint k;
  STANDIN_ASSIGN_OR_RETURN(double x, get_number(c, j[0], field + "[0]"));
  STANDIN_ASSIGN_OR_RETURN(double y, get_number(c, j[1], field + "[1]"));
  STANDIN_ASSIGN_OR_RETURN(double s, get_number(c, j[2], field + "[2]"));
  if (s < 0 || s > 1) return c.err(field + "[2]", "score must be in [0, 1]");
  if (std::abs(x) > 1e7 || std::abs(y) > 1e7) return c.err(field, "coordinate out of range");
  k.x = static_cast<float>(x);
  k.y = static_cast<float>(y);
  k.score = static_cast<float>(s);
  if (j.size() == 4) {
    STANDIN_ASSIGN_OR_RETURN(double z, get_number(c, j[3], field + "[3]"));
    if (std::abs(z) > 1e7) return c.err(field + "[3]", "depth out of range");
    k.z = static_cast<float>(z);
  }
  return k;
}

Result<PersonPose> get_person(const Ctx& c, const json& j, const std::string& field) {
  if (!j.is_object()) return c.err(field, "expected an object, got " + type_name(j));
  PersonPose p;
  if (j.contains("track_id")) {
    STANDIN_ASSIGN_OR_RETURN(int64_t id, get_int(c, j["track_id"], field + ".track_id"));
    if (id < 0 || id > 1000000000) return c.err(field + ".track_id", "must be a non-negative integer");
    p.track_id = static_cast<int>(id);
  } else {
    return c.err(field, "missing \"track_id\"");
  }
  if (j.contains("score")) {
    STANDIN_ASSIGN_OR_RETURN(double s, get_number(c, j["score"], field + ".score"));
    if (s < 0 || s > 1) return c.err(field + ".score", "must be in [0, 1]");
    p.score = static_cast<float>(s);
  }
  if (!j.contains("body")) return c.err(field, "missing \"body\" (18 OpenPose keypoints)");
  const json& body = j["body"];
  if (!body.is_array() || body.size() != kOpenPoseCount)
    return c.err(field + ".body", "expected an array of 18 [x, y, score] keypoints");
  for (int i = 0; i < kOpenPoseCount; ++i) {
    STANDIN_ASSIGN_OR_RETURN(p.body[i], get_keypoint(c, body[i], field + ".body[" + std::to_string(i) + "]"));
  }
  if (j.contains("landmarks")) {
    const json& lm = j["landmarks"];
    if (!lm.is_array() || (!lm.empty() && lm.size() != kBlazePoseCount))
      return c.err(field + ".landmarks", "expected an array of 0 or 33 [x, y, score] keypoints");
    for (size_t i = 0; i < lm.size(); ++i) {
      STANDIN_ASSIGN_OR_RETURN(Keypoint k, get_keypoint(c, lm[i], field + ".landmarks[" + std::to_string(i) + "]"));
      p.landmarks.push_back(k);
    }
  }
  if (j.contains("box")) {
    const json& b = j["box"];
    if (!b.is_array() || b.size() != 4) return c.err(field + ".box", "expected [x, y, width, height]");
    double v[4];
    for (int i = 0; i < 4; ++i) {
      STANDIN_ASSIGN_OR_RETURN(v[i], get_number(c, b[i], field + ".box[" + std::to_string(i) + "]"));
    }
    if (v[2] < 0 || v[3] < 0) return c.err(field + ".box", "width and height must be >= 0");
    p.box = cv::Rect2f(static_cast<float>(v[0]), static_cast<float>(v[1]), static_cast<float>(v[2]), static_cast<float>(v[3]));
  }
  return p;
}

void append_kp(std::string& s, const Keypoint& k) {
  char buf[128];
  const float x = std::isfinite(k.x) ? k.x : 0.0f, y = std::isfinite(k.y) ? k.y : 0.0f;
  const float sc = std::isfinite(k.score) ? std::min(1.0f, std::max(0.0f, k.score)) : 0.0f;
  if (std::isfinite(k.z))  // unknown depth: the 3-number form
    std::snprintf(buf, sizeof buf, "[%.2f,%.2f,%.4f,%.2f]", x, y, sc, std::clamp(k.z, -1e7f, 1e7f));
  else
    std::snprintf(buf, sizeof buf, "[%.2f,%.2f,%.4f]", x, y, sc);
  s += buf;
}

std::string frame_text(const FrameAnalysis& f) {
  std::string s;
  s.reserve(2048);
  s += "{\"frame\":" + std::to_string(f.frame_index);
  const int target = f.target >= 0 && f.target < static_cast<int>(f.people.size()) ? f.target : -1;
  s += ",\"target\":" + std::to_string(target) + ",\"people\":[";
  for (size_t i = 0; i < f.people.size(); ++i) {
    const PersonPose& p = f.people[i];
    if (i) s += ',';
    char buf[160];
    std::snprintf(buf, sizeof buf, "{\"track_id\":%d,\"score\":%.4f,\"box\":[%.2f,%.2f,%.2f,%.2f],\"body\":[",
                  std::max(0, p.track_id), std::isfinite(p.score) ? std::min(1.0f, std::max(0.0f, p.score)) : 0.0f,
                  p.box.x, p.box.y, std::max(0.0f, p.box.width), std::max(0.0f, p.box.height));
    s += buf;
    for (int j = 0; j < kOpenPoseCount; ++j) {
      if (j) s += ',';
      append_kp(s, p.body[j]);
    }
    s += "],\"landmarks\":[";
    if (p.landmarks.size() == static_cast<size_t>(kBlazePoseCount)) {
      for (int j = 0; j < kBlazePoseCount; ++j) {
        if (j) s += ',';
        append_kp(s, p.landmarks[j]);
      }
    }
    s += "]}";
  }
  s += "]}";
  return s;
}

// One element of "frames" (already parsed) into a FrameAnalysis; `previous` is the index of the
// frame before it.
Result<FrameAnalysis> convert_frame(const Ctx& c, const json& jf, size_t i, int64_t previous) {
  const std::string field = "frames[" + std::to_string(i) + "]";
  if (!jf.is_object()) return c.err(field, "expected an object, got " + type_name(jf));
  if (!jf.contains("frame")) return c.err(field, "missing \"frame\"");
  FrameAnalysis fa;
  STANDIN_ASSIGN_OR_RETURN(fa.frame_index, get_int(c, jf["frame"], field + ".frame"));
  if (fa.frame_index < 0) return c.err(field + ".frame", "must be >= 0, got " + std::to_string(fa.frame_index));
  if (fa.frame_index <= previous) return c.err(field + ".frame", "frame indices must increase (got " + std::to_string(fa.frame_index) + " after " + std::to_string(previous) + ")");
  if (jf.contains("people")) {
    const json& people = jf["people"];
    if (!people.is_array()) return c.err(field + ".people", "expected an array, got " + type_name(people));
    fa.people.reserve(people.size());
    for (size_t k = 0; k < people.size(); ++k) {
      STANDIN_ASSIGN_OR_RETURN(PersonPose p, get_person(c, people[k], field + ".people[" + std::to_string(k) + "]"));
      fa.people.push_back(std::move(p));
    }
  }
  if (jf.contains("target")) {
    STANDIN_ASSIGN_OR_RETURN(int64_t t, get_int(c, jf["target"], field + ".target"));
    if (t < -1 || t >= static_cast<int64_t>(fa.people.size()))
      return c.err(field + ".target", "must be -1 or an index into people (got " + std::to_string(t) + ")");
    fa.target = static_cast<int>(t);
  } else {
    fa.target = fa.people.empty() ? -1 : 0;
  }
  return fa;
}

// Limits of the parse (a real frame holds a few people of ~210 values each; the rest of the
// file is a handful of header keys).
constexpr JsonLimits kFrameLimits{16, 1 << 16};
constexpr JsonLimits kHeaderLimits{16, 1 << 12};

// Streams poses.json: the header keys are built as a small JSON object; each element of
// "frames" is built on its own, converted and dropped as soon as it closes, so memory holds
// the converted track plus one frame's JSON, never the whole document's (which is ~20x the text).
class PosesSax {
 public:
  PosesSax(const Ctx& c, PoseTrack& track) : c_(c), track_(track), header_(kHeaderLimits), frame_(kFrameLimits) {}

  bool null() { return scalar(nullptr); }
  bool boolean(bool v) { return scalar(v); }
  bool number_integer(json::number_integer_t v) { return scalar(v); }
  bool number_unsigned(json::number_unsigned_t v) { return scalar(v); }
  bool number_float(json::number_float_t v, const json::string_t&) { return scalar(v); }
  bool string(json::string_t& v) { return scalar(std::move(v)); }
  bool binary(json::binary_t&) { return scalar(nullptr); }
  bool start_object(std::size_t) { return start(json::object()); }
  bool start_array(std::size_t) {
    if (frames_pending_) {  // the value of the top-level "frames": its elements stream
      frames_pending_ = false;
      in_frames_ = true;
      return true;
    }
    return start(json::array());
  }
  bool key(json::string_t& name) {
    if (in_frames_) return frame_.key(std::move(name));
    if (header_.depth() == 1 && name == "frames") {
      if (saw_frames_) return fail(c_.err("frames", "appears twice"));
      saw_frames_ = true;
      frames_pending_ = true;
      return true;
    }
    return header_.key(std::move(name));
  }
  bool end_object() { return end(); }
  bool end_array() {
    if (in_frames_ && frame_.depth() == 0) {  // the end of "frames"
      in_frames_ = false;
      return true;
    }
    return end();
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
    return fail(Error::bad_input(c_.name + ": " + describe_json_error(position, e)));
  }

  std::optional<Error> error;
  json& header() { return header_.result(); }
  bool saw_frames() const { return saw_frames_; }
  bool complete() const { return header_.complete(); }

 private:
  bool fail(Error e) {
    if (!error) error = std::move(e);
    return false;
  }
  bool limit_failure(const JsonBuilder& builder, const std::string& where) {
    return fail(c_.err(where, "too large or nested too deeply (" + builder.limit_error() + ")"));
  }
  std::string frame_field() const { return "frames[" + std::to_string(frame_count_) + "]"; }
  bool scalar(json v) {
    if (frames_pending_) {  // "frames" is not an array: keep it for the header's message
      frames_pending_ = false;
      return header_.key("frames") && header_.scalar(std::move(v));
    }
    if (in_frames_) {
      if (!frame_.scalar(std::move(v))) return limit_failure(frame_, frame_field());
      return frame_.depth() == 0 ? take_frame() : true;
    }
    return header_.scalar(std::move(v)) || limit_failure(header_, "top level");
  }
  bool start(json container) {
    if (frames_pending_) {
      frames_pending_ = false;
      if (!header_.key("frames")) return false;
    }
    if (in_frames_) return frame_.start(std::move(container)) || limit_failure(frame_, frame_field());
    return header_.start(std::move(container)) || limit_failure(header_, "top level");
  }
  bool end() {
    if (in_frames_) {
      frame_.end();
      return frame_.depth() == 0 ? take_frame() : true;
    }
    return header_.end();
  }
  bool take_frame() {
    auto converted = convert_frame(c_, frame_.result(), frame_count_, previous_);
    frame_.reset();
    if (!converted.ok()) return fail(converted.error());
    previous_ = converted->frame_index;
    track_.frames.push_back(std::move(converted).value());
    ++frame_count_;
    return true;
  }

  const Ctx& c_;
  PoseTrack& track_;
  JsonBuilder header_, frame_;
  bool frames_pending_ = false, in_frames_ = false, saw_frames_ = false;
  size_t frame_count_ = 0;
  int64_t previous_ = -1;
};

// The header keys of a parsed file (everything but "frames") into track.info.
Status read_header(const Ctx& c, const json& root, PoseTrack& track) {
  if (root.contains("format")) {
    if (!root["format"].is_string() || root["format"].get<std::string>() != kFormat)
      return c.err("format", std::string("expected \"") + kFormat + "\"");
  }
  if (root.contains("version")) {
    STANDIN_ASSIGN_OR_RETURN(int64_t v, get_int(c, root["version"], "version"));
    if (v != kVersion) return c.err("version", "unsupported version " + std::to_string(v) + " (this build reads 1)");
  }
  for (const char* key : {"width", "height"}) {
    if (!root.contains(key)) continue;
    STANDIN_ASSIGN_OR_RETURN(int64_t v, get_int(c, root[key], key));
    if (v < 0 || v > 1 << 20) return c.err(key, "must be a non-negative integer");
    (std::string(key) == "width" ? track.info.width : track.info.height) = static_cast<int>(v);
  }
  if (root.contains("fps")) {
    const json& f = root["fps"];
    if (!f.is_array() || f.size() != 2) return c.err("fps", "expected [numerator, denominator]");
    STANDIN_ASSIGN_OR_RETURN(int64_t n, get_int(c, f[0], "fps[0]"));
    STANDIN_ASSIGN_OR_RETURN(int64_t d, get_int(c, f[1], "fps[1]"));
    if (n < 0 || d <= 0 || n > INT32_MAX || d > INT32_MAX) return c.err("fps", "expected a positive rational");
    track.info.fps_num = static_cast<int>(n);
    track.info.fps_den = static_cast<int>(d);
  }
  if (root.contains("source") && root["source"].is_string()) track.info.source = root["source"].get<std::string>();
  if (root.contains("models") && root["models"].is_string()) track.info.models = root["models"].get<std::string>();
  if (root.contains("frame_count")) {
    STANDIN_ASSIGN_OR_RETURN(int64_t n, get_int(c, root["frame_count"], "frame_count"));
    if (n < 0) return c.err("frame_count", "must be >= 0");
    track.info.frame_count = n;
  } else {
    track.info.frame_count = static_cast<int64_t>(track.frames.size());
  }
  return Status::success();
}

template <class Input>
Result<PoseTrack> parse_stream(Input&& input, const std::string& name) {
  Ctx c{name};
  PoseTrack track;
  PosesSax sax(c, track);
  try {
    json::sax_parse(std::forward<Input>(input), &sax);
  } catch (const json::exception& e) {  // defensive: errors arrive as parse_error calls
    return Error::bad_input(name + ": " + describe_json_error(0, e));
  }
  if (sax.error) return *sax.error;
  if (!sax.complete()) return Error::bad_input(name + ": not valid JSON (the text ends early)");
  const json& root = sax.header();
  if (!root.is_object()) return c.err("top level", "expected an object, got " + type_name(root));
  if (root.contains("frames"))  // present here only when it was not an array
    return c.err("frames", "expected an array, got " + type_name(root["frames"]));
  if (!sax.saw_frames()) return c.err("top level", "missing \"frames\"");
  STANDIN_TRY(read_header(c, root, track));
  track.frames.shrink_to_fit();
  return track;
}

}  // namespace

Result<PoseTrack> parse_pose_track(const std::string& text, const std::string& name) { return parse_stream(text, name); }

Result<PoseTrack> read_pose_track(const std::string& path) {
  STANDIN_ASSIGN_OR_RETURN(auto file, InputFile::open(path, kMaxPosesJsonBytes, "poses file"));
  auto track = parse_stream(file.stream(), path);
  STANDIN_TRY(file.finish());  // a read error or a file past the cap explains a parse failure
  return track;
}

Result<std::vector<FrameAnalysis>> read_poses_json(const std::string& path) {
  STANDIN_ASSIGN_OR_RETURN(PoseTrack t, read_pose_track(path));
  return std::move(t.frames);
}

// ---- writer --------------------------------------------------------------------------------

struct PosesJsonWriter::Impl {
  AtomicOutput out;
  std::ofstream file;
  int64_t frames = 0;
  int64_t last_index = -1;
  bool finished = false;
  explicit Impl(AtomicOutput output) : out(std::move(output)) {}
};

PosesJsonWriter::PosesJsonWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PosesJsonWriter::PosesJsonWriter(PosesJsonWriter&&) noexcept = default;
PosesJsonWriter& PosesJsonWriter::operator=(PosesJsonWriter&&) noexcept = default;
PosesJsonWriter::~PosesJsonWriter() = default;

Result<PosesJsonWriter> PosesJsonWriter::open(const std::string& path, const PoseTrackInfo& info, bool overwrite) {
  STANDIN_ASSIGN_OR_RETURN(auto output, AtomicOutput::create(path, overwrite));
  auto impl = std::make_unique<Impl>(std::move(output));
  impl->file.open(impl->out.temp_path(), std::ios::binary | std::ios::trunc);
  if (!impl->file) return Error::runtime(path + ": cannot write (" + impl->out.temp_path() + ")");
  json head;
  head["source"] = info.source;
  head["models"] = info.models;
  impl->file << "{\"format\":\"" << kFormat << "\",\"version\":" << kVersion
             << ",\"layout\":{\"body\":\"openpose18\",\"landmarks\":\"blazepose33\",\"coordinates\":\"source_pixels\"}"
             << ",\"width\":" << info.width << ",\"height\":" << info.height << ",\"fps\":[" << info.fps_num << ","
             << std::max(1, info.fps_den) << "],\"source\":" << head["source"].dump() << ",\"models\":" << head["models"].dump()
             << ",\n\"frames\":[";
  return PosesJsonWriter(std::move(impl));
}

Status PosesJsonWriter::write(const FrameAnalysis& frame) {
  if (!impl_ || impl_->finished) return Error::runtime("poses.json writer: write after finish");
  if (frame.frame_index < 0 || frame.frame_index <= impl_->last_index)
    return Error::runtime("poses.json writer: frame indices must increase");
  impl_->file << (impl_->frames ? ",\n" : "\n") << frame_text(frame);
  impl_->last_index = frame.frame_index;
  ++impl_->frames;
  if (!impl_->file) return Error::runtime(impl_->out.destination() + ": write failed");
  return Status::success();
}

Status PosesJsonWriter::finish() {
  if (!impl_ || impl_->finished) return Error::runtime("poses.json writer: finished twice");
  impl_->file << "\n],\n\"frame_count\":" << impl_->frames << "}\n";
  impl_->file.flush();  // a full disk shows up here or at close: both are checked
  impl_->file.close();
  if (impl_->file.fail()) return Error::runtime(impl_->out.destination() + ": write failed");
  impl_->finished = true;
  return impl_->out.commit();
}

int64_t PosesJsonWriter::frames_written() const { return impl_ ? impl_->frames : 0; }

Status write_poses_json(const std::string& path, const PoseTrackInfo& info, const std::vector<FrameAnalysis>& frames,
                        bool overwrite) {
  STANDIN_ASSIGN_OR_RETURN(auto writer, PosesJsonWriter::open(path, info, overwrite));
  for (const auto& f : frames) STANDIN_TRY(writer.write(f));
  return writer.finish();
}

}  // namespace standin::vision
