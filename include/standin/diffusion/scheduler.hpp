#pragma once
// Noise schedulers, numerically compatible with diffusers' DDIMScheduler (eta 0) and
// DPMSolverMultistepScheduler (dpmsolver++, order 2, midpoint) — see docs/SAMPLING.md.
//
// Schedule constants are computed with float32 torch ops in the same order as diffusers, so the
// C++ and Python sides agree to the last bit on the same machine. Step math runs on whatever
// device/dtype the tensors have (the generator keeps latents in float32).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json_fwd.hpp>

#include "standin/core/error.hpp"

namespace standin::diffusion {

enum class SamplerKind { ddim = 0, dpmpp_2m = 1 };
enum class PredictionType { epsilon, v_prediction };
enum class TimestepSpacing { trailing, leading, linspace };
// dpmpp_2m: what the last sigma is. diffusers >= 0.26 default: zero (the final step returns x̂0).
enum class FinalSigma { zero, sigma_min };

Result<SamplerKind> parse_sampler(const std::string& name);  // "ddim" | "dpmpp_2m" (also "dpm++2m")
const char* to_string(SamplerKind kind);
// "linear" | "scaled_linear" (diffusers' names); anything else is a usage error.
Status check_beta_schedule(const std::string& name);

struct SchedulerConfig {
  int num_train_timesteps = 1000;
  double beta_start = 0.00085;
  double beta_end = 0.012;
  // "scaled_linear" | "linear". Bundles record what their checkpoint's authors sample with
  // (Moore-AnimateAnyone: linear, MusePose: scaled_linear; docs/BUNDLE.md).
  std::string beta_schedule = "scaled_linear";
  PredictionType prediction_type = PredictionType::v_prediction;
  bool rescale_betas_zero_snr = true;
  TimestepSpacing timestep_spacing = TimestepSpacing::trailing;
  int steps_offset = 1;
  bool set_alpha_to_one = true;           // DDIM: alpha_prev past the start
  FinalSigma final_sigma = FinalSigma::zero;
  bool lower_order_final = true;          // DPM: first/second order near the end when steps < 15

  // Fills from model.json's "scheduler" object; refuses values we do not implement.
  static Result<SchedulerConfig> from_json(const nlohmann::json& scheduler_object);
};

// ᾱ for every training timestep (float32), after the zero-SNR rescale when configured.
// `for_dpm` applies diffusers' DPM tweak ᾱ_T = 2^-24 under zero SNR (DDIM keeps 0).
std::vector<float> alphas_cumprod(const SchedulerConfig& config, bool for_dpm = false);

// Inference timesteps, descending, per config.timestep_spacing (numpy rounding: half to even).
// DDIM's rule; dpm_inference_timesteps is diffusers' DPMSolverMultistepScheduler rule (the same
// for "trailing"; linspace/leading place steps + 1 points and drop the last).
Result<std::vector<int64_t>> inference_timesteps(const SchedulerConfig& config, int steps);
Result<std::vector<int64_t>> dpm_inference_timesteps(const SchedulerConfig& config, int steps);

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  static Result<std::unique_ptr<Scheduler>> create(SamplerKind kind, const SchedulerConfig& config,
                                                   int steps);

  const std::vector<int64_t>& timesteps() const { return timesteps_; }
  int num_steps() const { return static_cast<int>(timesteps_.size()); }
  // Initial latents = noise * init_noise_sigma (1.0 for both samplers).
  double init_noise_sigma() const { return 1.0; }
  // One update. Call with step_index = 0, 1, ... in order (multistep solvers keep history);
  // model_output is the (guided) prediction for timesteps()[step_index].
  virtual at::Tensor step(const at::Tensor& model_output, int step_index,
                          const at::Tensor& sample) = 0;
  // Forget multistep history (to sample again with the same schedule).
  virtual void reset() {}
  // Multistep history, for resuming a run after `steps_done` steps (--cache). Single-step
  // samplers have none.
  virtual std::vector<at::Tensor> history() const { return {}; }
  virtual void restore(const std::vector<at::Tensor>& history, int steps_done) {}

 protected:
  SchedulerConfig config_;
  std::vector<int64_t> timesteps_;
};

class DdimScheduler final : public Scheduler {
 public:
  DdimScheduler(const SchedulerConfig& config, std::vector<int64_t> timesteps);
  at::Tensor step(const at::Tensor& model_output, int step_index, const at::Tensor& sample) override;

 private:
  std::vector<float> alphas_cumprod_;
  float final_alpha_cumprod_;
  int step_ratio_;
};

class DpmSolver2MScheduler final : public Scheduler {
 public:
  DpmSolver2MScheduler(const SchedulerConfig& config, std::vector<int64_t> timesteps);
  at::Tensor step(const at::Tensor& model_output, int step_index, const at::Tensor& sample) override;
  void reset() override;
  std::vector<at::Tensor> history() const override;
  void restore(const std::vector<at::Tensor>& history, int steps_done) override;
  const std::vector<float>& sigmas() const { return sigmas_; }

 private:
  std::vector<float> sigmas_;  // steps + 1 entries
  at::Tensor previous_x0_;     // data prediction of the previous step
  int lower_order_nums_ = 0;
};

}  // namespace standin::diffusion
