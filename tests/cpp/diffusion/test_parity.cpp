// Parity with the Python oracle (scripts/reference_pipeline.py): same conditions and noise,
// latents before decode and decoded frames must agree to max-abs 1e-4 (fp32, CPU), over a clip
// longer than two windows (T = 20, window 8, overlap 2 -> windows at 0, 6, 12).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <torch/torch.h>

#include "standin/core/progress.hpp"
#include "standin/diffusion/generator.hpp"
#include "standin/diffusion/torch_compat.hpp"
#include "tiny_bundle.hpp"

namespace fs = std::filesystem;

namespace standin::diffusion {
namespace {

struct Case {
  std::string name;
  SamplerKind sampler;
  int steps;
  double cfg;
  bool objects;
  std::string beta_schedule = {};  // per-run override (--beta-schedule on both sides); empty = model.json's
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

class Parity : public ::testing::TestWithParam<Case> {};

TEST_P(Parity, MatchesPythonOracle) {
  set_progress_enabled(false);
  const Case& pc = GetParam();
  const std::string bundle_dir = testing::tiny_bundle_dir();
  ASSERT_FALSE(bundle_dir.empty());
  auto loaded = Bundle::load(bundle_dir, DeviceSpec{"cpu"}, DType::fp32);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  const Bundle& bundle = loaded.value();
  const auto& cfg = bundle.config();

  const int64_t T = 20;
  auto c = testing::make_conditions(T, cfg.height, cfg.width, cfg.clip_size, 7, pc.objects);
  SamplingSettings s = SamplingSettings::from_bundle(cfg);
  s.steps = pc.steps;
  s.cfg = pc.cfg;
  s.window = 8;
  s.overlap = 2;
  s.sampler = pc.sampler;
  s.beta_schedule = pc.beta_schedule;
  s.show_progress = false;

  // conds.pt for the oracle
  const fs::path work = fs::path(STANDIN_BINARY_DIR) / ("parity_" + pc.name);
  fs::create_directories(work);
  c10::Dict<std::string, at::Tensor> d;
  d.insert("reference", c.reference);
  d.insert("reference_clip", c.reference_clip);
  d.insert("environment", c.environment);
  d.insert("mask", c.mask);
  d.insert("pose", c.pose);
  d.insert("noise", c.noise);
  if (pc.objects) d.insert("object", c.objects);
  d.insert("steps", torch::tensor(int64_t(s.steps)));
  d.insert("cfg", torch::tensor(s.cfg, torch::kFloat64));
  d.insert("window", torch::tensor(int64_t(s.window)));
  d.insert("overlap", torch::tensor(int64_t(s.overlap)));
  d.insert("sampler", torch::tensor(int64_t(static_cast<int>(s.sampler))));
  write_bytes((work / "conds.pt").string(), compat::pickle_save(d));
  const std::string result = (work / "result.pt").string();
  fs::remove(result);
  const std::string cmd = testing::python() + " " + STANDIN_SOURCE_DIR + "/scripts/reference_pipeline.py --bundle " +
                          bundle_dir + " --inputs " + (work / "conds.pt").string() + " --out " + result +
                          (pc.beta_schedule.empty() ? "" : " --beta-schedule " + pc.beta_schedule) + " --quiet > " +
                          (work / "oracle.log").string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "oracle failed; see " << (work / "oracle.log").string();

  // C++
  TensorConditionSource src(c.environment, c.mask, c.pose, pc.objects ? c.objects : at::Tensor());
  at::Tensor frames = at::empty({T, 3, cfg.height, cfg.width});
  auto out = Generator(bundle).generate({c.reference, c.reference_clip, &src, c.noise}, s,
                                        [&](int64_t first, const at::Tensor& f) {
                                          frames.slice(0, first, first + f.size(0)).copy_(f);
                                          return Status::success();
                                        });
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->stats.windows, 3);

  const auto py = compat::pickle_load(read_bytes(result)).toGenericDict();
  const at::Tensor py_latents = py.at("latents").toTensor();
  const at::Tensor py_frames = py.at("frames").toTensor();
  ASSERT_EQ(py_latents.sizes(), out->latents.sizes());
  ASSERT_EQ(py_frames.sizes(), frames.sizes());
  const float lat_err = (py_latents - out->latents.cpu()).abs().max().item<float>();
  const float frame_err = (py_frames - frames).abs().max().item<float>();
  std::printf("[parity %s] latents max-abs %.3g (range %.3g), frames max-abs %.3g\n", pc.name.c_str(), lat_err,
              py_latents.abs().max().item<float>(), frame_err);
  EXPECT_LE(lat_err, 1e-4);
  EXPECT_LE(frame_err, 1e-4);
  // The comparison means something: the result moved away from the noise.
  EXPECT_GT((py_latents - c.noise).abs().max().item<float>(), 0.1);
}

INSTANTIATE_TEST_SUITE_P(Tiny, Parity,
                         ::testing::Values(Case{"ddim", SamplerKind::ddim, 3, 3.5, true},
                                           Case{"dpmpp_2m", SamplerKind::dpmpp_2m, 4, 3.5, true},
                                           Case{"ddim_nocfg_noobj", SamplerKind::ddim, 3, 1.0, false},
                                           Case{"ddim_linear", SamplerKind::ddim, 3, 3.5, false, "linear"}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace standin::diffusion
