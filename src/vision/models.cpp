// Loading and running the converted MediaPipe networks (TorchScript) described by vision.json.
#include "models.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/script.h>
#include <torch/torch.h>
#include "standin/core/log.hpp"

namespace standin::vision::detail {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Output roles of the landmark network, identified by name (vision.json) or shape.
enum class Role { unknown, landmarks, pose_flag, segmentation, heatmap, world, boxes, scores };

Role role_from_name(const std::string& n) {
  if (n == "landmarks") return Role::landmarks;
  if (n == "pose_flag" || n == "presence") return Role::pose_flag;
  if (n == "segmentation" || n == "mask") return Role::segmentation;
  if (n == "heatmap") return Role::heatmap;
  if (n == "world_landmarks") return Role::world;
  if (n == "boxes" || n == "regressors") return Role::boxes;
  if (n == "scores" || n == "classificators") return Role::scores;
  return Role::unknown;
}

struct Net {
  std::string name, path;
  torch::jit::script::Module module;
  std::vector<std::string> output_names;  // from vision.json, may be empty
  std::vector<Role> roles;                // resolved at the dry run
  float range_lo = 0, range_hi = 1;
  cv::Size input_size;
};

const json* find_entry(const json& root, const std::string& name) {
  for (const char* key : {"models", "networks"}) {
    if (!root.contains(key)) continue;
    const json& m = root[key];
    if (m.is_object() && m.contains(name) && m[name].is_object()) return &m[name];
    if (m.is_array()) {
      for (const auto& e : m)
        if (e.is_object() && e.contains("name") && e["name"] == name) return &e;
    }
  }
  if (root.contains(name) && root[name].is_object()) return &root[name];
  return nullptr;
}

template <class T>
void maybe(const json& j, const char* key, T& out) {
  if (j.is_object() && j.contains(key) && !j[key].is_null()) {
    try {
      out = j[key].get<T>();
    } catch (const std::exception&) {
    }
  }
}

void read_range(const json* entry, float& lo, float& hi) {
  if (!entry) return;
  const json* in = entry->contains("input") ? &(*entry)["input"] : nullptr;
  for (const json* j : {in, entry}) {
    if (j && j->is_object() && j->contains("range") && (*j)["range"].is_array() && (*j)["range"].size() == 2) {
      lo = (*j)["range"][0].get<float>();
      hi = (*j)["range"][1].get<float>();
      return;
    }
  }
}

void read_size(const json* entry, cv::Size& size) {
  if (!entry || !entry->contains("input")) return;
  const json& in = (*entry)["input"];
  int h = size.height, w = size.width;
  maybe(in, "height", h);
  maybe(in, "width", w);
  std::vector<int> shape;
  maybe(in, "shape", shape);
  if (shape.size() == 4) h = shape[2], w = shape[3];  // NCHW
  if (h > 0 && w > 0) size = {w, h};
}

std::vector<std::string> read_outputs(const json* entry) {
  std::vector<std::string> names;
  if (!entry || !entry->contains("outputs")) return names;
  const json& o = (*entry)["outputs"];
  if (!o.is_array()) return names;
  for (const auto& e : o) {
    if (e.is_string()) names.push_back(e.get<std::string>());
    else if (e.is_object() && e.contains("name") && e["name"].is_string()) names.push_back(e["name"].get<std::string>());
  }
  return names;
}

std::string file_of(const json* entry, const std::string& name) {
  if (entry) {
    for (const char* key : {"file", "path", "torchscript"}) {
      if (entry->contains(key) && (*entry)[key].is_string()) return (*entry)[key].get<std::string>();
    }
  }
  return name + ".pt";
}

// Constants from the "mediapipe" section (vision_meta.py); defaults are MediaPipe's anyway.
void read_constants(const json& root, VisionConfig& c) {
  const json* mp = root.contains("mediapipe") ? &root["mediapipe"] : nullptr;
  if (!mp || !mp->is_object()) return;
  if (mp->contains("pose_detection")) {
    const json& pd = (*mp)["pose_detection"];
    if (pd.contains("ssd_anchors")) {
      const json& a = pd["ssd_anchors"];
      maybe(a, "num_layers", c.anchors.num_layers);
      maybe(a, "min_scale", c.anchors.min_scale);
      maybe(a, "max_scale", c.anchors.max_scale);
      maybe(a, "input_size_height", c.anchors.input_height);
      maybe(a, "input_size_width", c.anchors.input_width);
      maybe(a, "anchor_offset_x", c.anchors.anchor_offset_x);
      maybe(a, "anchor_offset_y", c.anchors.anchor_offset_y);
      maybe(a, "strides", c.anchors.strides);
      maybe(a, "aspect_ratios", c.anchors.aspect_ratios);
      maybe(a, "interpolated_scale_aspect_ratio", c.anchors.interpolated_scale_aspect_ratio);
      maybe(a, "fixed_anchor_size", c.anchors.fixed_anchor_size);
      maybe(a, "reduce_boxes_in_lowest_layer", c.anchors.reduce_boxes_in_lowest_layer);
    }
    if (pd.contains("tensors_to_detections")) {
      const json& t = pd["tensors_to_detections"];
      maybe(t, "num_coords", c.decode.num_coords);
      maybe(t, "num_keypoints", c.decode.num_keypoints);
      maybe(t, "keypoint_coord_offset", c.decode.keypoint_coord_offset);
      maybe(t, "reverse_output_order", c.decode.reverse_output_order);
      maybe(t, "x_scale", c.decode.x_scale);
      maybe(t, "y_scale", c.decode.y_scale);
      maybe(t, "w_scale", c.decode.w_scale);
      maybe(t, "h_scale", c.decode.h_scale);
      maybe(t, "score_clipping_thresh", c.decode.score_clipping);
      maybe(t, "min_score_thresh", c.decode.min_score);
    }
    if (pd.contains("non_max_suppression")) maybe(pd["non_max_suppression"], "min_suppression_threshold", c.nms_threshold);
    if (pd.contains("detection_to_roi")) maybe(pd["detection_to_roi"], "scale_x", c.roi_scale);
  }
  if (mp->contains("pose_landmark")) {
    const json& pl = (*mp)["pose_landmark"];
    if (pl.contains("landmarks_to_roi")) maybe(pl["landmarks_to_roi"], "scale_x", c.landmark_roi_scale);
    if (pl.contains("heatmap_refinement")) {
      maybe(pl["heatmap_refinement"], "kernel_size", c.heatmap_kernel);
      maybe(pl["heatmap_refinement"], "min_confidence_to_refine", c.heatmap_min_confidence);
    }
    if (pl.contains("segmentation") && pl["segmentation"].contains("activation")) {
      const json& a = pl["segmentation"]["activation"];
      if (a.is_string()) {
        std::string s = a.get<std::string>();
        for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        c.segmentation_sigmoid = s == "sigmoid";
      }
    }
    if (pl.contains("image_to_tensor") && pl["image_to_tensor"].contains("roi") && pl["image_to_tensor"]["roi"].is_string()) {
      c.landmark_border_replicate = pl["image_to_tensor"]["roi"].get<std::string>().find("replicate") != std::string::npos;
    }
    if (pl.contains("landmark_smoothing")) {
      const json& s = pl["landmark_smoothing"];
      if (s.contains("one_euro")) {
        maybe(s["one_euro"], "min_cutoff", c.smoothing.min_cutoff);
        maybe(s["one_euro"], "beta", c.smoothing.beta);
        maybe(s["one_euro"], "derivate_cutoff", c.smoothing.derivate_cutoff);
      }
      if (s.contains("auxiliary_one_euro")) {
        maybe(s["auxiliary_one_euro"], "min_cutoff", c.aux_smoothing.min_cutoff);
        maybe(s["auxiliary_one_euro"], "beta", c.aux_smoothing.beta);
        maybe(s["auxiliary_one_euro"], "derivate_cutoff", c.aux_smoothing.derivate_cutoff);
      }
      maybe(s, "visibility_smoothing_alpha", c.visibility_alpha);
    }
  }
}

std::string first_line(const std::exception& e) {
  std::string what = e.what();
  if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
  return what;
}

// The inputs in one call of `call` when the networks take batches, else one call per input.
template <class Out, class Call>
Result<std::vector<Out>> in_calls(const std::vector<cv::Mat>& inputs, bool batched, Call&& call) {
  if (inputs.empty()) return std::vector<Out>{};
  if (batched || inputs.size() == 1) return call(inputs);
  std::vector<Out> all;
  for (const auto& one : inputs) {
    STANDIN_ASSIGN_OR_RETURN(auto out, call(std::vector<cv::Mat>{one}));
    all.push_back(std::move(out[0]));
  }
  return all;
}

// Padded batch sizes (on CUDA; see VisionModels::Impl): the detector sees the whole frame plus up
// to ~7 tiles at once, the landmark model one crop per tracked person (4 by default).
constexpr int kDetectorBucket = 8;
constexpr int kLandmarkBucket = 4;

// Images of one size -> [N, 3, H, W] float in [lo, hi] on `device` (one host-to-device copy).
torch::Tensor to_input(const std::vector<cv::Mat>& images, float lo, float hi, const torch::Device& device) {
  CV_Assert(!images.empty());
  const int rows = images[0].rows, cols = images[0].cols;
  torch::Tensor t = torch::empty({static_cast<int64_t>(images.size()), 3, rows, cols}, torch::kFloat32);
  const size_t plane = static_cast<size_t>(rows) * cols;
  std::vector<cv::Mat> planes(3);
  for (size_t n = 0; n < images.size(); ++n) {
    const cv::Mat& rgb = images[n];
    CV_Assert(rgb.type() == CV_8UC3 && rgb.rows == rows && rgb.cols == cols);
    cv::Mat f;
    rgb.convertTo(f, CV_32FC3, (hi - lo) / 255.0, lo);
    cv::split(f, planes);
    for (int c = 0; c < 3; ++c) {
      cv::Mat p = planes[c].isContinuous() ? planes[c] : planes[c].clone();
      std::memcpy(t.data_ptr<float>() + (n * 3 + c) * plane, p.ptr<float>(), plane * sizeof(float));
    }
  }
  return device.is_cpu() ? t : t.to(device);
}

std::vector<torch::Tensor> run(Net& net, const torch::Tensor& input) {
  // The graph as traced, without TorchScript's profiling executor: that one profiles and, on CUDA,
  // compiles fused kernels for every new input shape, and batches of 1..N images are new shapes
  // (about a second per call on an H200 until each shape settled). Same API in LibTorch 1.13 and 2.x.
  torch::jit::GraphOptimizerEnabledGuard no_profiling(false);
  std::vector<torch::jit::IValue> in{input};
  torch::jit::IValue out = net.module.forward(in);
  std::vector<torch::Tensor> tensors;
  if (out.isTuple()) {
    for (const auto& e : out.toTuple()->elements()) tensors.push_back(e.toTensor().to(torch::kCPU).to(torch::kFloat32).contiguous());
  } else if (out.isTensorList()) {
    for (const auto& e : out.toTensorVector()) tensors.push_back(e.to(torch::kCPU).to(torch::kFloat32).contiguous());
  } else if (out.isTensor()) {
    tensors.push_back(out.toTensor().to(torch::kCPU).to(torch::kFloat32).contiguous());
  }
  return tensors;
}

std::string shape_text(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + "]";
}

}  // namespace

struct VisionModels::Impl {
  torch::Device device{torch::kCPU};
  VisionConfig config;
  Net detector, landmark;
  std::string description;
  int det_boxes = -1, det_scores = -1;
  int lm_landmarks = -1, lm_flag = -1, lm_seg = -1, lm_heatmap = -1;
  bool batched = false;  // several images per call: asked for, and both networks take it (the load's dry run)
  // On CUDA, batches are padded up to a multiple of these (repeating the last image): every new
  // batch size is a new set of convolution shapes, and each set costs seconds of one-time set-up
  // there, so a handful of fixed sizes, met first at load, beats exact sizes. 1 = no padding (CPU,
  // where padding would be real work).
  int detector_bucket = 1, landmark_bucket = 1;
};

// `inputs` padded to a multiple of `bucket` by repeating the last one.
static std::vector<cv::Mat> padded(const std::vector<cv::Mat>& inputs, int bucket) {
  std::vector<cv::Mat> out = inputs;
  while (bucket > 1 && out.size() % static_cast<size_t>(bucket) != 0) out.push_back(inputs.back());
  return out;
}

// Input n's slice of output `index` of a batched call.
static torch::Tensor item(const std::vector<torch::Tensor>& outputs, int index, size_t n) {
  return outputs.at(index).select(0, static_cast<int64_t>(n)).contiguous();
}

// One network over `inputs` (in_calls decides one call or one per input; a call's batch padded to
// a multiple of `bucket`): `convert(outputs, n)` makes input n's result from its call's outputs.
template <class Out, class Convert>
static Result<std::vector<Out>> call_network(Net& net, const std::vector<cv::Mat>& inputs, bool batched, int bucket,
                                             float lo, float hi, const torch::Device& device, const std::string& what,
                                             Convert&& convert) {
  return in_calls<Out>(inputs, batched, [&](const std::vector<cv::Mat>& part) -> Result<std::vector<Out>> {
    try {
      torch::InferenceMode guard;
      const auto outputs = run(net, to_input(padded(part, bucket), lo, hi, device));
      std::vector<Out> result;
      for (size_t n = 0; n < part.size(); ++n) result.push_back(convert(outputs, n));
      return result;
    } catch (const std::exception& e) {
      return Error::runtime(what + " failed: " + first_line(e));
    }
  });
}

VisionModels::VisionModels(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VisionModels::~VisionModels() = default;
const VisionConfig& VisionModels::config() const { return impl_->config; }
const std::string& VisionModels::description() const { return impl_->description; }
bool VisionModels::batched() const { return impl_->batched; }
int64_t VisionModels::calls_for(size_t inputs) const {
  return impl_->batched ? (inputs > 0 ? 1 : 0) : static_cast<int64_t>(inputs);
}

std::string default_models_dir() {
  if (const char* env = std::getenv("STANDIN_VISION_MODELS"); env && *env) return env;
  std::error_code ec;
  if (fs::exists("models/vision/vision.json", ec)) return "models/vision";
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
      if (fs::exists(dir / "models/vision/vision.json", ec)) return (dir / "models/vision").string();
    }
  }
  return "models/vision";
}

Result<std::unique_ptr<VisionModels>> VisionModels::load(const std::string& dir_in, const std::string& variant,
                                                         const std::string& device_name, bool batch, int pad_batches) {
  const std::string dir = dir_in.empty() ? default_models_dir() : dir_in;
  auto impl = std::make_unique<Impl>();
  // Device
  try {
    impl->device = torch::Device(device_name.empty() ? "cpu" : device_name);
  } catch (const std::exception&) {
    return Error::usage("--device " + device_name + ": expected cpu, cuda or cuda:N");
  }
  if (impl->device.is_cuda()) {
    if (!torch::cuda::is_available())
      return Error::usage("--device " + device_name + ": CUDA is not available in this build or on this machine");
    if (impl->device.has_index() && impl->device.index() >= static_cast<int>(torch::cuda::device_count()))
      return Error::usage("--device " + device_name + ": no such CUDA device");
  }
  // vision.json
  const fs::path manifest = fs::path(dir) / "vision.json";
  std::ifstream in(manifest);
  if (!in)
    return Error::model(manifest.string() + ": missing. Convert the MediaPipe models first "
                        "(scripts/fetch_mediapipe.sh && python3 scripts/mediapipe/convert_all.py --out models/vision) "
                        "or pass --vision-models DIR");
  json root;
  try {
    in >> root;
  } catch (const std::exception&) {
    return Error::model(manifest.string() + ": not valid JSON");
  }
  if (!root.is_object()) return Error::model(manifest.string() + ": expected a JSON object");
  read_constants(root, impl->config);
  VisionConfig& cfg = impl->config;

  const std::string lm_name = "pose_landmark_" + variant;
  const json* det_entry = find_entry(root, "pose_detection");
  const json* lm_entry = find_entry(root, lm_name);
  if (!det_entry && !fs::exists(fs::path(dir) / "pose_detection.pt"))
    return Error::model(manifest.string() + ": no \"pose_detection\" model listed");
  if (!lm_entry && !fs::exists(fs::path(dir) / (lm_name + ".pt")))
    return Error::model(manifest.string() + ": no \"" + lm_name + "\" model listed (lite, full or heavy)");

  auto load_net = [&](Net& net, const std::string& name, const json* entry) -> Status {
    net.name = name;
    net.path = (fs::path(dir) / file_of(entry, name)).string();
    net.output_names = read_outputs(entry);
    if (!fs::exists(net.path)) return Error::model(net.path + ": model file missing (listed in vision.json)");
    try {
      net.module = torch::jit::load(net.path, impl->device);
      net.module.eval();
    } catch (const std::exception& e) {
      return Error::model(net.path + ": not a loadable TorchScript file (" + first_line(e) + ")");
    }
    return Status::success();
  };
  cfg.detector_size = {cfg.anchors.input_width, cfg.anchors.input_height};
  read_size(det_entry, cfg.detector_size);
  read_range(det_entry, cfg.detector_range_lo, cfg.detector_range_hi);
  read_size(lm_entry, cfg.landmark_size);
  read_range(lm_entry, cfg.landmark_range_lo, cfg.landmark_range_hi);
  STANDIN_TRY(load_net(impl->detector, "pose_detection", det_entry));
  STANDIN_TRY(load_net(impl->landmark, lm_name, lm_entry));

  // Dry runs: resolve the output roles and check the shapes against the contract.
  const int num_anchors = static_cast<int>(blazepose::generate_anchors(cfg.anchors).size());
  try {
    torch::InferenceMode guard;
    auto det = run(impl->detector, torch::zeros({1, 3, cfg.detector_size.height, cfg.detector_size.width}).to(impl->device));
    for (size_t i = 0; i < det.size(); ++i) {
      Role r = i < impl->detector.output_names.size() ? role_from_name(impl->detector.output_names[i]) : Role::unknown;
      const auto& t = det[i];
      if (r == Role::unknown && t.numel() == static_cast<int64_t>(num_anchors) * cfg.decode.num_coords) r = Role::boxes;
      if (r == Role::unknown && t.numel() == num_anchors) r = Role::scores;
      if (r == Role::boxes && t.numel() == static_cast<int64_t>(num_anchors) * cfg.decode.num_coords) impl->det_boxes = static_cast<int>(i);
      if (r == Role::scores && t.numel() == num_anchors) impl->det_scores = static_cast<int>(i);
    }
    if (impl->det_boxes < 0 || impl->det_scores < 0) {
      std::string shapes;
      for (const auto& t : det) shapes += shape_text(t) + " ";
      return Error::model(impl->detector.path + ": outputs " + shapes + "do not match the detector contract (" +
                          std::to_string(num_anchors) + "x" + std::to_string(cfg.decode.num_coords) + " boxes, " +
                          std::to_string(num_anchors) + " scores)");
    }
    auto lm = run(impl->landmark, torch::zeros({1, 3, cfg.landmark_size.height, cfg.landmark_size.width}).to(impl->device));
    for (size_t i = 0; i < lm.size(); ++i) {
      Role r = i < impl->landmark.output_names.size() ? role_from_name(impl->landmark.output_names[i]) : Role::unknown;
      const auto& t = lm[i];
      if (r == Role::unknown) {
        if (t.numel() == 39 * 5) r = Role::landmarks;
        else if (t.numel() == 1) r = Role::pose_flag;
        else if (t.dim() == 4 && t.size(1) == 1) r = Role::segmentation;
        else if (t.dim() == 4 && t.size(1) == 39) r = Role::heatmap;
      }
      if (r == Role::landmarks && t.numel() == 39 * 5) impl->lm_landmarks = static_cast<int>(i);
      if (r == Role::pose_flag && t.numel() == 1) impl->lm_flag = static_cast<int>(i);
      if (r == Role::segmentation && t.dim() >= 2) impl->lm_seg = static_cast<int>(i);
      if (r == Role::heatmap && t.dim() == 4) impl->lm_heatmap = static_cast<int>(i);
    }
    if (impl->lm_landmarks < 0 || impl->lm_flag < 0) {
      std::string shapes;
      for (const auto& t : lm) shapes += shape_text(t) + " ";
      return Error::model(impl->landmark.path + ": outputs " + shapes + "do not match the landmark contract (195 landmarks, 1 pose flag)");
    }
  } catch (const std::exception& e) {
    return Error::model(dir + ": dry run of the vision models failed (" + first_line(e) + ")");
  }
  // Batch support (conversions before 2026-11-30 were batch 1 only): every output must come back
  // with the input's batch. On CUDA the check runs at the padded batch sizes, which also makes
  // their one-time set-up here rather than in the first frames.
  const bool pad = pad_batches < 0 ? impl->device.is_cuda() : pad_batches > 0;
  const int det_check = pad ? kDetectorBucket : 2, lm_check = pad ? kLandmarkBucket : 2;
  auto takes_batch = [&](Net& net, cv::Size size, int n) {
    try {
      torch::InferenceMode guard;
      auto outs = run(net, torch::zeros({n, 3, size.height, size.width}).to(impl->device));
      bool ok = !outs.empty();
      for (const auto& t : outs) ok = ok && t.dim() >= 1 && t.size(0) == n;
      return ok;
    } catch (const std::exception&) {
      return false;
    }
  };
  impl->batched = batch && takes_batch(impl->detector, cfg.detector_size, det_check) &&
                  takes_batch(impl->landmark, cfg.landmark_size, lm_check);
  if (impl->batched && pad) {
    impl->detector_bucket = kDetectorBucket;
    impl->landmark_bucket = kLandmarkBucket;
  }
  if (batch && !impl->batched) log::debug("vision: {} take one image per call (converted before batching worked)", dir);
  impl->description = "blazepose " + variant + " (" + dir + ", " + impl->device.str() + ")";
  log::debug("vision: loaded {} (segmentation {}, heatmap {})", impl->description, impl->lm_seg >= 0, impl->lm_heatmap >= 0);
  return std::unique_ptr<VisionModels>(new VisionModels(std::move(impl)));
}

Result<std::vector<DetectorOutput>> VisionModels::detect(const std::vector<cv::Mat>& inputs) {
  Impl& m = *impl_;
  return call_network<DetectorOutput>(
      m.detector, inputs, m.batched, m.detector_bucket, m.config.detector_range_lo, m.config.detector_range_hi,
      m.device, "pose detector", [&](const std::vector<torch::Tensor>& out, size_t n) {
        const auto b = item(out, m.det_boxes, n);
        const auto s = item(out, m.det_scores, n);
        DetectorOutput d;
        d.num_boxes = static_cast<int>(s.numel());
        d.boxes.assign(b.data_ptr<float>(), b.data_ptr<float>() + b.numel());
        d.scores.assign(s.data_ptr<float>(), s.data_ptr<float>() + s.numel());
        return d;
      });
}

Result<std::vector<LandmarkOutput>> VisionModels::landmarks(const std::vector<cv::Mat>& crops, bool want_segmentation) {
  Impl& m = *impl_;
  return call_network<LandmarkOutput>(
      m.landmark, crops, m.batched, m.landmark_bucket, m.config.landmark_range_lo, m.config.landmark_range_hi,
      m.device, "pose landmark model", [&](const std::vector<torch::Tensor>& out, size_t n) {
        LandmarkOutput r;
        const auto lm = item(out, m.lm_landmarks, n);
        r.landmarks.assign(lm.data_ptr<float>(), lm.data_ptr<float>() + lm.numel());
        r.pose_flag = item(out, m.lm_flag, n).data_ptr<float>()[0];
        if (m.config.pose_flag_sigmoid) r.pose_flag = 1.0f / (1.0f + std::exp(-r.pose_flag));
        if (want_segmentation && m.lm_seg >= 0) {
          const auto s = item(out, m.lm_seg, n);
          const int h = static_cast<int>(s.size(s.dim() - 2)), w = static_cast<int>(s.size(s.dim() - 1));
          cv::Mat seg(h, w, CV_32F, s.data_ptr<float>());
          if (m.config.segmentation_sigmoid) {
            cv::Mat e;
            cv::exp(-seg, e);
            r.segmentation = 1.0 / (1.0 + e);
          } else {
            r.segmentation = seg.clone();
          }
        }
        if (m.lm_heatmap >= 0) {
          const auto hm = item(out, m.lm_heatmap, n);  // [39, h, w]
          r.heatmap_h = static_cast<int>(hm.size(1));
          r.heatmap_w = static_cast<int>(hm.size(2));
          r.heatmap = cv::Mat(static_cast<int>(hm.size(0)), r.heatmap_h * r.heatmap_w, CV_32F, hm.data_ptr<float>()).clone();
        }
        return r;
      });
}

}  // namespace standin::vision::detail
