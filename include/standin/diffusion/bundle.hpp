#pragma once
// Model bundle: model.json + one TorchScript file per module (docs/BUNDLE.md is the contract).
//
// Bundle::load parses and validates model.json, checks every module file's sha256, loads the
// modules on the chosen device/dtype and runs a contract dry run (each module on minimal inputs
// built from the contract; output shapes/dtypes compared with model.json). Any problem is an
// Error::model (exit 4) naming the module and its file.
//
// The typed module wrappers below are the low-level API used by the Generator. They move inputs
// to the bundle's device/dtype (a no-op when already there), return tensors in the bundle dtype,
// and THROW c10::Error / std::exception on failure; callers outside src/diffusion should use
// Generator, which converts exceptions to Error values.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json_fwd.hpp>

#include "standin/core/error.hpp"
#include "standin/diffusion/scheduler.hpp"

namespace torch::jit {
struct Module;
}

namespace standin::diffusion {

// ---------------------------------------------------------------- device / dtype

enum class DType { fp32, fp16, bf16 };
// "fp32"|"float32", "fp16"|"float16"|"half", "bf16"|"bfloat16". Error::usage otherwise.
Result<DType> parse_dtype(const std::string& name);
const char* to_string(DType dtype);
at::ScalarType scalar_type(DType dtype);

// "cpu", "cuda" or "cuda:N". resolve() checks that the device exists in this build/machine.
struct DeviceSpec {
  std::string name = "cpu";
  Result<at::Device> resolve() const;
};

// The devices of `replace`/`animate --device`: "cpu", "cuda" (every visible CUDA device),
// "cuda:N", or a comma list of CUDA devices "cuda:0,cuda:1" (one model replica on each; see
// Generator). parse_device_list checks the spelling only: Error::usage for an unknown or repeated
// name, or "cpu"/"cuda" inside a list.
Result<std::vector<std::string>> parse_device_list(const std::string& text);
// parse_device_list, then each device checked to exist here (Error::usage as DeviceSpec::resolve,
// e.g. CUDA asked for on a machine without it); "cuda" becomes every visible CUDA device
// (CUDA_VISIBLE_DEVICES chooses which are visible).
Result<std::vector<at::Device>> resolve_devices(const std::string& text);

// ---------------------------------------------------------------- model.json

// One dimension of a declared shape: an integer, or an expression over the contract symbols
// (N B F H W h w) joined by '*' and '/', evaluated left to right with integer arithmetic
// ("h/2*w/2", "B*F"). An expression naming a symbol that is not bound matches any size
// (consistently within one tensor).
struct Dim {
  int64_t size = -1;  // >= 0 when fixed
  std::string expr;   // non-empty when symbolic
  std::string str() const { return expr.empty() ? std::to_string(size) : expr; }
  // nullopt when the expression names an unbound symbol (or is malformed).
  std::optional<int64_t> eval(const std::map<std::string, int64_t>& bindings) const;
};

// {"name", "type": "tensor", "shape", "dtype"} or {"name", "type": "tensor_list", "items":
// [{shape, dtype}, ...], "optional"} (a fixed-count list; optional lists may be passed empty).
struct TensorSpec {
  std::string name;
  std::vector<Dim> shape;
  std::string dtype;  // "float32", "float16", "bfloat16", "int64", ... ("" = unchecked)
  bool is_list = false;
  bool optional = false;
  std::vector<TensorSpec> items;  // for lists
  std::string shape_str() const;
};

struct ModuleSpec {
  std::string name;  // key in model.json: vae_encoder, ...
  std::string file;  // relative to the bundle directory
  std::string sha256;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

struct BundleConfig {
  std::string name;
  std::string config;
  std::string dtype = "float32";  // dtype the modules were exported in

  // geometry
  int width = 512;
  int height = 768;
  int vae_scale_factor = 8;
  int latent_channels = 4;
  int clip_size = 224;
  int context_dim = 768;
  int unet_in_channels = 9;

  double scaling_factor = 0.18215;

  int size_multiple = 8;  // work H and W must be multiples of this
  int max_window = 0;     // longest temporal window the motion modules accept (0 = unknown)

  // conditioning
  bool environment = true;
  bool mask_channel = true;
  std::string reference_blocks = "all";
  bool object_guider = false;
  int pose_channels = 320;
  bool pose_modulation = false;  // pose_guider also takes a depth map [N,1,H,W]
  // Trained with BlazePose hand and face points in the pose maps (vision::draw_hands_and_face);
  // absent = false: the OpenPose-18 body only.
  bool pose_hands_face = false;

  SchedulerConfig scheduler;

  struct Defaults {
    int steps = 25;
    double cfg = 3.5;
    int window = 24;
    int overlap = 4;
    std::string sampler = "ddim";
    // replace's redraw region (--mask-mode, --mask-dilate source pixels, --mask-blocks; 0 =
    // a block per 10 pixels): the region a model was shown to fill best is part of the model.
    std::string mask_mode = "agnostic";
    int mask_dilate = 4;
    int mask_blocks = 0;
    // replace's compositing edge (--feather, source pixels); < 0 = replace's own rule (1 % of
    // the source's short side), made for block regions; a tight region wants a narrow edge.
    int feather = -1;
  } defaults;

  // Symbol values for the load-time dry run (model.json "dry_run"; defaults when absent).
  std::map<std::string, int64_t> dry_run;

  std::map<std::string, ModuleSpec> modules;

  // Known format/version; all required keys present; consistent numbers. `origin` names the
  // file in messages.
  static Result<BundleConfig> parse(const std::string& json_text, const std::string& origin = "model.json");
  static Result<BundleConfig> read(const std::string& model_json_path);
};

// Modules every bundle must have (object_guider is optional, required when
// conditioning.object_guider is true).
const std::vector<std::string>& required_modules();

// ---------------------------------------------------------------- modules

class ModuleBase {
 public:
  bool loaded() const { return module_ != nullptr; }
  const std::string& name() const { return name_; }
  const std::string& file() const { return file_; }

 protected:
  friend class Bundle;
  // Raw call with no conversion (inputs must already be on the device / dtype).
  c10::IValue call(std::vector<c10::IValue> inputs) const;
  at::Tensor in(const at::Tensor& t) const;  // to device + bundle dtype (floating inputs)
  std::string name_;
  std::string file_;
  std::shared_ptr<torch::jit::Module> module_;
  at::Device device_ = at::kCPU;
  at::ScalarType dtype_ = at::kFloat;
  bool jit_optimize_ = false;
};

class VaeEncoder : public ModuleBase {
 public:
  // image [N,3,H,W] in [-1,1] -> posterior mean [N,4,h,w], NOT scaled by scaling_factor.
  at::Tensor encode(const at::Tensor& image) const;
};

class VaeDecoder : public ModuleBase {
 public:
  // latent [N,4,h,w] already divided by scaling_factor -> image [N,3,H,W] about [-1,1] (unclamped).
  at::Tensor decode(const at::Tensor& latent) const;
};

class ImageEncoder : public ModuleBase {
 public:
  // pixels [N,3,S,S] CLIP-normalised -> embeds [N,1,D].
  at::Tensor embed(const at::Tensor& pixels) const;
};

class ReferenceNet : public ModuleBase {
 public:
  // latent [1,4,h,w] (scaled), context [1,1,D] -> one [1,L_i,C_i] per reference-reading
  // self-attention of the denoising UNet, in the UNet's order.
  std::vector<at::Tensor> features(const at::Tensor& latent, const at::Tensor& context) const;
};

class PoseGuider : public ModuleBase {
 public:
  // pose [N,3,H,W] in [0,1] (+ depth [N,1,H,W] for pose-modulation bundles)
  // -> features [N,pose_channels,h,w].
  at::Tensor features(const at::Tensor& pose, const at::Tensor& depth = {}) const;
};

class ObjectGuider : public ModuleBase {
 public:
  // latent [N,4,h,w] (scaled object latent) -> one [N,C_j,h_j,w_j] per decoder stage.
  std::vector<at::Tensor> features(const at::Tensor& latent) const;
};

struct UnetInputs {
  at::Tensor sample;                  // [B,C_in,F,h,w]
  at::Tensor timestep;                // [B] int64
  at::Tensor context;                 // [B,1,D]
  at::Tensor pose;                    // [B,pose_channels,F,h,w]
  std::vector<at::Tensor> reference;  // each [1,L_i,C_i]
  at::Tensor reference_keep;          // [B] float32
  std::vector<at::Tensor> objects;    // each [B*F,C_j,h_j,w_j]; empty = none
};

class DenoisingUnet : public ModuleBase {
 public:
  // -> prediction [B,4,F,h,w] (v or epsilon per scheduler.prediction_type).
  at::Tensor predict(const UnetInputs& inputs) const;
};

// ---------------------------------------------------------------- bundle

struct LoadOptions {
  bool verify_checksums = true;  // sha256 of every module file (≈ 1 s per GB)
  // Remember files that passed (path, size, mtime, expected sha256) under the user's cache
  // ($STANDIN_CACHE_DIR, else $XDG_CACHE_HOME/standin, else ~/.cache/standin) so a bundle is
  // hashed once, not at every start (4.8 GB for sd15). Any change to a file's size or mtime
  // makes it hashed again.
  bool remember_verified = true;
  // Run each module once on minimal inputs (model.json "dry_run" sizes). With remember_verified,
  // a dry run that passed is remembered too, keyed by every module file's identity, model.json's
  // bytes, the device and the dtype: an unchanged bundle starts without it.
  bool dry_run = true;
  // TorchScript graph optimisation (profiling executor + fusers). Off by default: no slow
  // warm-up calls per new shape; the modules' heavy ops (conv, matmul, attention) are the same.
  bool jit_optimize = false;
};

class Bundle {
 public:
  // dtype: nullopt = the bundle's own dtype. Errors: model (bundle problems), usage (device or
  // dtype not usable here, e.g. fp16 on the CPU).
  static Result<Bundle> load(const std::string& dir, const DeviceSpec& device,
                             std::optional<DType> dtype = std::nullopt, const LoadOptions& options = {});

  const std::string& dir() const { return dir_; }
  const BundleConfig& config() const { return config_; }
  at::Device device() const { return device_; }
  at::ScalarType dtype() const { return dtype_; }

  const VaeEncoder& vae_encoder() const { return vae_encoder_; }
  const VaeDecoder& vae_decoder() const { return vae_decoder_; }
  const ImageEncoder& image_encoder() const { return image_encoder_; }
  const ReferenceNet& reference_net() const { return reference_net_; }
  const PoseGuider& pose_guider() const { return pose_guider_; }
  const DenoisingUnet& denoising_unet() const { return denoising_unet_; }
  // nullptr when the bundle has none.
  const ObjectGuider* object_guider() const { return object_guider_.loaded() ? &object_guider_ : nullptr; }
  // True when load() skipped the contract dry run because it passed before (LoadOptions::dry_run).
  bool dry_run_remembered() const { return dry_run_remembered_; }

 private:
  Status dry_run(const LoadOptions& options);
  const ModuleBase& module_of(const std::string& name) const;

  std::string dir_;
  BundleConfig config_;
  at::Device device_ = at::kCPU;
  at::ScalarType dtype_ = at::kFloat;
  VaeEncoder vae_encoder_;
  VaeDecoder vae_decoder_;
  ImageEncoder image_encoder_;
  ReferenceNet reference_net_;
  PoseGuider pose_guider_;
  DenoisingUnet denoising_unet_;
  ObjectGuider object_guider_;
  bool dry_run_remembered_ = false;
};

// One Bundle of `dir` on each device (generator replicas): the first is loaded as Bundle::load
// does (checksums, dry run), then the others at once in a thread each (their files' checksums
// are remembered by then, LoadOptions::remember_verified). The first error, naming its device,
// after every load has ended.
Result<std::vector<Bundle>> load_replicas(const std::string& dir, const std::vector<at::Device>& devices,
                                          std::optional<DType> dtype = std::nullopt, const LoadOptions& options = {});

// Compares a produced tensor (or list) with a declared spec. `bindings` holds the values of the
// contract symbols (N, H, ...). Declared float dtypes are expected as `float_dtype` (the dtype
// the bundle runs in); dtype checks are skipped when `float_dtype` is undefined. Returns "" when
// it matches, else a description of the mismatch. Exposed for tests.
std::string match_spec(const TensorSpec& spec, const at::Tensor& t, const std::map<std::string, int64_t>& bindings,
                       std::optional<at::ScalarType> float_dtype);
// TorchScript files are zip archives and LibTorch allocates every entry at the size the zip's
// central directory declares: "" when `path`'s declared sizes are plausible for its size (at
// most 4x + 64 MB in all), else why not (a zip bomb, a damaged directory). Exposed for the
// archive fuzz target.
std::string module_archive_problem(const std::string& path);

std::string match_list(const TensorSpec& spec, const std::vector<at::Tensor>& ts,
                       const std::map<std::string, int64_t>& bindings, std::optional<at::ScalarType> float_dtype);

}  // namespace standin::diffusion
