#include "standin/diffusion/bundle.hpp"

#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "standin/core/files.hpp"
#include "standin/core/json_bounded.hpp"
#include "standin/core/log.hpp"
#include "standin/diffusion/sha256.hpp"
#include "standin/diffusion/torch_compat.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace standin::diffusion {

// ---------------------------------------------------------------- device / dtype

Result<DType> parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32" || name == "float") return DType::fp32;
  if (name == "fp16" || name == "float16" || name == "half") return DType::fp16;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  return Error::usage("unknown dtype '" + name + "' (expected fp32, fp16 or bf16)");
}

const char* to_string(DType dtype) {
  switch (dtype) {
    case DType::fp32: return "fp32";
    case DType::fp16: return "fp16";
    case DType::bf16: return "bf16";
  }
  return "?";
}

at::ScalarType scalar_type(DType dtype) {
  switch (dtype) {
    case DType::fp32: return at::kFloat;
    case DType::fp16: return at::kHalf;
    case DType::bf16: return at::kBFloat16;
  }
  return at::kFloat;
}

Result<at::Device> DeviceSpec::resolve() const {
  if (name == "cpu") return at::Device(at::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    int index = 0;
    if (name.size() > 4) {
      if (name[4] != ':' || name.size() == 5) return Error::usage("bad device '" + name + "' (expected cpu, cuda or cuda:N)");
      try {
        size_t used = 0;
        index = std::stoi(name.substr(5), &used);
        if (used != name.size() - 5 || index < 0) throw std::invalid_argument("index");
      } catch (const std::exception&) {
        return Error::usage("bad device '" + name + "' (expected cpu, cuda or cuda:N)");
      }
    }
    if (!torch::cuda::is_available())
      return Error::usage("device '" + name + "' requested but this build/machine has no CUDA device; use --device cpu");
    const auto count = static_cast<int>(torch::cuda::device_count());
    if (index >= count)
      return Error::usage("device '" + name + "' does not exist (" + std::to_string(count) + " CUDA device(s))");
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return Error::usage("bad device '" + name + "' (expected cpu, cuda or cuda:N)");
}

Result<std::vector<std::string>> parse_device_list(const std::string& text) {
  const std::string expected = " (expected cpu, cuda, cuda:N or a list of CUDA devices such as cuda:0,cuda:1)";
  std::vector<std::string> names;
  size_t begin = 0;
  while (true) {
    const size_t comma = text.find(',', begin);
    names.push_back(text.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin));
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    bool valid = name == "cpu" || name == "cuda";
    if (!valid && name.rfind("cuda:", 0) == 0 && name.size() > 5 && name.size() <= 9)
      valid = name.find_first_not_of("0123456789", 5) == std::string::npos;
    if (!valid) return Error::usage("bad device '" + name + "' in --device " + text + expected);
    if (names.size() > 1 && (name == "cpu" || name == "cuda"))
      return Error::usage("--device " + text + ": a list names CUDA devices one by one (cuda:0,cuda:1); '" + name +
                          "' stands alone");
    for (size_t j = 0; j < i; ++j)
      if (std::stoi(names[j].substr(5)) == std::stoi(name.substr(5)))
        return Error::usage("--device " + text + ": " + name + " is named twice");
  }
  return names;
}

Result<std::vector<at::Device>> resolve_devices(const std::string& text) {
  STANDIN_ASSIGN_OR_RETURN(const std::vector<std::string> names, parse_device_list(text));
  std::vector<at::Device> devices;
  for (const auto& name : names) {
    STANDIN_ASSIGN_OR_RETURN(const at::Device device, DeviceSpec{name}.resolve());
    if (name != "cuda") {
      devices.push_back(device);
      continue;
    }
    const auto count = static_cast<int>(torch::cuda::device_count());
    for (int i = 0; i < count; ++i) devices.emplace_back(at::kCUDA, static_cast<c10::DeviceIndex>(i));
  }
  return devices;
}

// ---------------------------------------------------------------- model.json

std::string TensorSpec::shape_str() const {
  if (is_list) {
    std::string s = "List[";
    for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + items[i].shape_str();
    return s + "]";
  }
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + shape[i].str();
  return s + "]";
}

std::optional<int64_t> Dim::eval(const std::map<std::string, int64_t>& bindings) const {
  if (expr.empty()) return size;
  // tokens: identifiers, integers, '*', '/'; strictly left to right
  std::optional<int64_t> acc;
  char op = 0;
  size_t i = 0;
  while (i < expr.size()) {
    const char ch = expr[i];
    if (ch == ' ') { ++i; continue; }
    if (ch == '*' || ch == '/') {
      if (!acc || op) return std::nullopt;
      op = ch;
      ++i;
      continue;
    }
    int64_t v = 0;
    if (std::isdigit(static_cast<unsigned char>(ch))) {
      size_t j = i;
      while (j < expr.size() && std::isdigit(static_cast<unsigned char>(expr[j]))) ++j;
      if (j - i > 18) return std::nullopt;  // beyond int64: malformed (std::stoll would throw)
      v = std::stoll(expr.substr(i, j - i));
      i = j;
    } else if (std::isalpha(static_cast<unsigned char>(ch)) || ch == '_') {
      size_t j = i;
      while (j < expr.size() && (std::isalnum(static_cast<unsigned char>(expr[j])) || expr[j] == '_')) ++j;
      auto it = bindings.find(expr.substr(i, j - i));
      if (it == bindings.end()) return std::nullopt;
      v = it->second;
      i = j;
    } else {
      return std::nullopt;
    }
    if (!acc) {
      if (op) return std::nullopt;
      acc = v;
    } else {
      if (!op) return std::nullopt;
      if (op == '/') {
        if (v == 0 || (v == -1 && *acc == INT64_MIN)) return std::nullopt;
        acc = *acc / v;
      } else {
        int64_t product = 0;
        if (__builtin_mul_overflow(*acc, v, &product)) return std::nullopt;
        acc = product;
      }
      op = 0;
    }
  }
  if (op) return std::nullopt;
  return acc;
}

const std::vector<std::string>& required_modules() {
  static const std::vector<std::string> names = {"vae_encoder", "vae_decoder", "image_encoder",
                                                 "reference_net", "pose_guider", "denoising_unet"};
  return names;
}

namespace {

constexpr int kFormatVersion = 1;
constexpr int kMaxTrainTimesteps = 100000;

// Whether json::get<T>() represents the number exactly enough (true for non-numbers: get<T>()
// throws type_error for those, reported as a wrong type).
template <class T>
bool fits(const json& v) {
  constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
  constexpr double hi = -lo;  // 2^31 or 2^63, exactly representable
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
  if (v.is_number_integer()) return static_cast<T>(v.get<int64_t>()) == v.get<int64_t>();
  if (v.is_number_float()) return v.get<double>() >= lo && v.get<double>() < hi;
  return true;
}

// Path-aware accessors: errors name the missing key as "geometry.width".
struct Reader {
  std::string origin;
  std::optional<Error> error;

  const json* get(const json& obj, const std::string& key, const std::string& path) {
    if (error) return nullptr;
    if (!obj.is_object() || !obj.contains(key)) {
      error = Error::model(origin + ": missing key '" + path + "'");
      return nullptr;
    }
    return &obj.at(key);
  }
  template <class T>
  void req(const json& obj, const std::string& key, const std::string& path, T& out) {
    const json* v = get(obj, key, path);
    if (!v) return;
    // get<int>() / get<int64_t>() on a number out of range wraps (integers) or is undefined (floats).
    bool in_range = true;
    if constexpr (std::is_same_v<T, int>) in_range = fits<int>(*v);
    if constexpr (std::is_same_v<T, std::map<std::string, int64_t>>)
      if (v->is_object())
        for (const auto& item : v->items()) in_range = in_range && fits<int64_t>(item.value());
    if (!in_range) {
      error = Error::model(origin + ": key '" + path + "' is out of range (" + v->dump() + ")");
      return;
    }
    try {
      out = v->get<T>();
    } catch (const json::exception&) {
      error = Error::model(origin + ": key '" + path + "' has the wrong type (" + v->dump() + ")");
    }
  }
  template <class T>
  void opt(const json& obj, const std::string& key, const std::string& path, T& out) {
    if (error || !obj.is_object() || !obj.contains(key)) return;
    req(obj, key, path, out);
  }
};

Result<std::vector<Dim>> parse_shape(const json& shape, const std::string& where, const std::string& origin) {
  std::vector<Dim> out;
  if (!shape.is_array()) return Error::model(origin + ": " + where + ".shape must be an array");
  for (const auto& d : shape) {
    Dim dim;
    if (d.is_number_integer()) dim.size = d.get<int64_t>();
    else if (d.is_string() && !d.get<std::string>().empty()) dim.expr = d.get<std::string>();
    else return Error::model(origin + ": " + where + ".shape has an entry that is neither int nor expression: " + d.dump());
    out.push_back(dim);
  }
  return out;
}

Result<TensorSpec> parse_tensor_spec(const json& j, const std::string& where, const std::string& origin) {
  TensorSpec spec;
  if (!j.is_object()) return Error::model(origin + ": " + where + " must be an object");
  spec.name = j.value("name", std::string());
  const std::string type = j.value("type", std::string("tensor"));
  if (type == "tensor") {
    if (!j.contains("shape")) return Error::model(origin + ": missing key '" + where + ".shape'");
    STANDIN_ASSIGN_OR_RETURN(spec.shape, parse_shape(j.at("shape"), where, origin));
    spec.dtype = j.value("dtype", std::string());
  } else if (type == "tensor_list") {
    spec.is_list = true;
    spec.optional = j.value("optional", false);
    if (!j.contains("items") || !j.at("items").is_array())
      return Error::model(origin + ": " + where + " is a tensor_list without an 'items' array");
    for (size_t i = 0; i < j.at("items").size(); ++i) {
      const json& it = j.at("items")[i];
      const std::string w = where + ".items[" + std::to_string(i) + "]";
      TensorSpec item;
      if (!it.is_object() || !it.contains("shape")) return Error::model(origin + ": missing key '" + w + ".shape'");
      STANDIN_ASSIGN_OR_RETURN(item.shape, parse_shape(it.at("shape"), w, origin));
      item.dtype = it.value("dtype", std::string());
      spec.items.push_back(std::move(item));
    }
  } else {
    return Error::model(origin + ": " + where + " has unknown type '" + type + "' (tensor, tensor_list)");
  }
  return spec;
}

std::optional<at::ScalarType> parse_scalar_type(const std::string& s) {
  if (s == "float32" || s == "float") return at::kFloat;
  if (s == "float16" || s == "half") return at::kHalf;
  if (s == "bfloat16") return at::kBFloat16;
  if (s == "int64" || s == "long") return at::kLong;
  if (s == "int32" || s == "int") return at::kInt;
  if (s == "bool") return at::kBool;
  return std::nullopt;
}

std::string describe(const at::Tensor& t) {
  std::ostringstream os;
  os << "[";
  for (int64_t i = 0; i < t.dim(); ++i) os << (i ? "," : "") << t.size(i);
  os << "] " << c10::toString(t.scalar_type());
  return os.str();
}

}  // namespace

Result<BundleConfig> BundleConfig::parse(const std::string& text, const std::string& origin) {
  STANDIN_ASSIGN_OR_RETURN(const json j, parse_json_bounded(text, origin, JsonLimits{64, 1 << 20}, ExitCode::model));
  if (!j.is_object()) return Error::model(origin + ": top level must be an object");
  Reader r{origin, std::nullopt};
  BundleConfig c;

  std::string format;
  r.req(j, "format", "format", format);
  if (r.error) return *r.error;
  if (format != "standin-bundle")
    return Error::model(origin + ": unknown format '" + format + "' (expected standin-bundle); is this a standin model bundle?");
  int version = 0;
  r.req(j, "format_version", "format_version", version);
  if (r.error) return *r.error;
  if (version != kFormatVersion)
    return Error::model(origin + ": format_version " + std::to_string(version) + " is not supported by this standin (it reads version " +
                        std::to_string(kFormatVersion) + "); re-export the bundle with this release's scripts/export_bundle.py");
  r.opt(j, "name", "name", c.name);
  r.opt(j, "config", "config", c.config);
  r.req(j, "dtype", "dtype", c.dtype);

  if (const json* g = r.get(j, "geometry", "geometry")) {
    r.req(*g, "width", "geometry.width", c.width);
    r.req(*g, "height", "geometry.height", c.height);
    r.req(*g, "vae_scale_factor", "geometry.vae_scale_factor", c.vae_scale_factor);
    r.req(*g, "latent_channels", "geometry.latent_channels", c.latent_channels);
    r.req(*g, "clip_size", "geometry.clip_size", c.clip_size);
    r.req(*g, "context_dim", "geometry.context_dim", c.context_dim);
    r.req(*g, "unet_in_channels", "geometry.unet_in_channels", c.unet_in_channels);
    c.size_multiple = c.vae_scale_factor;
    r.opt(*g, "size_multiple", "geometry.size_multiple", c.size_multiple);
    r.opt(*g, "max_window", "geometry.max_window", c.max_window);
  }
  if (const json* l = r.get(j, "latent", "latent")) r.req(*l, "scaling_factor", "latent.scaling_factor", c.scaling_factor);
  if (const json* k = r.get(j, "conditioning", "conditioning")) {
    r.req(*k, "environment", "conditioning.environment", c.environment);
    r.opt(*k, "mask_channel", "conditioning.mask_channel", c.mask_channel);
    r.opt(*k, "reference_blocks", "conditioning.reference_blocks", c.reference_blocks);
    r.opt(*k, "object_guider", "conditioning.object_guider", c.object_guider);
    r.req(*k, "pose_channels", "conditioning.pose_channels", c.pose_channels);
    r.opt(*k, "pose_modulation", "conditioning.pose_modulation", c.pose_modulation);
    r.opt(*k, "pose_hands_face", "conditioning.pose_hands_face", c.pose_hands_face);
  }
  if (const json* d = r.get(j, "defaults", "defaults")) {
    r.opt(*d, "steps", "defaults.steps", c.defaults.steps);
    r.opt(*d, "cfg", "defaults.cfg", c.defaults.cfg);
    r.opt(*d, "window", "defaults.window", c.defaults.window);
    r.opt(*d, "overlap", "defaults.overlap", c.defaults.overlap);
    r.opt(*d, "sampler", "defaults.sampler", c.defaults.sampler);
    r.opt(*d, "mask_mode", "defaults.mask_mode", c.defaults.mask_mode);
    r.opt(*d, "mask_dilate", "defaults.mask_dilate", c.defaults.mask_dilate);
    r.opt(*d, "mask_blocks", "defaults.mask_blocks", c.defaults.mask_blocks);
    r.opt(*d, "feather", "defaults.feather", c.defaults.feather);
  }
  if (j.contains("dry_run")) {
    std::map<std::string, int64_t> dr;
    r.req(j, "dry_run", "dry_run", dr);
    c.dry_run = dr;
  }
  const json* sched = r.get(j, "scheduler", "scheduler");
  const json* mods = r.get(j, "modules", "modules");
  if (r.error) return *r.error;

  auto sc = SchedulerConfig::from_json(*sched);
  if (!sc.ok()) return sc.error().with_context(origin);
  c.scheduler = sc.value();
  // The schedule is a table of num_train_timesteps floats; diffusion models use ~1000.
  if (c.scheduler.num_train_timesteps > kMaxTrainTimesteps)
    return Error::model(origin + ": scheduler.num_train_timesteps " + std::to_string(c.scheduler.num_train_timesteps) +
                        " is out of range (at most " + std::to_string(kMaxTrainTimesteps) + ")");

  if (!parse_scalar_type(c.dtype) || !at::isFloatingType(*parse_scalar_type(c.dtype)))
    return Error::model(origin + ": dtype '" + c.dtype + "' is not a float type (float32, float16, bfloat16)");
  if (c.vae_scale_factor <= 0 || c.width <= 0 || c.height <= 0 || c.width % c.vae_scale_factor || c.height % c.vae_scale_factor)
    return Error::model(origin + ": geometry width/height must be positive multiples of vae_scale_factor");
  if (c.latent_channels != 4)
    return Error::model(origin + ": geometry.latent_channels " + std::to_string(c.latent_channels) + " is not supported (4)");
  const int expect_in = c.latent_channels + (c.environment ? c.latent_channels : 0) + (c.environment && c.mask_channel ? 1 : 0);
  if (c.unet_in_channels != expect_in)
    return Error::model(origin + ": geometry.unet_in_channels is " + std::to_string(c.unet_in_channels) + " but conditioning implies " +
                        std::to_string(expect_in));
  if (c.defaults.steps < 1 || c.defaults.window < 1 || c.defaults.overlap < 0)
    return Error::model(origin + ": defaults need steps >= 1, window >= 1, overlap >= 0");
  if (c.size_multiple < c.vae_scale_factor || c.size_multiple % c.vae_scale_factor)
    return Error::model(origin + ": geometry.size_multiple must be a multiple of vae_scale_factor");
  // Every number below sizes an allocation or a loop: out of range is a bundle error here,
  // not a LibTorch failure (or an allocation of terabytes) later.
  const auto out_of_range = [&](const std::string& key, double value, double lo, double hi) {
    std::ostringstream text;
    text << origin << ": " << key << " " << value << " is out of range (" << lo << ".." << hi << ")";
    return Error::model(text.str());
  };
  for (const auto& [key, value, lo, hi] : std::vector<std::tuple<std::string, double, double, double>>{
           {"geometry.width", c.width, 8, 8192},
           {"geometry.height", c.height, 8, 8192},
           {"geometry.vae_scale_factor", c.vae_scale_factor, 1, 64},
           {"geometry.size_multiple", c.size_multiple, 1, 1024},
           {"geometry.clip_size", c.clip_size, 16, 1024},
           {"geometry.context_dim", c.context_dim, 1, 16384},
           {"geometry.max_window", c.max_window, 0, 4096},
           {"conditioning.pose_channels", c.pose_channels, 1, 16384},
           {"latent.scaling_factor", c.scaling_factor, 1e-6, 1e3},
           {"defaults.steps", c.defaults.steps, 1, 1000},
           {"defaults.cfg", c.defaults.cfg, 0, 100},
           {"defaults.window", c.defaults.window, 1, 256},
           {"defaults.mask_dilate", c.defaults.mask_dilate, 0, 1024},
           {"defaults.mask_blocks", c.defaults.mask_blocks, 0, 1024},
           {"defaults.feather", c.defaults.feather, -1, 1024},
       }) {
    if (!(value >= lo && value <= hi)) return out_of_range(key, value, lo, hi);  // NaN fails too
  }
  if (c.defaults.mask_mode != "agnostic" && c.defaults.mask_mode != "tight" && c.defaults.mask_mode != "box")
    return Error::model(origin + ": defaults.mask_mode must be agnostic, tight or box, got '" + c.defaults.mask_mode + "'");
  if (c.defaults.overlap >= c.defaults.window)
    return Error::model(origin + ": defaults.overlap " + std::to_string(c.defaults.overlap) + " must be less than defaults.window " +
                        std::to_string(c.defaults.window));
  if (c.defaults.steps > c.scheduler.num_train_timesteps)
    return Error::model(origin + ": defaults.steps " + std::to_string(c.defaults.steps) + " is more than scheduler.num_train_timesteps " +
                        std::to_string(c.scheduler.num_train_timesteps) + "; the bundle is inconsistent, re-export it");
  // The dry run allocates N x 3 x H x W floats and more per module: keep it small.
  for (const auto& [key, value] : c.dry_run) {
    const bool spatial = key == "H" || key == "W" || key == "h" || key == "w";
    if (value < 1 || value > (spatial ? 2048 : 64))
      return out_of_range("dry_run." + key, static_cast<double>(value), 1, spatial ? 2048 : 64);
  }
  // Dry-run sizes: model.json's, completed with defaults (the smallest valid sizes).
  {
    const int64_t side = std::max<int64_t>(64, c.size_multiple);
    std::map<std::string, int64_t> def = {{"N", 2}, {"B", 2}, {"F", 2}, {"H", side}, {"W", side}};
    for (const auto& [k, v] : def) c.dry_run.emplace(k, v);
    if (c.dry_run["H"] % c.size_multiple || c.dry_run["W"] % c.size_multiple)
      return Error::model(origin + ": dry_run H/W must be multiples of geometry.size_multiple");
    c.dry_run["h"] = c.dry_run["H"] / c.vae_scale_factor;
    c.dry_run["w"] = c.dry_run["W"] / c.vae_scale_factor;
  }

  if (!mods->is_object()) return Error::model(origin + ": 'modules' must be an object");
  for (auto it = mods->begin(); it != mods->end(); ++it) {
    ModuleSpec m;
    m.name = it.key();
    const std::string p = "modules." + m.name;
    r.req(*it, "file", p + ".file", m.file);
    r.req(*it, "sha256", p + ".sha256", m.sha256);
    if (!r.error) {
      // Module files are data inside the bundle, never paths elsewhere (Bundle::load also
      // resolves symlinks before trusting a file).
      const fs::path file(m.file);
      bool escapes = m.file.empty() || file.is_absolute();
      for (const auto& part : file) escapes = escapes || part == "..";
      if (escapes)
        return Error::model(origin + ": " + p + ".file '" + m.file + "' must be a relative path inside the bundle folder");
    }
    const json* ins = r.get(*it, "inputs", p + ".inputs");
    const json* outs = r.get(*it, "outputs", p + ".outputs");
    if (r.error) return *r.error;
    if (!ins->is_array() || !outs->is_array()) return Error::model(origin + ": " + p + ".inputs/outputs must be arrays");
    for (size_t i = 0; i < ins->size(); ++i) {
      auto s = parse_tensor_spec((*ins)[i], p + ".inputs[" + std::to_string(i) + "]", origin);
      if (!s.ok()) return s.error();
      m.inputs.push_back(s.value());
    }
    for (size_t i = 0; i < outs->size(); ++i) {
      auto s = parse_tensor_spec((*outs)[i], p + ".outputs[" + std::to_string(i) + "]", origin);
      if (!s.ok()) return s.error();
      m.outputs.push_back(s.value());
    }
    if (m.outputs.empty()) return Error::model(origin + ": " + p + " declares no outputs");
    c.modules[m.name] = std::move(m);
  }
  for (const auto& name : required_modules())
    if (!c.modules.count(name)) return Error::model(origin + ": module '" + name + "' is missing from 'modules'");
  if (c.object_guider && !c.modules.count("object_guider"))
    return Error::model(origin + ": conditioning.object_guider is true but module 'object_guider' is missing from 'modules'");
  return c;
}

Result<BundleConfig> BundleConfig::read(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec)))
    return Error::model("no model.json at " + path + " (is this a model bundle directory? scripts/setup.sh exports the default one, models/demo; scripts/export_bundle.py makes others)");
  STANDIN_ASSIGN_OR_RETURN(const std::string text, read_file_capped(path, kMaxModelJsonBytes, "model.json", ExitCode::model));
  return parse(text, path);
}

// ---------------------------------------------------------------- module wrappers

c10::IValue ModuleBase::call(std::vector<c10::IValue> inputs) const {
  TORCH_CHECK(module_ != nullptr, "module ", name_, " is not loaded");
  compat::JitOptimizeGuard optimize(jit_optimize_);
  return module_->forward(std::move(inputs));
}

at::Tensor ModuleBase::in(const at::Tensor& t) const {
  return t.to(device_, t.is_floating_point() ? dtype_ : t.scalar_type());
}

at::Tensor VaeEncoder::encode(const at::Tensor& image) const { return call({in(image)}).toTensor(); }
at::Tensor VaeDecoder::decode(const at::Tensor& latent) const { return call({in(latent)}).toTensor(); }
at::Tensor ImageEncoder::embed(const at::Tensor& pixels) const { return call({in(pixels)}).toTensor(); }
at::Tensor PoseGuider::features(const at::Tensor& pose, const at::Tensor& depth) const {
  if (depth.defined()) return call({in(pose), in(depth)}).toTensor();
  return call({in(pose)}).toTensor();
}

namespace {
std::vector<at::Tensor> to_tensor_vector(const c10::IValue& v) {
  if (v.isTensorList()) return v.toTensorVector();
  std::vector<at::Tensor> out;
  if (v.isList()) {
    for (const auto& e : v.toListRef()) out.push_back(e.toTensor());
    return out;
  }
  if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) out.push_back(e.toTensor());
    return out;
  }
  TORCH_CHECK(false, "expected a list of tensors, got ", v.tagKind());
}

c10::List<at::Tensor> to_list(const std::vector<at::Tensor>& v) {
  c10::List<at::Tensor> l;
  l.reserve(v.size());
  for (const auto& t : v) l.push_back(t);
  return l;
}
}  // namespace

std::vector<at::Tensor> ReferenceNet::features(const at::Tensor& latent, const at::Tensor& context) const {
  return to_tensor_vector(call({in(latent), in(context)}));
}

std::vector<at::Tensor> ObjectGuider::features(const at::Tensor& latent) const {
  return to_tensor_vector(call({in(latent)}));
}

at::Tensor DenoisingUnet::predict(const UnetInputs& x) const {
  std::vector<at::Tensor> reference;
  reference.reserve(x.reference.size());
  for (const auto& r : x.reference) reference.push_back(in(r));
  std::vector<at::Tensor> objects;
  objects.reserve(x.objects.size());
  for (const auto& o : x.objects) objects.push_back(in(o));
  return call({in(x.sample), x.timestep.to(device_, at::kLong), in(x.context), in(x.pose), to_list(reference),
               x.reference_keep.to(device_, at::kFloat), to_list(objects)})
      .toTensor();
}

// ---------------------------------------------------------------- contract checks

std::string match_spec(const TensorSpec& spec, const at::Tensor& t, const std::map<std::string, int64_t>& bindings,
                       std::optional<at::ScalarType> float_dtype) {
  std::map<std::string, int64_t> wild;  // unbound expressions match anything, consistently
  bool ok = static_cast<int64_t>(spec.shape.size()) == t.dim();
  for (size_t i = 0; ok && i < spec.shape.size(); ++i) {
    const Dim& d = spec.shape[i];
    const int64_t got = t.size(static_cast<int64_t>(i));
    if (auto want = d.eval(bindings)) {
      ok = *want == got;
    } else if (auto it = wild.find(d.expr); it != wild.end()) {
      ok = it->second == got;
    } else {
      wild[d.expr] = got;
    }
  }
  std::string dtype_problem;
  if (float_dtype && !spec.dtype.empty()) {
    if (auto want = parse_scalar_type(spec.dtype)) {
      const at::ScalarType expect = at::isFloatingType(*want) ? *float_dtype : *want;
      if (t.scalar_type() != expect) dtype_problem = std::string(" (expected dtype ") + c10::toString(expect) + ")";
    }
  }
  if (ok && dtype_problem.empty()) return "";
  std::ostringstream os;
  os << "is " << describe(t) << " but model.json declares " << spec.shape_str() << " " << spec.dtype << dtype_problem;
  return os.str();
}

std::string match_list(const TensorSpec& spec, const std::vector<at::Tensor>& ts,
                       const std::map<std::string, int64_t>& bindings, std::optional<at::ScalarType> float_dtype) {
  if (!spec.is_list) return ts.size() == 1 ? match_spec(spec, ts[0], bindings, float_dtype) : "is a list, declared a tensor";
  if (ts.empty() && spec.optional) return "";
  if (ts.size() != spec.items.size())
    return "has " + std::to_string(ts.size()) + " tensors but model.json declares " + std::to_string(spec.items.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const std::string p = match_spec(spec.items[i], ts[i], bindings, float_dtype);
    if (!p.empty()) return "[" + std::to_string(i) + "] " + p;
  }
  return "";
}

namespace {

// Where stamps live: $STANDIN_CACHE_DIR, else $XDG_CACHE_HOME/standin, else ~/.cache/standin.
fs::path user_cache_dir() {
  if (const char* base = std::getenv("STANDIN_CACHE_DIR"); base && *base) return base;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return fs::path(xdg) / "standin";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "standin";
  return {};
}

// Stamp files that record "this exact file already matched this sha256" (see LoadOptions).
fs::path verified_stamp(const fs::path& file, const std::string& expected_sha) {
  const fs::path dir = user_cache_dir();
  if (dir.empty()) return {};
  std::error_code ec;
  const auto canonical = fs::canonical(file, ec);
  const auto size = fs::file_size(file, ec);
  const auto mtime = fs::last_write_time(file, ec);
  if (ec) return {};
  const std::string identity = canonical.string() + "\n" + std::to_string(size) + "\n" +
                               std::to_string(mtime.time_since_epoch().count()) + "\n" + expected_sha;
  return dir / "verified" / sha256_hex(identity);
}

// Stamp of a contract dry run that passed: the module files' stamps (each one a file's path,
// size, mtime and sha256), model.json's bytes (the contract), the device and the dtype.
fs::path dry_run_stamp(const std::string& dir, const std::string& file_stamps, const at::Device& device,
                       at::ScalarType dtype) {
  const fs::path cache = user_cache_dir();
  const auto contract = sha256_file((fs::path(dir) / "model.json").string());
  if (cache.empty() || !contract.ok()) return {};
  const std::string identity = file_stamps + "\n" + contract.value() + "\n" + device.str() + "\n" + c10::toString(dtype);
  return cache / "dry-run" / sha256_hex(identity);
}

// Error for a module: names the module and its file.
Error module_error(const ModuleSpec& m, const std::string& dir, const std::string& what) {
  return Error::model("bundle module '" + m.name + "' (" + (fs::path(dir) / m.file).string() + "): " + what);
}

uint64_t little_endian(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// TorchScript files are zip archives, and LibTorch allocates each entry at the size the
// archive's central directory declares. Reads that directory and refuses archives that
// unpack to far more than their own size (PyTorch stores tensors uncompressed, so a real
// module unpacks to about its file size). Returns "" when the archive is acceptable.
std::string archive_problem(const fs::path& path, uint64_t file_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot be read";
  const auto read_at = [&](uint64_t offset, size_t count) {
    std::vector<unsigned char> bytes(count);
    in.clear();
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(count));
    if (static_cast<size_t>(in.gcount()) != count) bytes.clear();
    return bytes;
  };
  constexpr size_t kEocd = 22;
  if (file_size < kEocd) return "is not a TorchScript archive (too short)";
  const size_t tail_size = static_cast<size_t>(std::min<uint64_t>(file_size, kEocd + 65535));
  const auto tail = read_at(file_size - tail_size, tail_size);
  if (tail.empty()) return "cannot be read";
  size_t at = std::string::npos;
  for (size_t i = tail_size - kEocd + 1; i-- > 0;)
    if (little_endian(&tail[i], 4) == 0x06054b50) {
      at = i;
      break;
    }
  if (at == std::string::npos) return "is not a TorchScript archive (no zip directory)";
  uint64_t entries = little_endian(&tail[at + 10], 2);
  uint64_t directory_size = little_endian(&tail[at + 12], 4);
  uint64_t directory_offset = little_endian(&tail[at + 16], 4);
  if ((entries == 0xFFFF || directory_size == 0xFFFFFFFF || directory_offset == 0xFFFFFFFF) && at >= 20 &&
      little_endian(&tail[at - 20], 4) == 0x07064b50) {  // zip64
    const uint64_t record = little_endian(&tail[at - 20 + 8], 8);
    const auto z = record + 56 <= file_size ? read_at(record, 56) : std::vector<unsigned char>();
    if (z.empty() || little_endian(z.data(), 4) != 0x06064b50) return "has a damaged zip64 directory";
    entries = little_endian(&z[32], 8);
    directory_size = little_endian(&z[40], 8);
    directory_offset = little_endian(&z[48], 8);
  }
  if (directory_offset > file_size || directory_size > file_size - directory_offset || entries > 1000000 ||
      directory_size > (uint64_t{256} << 20))
    return "has a damaged zip directory";
  const auto directory = read_at(directory_offset, static_cast<size_t>(directory_size));
  if (directory.size() != directory_size) return "cannot be read";
  uint64_t unpacked = 0;
  size_t p = 0;
  for (uint64_t e = 0; e < entries; ++e) {
    if (p + 46 > directory.size() || little_endian(&directory[p], 4) != 0x02014b50) return "has a damaged zip directory";
    uint64_t compressed = little_endian(&directory[p + 20], 4);
    uint64_t size = little_endian(&directory[p + 24], 4);
    const size_t name_length = little_endian(&directory[p + 28], 2);
    const size_t extra_length = little_endian(&directory[p + 30], 2);
    const size_t comment_length = little_endian(&directory[p + 32], 2);
    const size_t extra = p + 46 + name_length;
    if (extra + extra_length + comment_length > directory.size()) return "has a damaged zip directory";
    for (size_t x = extra; x + 4 <= extra + extra_length;) {  // zip64 sizes, in this order
      const uint64_t id = little_endian(&directory[x], 2), length = little_endian(&directory[x + 2], 2);
      size_t field = x + 4;
      if (id == 0x0001) {
        if (size == 0xFFFFFFFF && field + 8 <= x + 4 + length) size = little_endian(&directory[field], 8), field += 8;
        if (compressed == 0xFFFFFFFF && field + 8 <= x + 4 + length) compressed = little_endian(&directory[field], 8);
      }
      x += 4 + length;
    }
    if (size > UINT64_MAX - unpacked) return "declares entries larger than any file (a zip bomb, not an exported module)";
    unpacked += size;
    p = extra + extra_length + comment_length;
  }
  if (unpacked > file_size * 4 + (uint64_t{64} << 20))
    return "unpacks to " + format_bytes(static_cast<double>(unpacked)) + " from a " + format_bytes(static_cast<double>(file_size)) +
           " file (a zip bomb, not an exported module); re-export the bundle";
  return "";
}

// The module's file, resolved through symlinks, must be a regular file inside the bundle.
Result<fs::path> resolve_module_file(const ModuleSpec& m, const std::string& dir) {
  std::error_code ec;
  const fs::path root = fs::canonical(dir, ec);
  if (ec) return Error::model("model bundle directory '" + dir + "': " + ec.message());
  const fs::path resolved = fs::canonical(fs::path(dir) / m.file, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return module_error(m, dir, "file is missing; re-export the bundle");
    return module_error(m, dir, "cannot be opened (" + ec.message() + ")");
  }
  const fs::path inside = resolved.lexically_relative(root);
  if (inside.empty() || *inside.begin() == ".." || inside.is_absolute())
    return module_error(m, dir, "resolves to " + resolved.string() + ", outside the bundle folder; module files must be inside it");
  const auto status = fs::status(resolved, ec);
  if (fs::is_directory(status)) return module_error(m, dir, "is a folder, not a TorchScript file; re-export the bundle");
  if (!fs::is_regular_file(status)) return module_error(m, dir, "is not a regular file; re-export the bundle");
  if (::access(resolved.c_str(), R_OK) != 0) return module_error(m, dir, "cannot be read (permission denied)");
  return resolved;
}

}  // namespace

std::string module_archive_problem(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return "cannot be read (" + ec.message() + ")";
  return archive_problem(path, size);
}

Result<Bundle> Bundle::load(const std::string& dir, const DeviceSpec& device_spec, std::optional<DType> dtype,
                            const LoadOptions& options) {
  Bundle b;
  b.dir_ = dir;
  std::error_code dir_ec;
  const auto dir_status = fs::status(dir, dir_ec);
  if (!fs::exists(dir_status)) {
    if (dir_ec && dir_ec != std::errc::no_such_file_or_directory)
      return Error::model("model bundle directory '" + dir + "': " + dir_ec.message());
    return Error::model("model bundle directory '" + dir + "' does not exist (create one with scripts/export_bundle.py)");
  }
  if (!fs::is_directory(dir_status)) return Error::model("'" + dir + "' is a file, not a model bundle directory");
  if (::access(dir.c_str(), R_OK | X_OK) != 0)
    return Error::model("model bundle directory '" + dir + "' cannot be read (permission denied)");
  STANDIN_ASSIGN_OR_RETURN(b.config_, BundleConfig::read((fs::path(dir) / "model.json").string()));
  STANDIN_ASSIGN_OR_RETURN(b.device_, device_spec.resolve());
  b.dtype_ = dtype ? scalar_type(*dtype) : *parse_scalar_type(b.config_.dtype);
  if (b.device_.is_cpu() && b.dtype_ == at::kHalf)
    return Error::usage("--dtype fp16 needs a CUDA device; on the CPU use fp32 (or bf16)");

  // What a remembered dry run is keyed by: the stamps of the module files, usable only when
  // every file has one.
  std::string file_stamps;
  bool every_file_stamped = options.dry_run && options.verify_checksums && options.remember_verified;
  const auto load_one = [&](const std::string& name, ModuleBase& target) -> Status {
    const ModuleSpec& m = b.config_.modules.at(name);
    STANDIN_ASSIGN_OR_RETURN(const fs::path path, resolve_module_file(m, dir));
    std::error_code size_ec;
    const auto file_size = fs::file_size(path, size_ec);
    if (size_ec) return module_error(m, dir, "cannot be read (" + size_ec.message() + ")");
    if (const std::string problem = archive_problem(path, file_size); !problem.empty()) return module_error(m, dir, problem);
    if (options.verify_checksums) {
      std::string want = m.sha256;
      for (auto& ch : want) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      const fs::path stamp = options.remember_verified ? verified_stamp(path, want) : fs::path();
      std::error_code ec;
      if (stamp.empty()) every_file_stamped = false;
      else file_stamps += "\n" + stamp.filename().string();
      if (stamp.empty() || !fs::exists(stamp, ec)) {
        auto digest = sha256_file(path.string());
        if (!digest.ok()) return module_error(m, dir, digest.error().message);
        if (digest.value() != want)
          return module_error(m, dir, "sha256 mismatch (file " + digest.value() + ", model.json " + m.sha256 +
                                          "); the file is corrupt or was replaced — re-export or re-download the bundle");
        if (!stamp.empty()) {  // best effort: an unwritable cache only costs the next start a hash
          fs::create_directories(stamp.parent_path(), ec);
          std::ofstream(stamp) << path.string() << "\n";
        }
      }
    }
    try {
      auto mod = std::make_shared<torch::jit::Module>(torch::jit::load(path.string(), b.device_));
      mod->eval();
      // Module::to(dtype) would also convert integer buffers (e.g. position ids); convert only
      // floating-point parameters and buffers, as Python's nn.Module.to does.
      torch::NoGradGuard no_grad;
      for (const auto& p : mod->parameters())
        if (p.is_floating_point() && p.scalar_type() != b.dtype_) p.set_data(p.to(b.dtype_));
      for (const auto& t : mod->buffers())
        if (t.is_floating_point() && t.scalar_type() != b.dtype_) t.set_data(t.to(b.dtype_));
      target.module_ = std::move(mod);
    } catch (const std::exception& e) {
      return module_error(m, dir, "cannot be loaded as TorchScript: " + compat::short_message(e));
    }
    target.name_ = m.name;
    target.file_ = path.string();
    target.device_ = b.device_;
    target.dtype_ = b.dtype_;
    target.jit_optimize_ = options.jit_optimize;
    return Status::success();
  };

  STANDIN_TRY(load_one("vae_encoder", b.vae_encoder_));
  STANDIN_TRY(load_one("vae_decoder", b.vae_decoder_));
  STANDIN_TRY(load_one("image_encoder", b.image_encoder_));
  STANDIN_TRY(load_one("reference_net", b.reference_net_));
  STANDIN_TRY(load_one("pose_guider", b.pose_guider_));
  STANDIN_TRY(load_one("denoising_unet", b.denoising_unet_));
  if (b.config_.modules.count("object_guider")) STANDIN_TRY(load_one("object_guider", b.object_guider_));
  const fs::path passed_stamp = every_file_stamped ? dry_run_stamp(dir, file_stamps, b.device_, b.dtype_) : fs::path();
  std::error_code stamp_ec;
  if (!passed_stamp.empty() && fs::exists(passed_stamp, stamp_ec)) {
    b.dry_run_remembered_ = true;
  } else if (options.dry_run) {
    compat::InferenceGuard guard;
    try {
      STANDIN_TRY(b.dry_run(options));
    } catch (const std::exception& e) {  // inputs built from model.json's sizes, before any module ran
      if (compat::is_out_of_memory(e)) return Error::runtime("out of memory during the bundle's dry run (model.json dry_run sizes)");
      return Error::model(dir + ": the contract dry run failed: " + compat::short_message(e));
    }
    if (!passed_stamp.empty()) {  // best effort, like the file stamps
      fs::create_directories(passed_stamp.parent_path(), stamp_ec);
      std::ofstream(passed_stamp) << dir << "\n";
    }
  }
  log::emit(log::Level::debug, "loaded bundle '" + b.config_.name + "' from " + dir + " on " + b.device_.str() + " as " +
                    c10::toString(b.dtype_));
  return b;
}

Result<std::vector<Bundle>> load_replicas(const std::string& dir, const std::vector<at::Device>& devices,
                                          std::optional<DType> dtype, const LoadOptions& options) {
  if (devices.empty()) return Error::usage("no device to load the model bundle on");
  const auto load_on = [&](const at::Device& device) -> Result<Bundle> {
    auto loaded = Bundle::load(dir, DeviceSpec{device.str()}, dtype, options);
    if (!loaded.ok() && devices.size() > 1) return loaded.error().with_context("loading the model on " + device.str());
    return loaded;
  };
  std::vector<Bundle> replicas;
  STANDIN_ASSIGN_OR_RETURN(Bundle first, load_on(devices.front()));
  replicas.push_back(std::move(first));
  // The others at once, each in its own thread with its device current; all joined before any
  // result is looked at.
  std::vector<std::optional<Result<Bundle>>> others(devices.size() - 1);
  std::optional<Error> not_started;
  {
    std::vector<std::thread> threads;
    threads.reserve(others.size());
    try {
      for (size_t i = 0; i < others.size(); ++i)
        threads.emplace_back([&, i] {
          try {
            at::init_num_threads();
            compat::CurrentDeviceGuard current(devices[i + 1]);
            others[i].emplace(load_on(devices[i + 1]));
          } catch (const std::exception& e) {
            others[i].emplace(Error::runtime("loading the model on " + devices[i + 1].str() + ": " + compat::short_message(e)));
          }
        });
    } catch (const std::system_error& e) {
      not_started = Error::runtime(std::string("cannot start a thread to load the model replicas: ") + e.what());
    }
    for (auto& t : threads) t.join();
  }
  if (not_started) return *not_started;
  for (auto& other : others) {
    if (!other->ok()) return other->error();
    replicas.push_back(std::move(*other).value());
  }
  return replicas;
}

Status Bundle::dry_run(const LoadOptions&) {
  const BundleConfig& c = config_;
  std::map<std::string, int64_t> bind = c.dry_run;
  const int64_t N = bind.at("N"), B = bind.at("B"), F = bind.at("F"), H = bind.at("H"), W = bind.at("W");
  const int64_t h = bind.at("h"), w = bind.at("w");
  auto gen = at::detail::createCPUGenerator(1234);
  const auto randn = [&](at::IntArrayRef shape) {
    return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)).to(device_, dtype_);
  };
  const auto as_vector = [](const c10::IValue& v) {
    std::vector<at::Tensor> out;
    if (v.isTensor()) out.push_back(v.toTensor());
    else if (v.isTuple()) for (const auto& e : v.toTupleRef().elements()) out.push_back(e.toTensor());
    else if (v.isList()) for (const auto& e : v.toListRef()) out.push_back(e.toTensor());
    return out;
  };

  // Feeds the module the inputs docs/BUNDLE.md prescribes; checks that model.json declares the
  // same inputs, that the module accepts them, and that its output matches the declaration.
  const auto check = [&](const std::string& name, const std::vector<c10::IValue>& inputs) -> Result<std::vector<at::Tensor>> {
    const ModuleSpec& m = config_.modules.at(name);
    if (m.inputs.size() != inputs.size())
      return module_error(m, dir_, "model.json declares " + std::to_string(m.inputs.size()) + " inputs, the contract (docs/BUNDLE.md) has " +
                                       std::to_string(inputs.size()));
    for (size_t i = 0; i < inputs.size(); ++i) {
      const std::string problem = inputs[i].isTensor()
                                      ? match_list(m.inputs[i], {inputs[i].toTensor()}, bind, std::nullopt)
                                      : match_list(m.inputs[i], as_vector(inputs[i]), bind, std::nullopt);
      if (!problem.empty()) return module_error(m, dir_, "input '" + m.inputs[i].name + "' as the contract builds it " + problem);
    }
    c10::IValue out;
    try {
      out = module_of(name).call(inputs);
    } catch (const std::exception& e) {
      if (compat::is_out_of_memory(e)) return Error::runtime("out of memory while checking bundle module '" + name + "'");
      return module_error(m, dir_, "dry run failed (the module does not accept the documented inputs): " + compat::short_message(e));
    }
    const TensorSpec& spec = m.outputs[0];
    if (spec.is_list != !out.isTensor())
      return module_error(m, dir_, std::string("dry run output '") + spec.name + "' is " + (out.isTensor() ? "a tensor" : "a list") +
                                       " but model.json declares " + (spec.is_list ? "a tensor list" : "a tensor"));
    auto produced = as_vector(out);
    for (const auto& t : produced)
      if (!at::isfinite(t).all().item<bool>())
        return module_error(m, dir_, "dry run output '" + spec.name + "' has NaN/Inf values (corrupt weights?)");
    const std::string problem = match_list(spec, produced, bind, dtype_);
    if (!problem.empty()) return module_error(m, dir_, "dry run output '" + spec.name + "' " + problem);
    return produced;
  };

  const auto image = randn({N, 3, H, W}).clamp(-1, 1);
  STANDIN_ASSIGN_OR_RETURN(auto lat, check("vae_encoder", {image}));
  STANDIN_TRY(check("vae_decoder", {randn({N, c.latent_channels, h, w})}));
  STANDIN_ASSIGN_OR_RETURN(auto emb, check("image_encoder", {randn({N, 3, c.clip_size, c.clip_size})}));
  if (emb[0].dim() != 3 || emb[0].size(2) != c.context_dim)
    return module_error(config_.modules.at("image_encoder"), dir_,
                        "embeds " + describe(emb[0]) + " do not end in geometry.context_dim " + std::to_string(c.context_dim));
  const at::Tensor latent = (lat[0].slice(0, 0, 1) * c.scaling_factor).to(dtype_);
  const at::Tensor embed = emb[0].slice(0, 0, 1);
  STANDIN_ASSIGN_OR_RETURN(auto reference, check("reference_net", {latent, embed}));
  std::vector<c10::IValue> pose_in = {randn({N, 3, H, W}).abs().clamp(0, 1)};
  if (c.pose_modulation) pose_in.push_back(randn({N, 1, H, W}).abs().clamp(0, 1));
  STANDIN_ASSIGN_OR_RETURN(auto pose, check("pose_guider", pose_in));
  if (pose[0].dim() != 4 || pose[0].size(1) != c.pose_channels)
    return module_error(config_.modules.at("pose_guider"), dir_,
                        "features " + describe(pose[0]) + " do not have conditioning.pose_channels = " + std::to_string(c.pose_channels));
  std::vector<at::Tensor> objects;
  if (object_guider_.loaded()) {
    const auto bind_n = bind;
    bind["N"] = B * F;  // objects are fed to the UNet as [B*F, ...]
    auto r = check("object_guider", {randn({B * F, c.latent_channels, h, w})});
    bind = bind_n;
    if (!r.ok()) return r.error();
    objects = r.value();
  }
  // pose features for F frames, as [B, C, F, h, w]
  at::Tensor pf = pose[0].slice(0, 0, 1).expand({F, -1, -1, -1});
  pf = pf.permute({1, 0, 2, 3}).unsqueeze(0).expand({B, -1, -1, -1, -1}).contiguous();
  std::vector<float> keep(B);
  for (int64_t i = 0; i < B; ++i) keep[i] = float(i % 2);
  const std::vector<c10::IValue> unet_in = {
      randn({B, c.unet_in_channels, F, h, w}),
      at::full({B}, 999, at::TensorOptions().dtype(at::kLong).device(device_)),
      at::cat({at::zeros_like(embed), embed}, 0).expand({B, -1, -1}).contiguous(),
      pf,
      to_list(reference),
      at::tensor(keep).to(device_),
      to_list(objects)};
  STANDIN_TRY(check("denoising_unet", unet_in));
  return Status::success();
}

const ModuleBase& Bundle::module_of(const std::string& name) const {
  if (name == "vae_encoder") return vae_encoder_;
  if (name == "vae_decoder") return vae_decoder_;
  if (name == "image_encoder") return image_encoder_;
  if (name == "reference_net") return reference_net_;
  if (name == "pose_guider") return pose_guider_;
  if (name == "object_guider") return object_guider_;
  return denoising_unet_;
}

}  // namespace standin::diffusion
