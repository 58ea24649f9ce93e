// dump_conditions: runs the C++ condition functions on the inputs of one JSON request file and
// writes their outputs, for tests/python/test_train_conditions.py (the training conditions in
// scripts/standin_train/conditions.py must equal these).
//
//   build/tools/dump_conditions REQUEST.json OUT_DIR   -> JSON on stdout naming the files
//
// REQUEST.json: {"requests": [{"name": "a1", "op": OP, ...}, ...]}; names are [A-Za-z0-9_-]+.
//   fit_box           source [w,h], work [w,h], box [x,y,w,h], margin      -> {"crop": [x,y,w,h]}
//   render_pose_map   keypoints (18 rows [x, y, score(, z)], null = NaN) and either
//   render_depth_map  canvas [w,h] + affine [[a,b,c],[d,e,f]] (optional) or geometry (fit_box's
//                     arguments: the work canvas and the source -> work affine of replace)
//                                                   -> {"map": file} (uint8 HxWx3 / float32 HxW)
//   agnostic_mask     mask (uint8 HxW file), dilate_px        -> {"mask": file} (uint8 HxW)
//   to_work           image (uint8 HxWx3 file), geometry       -> {"image": file}
//   mask_to_work      mask (uint8 HxW file), geometry          -> {"mask": file}
//   reference_crop    area [x,y,w,h] (float32), image [w,h]   -> {"crop": [x,y,w,h]}
//   reference         image (uint8 HxWx3 file), crop [x,y,w,h], work [w,h], clip_size
//                                -> {"work_rgb": file (uint8 HxWx3), "clip": file (float32 3xSxS)}
// Files are raw C-order arrays, in and out: {"path": ..., "shape": [...]} (+ "dtype" on output),
// so no image codec sits between the two sides. Errors: one line on stderr, README's exit codes.
#include <fstream>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "standin/compose/compositor.hpp"
#include "standin/core/error.hpp"
#include "standin/pipeline/conditions.hpp"
#include "standin/vision/mask.hpp"
#include "standin/vision/pose.hpp"
#include "standin/vision/tracker.hpp"

using namespace standin;
using json = nlohmann::json;

namespace {

struct Request {
  const json& j;
  std::string name;
  Error fail(const std::string& what) const { return Error::bad_input(name + ": " + what); }
};

Result<double> number(const Request& r, const json& j, const std::string& field) {
  if (!j.is_number()) return r.fail(field + ": expected a number");
  return j.get<double>();
}

Result<std::vector<double>> numbers(const Request& r, const std::string& field, size_t count) {
  if (!r.j.contains(field) || !r.j[field].is_array() || r.j[field].size() != count)
    return r.fail("\"" + field + "\": expected " + std::to_string(count) + " numbers");
  std::vector<double> v;
  for (const json& x : r.j[field]) {
    STANDIN_ASSIGN_OR_RETURN(double d, number(r, x, field));
    v.push_back(d);
  }
  return v;
}

Result<cv::Size> size_of(const Request& r, const std::string& field) {
  STANDIN_ASSIGN_OR_RETURN(auto v, numbers(r, field, 2));
  if (v[0] < 1 || v[1] < 1 || v[0] > 16384 || v[1] > 16384) return r.fail("\"" + field + "\": sizes must be 1..16384");
  return cv::Size(static_cast<int>(v[0]), static_cast<int>(v[1]));
}

Result<compose::WorkGeometry> geometry_of(const Request& r) {
  STANDIN_ASSIGN_OR_RETURN(cv::Size source, size_of(r, "source"));
  STANDIN_ASSIGN_OR_RETURN(cv::Size work, size_of(r, "work"));
  STANDIN_ASSIGN_OR_RETURN(auto box, numbers(r, "box", 4));
  double margin = 0.15;
  if (r.j.contains("margin")) {
    STANDIN_ASSIGN_OR_RETURN(margin, number(r, r.j["margin"], "margin"));
  }
  return compose::fit_box(source, work, cv::Rect2d(box[0], box[1], box[2], box[3]), margin);
}

// A raw uint8 array {"path", "shape": [H, W] or [H, W, C]}.
Result<cv::Mat> read_array(const Request& r, const std::string& field) {
  if (!r.j.contains(field) || !r.j[field].is_object()) return r.fail("\"" + field + "\": expected {\"path\", \"shape\"}");
  const json& f = r.j[field];
  const json& shape = f.value("shape", json::array());
  if (!f.contains("path") || !f["path"].is_string() || !shape.is_array() || shape.size() < 2 || shape.size() > 3)
    return r.fail("\"" + field + "\": expected {\"path\", \"shape\": [H, W] or [H, W, C]}");
  for (const json& d : shape)
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > 16384) return r.fail(field + ".shape: dimensions must be 1..16384");
  const int channels = shape.size() == 3 ? shape[2].get<int>() : 1;
  if (channels != 1 && channels != 3) return r.fail(field + ".shape: 1 or 3 channels");
  cv::Mat m(shape[0].get<int>(), shape[1].get<int>(), CV_8UC(channels));
  const std::string path = f["path"].get<std::string>();
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(m.data), static_cast<std::streamsize>(m.total() * m.elemSize()));
  if (!in || in.peek() != std::char_traits<char>::eof())
    return r.fail(path + ": expected exactly " + std::to_string(m.total() * m.elemSize()) + " bytes");
  return m;
}

Result<json> write_array(const std::string& path, const cv::Mat& m) {
  CV_Assert(m.isContinuous() && (m.depth() == CV_8U || m.depth() == CV_32F));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(m.data), static_cast<std::streamsize>(m.total() * m.elemSize()));
  out.close();
  if (!out) return Error::runtime(path + ": cannot write");
  json shape = {m.rows, m.cols};
  if (m.channels() > 1) shape.push_back(m.channels());
  return json{{"path", path}, {"dtype", m.depth() == CV_8U ? "uint8" : "float32"}, {"shape", shape}};
}

Result<vision::Body18> body_of(const Request& r) {
  const json& rows = r.j.value("keypoints", json());
  if (!rows.is_array() || rows.size() != vision::kOpenPoseCount) return r.fail("\"keypoints\": expected 18 rows");
  vision::Body18 body{};
  for (int i = 0; i < vision::kOpenPoseCount; ++i) {
    const json& row = rows[i];
    if (!row.is_array() || row.size() < 3 || row.size() > 4) return r.fail("keypoints[" + std::to_string(i) + "]: expected [x, y, score(, z)]");
    float v[4] = {0, 0, 0, std::numeric_limits<float>::quiet_NaN()};
    for (size_t k = 0; k < row.size(); ++k) {
      if (row[k].is_null()) {
        v[k] = std::numeric_limits<float>::quiet_NaN();
      } else {
        STANDIN_ASSIGN_OR_RETURN(double d, number(r, row[k], "keypoints[" + std::to_string(i) + "]"));
        v[k] = static_cast<float>(d);
      }
    }
    body[i] = {v[0], v[1], v[2], v[3]};
  }
  return body;
}

Result<json> skeleton_map(const Request& r, const std::string& prefix, bool depth) {
  STANDIN_ASSIGN_OR_RETURN(vision::Body18 body, body_of(r));
  cv::Size canvas;
  cv::Mat affine;
  if (r.j.contains("geometry")) {
    STANDIN_ASSIGN_OR_RETURN(auto g, geometry_of(Request{r.j["geometry"], r.name + ".geometry"}));
    canvas = g.work;
    affine = pipeline::source_to_work_affine(g);
  } else {
    STANDIN_ASSIGN_OR_RETURN(canvas, size_of(r, "canvas"));
    if (r.j.contains("affine")) {
      const json& a = r.j["affine"];
      if (!a.is_array() || a.size() != 2 || !a[0].is_array() || !a[1].is_array() || a[0].size() != 3 || a[1].size() != 3)
        return r.fail("\"affine\": expected [[a, b, c], [d, e, f]]");
      affine = cv::Mat(2, 3, CV_64F);
      for (int y = 0; y < 2; ++y) {
        for (int x = 0; x < 3; ++x) {
          STANDIN_ASSIGN_OR_RETURN(affine.at<double>(y, x), number(r, a[y][x], "affine"));
        }
      }
    }
  }
  if (depth) {
    STANDIN_ASSIGN_OR_RETURN(json file, write_array(prefix + ".f32", vision::render_depth_map(body, canvas, affine)));
    return json{{"map", file}};
  }
  STANDIN_ASSIGN_OR_RETURN(json file, write_array(prefix + ".u8", vision::render_pose_map(body, canvas, affine)));
  return json{{"map", file}};
}

Result<json> run(const Request& r, const std::string& op, const std::string& prefix) {
  if (op == "fit_box") {
    STANDIN_ASSIGN_OR_RETURN(auto g, geometry_of(r));
    return json{{"crop", {g.crop.x, g.crop.y, g.crop.width, g.crop.height}}};
  }
  if (op == "render_pose_map" || op == "render_depth_map") return skeleton_map(r, prefix, op == "render_depth_map");
  if (op == "agnostic_mask") {
    STANDIN_ASSIGN_OR_RETURN(cv::Mat mask, read_array(r, "mask"));
    if (mask.channels() != 1) return r.fail("\"mask\": expected one channel");
    const int dilate = r.j.value("dilate_px", 0);
    STANDIN_ASSIGN_OR_RETURN(json file, write_array(prefix + ".u8", vision::shape_agnostic_mask_inference(mask, {}, dilate)));
    return json{{"mask", file}};
  }
  if (op == "redraw_region") {
    STANDIN_ASSIGN_OR_RETURN(cv::Mat mask, read_array(r, "mask"));
    if (mask.channels() != 1) return r.fail("\"mask\": expected one channel");
    const auto mode = vision::parse_mask_mode(r.j.value("mode", std::string("agnostic")));
    if (!mode) return r.fail("\"mode\": expected agnostic, tight or box");
    const cv::Mat region = vision::redraw_region(mask, *mode, r.j.value("dilate_px", 0), r.j.value("blocks", 0));
    STANDIN_ASSIGN_OR_RETURN(json file, write_array(prefix + ".u8", region));
    return json{{"mask", file}};
  }
  if (op == "to_work" || op == "mask_to_work") {
    const bool mask = op == "mask_to_work";
    STANDIN_ASSIGN_OR_RETURN(cv::Mat in, read_array(r, mask ? "mask" : "image"));
    if (!r.j.contains("geometry")) return r.fail("\"geometry\": missing");
    STANDIN_ASSIGN_OR_RETURN(auto g, geometry_of(Request{r.j["geometry"], r.name + ".geometry"}));
    if (in.size() != g.source) return r.fail("the input's size differs from geometry.source");
    const cv::Mat out = mask ? compose::mask_to_work(in, g) : compose::to_work(in, g);
    STANDIN_ASSIGN_OR_RETURN(json file, write_array(prefix + ".u8", out));
    return json{{mask ? "mask" : "image", file}};
  }
  if (op == "reference_crop") {
    STANDIN_ASSIGN_OR_RETURN(auto area, numbers(r, "area", 4));
    STANDIN_ASSIGN_OR_RETURN(cv::Size image, size_of(r, "image"));
    const cv::Rect crop = vision::reference_crop(
        cv::Rect2f(static_cast<float>(area[0]), static_cast<float>(area[1]), static_cast<float>(area[2]), static_cast<float>(area[3])),
        image);
    return json{{"crop", {crop.x, crop.y, crop.width, crop.height}}};
  }
  if (op == "reference") {
    STANDIN_ASSIGN_OR_RETURN(cv::Mat image, read_array(r, "image"));
    if (image.channels() != 3) return r.fail("\"image\": expected 3 channels (RGB)");
    STANDIN_ASSIGN_OR_RETURN(auto crop, numbers(r, "crop", 4));
    STANDIN_ASSIGN_OR_RETURN(cv::Size work, size_of(r, "work"));
    const int clip_size = r.j.value("clip_size", 224);
    if (clip_size < 1 || clip_size > 4096) return r.fail("\"clip_size\": must be 1..4096");
    const cv::Rect box(static_cast<int>(crop[0]), static_cast<int>(crop[1]), static_cast<int>(crop[2]), static_cast<int>(crop[3]));
    auto prepared = pipeline::reference_inputs(image, box, work, clip_size);
    if (!prepared.ok()) return prepared.error().with_context(r.name);
    const at::Tensor clip = prepared->clip[0].contiguous();
    const cv::Mat clip_mat(static_cast<int>(clip.size(0)), static_cast<int>(clip.size(1) * clip.size(2)), CV_32F, clip.data_ptr());
    STANDIN_ASSIGN_OR_RETURN(json work_file, write_array(prefix + "_work.u8", prepared->work_rgb));
    STANDIN_ASSIGN_OR_RETURN(json clip_file, write_array(prefix + "_clip.f32", clip_mat));
    clip_file["shape"] = {clip.size(0), clip.size(1), clip.size(2)};
    return json{{"work_rgb", work_file}, {"clip", clip_file}};
  }
  return r.fail("unknown op \"" + op + "\"");
}

Result<json> run_all(const std::string& request_path, const std::string& out_dir) {
  std::ifstream in(request_path);
  if (!in) return Error::bad_input(request_path + ": cannot open the request file");
  const json root = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!root.is_object() || !root.contains("requests") || !root["requests"].is_array())
    return Error::bad_input(request_path + ": expected {\"requests\": [...]} (valid JSON)");
  json results = json::object();
  for (const json& j : root["requests"]) {
    const std::string name = j.is_object() && j.contains("name") && j["name"].is_string() ? j["name"].get<std::string>() : "";
    const std::string op = j.is_object() && j.contains("op") && j["op"].is_string() ? j["op"].get<std::string>() : "";
    if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != std::string::npos)
      return Error::bad_input(request_path + ": every request needs a \"name\" of letters, digits, _ and -");
    if (results.contains(name)) return Error::bad_input(request_path + ": request name \"" + name + "\" appears twice");
    try {  // a field of the wrong JSON type (value() throws): the request's fault
      STANDIN_ASSIGN_OR_RETURN(results[name], run(Request{j, name}, op, out_dir + "/" + name));
    } catch (const json::exception& e) {
      return Error::bad_input(request_path + ": " + name + ": " + e.what());
    }
  }
  return results;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: dump_conditions REQUEST.json OUT_DIR\n";
    return static_cast<int>(ExitCode::usage);
  }
  auto results = run_all(argv[1], argv[2]);
  if (!results.ok()) {
    std::cerr << "dump_conditions: " << results.error().message << "\n";
    return static_cast<int>(results.error().code);
  }
  std::cout << results->dump() << "\n";
  return 0;
}
