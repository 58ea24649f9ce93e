// Several devices in one process (issue 11): a Generator over replicas spreads each step's UNet
// calls over them and must return exactly the latents of one device. Here every replica is a
// CPU Bundle of the tiny bundle (identical "devices"), so the results must be bit-equal.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "standin/core/progress.hpp"
#include "standin/diffusion/generator.hpp"
#include "tiny_bundle.hpp"

namespace standin::diffusion {
namespace {

class TinyReplicas : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    set_progress_enabled(false);
    const auto dir = testing::tiny_bundle_dir();
    ASSERT_FALSE(dir.empty());
    for (int i = 0; i < 3; ++i) {
      auto b = Bundle::load(dir, DeviceSpec{"cpu"});
      ASSERT_TRUE(b.ok()) << b.error().message;
      bundles_.push_back(new Bundle(std::move(b).value()));
    }
  }
  static void TearDownTestSuite() {
    for (auto* b : bundles_) delete b;
    bundles_.clear();
  }
  static std::vector<const Bundle*> replicas(size_t n) { return {bundles_.begin(), bundles_.begin() + n}; }
  static SamplingSettings settings() {
    SamplingSettings s = SamplingSettings::from_bundle(bundles_[0]->config());
    s.steps = 2;
    s.window = 4;
    s.overlap = 1;
    s.cfg = 3.5;
    s.show_progress = false;
    return s;
  }
  static GenerationOutput run(const Generator& gen, const testing::Conditions& c, const SamplingSettings& s) {
    TensorConditionSource src(c.environment, c.mask, c.pose, c.objects);
    auto out = gen.generate({c.reference, c.reference_clip, &src, c.noise}, s, nullptr);
    EXPECT_TRUE(out.ok()) << out.error().message;
    return out.ok() ? std::move(out).value() : GenerationOutput{};
  }
  // One replica, then `n`: the same latents bit for bit, the same calls, `devices` devices used.
  static void expect_same_as_one(size_t n, int64_t frames, const SamplingSettings& s, int devices, uint64_t seed) {
    const auto c = testing::make_conditions(frames, H, W, bundles_[0]->config().clip_size, seed);
    const auto one = run(Generator(*bundles_[0]), c, s);
    const auto spread = run(Generator(replicas(n)), c, s);
    ASSERT_TRUE(one.latents.defined() && spread.latents.defined());
    EXPECT_TRUE(at::equal(one.latents, spread.latents))
        << "max difference " << (one.latents - spread.latents).abs().max().item<float>();
    EXPECT_GT((one.latents - c.noise).abs().max().item<float>(), 0.1) << "nothing was denoised";
    EXPECT_EQ(one.stats.unet_calls, spread.stats.unet_calls);
    EXPECT_EQ(one.stats.devices, 1);
    EXPECT_EQ(spread.stats.devices, devices);
  }
  static constexpr int64_t H = 64, W = 48;
  static constexpr int64_t kThreeWindows = 10;  // window 4, overlap 1: [0,4) [3,7) [6,10)
  static std::vector<Bundle*> bundles_;
};
std::vector<Bundle*> TinyReplicas::bundles_;

TEST_F(TinyReplicas, SplitCfgDdimEqualsOneDevice) {
  auto s = settings();
  ASSERT_EQ(plan_windows(kThreeWindows, s.window, s.overlap).size(), 3u);
  s.cfg_mode = CfgMode::split;
  s.sampler = SamplerKind::ddim;
  expect_same_as_one(2, kThreeWindows, s, 2, 21);
  // Pose and object features not cached: each replica runs the guiders for its own calls.
  s.pose_cache_bytes = 0;
  expect_same_as_one(2, kThreeWindows, s, 2, 22);
}

TEST_F(TinyReplicas, BatchedCfgDdimEqualsOneDevice) {
  auto s = settings();
  s.cfg_mode = CfgMode::batched;
  s.sampler = SamplerKind::ddim;
  expect_same_as_one(2, kThreeWindows, s, 2, 23);
}

TEST_F(TinyReplicas, DpmSolverEqualsOneDevice) {
  auto s = settings();
  s.steps = 3;  // second-order steps too
  s.sampler = SamplerKind::dpmpp_2m;
  s.cfg_mode = CfgMode::split;
  expect_same_as_one(2, kThreeWindows, s, 2, 24);
  s.cfg_mode = CfgMode::batched;
  expect_same_as_one(3, kThreeWindows, s, 3, 25);
}

TEST_F(TinyReplicas, MoreReplicasThanCallsLeavesSomeIdle) {
  auto s = settings();
  constexpr int64_t kTwoWindows = 7;  // [0,4) [3,7)
  ASSERT_EQ(plan_windows(kTwoWindows, s.window, s.overlap).size(), 2u);
  s.cfg_mode = CfgMode::batched;  // one call per window: the third replica has nothing to do
  expect_same_as_one(3, kTwoWindows, s, 2, 26);
  s.cfg = 1.0;  // conditional branch only, one call per window
  expect_same_as_one(3, kTwoWindows, s, 2, 27);
  s.cfg = 3.5;
  s.cfg_mode = CfgMode::split;  // four calls: all three busy
  expect_same_as_one(3, kTwoWindows, s, 3, 28);
}

TEST_F(TinyReplicas, ChainedWindowsRunOnThePrimaryAndEqualOneDevice) {
  auto s = settings();
  s.window = 6;
  s.chain_frames = 2;
  expect_same_as_one(2, kThreeWindows, s, 1, 29);
}

TEST_F(TinyReplicas, ResumedRunEqualsOneDevice) {
  // --cache: a spread run stopped after step 1 and resumed gives the single-device latents.
  auto s = settings();
  s.steps = 3;
  const auto c = testing::make_conditions(kThreeWindows, H, W, bundles_[0]->config().clip_size, 30);
  const auto one = run(Generator(*bundles_[0]), c, s);
  std::optional<SamplingSettings::StepState> saved;
  auto first_part = s;
  first_part.on_step = [&](const SamplingSettings::StepState& state) -> Status {
    saved = SamplingSettings::StepState{state.next_step, state.latents.clone(), {}};
    for (const auto& h : state.sampler_history) saved->sampler_history.push_back(h.clone());
    return Error::runtime("stop");
  };
  const Generator spread(replicas(2));
  TensorConditionSource src(c.environment, c.mask, c.pose, c.objects);
  EXPECT_FALSE(spread.generate({c.reference, c.reference_clip, &src, c.noise}, first_part, nullptr).ok());
  ASSERT_TRUE(saved.has_value());
  auto resumed = s;
  resumed.resume = saved;
  EXPECT_TRUE(at::equal(run(spread, c, resumed).latents, one.latents));
}

// Pose maps from a TensorConditionSource, failing for the window that starts at `failing_start`
// (an Error value, or a thrown exception); it also records whether two threads ever asked at once.
class FailingPoses final : public ConditionSource {
 public:
  enum class Failure { error, out_of_memory };
  FailingPoses(const testing::Conditions& c, int64_t failing_start, Failure failure)
      : inner_(c.environment, c.mask, c.pose, c.objects), failing_start_(failing_start), failure_(failure) {}
  int64_t num_frames() const override { return inner_.num_frames(); }
  Result<SceneChunk> scene(int64_t begin, int64_t end) override { return inner_.scene(begin, end); }
  Result<at::Tensor> pose(int64_t begin, int64_t end) override {
    if (inside_.fetch_add(1) != 0) overlapped_ = true;
    struct Leave {
      std::atomic<int>& inside;
      ~Leave() { inside.fetch_sub(1); }
    } leave{inside_};
    if (begin == failing_start_ && end - begin > 1) {
      if (failure_ == Failure::out_of_memory) throw std::runtime_error("simulated: CUDA out of memory");
      return Error::bad_input("pose track ends before frame " + std::to_string(begin));
    }
    return inner_.pose(begin, end);
  }
  bool overlapped() const { return overlapped_; }

 private:
  TensorConditionSource inner_;
  int64_t failing_start_;
  Failure failure_;
  std::atomic<int> inside_{0};
  std::atomic<bool> overlapped_{false};
};

TEST_F(TinyReplicas, AFailingReplicaIsAnErrorNamingItsDevice) {
  auto s = settings();
  s.pose_cache_bytes = 0;  // pose maps asked per window, by the replica that runs it
  const auto c = testing::make_conditions(kThreeWindows, H, W, bundles_[0]->config().clip_size, 31);
  for (const CfgMode mode : {CfgMode::split, CfgMode::batched}) {
    s.cfg_mode = mode;
    const Generator gen(replicas(2));
    {
      FailingPoses src(c, 3, FailingPoses::Failure::error);
      auto out = gen.generate({c.reference, c.reference_clip, &src, c.noise}, s, nullptr);
      ASSERT_FALSE(out.ok());
      EXPECT_EQ(out.error().code, ExitCode::bad_input);
      EXPECT_NE(out.error().message.find("frames 3..7 on cpu: pose track ends before frame 3"), std::string::npos)
          << out.error().message;
      EXPECT_FALSE(src.overlapped()) << "the condition source was asked from two threads at once";
    }
    {
      FailingPoses src(c, 6, FailingPoses::Failure::out_of_memory);
      auto out = gen.generate({c.reference, c.reference_clip, &src, c.noise}, s, nullptr);
      ASSERT_FALSE(out.ok());
      EXPECT_EQ(out.error().code, ExitCode::runtime);
      EXPECT_NE(out.error().message.find("out of memory during denoising on cpu"), std::string::npos) << out.error().message;
      EXPECT_NE(out.error().message.find("leave cpu out"), std::string::npos) << out.error().message;
      EXPECT_FALSE(src.overlapped());
    }
    {  // the same generator works again afterwards, and matches one device
      TensorConditionSource src(c.environment, c.mask, c.pose, c.objects);
      auto out = gen.generate({c.reference, c.reference_clip, &src, c.noise}, s, nullptr);
      ASSERT_TRUE(out.ok()) << out.error().message;
      EXPECT_TRUE(at::equal(out->latents, run(Generator(*bundles_[0]), c, s).latents));
    }
  }
}

TEST_F(TinyReplicas, ReplicasMustBeOneBundleInOneDtype) {
  const auto c = testing::make_conditions(kThreeWindows, H, W, bundles_[0]->config().clip_size, 32);
  TensorConditionSource src(c.environment, c.mask, c.pose, c.objects);
  auto empty = Generator(std::vector<const Bundle*>{}).generate({c.reference, c.reference_clip, &src, c.noise}, settings(), nullptr);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("no model bundle"), std::string::npos) << empty.error().message;
  auto bf16 = Bundle::load(testing::tiny_bundle_dir(), DeviceSpec{"cpu"}, DType::bf16);
  ASSERT_TRUE(bf16.ok()) << bf16.error().message;
  const Generator mixed(std::vector<const Bundle*>{bundles_[0], &bf16.value()});
  auto out = mixed.generate({c.reference, c.reference_clip, &src, c.noise}, settings(), nullptr);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("is not the same bundle"), std::string::npos) << out.error().message;
}

TEST(DeviceList, SpellingAndResolution) {
  EXPECT_EQ(parse_device_list("cuda:0,cuda:1").value(), (std::vector<std::string>{"cuda:0", "cuda:1"}));
  EXPECT_EQ(parse_device_list("cuda").value(), (std::vector<std::string>{"cuda"}));
  EXPECT_EQ(parse_device_list("cpu").value(), (std::vector<std::string>{"cpu"}));
  for (const char* bad : {"", "gpu", "cuda:", "cuda:x", "cuda:0,", ",cuda:0", "cuda:0,,cuda:1", "cuda:0,cuda:0",
                          "cuda:1,cuda:01", "cpu,cuda:0", "cuda,cuda:1", "cuda:0 ,cuda:1", "cpu,cpu"}) {
    auto r = parse_device_list(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ExitCode::usage) << bad;
  }
  auto cpu = resolve_devices("cpu");
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ(cpu.value(), (std::vector<at::Device>{at::Device(at::kCPU)}));
  if (!torch::cuda::is_available()) {
    for (const char* cuda : {"cuda", "cuda:0", "cuda:0,cuda:1"}) {
      auto r = resolve_devices(cuda);
      ASSERT_FALSE(r.ok()) << cuda;
      EXPECT_EQ(r.error().code, ExitCode::usage);
      EXPECT_NE(r.error().message.find("no CUDA device; use --device cpu"), std::string::npos) << r.error().message;
    }
  } else {
    auto all = resolve_devices("cuda");
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all->size(), torch::cuda::device_count());
  }
}

TEST(LoadReplicas, OneBundlePerDeviceOrTheFirstError) {
  const auto dir = testing::tiny_bundle_dir();
  auto two = load_replicas(dir, {at::Device(at::kCPU), at::Device(at::kCPU)});
  ASSERT_TRUE(two.ok()) << two.error().message;
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ(two->at(1).config().name, two->at(0).config().name);
  auto missing = load_replicas(dir + "/no-such-bundle", {at::Device(at::kCPU), at::Device(at::kCPU)});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ExitCode::model);
  EXPECT_NE(missing.error().message.find("loading the model on cpu"), std::string::npos) << missing.error().message;
  EXPECT_FALSE(load_replicas(dir, {}).ok());
}

// The decode spreads its chunks over the replicas too; the sink must still get the one-device
// frames, chunk by chunk, in order, from the calling thread.
struct RecordingSink {
  std::vector<int64_t> firsts;
  std::vector<at::Tensor> frames;
  std::thread::id thread;
  bool other_thread = false;
  int64_t fail_at = -1;  // first frame of the chunk whose hand-over fails
  FrameSink sink() {
    thread = std::this_thread::get_id();
    return [this](int64_t first, const at::Tensor& rgb) -> Status {
      if (std::this_thread::get_id() != thread) other_thread = true;
      if (first == fail_at) return Error::runtime("disk full at frame " + std::to_string(first));
      firsts.push_back(first);
      frames.push_back(rgb.clone());
      return Status::success();
    };
  }
};

TEST_F(TinyReplicas, SpreadDecodeHandsTheSinkTheOneDeviceFramesInOrder) {
  const auto& cfg = bundles_[0]->config();
  constexpr int64_t kFrames = 11;  // chunks of 2: five full ones and a single frame
  const at::Tensor latents =
      Generator::make_noise(41, kFrames, H / cfg.vae_scale_factor, W / cfg.vae_scale_factor) * cfg.scaling_factor;
  RecordingSink one;
  ASSERT_TRUE(Generator(*bundles_[0]).decode(latents, one.sink(), 2).ok());
  ASSERT_EQ(one.firsts, (std::vector<int64_t>{0, 2, 4, 6, 8, 10}));
  for (size_t n : {2u, 3u}) {
    RecordingSink spread;
    const Status st = Generator(replicas(n)).decode(latents, spread.sink(), 2);
    ASSERT_TRUE(st.ok()) << st.error().message;
    EXPECT_EQ(spread.firsts, one.firsts);
    EXPECT_FALSE(spread.other_thread) << "the sink was called from a replica's thread";
    ASSERT_EQ(spread.frames.size(), one.frames.size());
    for (size_t k = 0; k < one.frames.size(); ++k)
      EXPECT_TRUE(at::equal(spread.frames[k], one.frames[k])) << n << " replicas, chunk " << k;
  }
}

TEST_F(TinyReplicas, ASinkErrorStopsTheSpreadDecode) {
  const auto& cfg = bundles_[0]->config();
  const at::Tensor latents = Generator::make_noise(42, 12, H / cfg.vae_scale_factor, W / cfg.vae_scale_factor);
  RecordingSink failing;
  failing.fail_at = 4;
  const Status st = Generator(replicas(2)).decode(latents, failing.sink(), 2);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("disk full at frame 4"), std::string::npos) << st.error().message;
  EXPECT_EQ(failing.firsts, (std::vector<int64_t>{0, 2}));
}

}  // namespace
}  // namespace standin::diffusion
