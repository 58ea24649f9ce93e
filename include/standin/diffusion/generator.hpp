#pragma once
// The generator: reference features once -> windowed, CFG-batched denoising -> chunked decode.
// docs/SAMPLING.md is the algorithm; scripts/reference_pipeline.py is its Python oracle.
//
// Memory model (bounded whatever the video length):
//   * latents [1,4,T,h,w] float32 and the initial noise live on the bundle's device for the run;
//   * environment + mask are asked from the ConditionSource ONCE, in ascending chunks, and kept
//     only in latent form ([1,5,T,h,w] in the bundle dtype, on the device);
//   * pose maps are asked per window (ConditionSource::pose may be called many times, in any
//     order, from one thread at a time — draw them from keypoints, do not keep decoded images);
//     their pose-guider features are cached for the whole clip only when that fits
//     SamplingSettings::pose_cache_bytes;
//   * decoded frames go to a FrameSink chunk by chunk and are not kept (over several replicas at
//     most two chunks per replica wait on the host for the sink).
// Several devices (Generator over replicas, docs/SAMPLING.md "Several devices"): the first
// replica (the primary) holds all of the above; every other device holds its replica's modules,
// a copy of the scene latents, of the cached pose / object features (each within
// pose_cache_bytes, as on the primary) and of the reference features, made once per run, plus
// one UNet call's activations. The clip's latents and the step's sum stay on the primary, so a
// replica's device needs no more than the primary's; the decode's chunks are spread over the
// replicas as well, and reach the sink in order, from the calling thread.
//
// Typical use from the pipeline:
//   STANDIN_ASSIGN_OR_RETURN(auto bundle, Bundle::load(dir, DeviceSpec{"cuda"}, DType::fp16));
//   Generator gen(bundle);
//   SamplingSettings s = SamplingSettings::from_bundle(bundle.config());  // then apply CLI flags
//   MyConditions cond(...);                        // implements ConditionSource
//   GenerationInputs in{reference_m11, reference_clip, &cond};
//   STANDIN_ASSIGN_OR_RETURN(auto out, gen.generate(in, s, [&](int64_t first, const at::Tensor& rgb) {
//     return compositor.write(first, rgb);         // rgb [n,3,H,W] float32 CPU in [-1,1]
//   }));
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "standin/core/error.hpp"
#include "standin/diffusion/bundle.hpp"
#include "standin/diffusion/scheduler.hpp"

namespace standin::diffusion {

// ---------------------------------------------------------------- windows

struct Window {
  int64_t start = 0;
  int64_t length = 0;
  int64_t end() const { return start + length; }
  bool operator==(const Window& o) const { return start == o.start && length == o.length; }
};

// docs/SAMPLING.md step 3: Fw' = min(window, T), stride max(1, Fw' - overlap), starts 0,
// stride, ... while start + Fw' < T, then T - Fw' (deduplicated). T <= window: one window.
std::vector<Window> plan_windows(int64_t frames, int window, int overlap);

// ---------------------------------------------------------------- settings

// How the two halves of classifier-free guidance are evaluated. Both compute docs/SAMPLING.md
// (the same numbers up to floating-point rounding):
//   batched  one UNet call with B = 2, as docs/SAMPLING.md writes it; the unconditional half masks
//            the reference tokens with an additive -inf on their logits (reference_keep = 0).
//   split    two calls with B = 1; the unconditional one is given no reference tokens at all,
//            which is what the mask computes (exp(-inf) = 0). Neither call needs an attention
//            mask (unmasked SDPA: 290 TF/s on an H100 vs 190 masked), the unconditional half does
//            no work on the reference keys (a quarter less attention in the reference-reading
//            blocks), and peak activation memory is that of B = 1. Measured on an H100 (sd15,
//            fp16, 24-frame window at 512x768): 0.447 s vs 0.500 s per window, 6.8 vs 8.7 GiB
//            peak (docs/BENCHMARKS.md).
enum class CfgMode { batched, split };

struct SamplingSettings {
  int steps = 25;
  double cfg = 3.5;  // <= 1: conditional branch only (batch 1)
  int window = 24;
  int overlap = 4;
  SamplerKind sampler = SamplerKind::ddim;
  // Replaces model.json's scheduler.beta_schedule when not empty ("linear" | "scaled_linear"):
  // a bundle records its checkpoint authors' schedule; this is the per-run override.
  std::string beta_schedule;
  uint64_t seed = 0;  // initial noise when GenerationInputs::noise is undefined
  int vae_chunk = 8;  // frames per VAE encode / decode call
  int64_t pose_cache_bytes = int64_t(1) << 30;  // cache all pose features when they fit
  bool show_progress = true;
  CfgMode cfg_mode = CfgMode::split;  // only matters when cfg > 1
  // Long shots (--chain-frames N). 0: every window is denoised at every step and overlapping
  // windows are averaged (docs/SAMPLING.md). N > 0: the windows (overlapping by N frames) are
  // denoised one after another, each through all steps; the frames a window shares with the one
  // before ("motion frames") are held at that window's finished latents, re-noised to each
  // step's level with their own initial noise, so each window continues the last one's frames
  // instead of being averaged with them. Same number of UNet calls.
  int chain_frames = 0;

  // Checkpointing (--cache): `resume` starts after resume->next_step steps from its latents and
  // sampler history; `on_step` receives the state after every step (an error stops sampling).
  // With chain_frames, steps count across windows (window w's step i is w * steps + i + 1) and
  // the latents hold the finished windows' frames (resumable_steps gives the total).
  struct StepState {
    int next_step = 0;
    at::Tensor latents;  // [1,4,T,h,w] float32
    std::vector<at::Tensor> sampler_history;
  };
  std::optional<StepState> resume;
  std::function<Status(const StepState&)> on_step;

  static SamplingSettings from_bundle(const BundleConfig& config);
  // The bundle's scheduler with this run's overrides (beta_schedule).
  SchedulerConfig scheduler_config(const BundleConfig& config) const;
  Status validate() const;  // Error::usage for out-of-range values
  // How many resumable steps a run over `frames` frames has (steps, or windows x steps chained).
  int64_t resumable_steps(int64_t frames) const;
  Status validate(const BundleConfig& config) const;  // + the bundle's limits (max_window)
};

// ---------------------------------------------------------------- conditions

// Scene conditions for frames [begin, end), at the work resolution H×W.
struct SceneChunk {
  at::Tensor environment;  // [n,3,H,W] in [-1,1], masked pixels 0 (undefined if the bundle has no environment input)
  at::Tensor mask;         // [n,1,H,W] in [0,1], 1 = region to re-draw (shape-agnostic mask)
  at::Tensor objects;      // optional [n,3,H,W] in [-1,1]: object pixels (others 0); undefined = no objects
};

class ConditionSource {
 public:
  virtual ~ConditionSource() = default;
  virtual int64_t num_frames() const = 0;
  // Called once per frame, in ascending non-overlapping chunks, before denoising.
  virtual Result<SceneChunk> scene(int64_t begin, int64_t end) = 0;
  // Pose maps [n,3,H,W] in [0,1]; called per window, possibly many times and in any order.
  virtual Result<at::Tensor> pose(int64_t begin, int64_t end) = 0;
  // Depth maps [n,1,H,W] in [0,1], only for bundles with conditioning.pose_modulation; called
  // alongside pose().
  virtual Result<at::Tensor> depth(int64_t begin, int64_t end) {
    return Error::bad_input("this model bundle needs depth maps (pose modulation) and none were given");
  }
};

// All conditions already in memory (tests, short clips).
class TensorConditionSource final : public ConditionSource {
 public:
  TensorConditionSource(at::Tensor environment, at::Tensor mask, at::Tensor pose, at::Tensor objects = {},
                        at::Tensor depth = {});
  int64_t num_frames() const override { return pose_.size(0); }
  Result<SceneChunk> scene(int64_t begin, int64_t end) override;
  Result<at::Tensor> pose(int64_t begin, int64_t end) override;
  Result<at::Tensor> depth(int64_t begin, int64_t end) override;

 private:
  at::Tensor environment_, mask_, pose_, objects_, depth_;
};

struct GenerationInputs {
  at::Tensor reference;       // [1,3,H,W] in [-1,1]
  at::Tensor reference_clip;  // [1,3,S,S] CLIP-normalised
  ConditionSource* conditions = nullptr;
  at::Tensor noise;           // optional [1,4,T,h,w] standard normal; undefined = from settings.seed
};

// Computed once per reference image.
struct ReferenceFeatures {
  at::Tensor latent;               // [1,4,h,w] scaled
  at::Tensor embed;                // [1,1,D]
  std::vector<at::Tensor> tokens;  // reference_net outputs
};

// Decoded frames [n,3,H,W] float32 on the CPU in [-1,1], first frame index `first`.
// Return an error to stop generation (it is passed through).
using FrameSink = std::function<Status(int64_t first, const at::Tensor& frames)>;

struct GenerationStats {
  double reference_s = 0, conditions_s = 0, denoise_s = 0, decode_s = 0;
  int64_t frames = 0;
  int windows = 0;
  int steps = 0;
  int64_t unet_calls = 0;  // window evaluations (a split CFG pair counts once)
  bool pose_cached = false;
  int devices = 1;  // replicas that evaluated UNet calls (1 with chained windows)
};

struct GenerationOutput {
  at::Tensor latents;  // [1,4,T,h,w] float32 on the bundle's device, before decode
  GenerationStats stats;
};

// Several devices: a Generator over replicas of one bundle (the same files and dtype, one
// Bundle per device; the first is the primary) spreads the UNet calls of every denoising step
// over them (averaged windows only; chained windows run on the primary) and returns the latents
// a single device gives, bit for bit on identical devices: each call computes what the primary
// would, its result is copied to the primary, and the primary combines and sums the results in
// the single-device order. Reference encoding, conditions, the scheduler and decoding run on
// the primary. The Bundles must outlive the Generator.
class Generator {
 public:
  explicit Generator(const Bundle& bundle) : replicas_{&bundle} {}
  explicit Generator(std::vector<const Bundle*> replicas) : replicas_(std::move(replicas)) {}

  Result<ReferenceFeatures> encode_reference(const at::Tensor& reference, const at::Tensor& reference_clip) const;

  // Denoise; returns latents [1,4,T,h,w] float32 on the device. `noise` undefined = seeded.
  Result<at::Tensor> sample(const ReferenceFeatures& reference, ConditionSource& conditions,
                            const SamplingSettings& settings, const at::Tensor& noise = {},
                            GenerationStats* stats = nullptr) const;

  // Decode latents [1,4,T,h,w] in chunks of `chunk` frames into `sink` (called in frame order,
  // from this thread, also when the chunks are decoded on several replicas).
  Status decode(const at::Tensor& latents, const FrameSink& sink, int chunk = 8) const;

  // encode_reference + sample + decode. `sink` may be empty (latents only).
  Result<GenerationOutput> generate(const GenerationInputs& inputs, const SamplingSettings& settings,
                                    const FrameSink& sink) const;

  // Seeded standard-normal noise [1,4,T,h,w], float32 on the CPU (a CPU generator, so the same
  // seed gives the same noise on every device; move it afterwards).
  static at::Tensor make_noise(uint64_t seed, int64_t frames, int64_t h, int64_t w);

  const std::vector<const Bundle*>& replicas() const { return replicas_; }

 private:
  // An Error unless there is at least one replica and all are the same bundle in one dtype.
  Status check_replicas() const;
  const Bundle& primary() const { return *replicas_.front(); }

  std::vector<const Bundle*> replicas_;
};

// Converts an exception thrown by LibTorch during `stage` into an actionable Error.
Error torch_error(const std::exception& e, const std::string& stage);

}  // namespace standin::diffusion
