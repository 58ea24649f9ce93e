#include "standin/diffusion/scheduler.hpp"

#include <climits>
#include <cmath>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace standin::diffusion {

Result<SamplerKind> parse_sampler(const std::string& name) {
  if (name == "ddim") return SamplerKind::ddim;
  if (name == "dpmpp_2m" || name == "dpm++2m" || name == "dpmpp-2m") return SamplerKind::dpmpp_2m;
  return Error::usage("unknown sampler '" + name + "' (expected ddim or dpmpp_2m)");
}

const char* to_string(SamplerKind kind) { return kind == SamplerKind::ddim ? "ddim" : "dpmpp_2m"; }

Status check_beta_schedule(const std::string& name) {
  if (name == "linear" || name == "scaled_linear") return Status::success();
  return Error::usage("unknown beta schedule '" + name + "' (expected linear or scaled_linear)");
}

namespace {
// json::get<int>() on a number outside int's range wraps (integers) or is undefined (floats).
bool fits_int(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(INT_MAX);
  if (v.is_number_integer()) return v.get<int64_t>() >= INT_MIN && v.get<int64_t>() <= INT_MAX;
  if (v.is_number_float()) return v.get<double>() >= INT_MIN && v.get<double>() <= INT_MAX;
  return true;  // not a number: get<int>() throws type_error, reported below
}
}  // namespace

Result<SchedulerConfig> SchedulerConfig::from_json(const nlohmann::json& j) {
  SchedulerConfig c;
  try {
    if (!j.is_object()) return Error::model("model.json: \"scheduler\" must be an object");
    for (const char* key : {"num_train_timesteps", "steps_offset"})
      if (j.contains(key) && !fits_int(j.at(key)))
        return Error::model(std::string("model.json: scheduler.") + key + " is out of range");
    c.num_train_timesteps = j.value("num_train_timesteps", c.num_train_timesteps);
    c.beta_start = j.value("beta_start", c.beta_start);
    c.beta_end = j.value("beta_end", c.beta_end);
    c.beta_schedule = j.value("beta_schedule", c.beta_schedule);
    const std::string pred = j.value("prediction_type", std::string("v_prediction"));
    if (pred == "v_prediction") c.prediction_type = PredictionType::v_prediction;
    else if (pred == "epsilon") c.prediction_type = PredictionType::epsilon;
    else return Error::model("model.json: scheduler.prediction_type '" + pred + "' is not supported (epsilon, v_prediction)");
    c.rescale_betas_zero_snr = j.value("rescale_betas_zero_snr", c.rescale_betas_zero_snr);
    const std::string spacing = j.value("timestep_spacing", std::string("trailing"));
    if (spacing == "trailing") c.timestep_spacing = TimestepSpacing::trailing;
    else if (spacing == "leading") c.timestep_spacing = TimestepSpacing::leading;
    else if (spacing == "linspace") c.timestep_spacing = TimestepSpacing::linspace;
    else return Error::model("model.json: scheduler.timestep_spacing '" + spacing + "' is not supported");
    c.steps_offset = j.value("steps_offset", c.steps_offset);
    c.set_alpha_to_one = j.value("set_alpha_to_one", c.set_alpha_to_one);
    if (j.value("clip_sample", false))
      return Error::model("model.json: scheduler.clip_sample=true is not supported");
    const std::string final_sigma = j.value("final_sigmas_type", std::string("zero"));
    if (final_sigma == "zero") c.final_sigma = FinalSigma::zero;
    else if (final_sigma == "sigma_min") c.final_sigma = FinalSigma::sigma_min;
    else return Error::model("model.json: scheduler.final_sigmas_type '" + final_sigma + "' is not supported");
    c.lower_order_final = j.value("lower_order_final", c.lower_order_final);
  } catch (const nlohmann::json::exception& e) {
    return Error::model(std::string("model.json: bad scheduler entry: ") + e.what());
  }
  if (!check_beta_schedule(c.beta_schedule).ok())
    return Error::model("model.json: scheduler.beta_schedule '" + c.beta_schedule +
                        "' is not supported (scaled_linear, linear)");
  if (c.num_train_timesteps < 2) return Error::model("model.json: scheduler.num_train_timesteps must be >= 2");
  return c;
}

std::vector<float> alphas_cumprod(const SchedulerConfig& config, bool for_dpm) {
  // Same ops, same order, same dtype as diffusers so values agree bit for bit.
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  const int64_t n = config.num_train_timesteps;
  torch::Tensor betas;
  if (config.beta_schedule == "linear")
    betas = torch::linspace(config.beta_start, config.beta_end, n, f32);
  else
    betas = torch::linspace(std::sqrt(config.beta_start), std::sqrt(config.beta_end), n, f32).pow(2);
  if (config.rescale_betas_zero_snr) {
    auto alphas = 1.0 - betas;
    auto ac = torch::cumprod(alphas, 0);
    auto s = ac.sqrt();
    auto s0 = s[0].clone();
    auto sT = s[-1].clone();
    s -= sT;
    s *= s0 / (s0 - sT);
    auto ab = s.pow(2);
    auto a = ab.slice(0, 1) / ab.slice(0, 0, n - 1);
    a = torch::cat({ab.slice(0, 0, 1), a});
    betas = 1 - a;
  }
  auto ac = torch::cumprod(1.0 - betas, 0).contiguous();
  std::vector<float> out(ac.data_ptr<float>(), ac.data_ptr<float>() + n);
  if (for_dpm && config.rescale_betas_zero_snr) out.back() = std::ldexp(1.0f, -24);
  return out;
}

Result<std::vector<int64_t>> inference_timesteps(const SchedulerConfig& config, int steps) {
  const int n = config.num_train_timesteps;
  if (steps < 1 || steps > n)
    return Error::usage("steps must be in 1.." + std::to_string(n) + ", got " + std::to_string(steps));
  std::vector<int64_t> t(steps);
  switch (config.timestep_spacing) {
    case TimestepSpacing::trailing: {
      // np.round(np.arange(N, 0, -N/steps)) - 1; numpy arange computes start + i*step.
      const double ratio = static_cast<double>(n) / steps;
      for (int i = 0; i < steps; ++i) t[i] = static_cast<int64_t>(std::nearbyint(n + i * -ratio)) - 1;
      break;
    }
    case TimestepSpacing::leading: {
      const int ratio = n / steps;
      for (int i = 0; i < steps; ++i) t[i] = int64_t(steps - 1 - i) * ratio + config.steps_offset;
      break;
    }
    case TimestepSpacing::linspace: {
      // np.linspace(0, N-1, steps).round()[::-1]
      const double step = steps > 1 ? double(n - 1) / (steps - 1) : 0.0;
      for (int i = 0; i < steps; ++i) {
        const double v = (i == steps - 1 && steps > 1) ? double(n - 1) : i * step;
        t[steps - 1 - i] = static_cast<int64_t>(std::nearbyint(v));
      }
      break;
    }
  }
  for (auto v : t)
    if (v < 0 || v >= n)
      return Error::usage("timestep spacing gives timestep " + std::to_string(v) + " outside 0.." +
                          std::to_string(n - 1) + " for " + std::to_string(steps) + " steps");
  return t;
}

Result<std::vector<int64_t>> dpm_inference_timesteps(const SchedulerConfig& config, int steps) {
  const int n = config.num_train_timesteps;
  if (config.timestep_spacing == TimestepSpacing::trailing || steps < 1 || steps > n)
    return inference_timesteps(config, steps);
  // diffusers' DPMSolverMultistepScheduler: steps + 1 points, the last (0 / offset) dropped.
  std::vector<int64_t> t(steps);
  if (config.timestep_spacing == TimestepSpacing::linspace) {
    const double step = double(n - 1) / steps;  // np.linspace(0, N-1, steps+1)
    for (int i = 0; i <= steps; ++i) {
      const double v = i == steps ? double(n - 1) : i * step;
      if (i >= 1) t[steps - i] = static_cast<int64_t>(std::nearbyint(v));
    }
  } else {
    const int ratio = n / (steps + 1);
    for (int i = 1; i <= steps; ++i) t[steps - i] = int64_t(i) * ratio + config.steps_offset;
  }
  return t;
}

Result<std::unique_ptr<Scheduler>> Scheduler::create(SamplerKind kind, const SchedulerConfig& config,
                                                     int steps) {
  STANDIN_ASSIGN_OR_RETURN(auto t, kind == SamplerKind::ddim ? inference_timesteps(config, steps)
                                                             : dpm_inference_timesteps(config, steps));
  if (kind == SamplerKind::ddim) return std::unique_ptr<Scheduler>(new DdimScheduler(config, std::move(t)));
  return std::unique_ptr<Scheduler>(new DpmSolver2MScheduler(config, std::move(t)));
}

// ---------------------------------------------------------------- DDIM (eta = 0)

DdimScheduler::DdimScheduler(const SchedulerConfig& config, std::vector<int64_t> timesteps) {
  config_ = config;
  timesteps_ = std::move(timesteps);
  alphas_cumprod_ = alphas_cumprod(config, /*for_dpm=*/false);
  final_alpha_cumprod_ = config.set_alpha_to_one ? 1.0f : alphas_cumprod_[0];
  step_ratio_ = config.num_train_timesteps / static_cast<int>(timesteps_.size());
}

at::Tensor DdimScheduler::step(const at::Tensor& model_output, int step_index, const at::Tensor& sample) {
  TORCH_CHECK(step_index >= 0 && step_index < num_steps(), "DDIM step index out of range");
  // Coefficients in double from the float32 table (as diffusers / the Python oracle do).
  const int64_t t = timesteps_[step_index];
  const int64_t prev_t = t - step_ratio_;
  const double a_t = alphas_cumprod_[t];
  const double a_prev = prev_t >= 0 ? double(alphas_cumprod_[prev_t]) : double(final_alpha_cumprod_);
  const double b_t = 1.0 - a_t;
  at::Tensor x0, eps;
  if (config_.prediction_type == PredictionType::v_prediction) {
    x0 = std::sqrt(a_t) * sample - std::sqrt(b_t) * model_output;
    eps = std::sqrt(a_t) * model_output + std::sqrt(b_t) * sample;
  } else {
    // ᾱ_t may be exactly 0 under zero-SNR; 2^-24 only where we divide by it.
    x0 = (sample - std::sqrt(b_t) * model_output) / std::sqrt(std::max(a_t, std::ldexp(1.0, -24)));
    eps = model_output;
  }
  return std::sqrt(a_prev) * x0 + std::sqrt(1.0 - a_prev) * eps;  // eta = 0: no noise term
}

// ---------------------------------------------------------------- DPM-Solver++ 2M

DpmSolver2MScheduler::DpmSolver2MScheduler(const SchedulerConfig& config, std::vector<int64_t> timesteps) {
  config_ = config;
  timesteps_ = std::move(timesteps);
  const auto ac = alphas_cumprod(config, /*for_dpm=*/true);
  // sigmas = ((1 - ᾱ) / ᾱ) ** 0.5 in float32, sampled at the integer timesteps.
  sigmas_.reserve(timesteps_.size() + 1);
  for (auto t : timesteps_) sigmas_.push_back(std::sqrt((1.0f - ac[t]) / ac[t]));
  sigmas_.push_back(config.final_sigma == FinalSigma::zero ? 0.0f : std::sqrt((1.0f - ac[0]) / ac[0]));
}

std::vector<at::Tensor> DpmSolver2MScheduler::history() const {
  if (!previous_x0_.defined()) return {};
  return {previous_x0_};
}

void DpmSolver2MScheduler::restore(const std::vector<at::Tensor>& history, int steps_done) {
  previous_x0_ = history.empty() ? at::Tensor() : history.front();
  lower_order_nums_ = std::min(steps_done, 2);
}

void DpmSolver2MScheduler::reset() {
  previous_x0_ = at::Tensor();
  lower_order_nums_ = 0;
}

namespace {
struct AlphaSigma {
  double alpha, sigma, lambda;
};
AlphaSigma alpha_sigma(double sigma) {
  const double alpha = 1.0 / std::sqrt(sigma * sigma + 1.0);
  const double s = sigma * alpha;
  return {alpha, s, std::log(alpha) - std::log(s)};
}
}  // namespace

at::Tensor DpmSolver2MScheduler::step(const at::Tensor& model_output, int step_index,
                                      const at::Tensor& sample) {
  TORCH_CHECK(step_index >= 0 && step_index < num_steps(), "DPM-Solver step index out of range");
  if (step_index == 0) reset();
  const int n = num_steps();
  const bool lower_order_final =
      step_index == n - 1 &&
      ((config_.lower_order_final && n < 15) || config_.final_sigma == FinalSigma::zero);

  // Data prediction x̂0 at the current sigma (coefficients in double, as diffusers).
  const AlphaSigma s0 = alpha_sigma(sigmas_[step_index]);
  at::Tensor x0;
  if (config_.prediction_type == PredictionType::v_prediction)
    x0 = s0.alpha * sample - s0.sigma * model_output;
  else
    x0 = (sample - s0.sigma * model_output) / s0.alpha;

  const double sigma_next = sigmas_[step_index + 1];
  at::Tensor prev;
  if (lower_order_nums_ < 1 || lower_order_final) {
    if (sigma_next == 0.0) {
      prev = x0 * 1.0;  // α = 1, e^{-h} = 0: the step lands on x̂0
    } else {
      const AlphaSigma st = alpha_sigma(sigma_next);
      const double h = st.lambda - s0.lambda;
      prev = (st.sigma / s0.sigma) * sample - (st.alpha * (std::exp(-h) - 1.0)) * x0;
    }
  } else {
    // Order 2 is the maximum, so diffusers' lower_order_second changes nothing here.
    const AlphaSigma st = alpha_sigma(sigma_next);
    const AlphaSigma s1 = alpha_sigma(sigmas_[step_index - 1]);
    const double h = st.lambda - s0.lambda;
    const double h0 = s0.lambda - s1.lambda;
    const double r0 = h0 / h;
    const at::Tensor d1 = (1.0 / r0) * (x0 - previous_x0_);
    const double cc = st.alpha * (std::exp(-h) - 1.0);
    prev = (st.sigma / s0.sigma) * sample - cc * x0 - 0.5 * cc * d1;
  }
  previous_x0_ = x0;
  if (lower_order_nums_ < 2) ++lower_order_nums_;
  return prev;
}

}  // namespace standin::diffusion
