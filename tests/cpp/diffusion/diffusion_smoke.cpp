// A manual smoke/timing tool for the diffusion stage (not a CTest test): loads a bundle on a
// device/dtype, generates random conditions and runs the generator twice (the second run is the
// timed one), printing stage times and checking finiteness.
//   diffusion_smoke BUNDLE_DIR [cpu|cuda[:N]] [fp32|fp16|bf16] [frames] [steps] [window] [overlap]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <torch/torch.h>

#include "standin/core/progress.hpp"
#include "standin/diffusion/generator.hpp"
#include "standin/diffusion/torch_compat.hpp"
#include "tiny_bundle.hpp"

using namespace standin;
using namespace standin::diffusion;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s BUNDLE [device] [dtype] [frames] [steps] [window] [overlap]\n", argv[0]);
    return 2;
  }
  set_progress_enabled(false);
  const std::string dir = argv[1];
  const std::string device = argc > 2 ? argv[2] : "cpu";
  std::optional<DType> dtype;
  if (argc > 3) {
    auto d = parse_dtype(argv[3]);
    if (!d.ok()) return std::fprintf(stderr, "%s\n", d.error().message.c_str()), 2;
    dtype = d.value();
  }
  const int64_t T = argc > 4 ? std::atoll(argv[4]) : 20;
  const auto t0 = std::chrono::steady_clock::now();
  auto bundle = Bundle::load(dir, DeviceSpec{device}, dtype);
  if (!bundle.ok()) return std::fprintf(stderr, "load: %s\n", bundle.error().message.c_str()), int(bundle.error().code);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto& c = bundle->config();
  SamplingSettings s = SamplingSettings::from_bundle(c);
  if (argc > 5) s.steps = std::atoi(argv[5]);
  if (argc > 6) s.window = std::atoi(argv[6]);
  if (argc > 7) s.overlap = std::atoi(argv[7]);
  s.show_progress = false;
  auto cond = testing::make_conditions(T, c.height, c.width, c.clip_size, 1);
  Generator gen(bundle.value());
  GenerationOutput out;
  for (int run = 0; run < 2; ++run) {
    TensorConditionSource src(cond.environment, cond.mask, cond.pose, cond.objects);
    double frame_sum = 0;
    auto r = gen.generate({cond.reference, cond.reference_clip, &src, cond.noise}, s,
                          [&](int64_t, const at::Tensor& f) {
                            frame_sum += f.abs().sum().item<double>();
                            return Status::success();
                          });
    if (!r.ok()) return std::fprintf(stderr, "generate: %s\n", r.error().message.c_str()), int(r.error().code);
    out = std::move(r).value();
    const auto& st = out.stats;
    std::printf("run %d: %s %s %lldx%dx%d, %d windows x %d steps: reference %.3fs conditions %.3fs denoise %.3fs "
                "decode %.3fs (%.4f s/frame); latents finite %d, |frames| sum %.3f\n",
                run, device.c_str(), c10::toString(bundle->dtype()), static_cast<long long>(T), c.width, c.height,
                st.windows, st.steps, st.reference_s, st.conditions_s, st.denoise_s, st.decode_s,
                (st.reference_s + st.conditions_s + st.denoise_s + st.decode_s) / T,
                int(at::isfinite(out.latents).all().item<bool>()), frame_sum);
    std::fflush(stdout);
  }
  std::printf("load %.3fs; peak device memory %.1f MiB\n", load_s,
              bundle->device().is_cuda() ? compat::cuda_peak_allocated(bundle->device().index()) / 1048576.0 : 0.0);
  std::fflush(stdout);
  // For comparisons across devices: save latents.
  if (const char* path = std::getenv("SMOKE_SAVE")) {
    c10::Dict<std::string, at::Tensor> d;
    d.insert("latents", out.latents.cpu());
    auto bytes = compat::pickle_save(d);
    FILE* f = std::fopen(path, "wb");
    if (f) std::fwrite(bytes.data(), 1, bytes.size(), f), std::fclose(f);
  }
  return 0;
}
