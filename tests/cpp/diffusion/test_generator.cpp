// Generator behaviour on the tiny bundle (C++ only): determinism, streaming, caching, errors.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "standin/core/progress.hpp"
#include "standin/diffusion/generator.hpp"
#include "tiny_bundle.hpp"

namespace standin::diffusion {
namespace {

class TinyGenerator : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    set_progress_enabled(false);
    const auto dir = testing::tiny_bundle_dir();
    ASSERT_FALSE(dir.empty());
    auto b = Bundle::load(dir, DeviceSpec{"cpu"});
    ASSERT_TRUE(b.ok()) << b.error().message;
    bundle_ = new Bundle(std::move(b).value());
  }
  static void TearDownTestSuite() {
    delete bundle_;
    bundle_ = nullptr;
  }
  static SamplingSettings settings() {
    SamplingSettings s = SamplingSettings::from_bundle(bundle_->config());
    s.steps = 2;
    s.window = 4;
    s.overlap = 1;
    s.show_progress = false;
    return s;
  }
  static constexpr int64_t T = 7, H = 64, W = 48;
  static Bundle* bundle_;
};
Bundle* TinyGenerator::bundle_ = nullptr;

TEST_F(TinyGenerator, SameSeedSameOutputAndStreamedDecode) {
  auto c = testing::make_conditions(T, H, W, bundle_->config().clip_size, 1);
  Generator gen(*bundle_);
  auto s = settings();
  s.seed = 42;
  s.vae_chunk = 3;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  at::Tensor frames = at::zeros({T, 3, H, W});
  auto run = [&](const SamplingSettings& st) {
    TensorConditionSource src(c.environment, c.mask, c.pose, c.objects);
    chunks.clear();
    auto out = gen.generate({c.reference, c.reference_clip, &src, {}}, st, [&](int64_t first, const at::Tensor& f) {
      chunks.emplace_back(first, f.size(0));
      EXPECT_EQ(f.device(), at::kCPU);
      EXPECT_LE(f.max().item<float>(), 1.0f);
      EXPECT_GE(f.min().item<float>(), -1.0f);
      frames.slice(0, first, first + f.size(0)).copy_(f);
      return Status::success();
    });
    EXPECT_TRUE(out.ok()) << out.error().message;
    return out.value();
  };
  auto a = run(s);
  const auto frames_a = frames.clone();
  EXPECT_EQ(chunks, (std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 3}, {6, 1}}));
  EXPECT_EQ(a.stats.windows, 2);
  EXPECT_EQ(a.stats.unet_calls, 4);
  EXPECT_TRUE(a.stats.pose_cached);
  auto b = run(s);
  EXPECT_TRUE(at::equal(a.latents, b.latents));
  EXPECT_TRUE(at::equal(frames_a, frames));
  s.seed = 43;
  auto d = run(s);
  EXPECT_FALSE(at::allclose(a.latents, d.latents));
}

TEST_F(TinyGenerator, PoseCacheOffGivesTheSameResult) {
  auto c = testing::make_conditions(T, H, W, bundle_->config().clip_size, 2);
  Generator gen(*bundle_);
  auto s = settings();
  TensorConditionSource src1(c.environment, c.mask, c.pose, c.objects);
  auto a = gen.generate({c.reference, c.reference_clip, &src1, c.noise}, s, nullptr);
  ASSERT_TRUE(a.ok()) << a.error().message;
  s.pose_cache_bytes = 0;
  TensorConditionSource src2(c.environment, c.mask, c.pose, c.objects);
  auto b = gen.generate({c.reference, c.reference_clip, &src2, c.noise}, s, nullptr);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_FALSE(b->stats.pose_cached);
  EXPECT_LT((a->latents - b->latents).abs().max().item<float>(), 1e-5);
}

TEST_F(TinyGenerator, CfgModesGiveTheSameResult) {
  // split (two B = 1 calls, the unconditional one without reference tokens) computes what
  // batched (one B = 2 call, reference masked with -inf for the unconditional half) computes.
  auto c = testing::make_conditions(T, H, W, bundle_->config().clip_size, 5);
  Generator gen(*bundle_);
  auto s = settings();
  s.cfg_mode = CfgMode::batched;
  TensorConditionSource src1(c.environment, c.mask, c.pose, c.objects);
  auto a = gen.generate({c.reference, c.reference_clip, &src1, c.noise}, s, nullptr);
  ASSERT_TRUE(a.ok()) << a.error().message;
  s.cfg_mode = CfgMode::split;
  TensorConditionSource src2(c.environment, c.mask, c.pose, c.objects);
  auto b = gen.generate({c.reference, c.reference_clip, &src2, c.noise}, s, nullptr);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(a->stats.unet_calls, b->stats.unet_calls);
  EXPECT_LT((a->latents - b->latents).abs().max().item<float>(), 1e-4);
  EXPECT_GT((a->latents - c.noise).abs().max().item<float>(), 0.1);
}

// --chain-frames (issue 13, long shots): windows one after another, each continuing the
// previous window's finished frames.
TEST_F(TinyGenerator, ChainedWindowsHoldTheMotionFrames) {
  constexpr int64_t kFrames = 10;
  auto c = testing::make_conditions(kFrames, H, W, bundle_->config().clip_size, 11);
  Generator gen(*bundle_);
  auto s = settings();
  s.window = 6;
  s.chain_frames = 2;  // windows [0, 6), [4, 10): the second holds frames 4 and 5
  ASSERT_EQ(plan_windows(kFrames, s.window, s.chain_frames), (std::vector<Window>{{0, 6}, {4, 6}}));
  auto run = [&](int64_t frames, const SamplingSettings& st) {
    TensorConditionSource src(c.environment.slice(0, 0, frames), c.mask.slice(0, 0, frames), c.pose.slice(0, 0, frames),
                              c.objects.slice(0, 0, frames));
    auto out = gen.generate({c.reference, c.reference_clip, &src, c.noise.slice(2, 0, frames)}, st, nullptr);
    EXPECT_TRUE(out.ok()) << out.error().message;
    return out.value();
  };
  const auto chained = run(kFrames, s);
  EXPECT_EQ(chained.stats.unet_calls, 2 * s.steps);
  // The first window is exactly a clip of its own 6 frames; the second leaves them as they were.
  const auto first_alone = run(6, s);
  EXPECT_TRUE(at::equal(chained.latents.slice(2, 0, 6), first_alone.latents)) << "motion frames changed";
  // A single window is the same computation chained or not.
  auto plain = s;
  plain.chain_frames = 0;
  EXPECT_TRUE(at::equal(run(6, plain).latents, first_alone.latents));
  // The second window continues the first: other motion frames change its own frames.
  auto other = c;
  c.noise = c.noise.clone();
  c.noise.slice(2, 0, 4).normal_();
  const auto moved = run(kFrames, s);
  EXPECT_GT((moved.latents.slice(2, 6, 10) - chained.latents.slice(2, 6, 10)).abs().max().item<float>(), 1e-3);
  c = other;
  // Differs from averaged windows (same windows, overlap 2).
  plain.overlap = 2;
  EXPECT_GT((run(kFrames, plain).latents - chained.latents).abs().max().item<float>(), 1e-3);
  // Resumable: stopping after any step and resuming gives the same latents.
  EXPECT_EQ(s.resumable_steps(kFrames), 2 * s.steps);
  for (int stop = 1; stop < 2 * s.steps; ++stop) {
    SamplingSettings first_part = s;
    std::optional<SamplingSettings::StepState> saved;
    first_part.on_step = [&](const SamplingSettings::StepState& state) -> Status {
      if (state.next_step == stop) {
        saved = SamplingSettings::StepState{state.next_step, state.latents.clone(), {}};
        for (const auto& h : state.sampler_history) saved->sampler_history.push_back(h.clone());
        return Error::runtime("stop");
      }
      return Status::success();
    };
    TensorConditionSource src(c.environment, c.mask, c.pose, c.objects);
    EXPECT_FALSE(gen.generate({c.reference, c.reference_clip, &src, c.noise}, first_part, nullptr).ok());
    ASSERT_TRUE(saved.has_value());
    SamplingSettings resumed = s;
    resumed.resume = saved;
    EXPECT_TRUE(at::equal(run(kFrames, resumed).latents, chained.latents)) << "resumed after step " << stop;
  }
  s.chain_frames = s.window;
  EXPECT_EQ(s.validate().error().code, ExitCode::usage);
}

TEST_F(TinyGenerator, ConditionsMatter) {
  auto c = testing::make_conditions(T, H, W, bundle_->config().clip_size, 3);
  Generator gen(*bundle_);
  auto s = settings();
  TensorConditionSource src(c.environment, c.mask, c.pose, c.objects);
  auto base = gen.generate({c.reference, c.reference_clip, &src, c.noise}, s, nullptr).value();
  // cfg <= 1 runs the conditional branch alone (batch 1) and gives a different result.
  auto s1 = s;
  s1.cfg = 1.0;
  TensorConditionSource src1(c.environment, c.mask, c.pose, c.objects);
  auto nocfg = gen.generate({c.reference, c.reference_clip, &src1, c.noise}, s1, nullptr).value();
  EXPECT_EQ(nocfg.stats.unet_calls, base.stats.unet_calls);
  EXPECT_GT((base.latents - nocfg.latents).abs().max().item<float>(), 1e-4);
  // Without objects the object guider is skipped and the result changes.
  TensorConditionSource src2(c.environment, c.mask, c.pose);
  auto noobj = gen.generate({c.reference, c.reference_clip, &src2, c.noise}, s, nullptr).value();
  EXPECT_GT((base.latents - noobj.latents).abs().max().item<float>(), 1e-5);
  // DPM-Solver++ 2M runs too.
  auto s2 = s;
  s2.sampler = SamplerKind::dpmpp_2m;
  TensorConditionSource src3(c.environment, c.mask, c.pose, c.objects);
  auto dpm = gen.generate({c.reference, c.reference_clip, &src3, c.noise}, s2, nullptr);
  ASSERT_TRUE(dpm.ok());
  EXPECT_TRUE(at::isfinite(dpm->latents).all().item<bool>());
}

TEST_F(TinyGenerator, BadInputsAreErrors) {
  auto c = testing::make_conditions(T, H, W, bundle_->config().clip_size, 4);
  Generator gen(*bundle_);
  auto s = settings();
  {  // mask of the wrong size
    TensorConditionSource src(c.environment, c.mask.slice(2, 0, 32), c.pose, c.objects);
    auto r = gen.generate({c.reference, c.reference_clip, &src, c.noise}, s, nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ExitCode::bad_input);
    EXPECT_NE(r.error().message.find("mask"), std::string::npos) << r.error().message;
  }
  {  // work size not a multiple of size_multiple (16)
    auto c2 = testing::make_conditions(T, 72, 48, bundle_->config().clip_size, 4);
    TensorConditionSource src(c2.environment, c2.mask, c2.pose);
    auto r = gen.generate({c2.reference, c2.reference_clip, &src, {}}, s, nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ExitCode::bad_input);
  }
  {  // window larger than the motion module's maximum
    auto s2 = s;
    s2.window = 64;
    TensorConditionSource src(c.environment, c.mask, c.pose);
    auto r = gen.generate({c.reference, c.reference_clip, &src, {}}, s2, nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ExitCode::usage);
  }
  {  // noise of the wrong shape
    TensorConditionSource src(c.environment, c.mask, c.pose);
    auto r = gen.generate({c.reference, c.reference_clip, &src, c.noise.slice(2, 0, 3)}, s, nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ExitCode::bad_input);
  }
  {  // a sink error stops the run and is passed through
    TensorConditionSource src(c.environment, c.mask, c.pose);
    auto r = gen.generate({c.reference, c.reference_clip, &src, c.noise}, s,
                          [](int64_t, const at::Tensor&) -> Status { return Error::runtime("disk full"); });
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "disk full");
  }
}

}  // namespace
}  // namespace standin::diffusion
