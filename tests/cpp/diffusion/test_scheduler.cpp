// Scheduler numbers: hand-derived identities + values from diffusers' formulas (float32).
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "standin/diffusion/scheduler.hpp"

namespace standin::diffusion {
namespace {

SchedulerConfig zsnr_v() { return SchedulerConfig{}; }  // defaults = Moore-AA v2 settings

TEST(Timesteps, TrailingMatchesDiffusers) {
  auto c = zsnr_v();
  EXPECT_EQ(inference_timesteps(c, 4).value(), (std::vector<int64_t>{999, 749, 499, 249}));
  EXPECT_EQ(inference_timesteps(c, 3).value(), (std::vector<int64_t>{999, 666, 332}));
  // 1000/16 = 62.5: np.round(937.5) = 938 (half to even) -> 937; 875 -> 874; 812.5 -> 812 -> 811
  auto t16 = inference_timesteps(c, 16).value();
  EXPECT_EQ(t16[0], 999);
  EXPECT_EQ(t16[1], 937);
  EXPECT_EQ(t16[2], 874);
  EXPECT_EQ(t16[3], 811);
  EXPECT_EQ(t16[15], 62 - 1);  // round(62.5) = 62 -> 61
  auto t25 = inference_timesteps(c, 25).value();
  EXPECT_EQ(t25.front(), 999);
  EXPECT_EQ(t25.back(), 39);
}

TEST(Timesteps, LeadingAndLinspace) {
  auto c = zsnr_v();
  c.timestep_spacing = TimestepSpacing::leading;
  EXPECT_EQ(inference_timesteps(c, 4).value(), (std::vector<int64_t>{751, 501, 251, 1}));
  c.timestep_spacing = TimestepSpacing::linspace;
  EXPECT_EQ(inference_timesteps(c, 4).value(), (std::vector<int64_t>{999, 666, 333, 0}));
  EXPECT_FALSE(inference_timesteps(c, 0).ok());
  EXPECT_FALSE(inference_timesteps(c, 1001).ok());
}

TEST(AlphasCumprod, ScaledLinearAndZeroSnr) {
  auto c = zsnr_v();
  c.rescale_betas_zero_snr = false;
  auto plain = alphas_cumprod(c);
  EXPECT_FLOAT_EQ(plain[0], 0.99915f);
  EXPECT_NEAR(plain[499], 0.27766946f, 1e-7);
  EXPECT_NEAR(plain[999], 0.0046600960f, 1e-9);
  c.rescale_betas_zero_snr = true;
  auto z = alphas_cumprod(c);
  EXPECT_FLOAT_EQ(z[0], plain[0]);  // first value unchanged
  EXPECT_EQ(z[999], 0.0f);          // terminal SNR exactly zero in DDIM
  EXPECT_NEAR(z[249], 0.65418869f, 1e-6);
  EXPECT_NEAR(z[499], 0.24235895f, 1e-6);
  EXPECT_NEAR(z[749], 0.03317144f, 1e-7);
  auto zd = alphas_cumprod(c, /*for_dpm=*/true);
  EXPECT_EQ(zd[999], std::ldexp(1.0f, -24));
  EXPECT_EQ(zd[998], z[998]);
}

TEST(Ddim, VPredictionStepByHand) {
  auto c = zsnr_v();
  auto s = Scheduler::create(SamplerKind::ddim, c, 4).value();
  const auto ac = alphas_cumprod(c);
  auto x = torch::full({2, 3}, 1.0f);
  auto v = torch::full({2, 3}, 0.5f);
  // t = 999: ᾱ = 0 -> x̂0 = -v, ε̂ = x; prev t = 749.
  auto out = s->step(v, 0, x);
  const float expect = std::sqrt(ac[749]) * -0.5f + std::sqrt(1.0f - ac[749]) * 1.0f;
  EXPECT_NEAR(out[0][0].item<float>(), expect, 1e-7);
  // Last step (t = 249 -> prev -1): ᾱ_prev = 1, result = x̂0 = √ᾱ x − √(1−ᾱ) v.
  out = s->step(v, 3, x);
  EXPECT_NEAR(out[1][2].item<float>(), std::sqrt(ac[249]) * 1.0f - std::sqrt(1 - ac[249]) * 0.5f, 1e-7);
}

TEST(Ddim, EpsilonStepByHand) {
  auto c = zsnr_v();
  c.prediction_type = PredictionType::epsilon;
  c.rescale_betas_zero_snr = false;
  auto s = Scheduler::create(SamplerKind::ddim, c, 4).value();
  const auto ac = alphas_cumprod(c);
  auto x = torch::full({1}, 0.3f);
  auto e = torch::full({1}, -0.2f);
  auto out = s->step(e, 1, x);  // t = 749 -> 499
  const float x0 = (0.3f - std::sqrt(1 - ac[749]) * -0.2f) / std::sqrt(ac[749]);
  EXPECT_NEAR(out.item<float>(), std::sqrt(ac[499]) * x0 + std::sqrt(1 - ac[499]) * -0.2f, 1e-6);
}

// A model that knows the data is the point c predicts exactly; every sampler must land on c.
void expect_converges_to_point(SamplerKind kind, PredictionType pred, int steps) {
  auto c = zsnr_v();
  c.prediction_type = pred;
  auto s = Scheduler::create(kind, c, steps).value();
  const auto ac = alphas_cumprod(c, kind == SamplerKind::dpmpp_2m);
  const float target = 0.7f;
  torch::manual_seed(0);
  auto x = torch::randn({64});
  for (int i = 0; i < s->num_steps(); ++i) {
    const float a = ac[s->timesteps()[i]];
    const float sa = std::sqrt(a), sb = std::sqrt(1 - a);
    // x = sa*c + sb*eps
    auto eps = (x - sa * target) / sb;
    auto out = pred == PredictionType::v_prediction ? sa * eps - sb * torch::full_like(x, target) : eps;
    x = s->step(out, i, x);
  }
  EXPECT_LT((x - target).abs().max().item<float>(), 2e-5) << to_string(kind) << " steps " << steps;
}

TEST(Samplers, ExactModelLandsOnTheData) {
  for (int steps : {1, 2, 3, 4, 10, 25}) {
    expect_converges_to_point(SamplerKind::ddim, PredictionType::v_prediction, steps);
    expect_converges_to_point(SamplerKind::dpmpp_2m, PredictionType::v_prediction, steps);
  }
  expect_converges_to_point(SamplerKind::ddim, PredictionType::epsilon, 10);
}

TEST(DpmSolver, SigmasAndFirstOrderStep) {
  auto c = zsnr_v();
  auto s = std::make_unique<DpmSolver2MScheduler>(c, inference_timesteps(c, 4).value());
  const auto ac = alphas_cumprod(c, true);
  ASSERT_EQ(s->sigmas().size(), 5u);
  EXPECT_NEAR(s->sigmas()[0], 4096.0f, 0.01f);  // sqrt((1 - 2^-24) / 2^-24)
  EXPECT_EQ(s->sigmas()[4], 0.0f);
  // First step is first order: x_t = (σ_t/σ_s) x − α_t (e^{−h} − 1) x̂0
  auto x = torch::full({1}, 1.0f);
  auto v = torch::full({1}, 0.25f);
  auto out = s->step(v, 0, x);
  auto as = [](float sigma) { float a = 1 / std::sqrt(sigma * sigma + 1); return std::make_pair(a, sigma * a); };
  auto [a0, s0] = as(s->sigmas()[0]);
  auto [a1, s1] = as(s->sigmas()[1]);
  const float x0 = a0 * 1.0f - s0 * 0.25f;
  const float h = (std::log(a1) - std::log(s1)) - (std::log(a0) - std::log(s0));
  EXPECT_NEAR(out.item<float>(), (s1 / s0) * 1.0f - (a1 * (std::exp(-h) - 1.0f)) * x0, 1e-6);
  (void)ac;
}

TEST(SchedulerConfig, FromJson) {
  auto j = nlohmann::json::parse(R"({"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
      "beta_schedule": "scaled_linear", "prediction_type": "epsilon", "rescale_betas_zero_snr": false,
      "timestep_spacing": "leading", "steps_offset": 1, "clip_sample": false})");
  auto c = SchedulerConfig::from_json(j);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->prediction_type, PredictionType::epsilon);
  EXPECT_EQ(c->timestep_spacing, TimestepSpacing::leading);
  EXPECT_FALSE(c->rescale_betas_zero_snr);
  j["prediction_type"] = "sample";
  EXPECT_EQ(SchedulerConfig::from_json(j).error().code, ExitCode::model);
  j["prediction_type"] = "epsilon";
  j["beta_schedule"] = "squaredcos_cap_v2";
  EXPECT_EQ(SchedulerConfig::from_json(j).error().code, ExitCode::model);
}

// ---------------------------------------------------------------- both beta schedules (issue 12)
// Expected values from diffusers' documented definitions evaluated here in double:
// linear β_i = β0 + (β1 − β0)·i/(N−1); scaled_linear β_i = (√β0 + (√β1 − √β0)·i/(N−1))²;
// ᾱ = Π(1 − β); zero-SNR (Lin et al. 2023): √ᾱ shifted to end at 0, scaled to keep its start.
std::vector<double> alphas_cumprod_formula(const std::string& schedule, bool zero_snr) {
  const int n = 1000;
  const double b0 = 0.00085, b1 = 0.012;
  std::vector<double> ac(n);
  double prod = 1.0;
  for (int i = 0; i < n; ++i) {
    const double u = double(i) / (n - 1);
    const double beta = schedule == "linear" ? b0 + (b1 - b0) * u
                                             : std::pow(std::sqrt(b0) + (std::sqrt(b1) - std::sqrt(b0)) * u, 2);
    prod *= 1.0 - beta;
    ac[i] = prod;
  }
  if (zero_snr) {
    const double s0 = std::sqrt(ac.front()), sT = std::sqrt(ac.back());
    for (auto& a : ac) a = std::pow((std::sqrt(a) - sT) * s0 / (s0 - sT), 2);
  }
  return ac;
}

TEST(BetaSchedules, AlphasCumprodMatchTheFormulas) {
  for (const std::string schedule : {"linear", "scaled_linear"}) {
    for (bool zero_snr : {false, true}) {
      auto c = zsnr_v();
      c.beta_schedule = schedule;
      c.rescale_betas_zero_snr = zero_snr;
      const auto ours = alphas_cumprod(c);
      const auto ref = alphas_cumprod_formula(schedule, zero_snr);
      double worst = 0;
      for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(double(ours[i]) - ref[i]));
      EXPECT_LT(worst, 2e-6) << schedule << " zero_snr " << zero_snr;
      EXPECT_NEAR(ours[0], 0.99915, 1e-6);  // 1 − β0 for both
    }
  }
  auto lin = zsnr_v();
  lin.beta_schedule = "linear";
  // The two schedules under zero-SNR at t = 500 (issue 12): 0.1415 (linear) vs 0.2410.
  EXPECT_NEAR(alphas_cumprod(lin)[500], 0.14151, 1e-5);
  EXPECT_NEAR(alphas_cumprod(zsnr_v())[500], 0.24102, 1e-5);
  lin.rescale_betas_zero_snr = false;
  EXPECT_NEAR(alphas_cumprod(lin)[999], 0.0015790, 1e-6);
}

TEST(BetaSchedules, DdimStepsOfTheAuthorsDefaults) {
  // Moore-AA samples 30 trailing DDIM steps with the linear schedule, MusePose 20 with
  // scaled_linear: t_i = round(N − i·N/steps) − 1 (half to even), ᾱ_prev = ᾱ[t − N/steps] or 1.
  for (const auto& [schedule, steps] : std::vector<std::pair<std::string, int>>{{"linear", 30}, {"scaled_linear", 20}}) {
    auto c = zsnr_v();
    c.beta_schedule = schedule;
    const auto t = inference_timesteps(c, steps).value();
    ASSERT_EQ(t.size(), size_t(steps));
    for (int i = 0; i < steps; ++i) EXPECT_EQ(t[i], int64_t(std::nearbyint(1000.0 - i * 1000.0 / steps)) - 1);
    if (steps == 30) EXPECT_EQ(std::vector<int64_t>(t.begin(), t.begin() + 4), (std::vector<int64_t>{999, 966, 932, 899}));
    if (steps == 20) EXPECT_EQ(t.back(), 49);
    const auto ref = alphas_cumprod_formula(schedule, true);
    auto s = Scheduler::create(SamplerKind::ddim, c, steps).value();
    // epsilon-free check of one v-step: x_prev = √ᾱ_prev·x̂0 + √(1−ᾱ_prev)·ε̂ with x = 1, v = 0.
    const int i = steps / 2;
    const int64_t prev = t[i] - 1000 / steps;
    const double a = ref[t[i]], ap = prev >= 0 ? ref[prev] : 1.0;
    const auto out = s->step(torch::zeros({1}), i, torch::ones({1})).item<float>();
    EXPECT_NEAR(out, std::sqrt(ap) * std::sqrt(a) + std::sqrt(1 - ap) * std::sqrt(1 - a), 2e-6) << schedule;
  }
}

TEST(BetaSchedules, NamesAndJson) {
  EXPECT_TRUE(check_beta_schedule("linear").ok());
  EXPECT_TRUE(check_beta_schedule("scaled_linear").ok());
  EXPECT_EQ(check_beta_schedule("cosine").error().code, ExitCode::usage);
  auto j = nlohmann::json::parse(R"({"beta_schedule": "linear"})");
  EXPECT_EQ(SchedulerConfig::from_json(j).value().beta_schedule, "linear");
}

TEST(Sampler, ParseNames) {
  EXPECT_EQ(parse_sampler("ddim").value(), SamplerKind::ddim);
  EXPECT_EQ(parse_sampler("dpmpp_2m").value(), SamplerKind::dpmpp_2m);
  EXPECT_FALSE(parse_sampler("euler").ok());
}

}  // namespace
}  // namespace standin::diffusion
