#include "standin/diffusion/generator.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include <torch/torch.h>

#include "standin/core/log.hpp"
#include "standin/core/output.hpp"
#include "standin/core/progress.hpp"
#include "standin/diffusion/torch_compat.hpp"

namespace standin::diffusion {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
std::string shape_of(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + "]";
}
}  // namespace

// ---------------------------------------------------------------- windows

std::vector<Window> plan_windows(int64_t frames, int window, int overlap) {
  std::vector<Window> out;
  if (frames <= 0) return out;
  const int64_t fw = std::min<int64_t>(std::max(window, 1), frames);
  const int64_t stride = std::max<int64_t>(1, fw - overlap);
  for (int64_t s = 0; s + fw < frames; s += stride) out.push_back({s, fw});
  const Window last{frames - fw, fw};
  if (out.empty() || !(out.back() == last)) out.push_back(last);
  return out;
}

// ---------------------------------------------------------------- settings

SamplingSettings SamplingSettings::from_bundle(const BundleConfig& c) {
  SamplingSettings s;
  s.steps = c.defaults.steps;
  s.cfg = c.defaults.cfg;
  s.window = c.defaults.window;
  s.overlap = c.defaults.overlap;
  if (auto k = parse_sampler(c.defaults.sampler); k.ok()) s.sampler = k.value();
  return s;
}

SchedulerConfig SamplingSettings::scheduler_config(const BundleConfig& c) const {
  SchedulerConfig out = c.scheduler;
  if (!beta_schedule.empty()) out.beta_schedule = beta_schedule;
  return out;
}

Status SamplingSettings::validate(const BundleConfig& c) const {
  STANDIN_TRY(validate());
  if (c.max_window > 0 && window > c.max_window)
    return Error::usage("--window " + std::to_string(window) + " exceeds this bundle's maximum temporal window " +
                        std::to_string(c.max_window));
  return Status::success();
}

Status SamplingSettings::validate() const {
  if (steps < 1 || steps > 1000) return Error::usage("--steps must be in 1..1000, got " + std::to_string(steps));
  if (window < 1) return Error::usage("--window must be >= 1, got " + std::to_string(window));
  if (overlap < 0 || overlap >= window)
    return Error::usage("--overlap must be in 0.." + std::to_string(window - 1) + " (less than --window), got " +
                        std::to_string(overlap));
  if (!(cfg >= 0.0) || cfg > 100.0) return Error::usage("--cfg must be in 0..100");
  if (vae_chunk < 1) return Error::usage("VAE chunk must be >= 1");
  if (!beta_schedule.empty()) STANDIN_TRY(check_beta_schedule(beta_schedule));
  if (chain_frames < 0 || (chain_frames > 0 && chain_frames >= window))
    return Error::usage("--chain-frames must be in 0.." + std::to_string(window - 1) + " (less than --window), got " +
                        std::to_string(chain_frames));
  return Status::success();
}

int64_t SamplingSettings::resumable_steps(int64_t frames) const {
  if (chain_frames <= 0) return steps;
  return static_cast<int64_t>(steps) * static_cast<int64_t>(plan_windows(frames, window, chain_frames).size());
}

// ---------------------------------------------------------------- conditions

TensorConditionSource::TensorConditionSource(at::Tensor environment, at::Tensor mask, at::Tensor pose, at::Tensor objects,
                                             at::Tensor depth)
    : environment_(std::move(environment)),
      mask_(std::move(mask)),
      pose_(std::move(pose)),
      objects_(std::move(objects)),
      depth_(std::move(depth)) {}

Result<at::Tensor> TensorConditionSource::depth(int64_t begin, int64_t end) {
  if (!depth_.defined()) return ConditionSource::depth(begin, end);
  return depth_.slice(0, begin, end);
}

Result<SceneChunk> TensorConditionSource::scene(int64_t begin, int64_t end) {
  SceneChunk c;
  if (environment_.defined()) c.environment = environment_.slice(0, begin, end);
  if (mask_.defined()) c.mask = mask_.slice(0, begin, end);
  if (objects_.defined()) c.objects = objects_.slice(0, begin, end);
  return c;
}

Result<at::Tensor> TensorConditionSource::pose(int64_t begin, int64_t end) { return pose_.slice(0, begin, end); }

// ---------------------------------------------------------------- errors

Error torch_error(const std::exception& e, const std::string& stage) {
  if (compat::is_out_of_memory(e))
    return Error::runtime("out of memory during " + stage + "; lower --window or --size, or use --dtype fp16");
  return Error::runtime("LibTorch failed during " + stage + ": " + compat::short_message(e));
}

// ---------------------------------------------------------------- generator

at::Tensor Generator::make_noise(uint64_t seed, int64_t frames, int64_t h, int64_t w) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::randn({1, 4, frames, h, w}, gen, at::TensorOptions().dtype(at::kFloat));
}

Result<ReferenceFeatures> Generator::encode_reference(const at::Tensor& reference, const at::Tensor& reference_clip) const {
  STANDIN_TRY(check_replicas());
  const Bundle& bundle = primary();
  const BundleConfig& c = bundle.config();
  if (!reference.defined() || reference.dim() != 4 || reference.size(0) != 1 || reference.size(1) != 3)
    return Error::bad_input("reference image tensor must be [1,3,H,W], got " + shape_of(reference));
  if (reference.size(2) % c.size_multiple || reference.size(3) % c.size_multiple)
    return Error::bad_input("reference image size " + std::to_string(reference.size(3)) + "x" + std::to_string(reference.size(2)) +
                            " is not a multiple of " + std::to_string(c.size_multiple) + " (this bundle's size_multiple)");
  if (!reference_clip.defined() || reference_clip.dim() != 4 || reference_clip.size(1) != 3 ||
      reference_clip.size(2) != c.clip_size || reference_clip.size(3) != c.clip_size)
    return Error::bad_input("reference CLIP tensor must be [1,3," + std::to_string(c.clip_size) + "," +
                            std::to_string(c.clip_size) + "], got " + shape_of(reference_clip));
  try {
    compat::InferenceGuard guard;
    ReferenceFeatures f;
    f.latent = bundle.vae_encoder().encode(reference) * c.scaling_factor;
    f.embed = bundle.image_encoder().embed(reference_clip);
    f.tokens = bundle.reference_net().features(f.latent, f.embed);
    return f;
  } catch (const std::exception& e) {
    return torch_error(e, "reference encoding");
  }
}

namespace {

// Everything the per-window loop needs, prepared once on the primary.
struct Prepared {
  at::Tensor scene;      // [1, 4(+1), T, h, w] bundle dtype (undefined without environment)
  at::Tensor objects;    // [T, 4, h, w] scaled object latents (undefined = none)
  std::vector<at::Tensor> object_features;  // per decoder stage [T, C_j, h_j, w_j] when cached
  at::Tensor pose_all;   // [1, Cp, T, h, w] when cached
};

// What the UNet calls of one replica read, on its device: the primary's own tensors on the
// primary, copies made once per run on every other device.
struct Replica {
  const Bundle* bundle = nullptr;
  Prepared prepared;
  std::vector<at::Tensor> tokens;  // reference tokens
  at::Tensor context, keep, uncond_context;
};

// A UNet call of a window: the whole window in one call (batched CFG with B = 2, or cfg <= 1),
// or one half of a split CFG pair.
enum class Half { both, uncond, cond };

// One window's UNet inputs, calls and guidance (docs/SAMPLING.md), on any replica. Replicas
// call it from their own threads: it keeps no per-call state, and asks the condition source
// under a lock.
class WindowEvaluator {
 public:
  WindowEvaluator(const BundleConfig& config, at::ScalarType dtype, ConditionSource& conditions,
                  const SamplingSettings& s, int64_t H, int64_t W)
      : c_(config), dt_(dtype), cond_(conditions), cfg_(s.cfg), H_(H), W_(W) {
    const bool guided = s.cfg > 1.0;
    split_ = guided && s.cfg_mode == CfgMode::split;  // two B = 1 calls per window
    batched_ = guided && !split_;                     // one B = 2 call per window
  }

  // The calls of one window, in the order they are guided.
  const std::vector<Half>& halves() const { return halves_[split_ ? 1 : 0]; }

  // `bundle`'s constant inputs: `prep` and the reference features on its device.
  Replica replica(const Bundle& bundle, const Prepared& prep, const ReferenceFeatures& ref) const {
    const at::Device dev = bundle.device();
    const auto to = [&](const at::Tensor& t) { return t.defined() ? t.to(dev) : t; };
    Replica r;
    r.bundle = &bundle;
    r.prepared.scene = to(prep.scene);
    r.prepared.pose_all = to(prep.pose_all);
    for (const auto& f : prep.object_features) r.prepared.object_features.push_back(to(f));
    if (prep.object_features.empty()) r.prepared.objects = to(prep.objects);  // read only when not cached
    for (const auto& t : ref.tokens) r.tokens.push_back(to(t));
    const at::Tensor embed = to(ref.embed);
    r.context = batched_ ? at::cat({at::zeros_like(embed), embed}, 0) : embed;
    r.keep = batched_ ? at::tensor({0.0f, 1.0f}).to(dev) : at::ones({1}, at::TensorOptions().dtype(at::kFloat).device(dev));
    r.uncond_context = split_ ? at::zeros_like(embed) : at::Tensor();
    return r;
  }

  // Pose-guider features [1,Cp,n,h,w] of frames [a, b) on `bundle`'s device.
  Result<at::Tensor> pose_features(const Bundle& bundle, int64_t a, int64_t b) {
    at::Tensor p, d;
    {
      std::lock_guard<std::mutex> lock(cond_mutex_);
      STANDIN_ASSIGN_OR_RETURN(p, cond_.pose(a, b));
      if (p.dim() != 4 || p.size(0) != b - a || p.size(1) != 3 || p.size(2) != H_ || p.size(3) != W_)
        return Error::bad_input("pose maps for frames " + std::to_string(a) + ".." + std::to_string(b) + " must be [" +
                                std::to_string(b - a) + ",3," + std::to_string(H_) + "," + std::to_string(W_) + "], got " +
                                shape_of(p));
      if (c_.pose_modulation) {
        STANDIN_ASSIGN_OR_RETURN(d, cond_.depth(a, b));
        if (d.dim() != 4 || d.size(0) != b - a || d.size(1) != 1 || d.size(2) != H_ || d.size(3) != W_)
          return Error::bad_input("depth maps for frames " + std::to_string(a) + ".." + std::to_string(b) + " must be [" +
                                  std::to_string(b - a) + ",1," + std::to_string(H_) + "," + std::to_string(W_) +
                                  "], got " + shape_of(d));
      }
    }
    return bundle.pose_guider().features(p, d).permute({1, 0, 2, 3}).unsqueeze(0);
  }

  // The UNet inputs of window `win` whose latents are x [1,4,n,h,w] (on any device) at timestep t.
  Result<UnetInputs> inputs(const Replica& r, const Window& win, const at::Tensor& x, int64_t t) {
    const Bundle& bundle = *r.bundle;
    const at::Device dev = bundle.device();
    const Prepared& prep = r.prepared;
    const int64_t a = win.start, n = win.length, B = batched_ ? 2 : 1;
    const at::Tensor xd = x.to(dev, dt_);
    const at::Tensor inp = c_.environment ? at::cat({xd, prep.scene.slice(2, a, a + n)}, 1) : xd;
    UnetInputs u;
    u.sample = batched_ ? at::cat({inp, inp}, 0) : inp;
    u.timestep = at::full({B}, t, at::TensorOptions().dtype(at::kLong).device(dev));
    u.context = r.context;
    at::Tensor pf;
    if (prep.pose_all.defined()) {
      pf = prep.pose_all.slice(2, a, a + n);
    } else {
      STANDIN_ASSIGN_OR_RETURN(pf, pose_features(bundle, a, a + n));
    }
    u.pose = batched_ ? pf.expand({B, -1, -1, -1, -1}).contiguous() : pf.contiguous();
    u.reference = r.tokens;
    u.reference_keep = r.keep;
    if (!prep.object_features.empty()) {
      for (const auto& o : prep.object_features) {
        const at::Tensor w = o.slice(0, a, a + n);
        u.objects.push_back(batched_ ? at::cat({w, w}, 0) : w);
      }
    } else if (prep.objects.defined()) {
      for (const auto& o : bundle.object_guider()->features(prep.objects.slice(0, a, a + n)))
        u.objects.push_back(batched_ ? at::cat({o, o}, 0) : o);
    }
    return u;
  }

  // One call: the prediction [B,4,n,h,w] in float32 on the replica's device.
  at::Tensor predict(const Replica& r, const UnetInputs& u, Half half) const {
    if (half != Half::uncond) return r.bundle->denoising_unet().predict(u).to(at::kFloat);
    // Unconditional half: zero context and no reference tokens (= reference_keep 0).
    UnetInputs un = u;
    un.context = r.uncond_context;
    un.reference.clear();
    return r.bundle->denoising_unet().predict(un).to(at::kFloat);
  }

  // The guided model output [1,4,n,h,w] of one window from its calls' predictions (halves() order).
  at::Tensor guide(const std::vector<at::Tensor>& preds) const {
    if (split_) return preds[0] + cfg_ * (preds[1] - preds[0]);
    const at::Tensor& pred = preds[0];
    return batched_ ? pred.slice(0, 0, 1) + cfg_ * (pred.slice(0, 1, 2) - pred.slice(0, 0, 1)) : pred;
  }

  // A whole window on one replica, in the calling thread.
  Result<at::Tensor> evaluate(const Replica& r, const Window& win, const at::Tensor& x, int64_t t) {
    STANDIN_ASSIGN_OR_RETURN(const UnetInputs u, inputs(r, win, x, t));
    std::vector<at::Tensor> preds;
    for (const Half half : halves()) preds.push_back(predict(r, u, half));
    return guide(preds);
  }

 private:
  const BundleConfig& c_;
  at::ScalarType dt_;
  ConditionSource& cond_;
  std::mutex cond_mutex_;
  double cfg_;
  int64_t H_, W_;
  bool split_ = false, batched_ = false;
  const std::vector<Half> halves_[2] = {{Half::both}, {Half::uncond, Half::cond}};
};

// One thread per replica for a whole sampling run, given one job per step. Threads made anew for
// every step would start each step with empty thread-local caches (LibTorch 2.x keeps cuDNN's
// attention plans per thread, and building them costs a noticeable share of a step).
class ReplicaThreads {
 public:
  explicit ReplicaThreads(size_t n) {
    threads_.reserve(n);
    for (size_t r = 0; r < n; ++r) threads_.emplace_back([this, r] { loop(r); });
  }
  ReplicaThreads(const ReplicaThreads&) = delete;
  ReplicaThreads& operator=(const ReplicaThreads&) = delete;
  ~ReplicaThreads() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }

  // Thread r runs job(r), for every r; returns at once. The job must not throw.
  void start(std::function<void(size_t)> job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = std::move(job);
      ++generation_;
      running_ = threads_.size();
    }
    wake_.notify_all();
  }

  // Until every thread has finished the job last started.
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return running_ == 0; });
  }

 private:
  void loop(size_t r) {
    uint64_t seen = 0;
    for (;;) {
      std::function<void(size_t)> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return quit_ || generation_ != seen; });
        if (quit_) return;
        seen = generation_;
        job = job_;
      }
      job(r);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        --running_;
      }
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::function<void(size_t)> job_;
  uint64_t generation_ = 0;
  size_t running_ = 0;
  bool quit_ = false;
  std::vector<std::thread> threads_;
};

// The replica that runs call k of a step over n replicas: dealt back and forth (0, 1, .., n-1,
// n-1, .., 0, 0, 1, ..), so with split CFG every device gets about as many of the cheaper
// unconditional halves as of the conditional ones, and the two halves of a window run at once
// on two devices.
size_t replica_of_call(size_t k, size_t n) {
  const size_t lap = k / n, position = k % n;
  return lap % 2 == 0 ? position : n - 1 - position;
}

// An exception on a replica's device while `doing` ("denoising", "decoding"), as an Error that
// names the device (and, out of memory, how to leave it out).
Error device_error(const std::exception& e, const at::Device& device, const std::string& doing) {
  Error error = torch_error(e, doing + " on " + device.str());
  if (compat::is_out_of_memory(e))
    error.message += "; or leave " + device.str() + " out (--device cuda:N,cuda:M or CUDA_VISIBLE_DEVICES names the devices used)";
  return error;
}

// One denoising step (averaged windows) over several replicas: each replica works through its
// calls (replica_of_call) in a thread of its own; the calling thread takes the predictions in
// window order and guides and sums them exactly as the single-device loop does, so `acc` gets the
// same bits. The first failure stops the other replicas after their current call; every thread has
// finished this step's job before this returns.
// Traffic between the primary and another device goes through host memory: a direct copy between
// two GPUs waits for the work queued on BOTH devices' streams, so every copy of a replica's inputs
// or results waited for the primary's UNet call in flight and the devices took turns (measured on
// two H200s: 1.00x one device). Through the host a replica waits only for its own device; the
// step's latents (9 MB at 96 frames of 512x768) and a prediction (2.4 MB) cost about a millisecond.
Status spread_step(WindowEvaluator& evaluator, const std::vector<Replica>& replicas, ReplicaThreads& threads,
                   const std::vector<Window>& windows, const at::Tensor& latents, int64_t t, at::Tensor& acc,
                   GenerationStats& stats, Progress* progress) {
  const std::vector<Half>& halves = evaluator.halves();
  const size_t per_window = halves.size(), calls = windows.size() * per_window, n = replicas.size();
  const at::Device primary = replicas.front().bundle->device();
  const at::Tensor latents_host = latents.device().is_cpu() ? latents : latents.to(at::kCPU);
  struct Shared {
    std::mutex mutex;
    std::condition_variable ready;
    std::vector<at::Tensor> results;  // per call, on the primary's device or the host; taken once used
    std::vector<bool> done;
    std::optional<Error> error;       // the first failure
    std::atomic<bool> stop{false};
  } shared;
  shared.results.resize(calls);
  shared.done.assign(calls, false);

  const auto work = [&](size_t r) {
    const Replica& replica = replicas[r];
    const at::Device device = replica.bundle->device();
    const bool on_primary = device == primary;
    const at::Tensor& source = on_primary ? latents : latents_host;
    std::optional<Error> failure;
    try {
      compat::WorkerThreadScope scope(device);
      for (size_t k = r; k < calls && !failure && !shared.stop; ++k) {
        if (replica_of_call(k, n) != r) continue;
        const Window& win = windows[k / per_window];
        auto inputs = evaluator.inputs(replica, win, source.slice(2, win.start, win.end()), t);
        if (!inputs.ok()) {
          failure = inputs.error().with_context("frames " + std::to_string(win.start) + ".." + std::to_string(win.end()) +
                                                " on " + device.str());
          break;
        }
        // on the host unless this is the primary's own device; the calling thread moves it over
        at::Tensor pred = evaluator.predict(replica, inputs.value(), halves[k % per_window]);
        if (!on_primary) pred = pred.to(at::kCPU);
        std::lock_guard<std::mutex> lock(shared.mutex);
        shared.results[k] = std::move(pred);
        shared.done[k] = true;
        shared.ready.notify_all();
      }
    } catch (const std::exception& e) {
      failure = device_error(e, device, "denoising");
    } catch (...) {
      failure = Error::runtime("denoising on " + device.str() + " failed with an unknown exception");
    }
    if (failure) {
      std::lock_guard<std::mutex> lock(shared.mutex);
      if (!shared.error) shared.error = std::move(failure);
      shared.stop = true;
      shared.ready.notify_all();
    }
  };

  const size_t busy = std::min(n, calls);  // replica r has calls when r < calls
  stats.devices = std::max(stats.devices, static_cast<int>(busy));
  // After `shared`: also on an early return, the threads end their current call and finish the
  // job before `shared` goes.
  struct FinishAtExit {
    ReplicaThreads& threads;
    std::atomic<bool>& stop;
    ~FinishAtExit() {
      stop = true;
      threads.wait();
    }
  } finish_at_exit{threads, shared.stop};
  threads.start(work);

  for (size_t w = 0; w < windows.size(); ++w) {
    std::vector<at::Tensor> preds;
    {
      std::unique_lock<std::mutex> lock(shared.mutex);
      for (size_t k = w * per_window; k < (w + 1) * per_window; ++k) {
        shared.ready.wait(lock, [&] { return shared.done[k] || shared.error.has_value(); });
        if (!shared.done[k]) return *shared.error;
        preds.push_back(std::move(shared.results[k]));
      }
    }
    for (auto& pred : preds) pred = pred.to(primary);  // from the host: ordered on the primary's stream
    acc.slice(2, windows[w].start, windows[w].end()) += evaluator.guide(preds);
    ++stats.unet_calls;
    if (progress) progress->advance();
    STANDIN_TRY(check_interrupted());
  }
  return Status::success();
}

}  // namespace

Status Generator::check_replicas() const {
  if (replicas_.empty() || std::find(replicas_.begin(), replicas_.end(), nullptr) != replicas_.end())
    return Error::runtime("generator: no model bundle given (empty or null replica)");
  const Bundle& first = primary();
  for (size_t i = 1; i < replicas_.size(); ++i) {
    const Bundle& other = *replicas_[i];
    bool same = other.dtype() == first.dtype() && other.config().modules.size() == first.config().modules.size();
    for (const auto& [name, module] : first.config().modules) {
      const auto it = other.config().modules.find(name);
      same = same && it != other.config().modules.end() && it->second.sha256 == module.sha256;
    }
    if (!same)
      return Error::runtime("the model on " + other.device().str() + " (" + other.dir() + ", " + c10::toString(other.dtype()) +
                            ") is not the same bundle as the one on " + first.device().str() + " (" + first.dir() + ", " +
                            c10::toString(first.dtype()) + "); load one bundle, in one dtype, on every device");
  }
  return Status::success();
}

Result<at::Tensor> Generator::sample(const ReferenceFeatures& ref, ConditionSource& cond, const SamplingSettings& s,
                                     const at::Tensor& noise_in, GenerationStats* stats_out) const {
  STANDIN_TRY(check_replicas());
  const Bundle& bundle = primary();
  const BundleConfig& c = bundle.config();
  STANDIN_TRY(s.validate(c));
  const at::Device dev = bundle.device();
  const at::ScalarType dt = bundle.dtype();
  const int64_t T = cond.num_frames();
  const int64_t sf = c.vae_scale_factor;
  if (T <= 0) return Error::bad_input("no frames to generate");
  GenerationStats local_stats;
  GenerationStats& stats = stats_out ? *stats_out : local_stats;
  stats.frames = T;
  stats.devices = 1;

  STANDIN_ASSIGN_OR_RETURN(auto scheduler, Scheduler::create(s.sampler, s.scheduler_config(c), s.steps));
  const auto windows = plan_windows(T, s.window, s.chain_frames > 0 ? s.chain_frames : s.overlap);
  stats.windows = static_cast<int>(windows.size());
  stats.steps = s.steps;
  // Several replicas spread the calls of each step; chained windows depend on each other and
  // run on the primary alone.
  const bool spread = replicas_.size() > 1 && s.chain_frames == 0;

  try {
    compat::InferenceGuard guard;
    const auto t_cond = Clock::now();
    const auto fdev = at::TensorOptions().dtype(at::kFloat).device(dev);

    // ---- work size from the first pose chunk (the conditions define H×W; multiples of 8·2^k)
    STANDIN_ASSIGN_OR_RETURN(at::Tensor first_pose, cond.pose(0, std::min<int64_t>(T, 1)));
    if (first_pose.dim() != 4 || first_pose.size(1) != 3)
      return Error::bad_input("pose maps must be [n,3,H,W], got " + shape_of(first_pose));
    const int64_t H = first_pose.size(2), W = first_pose.size(3);
    if (H % c.size_multiple || W % c.size_multiple)
      return Error::bad_input("work size " + std::to_string(W) + "x" + std::to_string(H) + " is not a multiple of " +
                              std::to_string(c.size_multiple) + " (this bundle's size_multiple)");
    const int64_t lh = H / sf, lw = W / sf;
    WindowEvaluator evaluator(c, dt, cond, s, H, W);

    // ---- noise
    at::Tensor noise = noise_in.defined() ? noise_in : make_noise(s.seed, T, lh, lw);
    if (noise.dim() != 5 || noise.size(0) != 1 || noise.size(1) != c.latent_channels || noise.size(2) != T ||
        noise.size(3) != lh || noise.size(4) != lw)
      return Error::bad_input("noise must be [1,4," + std::to_string(T) + "," + std::to_string(lh) + "," + std::to_string(lw) +
                              "], got " + shape_of(noise));
    at::Tensor latents = noise.to(fdev) * scheduler->init_noise_sigma();

    // ---- scene conditions once, in latent form
    Prepared prep;
    const bool want_objects = bundle.object_guider() != nullptr;
    if (c.environment) {
      const int64_t sc = c.latent_channels + (c.mask_channel ? 1 : 0);
      prep.scene = at::empty({1, sc, T, lh, lw}, at::TensorOptions().dtype(dt).device(dev));
    }
    for (int64_t a = 0; a < T && (c.environment || want_objects); a += s.vae_chunk) {
      const int64_t b = std::min<int64_t>(T, a + s.vae_chunk);
      STANDIN_ASSIGN_OR_RETURN(SceneChunk chunk, cond.scene(a, b));
      if (c.environment) {
        if (!chunk.environment.defined() || chunk.environment.dim() != 4 || chunk.environment.size(0) != b - a ||
            chunk.environment.size(1) != 3 || chunk.environment.size(2) != H || chunk.environment.size(3) != W)
          return Error::bad_input("environment chunk for frames " + std::to_string(a) + ".." + std::to_string(b) +
                                  " must be [" + std::to_string(b - a) + ",3," + std::to_string(H) + "," + std::to_string(W) +
                                  "], got " + shape_of(chunk.environment));
        const at::Tensor env = bundle.vae_encoder().encode(chunk.environment) * c.scaling_factor;  // [n,4,h,w]
        prep.scene.slice(2, a, b).narrow(1, 0, c.latent_channels).copy_(env.permute({1, 0, 2, 3}).unsqueeze(0));
        if (c.mask_channel) {
          if (!chunk.mask.defined() || chunk.mask.dim() != 4 || chunk.mask.size(0) != b - a || chunk.mask.size(1) != 1 ||
              chunk.mask.size(2) != H || chunk.mask.size(3) != W)
            return Error::bad_input("mask chunk for frames " + std::to_string(a) + ".." + std::to_string(b) + " must be [" +
                                    std::to_string(b - a) + ",1," + std::to_string(H) + "," + std::to_string(W) + "], got " +
                                    shape_of(chunk.mask));
          const at::Tensor m = at::avg_pool2d(chunk.mask.to(fdev), {sf, sf});  // [n,1,h,w]
          prep.scene.slice(2, a, b).narrow(1, c.latent_channels, 1).copy_(m.permute({1, 0, 2, 3}).unsqueeze(0));
        }
      }
      if (want_objects) {
        // Frames without objects are an all-zero object image (as the oracle's "object" input),
        // also those seen before the first chunk that had objects.
        const auto encode_objects = [&](int64_t x, int64_t y, const at::Tensor& img) -> Status {
          if (img.dim() != 4 || img.size(0) != y - x || img.size(1) != 3 || img.size(2) != H || img.size(3) != W)
            return Error::bad_input("object chunk for frames " + std::to_string(x) + ".." + std::to_string(y) + " must be [" +
                                    std::to_string(y - x) + ",3," + std::to_string(H) + "," + std::to_string(W) + "], got " +
                                    shape_of(img));
          prep.objects.slice(0, x, y).copy_(bundle.vae_encoder().encode(img) * c.scaling_factor);
          return Status::success();
        };
        const auto zeros = [&](int64_t x, int64_t y) { return at::zeros({y - x, 3, H, W}, fdev); };
        if (chunk.objects.defined() && !prep.objects.defined()) {
          prep.objects = at::empty({T, c.latent_channels, lh, lw}, at::TensorOptions().dtype(dt).device(dev));
          for (int64_t x = 0; x < a; x += s.vae_chunk) STANDIN_TRY(encode_objects(x, std::min(a, x + s.vae_chunk), zeros(x, std::min(a, x + s.vae_chunk))));
        }
        if (prep.objects.defined()) STANDIN_TRY(encode_objects(a, b, chunk.objects.defined() ? chunk.objects : zeros(a, b)));
      }
      STANDIN_TRY(check_interrupted());
    }

    // ---- pose features: whole clip when it fits the cache budget, else per window and step
    const int64_t pose_bytes = T * c.pose_channels * lh * lw * static_cast<int64_t>(c10::elementSize(dt));
    if (pose_bytes <= s.pose_cache_bytes) {
      prep.pose_all = at::empty({1, c.pose_channels, T, lh, lw}, at::TensorOptions().dtype(dt).device(dev));
      for (int64_t a = 0; a < T; a += s.vae_chunk) {
        const int64_t b = std::min<int64_t>(T, a + s.vae_chunk);
        STANDIN_ASSIGN_OR_RETURN(at::Tensor f, evaluator.pose_features(bundle, a, b));
        prep.pose_all.slice(2, a, b).copy_(f);
      }
      stats.pose_cached = true;
    }
    // Object-guider features: cached for the whole clip too when they fit the same budget.
    if (prep.objects.defined()) {
      int64_t budget = s.pose_cache_bytes - (stats.pose_cached ? pose_bytes : 0);
      for (int64_t a = 0; a < T; a += s.vae_chunk) {
        const int64_t b = std::min<int64_t>(T, a + s.vae_chunk);
        const auto f = bundle.object_guider()->features(prep.objects.slice(0, a, b));
        if (a == 0) {
          int64_t bytes = 0;
          for (const auto& t : f) bytes += t.numel() / t.size(0) * T * static_cast<int64_t>(t.element_size());
          if (bytes > budget) break;
          for (const auto& t : f) prep.object_features.push_back(at::empty({T, t.size(1), t.size(2), t.size(3)}, t.options()));
        }
        for (size_t j = 0; j < f.size(); ++j) prep.object_features[j].slice(0, a, b).copy_(f[j]);
      }
    }
    // ---- what each replica reads, on its device (copies once per run; the primary's are its own)
    std::vector<Replica> replicas;
    for (size_t i = 0; i < (spread ? replicas_.size() : 1); ++i) {
      replicas.push_back(evaluator.replica(*replicas_[i], prep, ref));
      compat::synchronize(replicas_[i]->device());
    }
    stats.conditions_s = seconds_since(t_cond);

    const auto t_denoise = Clock::now();
    std::optional<Progress> progress;
    if (s.show_progress) progress.emplace("denoising", static_cast<int64_t>(s.steps) * static_cast<int64_t>(windows.size()));

    if (s.chain_frames > 0) {
      // Chained windows: each fully denoised in turn. The frames a window shares with the ones
      // before it ("motion frames") are held at their finished latents, re-noised to each step's
      // noise level with their own initial noise, so the model continues them.
      const std::vector<float> alpha_bar =
          alphas_cumprod(s.scheduler_config(c), s.sampler == SamplerKind::dpmpp_2m);
      const int steps = scheduler->num_steps();
      const int64_t total_steps = static_cast<int64_t>(steps) * static_cast<int64_t>(windows.size());
      int64_t resume_at = 0;
      if (s.resume) {
        if (s.resume->next_step > total_steps || !s.resume->latents.defined() ||
            !s.resume->latents.sizes().equals(latents.sizes()))
          return Error::runtime("cached state does not fit this run; delete the --cache folder");
        resume_at = s.resume->next_step;
        latents = s.resume->latents.to(fdev);
        if (progress) progress->advance(resume_at);
      }
      const at::Tensor noise_dev = noise.to(fdev);
      for (size_t w = static_cast<size_t>(resume_at / steps); w < windows.size(); ++w) {
        const Window& win = windows[w];
        const int64_t held = w == 0 ? 0 : std::clamp<int64_t>(windows[w - 1].end() - win.start, 0, win.length);
        const at::Tensor held_latents = latents.slice(2, win.start, win.start + held).clone();
        const at::Tensor held_noise = noise_dev.slice(2, win.start, win.start + held);
        at::Tensor x = latents.slice(2, win.start, win.end()).clone();
        int first = 0;
        scheduler->reset();
        if (static_cast<int64_t>(w) == resume_at / steps && resume_at % steps > 0) {
          first = static_cast<int>(resume_at % steps);
          scheduler->restore(s.resume->sampler_history, first);
        }
        for (int i = first; i < steps; ++i) {
          const int64_t t = scheduler->timesteps()[i];
          if (held > 0) {
            const float ab = alpha_bar[static_cast<size_t>(t)];
            x.slice(2, 0, held).copy_(held_latents * std::sqrt(ab) + held_noise * std::sqrt(1.0f - ab));
          }
          STANDIN_ASSIGN_OR_RETURN(const at::Tensor g, evaluator.evaluate(replicas.front(), win, x, t));
          ++stats.unet_calls;
          x = scheduler->step(g, i, x);
          // The window's own frames go into the clip's latents as they are (a resumable state);
          // the motion frames keep their finished values.
          latents.slice(2, win.start + held, win.end()).copy_(x.slice(2, held, win.length));
          if (progress) progress->advance();
          STANDIN_TRY(check_interrupted());
          if (s.on_step)
            STANDIN_TRY(s.on_step(SamplingSettings::StepState{static_cast<int>(w * steps + i + 1), latents,
                                                              i + 1 < steps ? scheduler->history() : std::vector<at::Tensor>{}}));
        }
      }
    } else {
      at::Tensor count = at::zeros({T}, fdev);
      for (const auto& win : windows) count.slice(0, win.start, win.end()) += 1;
      const at::Tensor count5 = count.view({1, 1, T, 1, 1});

      int first_step = 0;
      if (s.resume) {
        if (s.resume->next_step > scheduler->num_steps() || !s.resume->latents.defined() ||
            !s.resume->latents.sizes().equals(latents.sizes()))
          return Error::runtime("cached state does not fit this run; delete the --cache folder");
        first_step = s.resume->next_step;
        latents = s.resume->latents.to(fdev);
        scheduler->restore(s.resume->sampler_history, first_step);
        if (progress) progress->advance(static_cast<int64_t>(first_step) * static_cast<int64_t>(windows.size()));
      }
      std::optional<ReplicaThreads> replica_threads;
      if (spread) replica_threads.emplace(replicas.size());
      for (int i = first_step; i < scheduler->num_steps(); ++i) {
        const int64_t t = scheduler->timesteps()[i];
        at::Tensor acc = at::zeros_like(latents);
        if (spread) {
          STANDIN_TRY(spread_step(evaluator, replicas, *replica_threads, windows, latents, t, acc, stats,
                                  progress ? &*progress : nullptr));
        } else {
          for (const auto& win : windows) {
            STANDIN_ASSIGN_OR_RETURN(const at::Tensor g,
                                     evaluator.evaluate(replicas.front(), win, latents.slice(2, win.start, win.end()), t));
            acc.slice(2, win.start, win.end()) += g;
            ++stats.unet_calls;
            if (progress) progress->advance();
            STANDIN_TRY(check_interrupted());
          }
        }
        const at::Tensor model_output = acc / count5;
        latents = scheduler->step(model_output, i, latents);
        if (s.on_step) STANDIN_TRY(s.on_step(SamplingSettings::StepState{i + 1, latents, scheduler->history()}));
      }
    }
    if (progress) progress->finish();
    compat::synchronize(dev);
    stats.denoise_s = seconds_since(t_denoise);
    return latents;
  } catch (const std::exception& e) {
    return torch_error(e, "denoising");
  }
}

namespace {

// Frames [a, b) of latents [1,4,T,h,w] (on any device) through `bundle`'s VAE decoder:
// [b-a,3,H,W] float32 on the host, in [-1, 1].
at::Tensor decode_frames(const Bundle& bundle, const at::Tensor& latents, int64_t a, int64_t b) {
  compat::InferenceGuard guard;
  const at::Tensor z =
      latents.slice(2, a, b).squeeze(0).permute({1, 0, 2, 3}).to(bundle.device()) / bundle.config().scaling_factor;
  return bundle.vae_decoder().decode(z).to(at::kFloat).clamp(-1, 1).to(at::kCPU).contiguous();
}

// The decode over several replicas: replica r decodes chunks r, r + n, ..; the calling thread
// hands them to the sink in order, so the sink sees exactly the one-device sequence. A replica
// runs at most two laps ahead of the sink, which bounds the decoded frames waiting in host memory
// when the sink (compositing, encoding) is the slower side. Latents go to other devices through
// host memory, as in spread_step.
Status spread_decode(const std::vector<const Bundle*>& replicas, const at::Tensor& latents, int64_t chunk,
                     const FrameSink& sink) {
  const size_t n = replicas.size();
  const int64_t T = latents.size(2);
  const size_t chunks = static_cast<size_t>((T + chunk - 1) / chunk);
  const at::Device primary = replicas.front()->device();
  const at::Tensor latents_host = latents.device().is_cpu() ? latents : latents.to(at::kCPU);
  struct Shared {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<at::Tensor> frames;  // per chunk, taken by the sink loop
    std::vector<bool> done;
    size_t consumed = 0;             // chunks handed to the sink
    std::optional<Error> error;
    bool stop = false;
  } shared;
  shared.frames.resize(chunks);
  shared.done.assign(chunks, false);

  const auto work = [&](size_t r) {
    const Bundle& bundle = *replicas[r];
    const at::Device device = bundle.device();
    const at::Tensor& source = device == primary ? latents : latents_host;
    std::optional<Error> failure;
    try {
      compat::WorkerThreadScope scope(device);
      for (size_t k = r; k < chunks; k += n) {
        {
          std::unique_lock<std::mutex> lock(shared.mutex);
          shared.changed.wait(lock, [&] { return shared.stop || k < shared.consumed + 2 * n; });
          if (shared.stop) return;
        }
        const int64_t a = static_cast<int64_t>(k) * chunk;
        at::Tensor frames = decode_frames(bundle, source, a, std::min<int64_t>(T, a + chunk));
        std::lock_guard<std::mutex> lock(shared.mutex);
        shared.frames[k] = std::move(frames);
        shared.done[k] = true;
        shared.changed.notify_all();
      }
    } catch (const std::exception& e) {
      failure = device_error(e, device, "decoding");
    } catch (...) {
      failure = Error::runtime("decoding on " + device.str() + " failed with an unknown exception");
    }
    if (failure) {
      std::lock_guard<std::mutex> lock(shared.mutex);
      if (!shared.error) shared.error = std::move(failure);
      shared.stop = true;
      shared.changed.notify_all();
    }
  };

  ReplicaThreads threads(std::min<size_t>(n, chunks));
  // After `shared` and `threads`: on any return the replicas stop after their current chunk and
  // the job has finished before `shared` goes.
  struct FinishAtExit {
    Shared& shared;
    ReplicaThreads& threads;
    ~FinishAtExit() {
      {
        std::lock_guard<std::mutex> lock(shared.mutex);
        shared.stop = true;
      }
      shared.changed.notify_all();
      threads.wait();
    }
  } finish_at_exit{shared, threads};
  threads.start(work);

  for (size_t k = 0; k < chunks; ++k) {
    at::Tensor frames;
    {
      std::unique_lock<std::mutex> lock(shared.mutex);
      shared.changed.wait(lock, [&] { return shared.done[k] || shared.error.has_value(); });
      if (!shared.done[k]) return *shared.error;
      frames = std::move(shared.frames[k]);
      shared.consumed = k + 1;
    }
    shared.changed.notify_all();
    if (sink) STANDIN_TRY(sink(static_cast<int64_t>(k) * chunk, frames));
    STANDIN_TRY(check_interrupted());
  }
  return Status::success();
}

}  // namespace

Status Generator::decode(const at::Tensor& latents, const FrameSink& sink, int chunk) const {
  STANDIN_TRY(check_replicas());
  if (!latents.defined() || latents.dim() != 5 || latents.size(0) != 1)
    return Error::runtime("decode needs latents [1,4,T,h,w], got " + shape_of(latents));
  const int64_t T = latents.size(2);
  chunk = std::max(chunk, 1);
  if (replicas_.size() > 1 && T > chunk) return spread_decode(replicas_, latents, chunk, sink);
  for (int64_t a = 0; a < T; a += chunk) {
    at::Tensor frames;
    try {
      frames = decode_frames(primary(), latents, a, std::min<int64_t>(T, a + chunk));
    } catch (const std::exception& e) {
      return torch_error(e, "decoding");
    }
    if (sink) STANDIN_TRY(sink(a, frames));
    STANDIN_TRY(check_interrupted());
  }
  return Status::success();
}

Result<GenerationOutput> Generator::generate(const GenerationInputs& in, const SamplingSettings& s, const FrameSink& sink) const {
  if (in.conditions == nullptr) return Error::bad_input("generate: no condition source");
  GenerationOutput out;
  const auto t0 = Clock::now();
  STANDIN_ASSIGN_OR_RETURN(auto ref, encode_reference(in.reference, in.reference_clip));
  compat::synchronize(primary().device());
  out.stats.reference_s = seconds_since(t0);
  STANDIN_ASSIGN_OR_RETURN(out.latents, sample(ref, *in.conditions, s, in.noise, &out.stats));
  if (sink) {
    const auto t1 = Clock::now();
    STANDIN_TRY(decode(out.latents, sink, s.vae_chunk));
    out.stats.decode_s = seconds_since(t1);
  }
  char line[512];
  std::snprintf(line, sizeof line,
                "generation: %lld frames, %d windows x %d steps, %lld UNet calls on %d device(s); reference %.2fs, "
                "conditions %.2fs, denoise %.2fs, decode %.2fs",
                static_cast<long long>(out.stats.frames), out.stats.windows, out.stats.steps,
                static_cast<long long>(out.stats.unet_calls), out.stats.devices, out.stats.reference_s, out.stats.conditions_s,
                out.stats.denoise_s, out.stats.decode_s);
  log::emit(log::Level::debug, line);
  return out;
}

}  // namespace standin::diffusion
