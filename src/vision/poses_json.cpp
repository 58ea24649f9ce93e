// poses.json reading (strict validation, errors name the field) and writing (streaming,
// atomic). Schema: docs/VISION_CPP.md.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

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

}  // namespace

Result<PoseTrack> parse_pose_track(const std::string& text, const std::string& name) {
  Ctx c{name};
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    return Error::bad_input(name + ": not valid JSON (byte " + std::to_string(e.byte) + ")");
  } catch (const json::exception& e) {  // e.g. out_of_range: a number too large for a double
    return Error::bad_input(name + ": not valid JSON (" + e.what() + ")");
  }
  if (!root.is_object()) return c.err("top level", "expected an object, got " + type_name(root));
  PoseTrack track;
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
  if (!root.contains("frames")) return c.err("top level", "missing \"frames\"");
  const json& frames = root["frames"];
  if (!frames.is_array()) return c.err("frames", "expected an array, got " + type_name(frames));
  int64_t previous = -1;
  track.frames.reserve(frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    const std::string field = "frames[" + std::to_string(i) + "]";
    const json& jf = frames[i];
    if (!jf.is_object()) return c.err(field, "expected an object, got " + type_name(jf));
    if (!jf.contains("frame")) return c.err(field, "missing \"frame\"");
    FrameAnalysis fa;
    STANDIN_ASSIGN_OR_RETURN(fa.frame_index, get_int(c, jf["frame"], field + ".frame"));
    if (fa.frame_index < 0) return c.err(field + ".frame", "must be >= 0, got " + std::to_string(fa.frame_index));
    if (fa.frame_index <= previous) return c.err(field + ".frame", "frame indices must increase (got " + std::to_string(fa.frame_index) + " after " + std::to_string(previous) + ")");
    previous = fa.frame_index;
    if (jf.contains("people")) {
      const json& people = jf["people"];
      if (!people.is_array()) return c.err(field + ".people", "expected an array, got " + type_name(people));
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
    track.frames.push_back(std::move(fa));
  }
  if (root.contains("frame_count")) {
    STANDIN_ASSIGN_OR_RETURN(int64_t n, get_int(c, root["frame_count"], "frame_count"));
    if (n < 0) return c.err("frame_count", "must be >= 0");
    track.info.frame_count = n;
  } else {
    track.info.frame_count = static_cast<int64_t>(track.frames.size());
  }
  return track;
}

Result<PoseTrack> read_pose_track(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::bad_input(path + ": cannot open the poses file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error::bad_input(path + ": read error");
  return parse_pose_track(ss.str(), path);
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
  explicit Impl(const std::string& path) : out(path) {}
};

PosesJsonWriter::PosesJsonWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PosesJsonWriter::PosesJsonWriter(PosesJsonWriter&&) noexcept = default;
PosesJsonWriter& PosesJsonWriter::operator=(PosesJsonWriter&&) noexcept = default;
PosesJsonWriter::~PosesJsonWriter() = default;

Result<PosesJsonWriter> PosesJsonWriter::open(const std::string& path, const PoseTrackInfo& info) {
  auto impl = std::make_unique<Impl>(path);
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
  impl_->file.close();
  if (impl_->file.fail()) return Error::runtime(impl_->out.destination() + ": write failed");
  impl_->finished = true;
  return impl_->out.commit();
}

int64_t PosesJsonWriter::frames_written() const { return impl_ ? impl_->frames : 0; }

Status write_poses_json(const std::string& path, const PoseTrackInfo& info, const std::vector<FrameAnalysis>& frames) {
  STANDIN_ASSIGN_OR_RETURN(auto writer, PosesJsonWriter::open(path, info));
  for (const auto& f : frames) STANDIN_TRY(writer.write(f));
  return writer.finish();
}

}  // namespace standin::vision
