// C++ schedulers against scripts/standin_model/scheduler.py (the oracle's), over samplers,
// spacings, prediction types and step counts: same timesteps, same trajectory.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "standin/diffusion/scheduler.hpp"
#include "tiny_bundle.hpp"

namespace standin::diffusion {
namespace {

std::string run(const std::string& cmd) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  if (!p) return out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p.get())) > 0) out.append(buf.data(), n);
  return out;
}

TEST(SchedulerVsPython, TimestepsAndTrajectories) {
  const std::string script = std::string(STANDIN_SOURCE_DIR) + "/scripts/standin_model/scheduler.py";
  if (!std::filesystem::exists(script)) GTEST_SKIP() << "no " << script;
  const std::string py = R"PY(
import json, sys, torch
sys.path.insert(0, sys.argv[1])
from standin_model.scheduler import make_scheduler
out = []
for sampler in ["ddim", "dpmpp_2m"]:
    for spacing in ["trailing", "leading", "linspace"]:
        for pred in ["v_prediction", "epsilon"]:
            for zsnr in [True, False]:
                for steps in [1, 2, 3, 7, 16, 25]:
                    s = make_scheduler(sampler, {"timestep_spacing": spacing, "prediction_type": pred,
                                                 "rescale_betas_zero_snr": zsnr})
                    ts = s.set_timesteps(steps)
                    x = torch.linspace(-2, 2, 64)
                    for i, t in enumerate(ts):
                        x = s.step(torch.sin(x * 1.3 + i) * 0.8, t, x)
                    out.append({"sampler": sampler, "spacing": spacing, "pred": pred, "zsnr": zsnr,
                                "steps": steps, "timesteps": ts, "x": x.tolist()})
print(json.dumps(out))
)PY";
  const std::string tmp = std::string(STANDIN_BINARY_DIR) + "/scheduler_oracle.py";
  { std::ofstream(tmp) << py; }
  const std::string text = run(testing::python() + " " + tmp + " " + STANDIN_SOURCE_DIR + "/scripts");
  nlohmann::json cases;
  ASSERT_NO_THROW(cases = nlohmann::json::parse(text)) << text.substr(0, 500);
  ASSERT_GT(cases.size(), 100u);
  float worst = 0;
  for (const auto& c : cases) {
    SchedulerConfig cfg;
    const std::string spacing = c["spacing"];
    cfg.timestep_spacing = spacing == "trailing" ? TimestepSpacing::trailing
                           : spacing == "leading" ? TimestepSpacing::leading
                                                  : TimestepSpacing::linspace;
    cfg.prediction_type = c["pred"] == "epsilon" ? PredictionType::epsilon : PredictionType::v_prediction;
    cfg.rescale_betas_zero_snr = c["zsnr"];
    const auto kind = c["sampler"] == "ddim" ? SamplerKind::ddim : SamplerKind::dpmpp_2m;
    auto s = Scheduler::create(kind, cfg, c["steps"]).value();
    const std::string label = c["sampler"].get<std::string>() + " " + spacing + " " + c["pred"].get<std::string>() +
                              (cfg.rescale_betas_zero_snr ? " zsnr " : " ") + std::to_string(c["steps"].get<int>());
    ASSERT_EQ(s->timesteps(), c["timesteps"].get<std::vector<int64_t>>()) << label;
    auto x = torch::linspace(-2, 2, 64);
    for (int i = 0; i < s->num_steps(); ++i) x = s->step(torch::sin(x * 1.3 + i) * 0.8, i, x);
    const auto want = torch::tensor(c["x"].get<std::vector<float>>());
    const float err = (x - want).abs().max().item<float>();
    worst = std::max(worst, err);
    EXPECT_LE(err, 1e-6) << label;
  }
  std::printf("[scheduler vs python] %zu cases, worst max-abs %.3g\n", cases.size(), worst);
}

}  // namespace
}  // namespace standin::diffusion
