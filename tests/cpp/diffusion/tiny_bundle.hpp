#pragma once
// Locating the tiny test bundle: $STANDIN_TINY_BUNDLE, else <build>/models/tiny (made by the
// CTest fixture `tiny_bundle`; exported here on first use when the test runs outside CTest).
#include <cstdlib>
#include <filesystem>
#include <string>

namespace standin::diffusion::testing {

inline std::string python() { return "/usr/bin/python3"; }

inline std::string tiny_bundle_dir() {
  if (const char* env = std::getenv("STANDIN_TINY_BUNDLE")) return env;
  const std::string dir = std::string(STANDIN_BINARY_DIR) + "/models/tiny";
  if (!std::filesystem::exists(dir + "/model.json")) {
    const std::string cmd = python() + " " + STANDIN_SOURCE_DIR + "/scripts/export_bundle.py --config tiny --out " + dir +
                            " > " + STANDIN_BINARY_DIR + "/export_tiny.log 2>&1";
    if (std::system(cmd.c_str()) != 0) return "";
  }
  return dir;
}

}  // namespace standin::diffusion::testing

#include <torch/torch.h>

namespace standin::diffusion::testing {

// Random but structured conditions at H×W for T frames (a box-shaped character moving right).
struct Conditions {
  at::Tensor reference, reference_clip, environment, mask, pose, objects, noise;
};

inline Conditions make_conditions(int64_t T, int64_t H, int64_t W, int64_t clip, uint64_t seed, bool objects = true) {
  auto g = at::detail::createCPUGenerator(seed);
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  Conditions c;
  auto yy = torch::linspace(-1, 1, H).view({1, 1, H, 1});
  auto xx = torch::linspace(-1, 1, W).view({1, 1, 1, W});
  auto tt = torch::linspace(0, 1, T).view({T, 1, 1, 1});
  auto cx = tt - 0.5;
  c.mask = (((xx - cx).abs() < 0.3) & (yy.abs() < 0.6)).to(at::kFloat).expand({T, 1, H, W}).contiguous();
  c.environment = ((at::rand({T, 3, H, W}, g, f32) * 2 - 1) * (1 - c.mask)).contiguous();
  c.pose = at::zeros({T, 3, H, W}, f32);
  c.pose.select(1, 0).copy_((((xx - cx).abs() < 0.05) & (yy.abs() < 0.5)).to(at::kFloat).squeeze(1));
  c.pose.select(1, 1).copy_((((yy + 0.2).abs() < 0.05) & ((xx - cx).abs() < 0.25)).to(at::kFloat).squeeze(1));
  c.reference = at::rand({1, 3, H, W}, g, f32) * 2 - 1;
  c.reference_clip = at::randn({1, 3, clip, clip}, g, f32);
  if (objects) c.objects = ((at::rand({T, 3, H, W}, g, f32) * 2 - 1) * (xx > 0.6).to(at::kFloat)).contiguous();
  c.noise = at::randn({1, 4, T, H / 8, W / 8}, g, f32);
  return c;
}

}  // namespace standin::diffusion::testing
