// bench_generate: the C++ side of the generator benchmark (docs/BENCHMARKS.md).
//
//   build/bench_generate --bundle /tmp/sd15 --conds conds.pt --device cuda --dtype fp16
//       --modes split,batched --out-prefix /tmp/cpp_ --metrics cpp.json
//       --unet-bench 3 --variants batched,split,split+cudnn_benchmark,split+sdpa_cudnn,split+channels_last
//   (one command line; scripts/gpu/bench.sh runs it)
//   build/bench_generate ... --devices cuda:0,cuda:1     (several GPUs: 1 vs 2 devices, below)
//
// Reads the same conds.pt as scripts/reference_pipeline.py (docs/SAMPLING.md), and for each CFG
// mode in --modes: a warm-up generation of --warmup-steps steps (TorchScript's profiling runs,
// cuDNN/cuBLAS handles, allocator), then one timed generation (reference features, conditions,
// denoising, decode) whose latents/frames go to <out-prefix><mode>.pt as {latents, frames}
// (float32, the reference pipeline's result.pt layout) and whose times and peak device memory go to
// --metrics. With --devices (a list, or cuda = every visible GPU) one bundle replica is loaded per
// device and each mode is timed twice: on the first device alone (runs.<mode>, as without
// --devices) and over all of them (runs.<mode>@<N>dev: the windows of each step spread,
// docs/SAMPLING.md "Several devices"), with the speed-up and whether the latents are bit-identical.
// (A list of CPUs, cpu,cpu, is accepted here for a smoke test of that path; standin refuses it.)
// --unet-bench N then times N evaluations of one window (the CFG pair) per variant:
//   batched | split            the CFG mode (SamplingSettings::cfg_mode)
//   +cudnn_benchmark           cuDNN autotuning of convolution algorithms
//   +sdpa_cudnn|_efficient|_flash  that SDPA backend first in the dispatch order (LibTorch >= 2.8)
//   +channels_last             the UNet's 4-D weights in channels-last (irreversible: list it last)
//   +jit                       TorchScript graph optimisation (profiling executor, fusers) on for
//                              the UNet (LoadOptions::jit_optimize; off by default)
// Only public headers are used, except for +channels_last and +jit, which reach the loaded module
// through ModuleBase's protected members (benchmark-only experiments).
#include <algorithm>
#include <cstdarg>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <torch/version.h>

#include "standin/core/progress.hpp"
#include "standin/diffusion/bundle.hpp"
#include "standin/diffusion/generator.hpp"
#include "standin/diffusion/torch_compat.hpp"

#if STANDIN_TORCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <torch/cuda.h>
#endif

#define STANDIN_BENCH_SDPA_ORDER (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 8))

using namespace standin;
using namespace standin::diffusion;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// printf-style log line on stderr. (No spdlog here: CUDA LibTorch 2.x ships its own fmt headers,
// which shadow the fmt that the system spdlog is built against.)
void say(const char* format, ...) {
  std::fprintf(stderr, "[bench] ");
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error(path + ": cannot write");
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

// ---------------------------------------------------------------- device helpers

void sync(const at::Device& d) {
#if STANDIN_TORCH_CUDA
  if (d.is_cuda()) torch::cuda::synchronize(d.has_index() ? d.index() : -1);
#else
  (void)d;
#endif
}

#if STANDIN_TORCH_CUDA
c10::DeviceIndex index_of(const at::Device& d) { return d.has_index() ? d.index() : c10::cuda::current_device(); }
#endif

struct Mem {
  int64_t peak_allocated = 0, peak_reserved = 0;
};

void reset_peak(const at::Device& d) {
#if STANDIN_TORCH_CUDA
  if (d.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(index_of(d));
#else
  (void)d;
#endif
}

Mem peak(const at::Device& d) {
  Mem m;
#if STANDIN_TORCH_CUDA
  if (d.is_cuda()) {
    const auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(index_of(d));
    m.peak_allocated = s.allocated_bytes[0].peak;
    m.peak_reserved = s.reserved_bytes[0].peak;
  }
#else
  (void)d;
#endif
  return m;
}

json mem_json(const Mem& m) {
  return {{"peak_allocated_gib", m.peak_allocated / double(1 << 30)}, {"peak_reserved_gib", m.peak_reserved / double(1 << 30)}};
}

json device_json(const at::Device& d) {
  json j = {{"device", d.str()}, {"libtorch", TORCH_VERSION}};
#if STANDIN_TORCH_CUDA
  if (d.is_cuda()) {
    const auto* p = at::cuda::getDeviceProperties(index_of(d));
    j["name"] = p->name;
    j["sm_count"] = p->multiProcessorCount;
    j["memory_gib"] = p->totalGlobalMem / double(1 << 30);
  }
#endif
  return j;
}

// ---------------------------------------------------------------- global switches

void set_cudnn_benchmark(bool on) { at::globalContext().setBenchmarkCuDNN(on); }

// Puts one SDPA backend first in the dispatcher's priority order ("" = the default order); SDPA
// still falls back to the next backend when the preferred one cannot take an input.
bool set_sdpa_prefer(const std::string& backend) {
#if STANDIN_BENCH_SDPA_ORDER
  static const auto default_order = at::globalContext().sDPPriorityOrder();
  static const bool default_cudnn = at::globalContext().userEnabledCuDNNSDP();
  at::SDPBackend first = at::SDPBackend::error;
  if (backend == "cudnn") first = at::SDPBackend::cudnn_attention;
  else if (backend == "flash") first = at::SDPBackend::flash_attention;
  else if (backend == "efficient") first = at::SDPBackend::efficient_attention;
  else if (!backend.empty()) return false;
  std::vector<int64_t> order;
  if (first != at::SDPBackend::error) order.push_back(static_cast<int64_t>(first));
  for (auto b : default_order)
    if (b != first) order.push_back(static_cast<int64_t>(b));
  at::globalContext().setSDPPriorityOrder(order);
  at::globalContext().setSDPUseCuDNN(first == at::SDPBackend::cudnn_attention ? true : default_cudnn);
  return true;
#else
  return backend.empty();  // not available in this LibTorch
#endif
}

// Benchmark-only access to a loaded module (ModuleBase keeps it protected).
struct ModuleAccess : ModuleBase {
  static torch::jit::Module& of(const ModuleBase& m) { return *(m.*(&ModuleAccess::module_)); }
  static void set_jit(const ModuleBase& m, bool on) { const_cast<ModuleBase&>(m).*(&ModuleAccess::jit_optimize_) = on; }
};

void to_channels_last(const ModuleBase& m) {
  for (auto p : ModuleAccess::of(m).parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
}

// ---------------------------------------------------------------- conditions

struct Conds {
  c10::impl::GenericDict dict{c10::StringType::get(), c10::AnyType::get()};
  bool has(const std::string& k) const { return dict.contains(k); }
  at::Tensor get(const std::string& k) const { return dict.at(k).toTensor(); }
  double scalar(const std::string& k, double fallback) const { return has(k) ? get(k).item<double>() : fallback; }
};

Conds load_conds(const std::string& path) {
  Conds c;
  c.dict = compat::pickle_load(read_bytes(path)).toGenericDict();
  for (const char* k : {"reference", "reference_clip", "pose", "noise"})
    if (!c.has(k)) throw std::runtime_error(path + ": no '" + k + "' tensor");
  return c;
}

// ---------------------------------------------------------------- full generation

// --devices: "cuda" (every visible GPU) or a list; unlike standin's --device, each item is
// resolved on its own, so cpu,cpu (two CPU replicas) smoke-tests the multi-device path here.
Result<std::vector<at::Device>> bench_devices(const std::string& text) {
  if (text == "cuda") return resolve_devices(text);
  std::vector<at::Device> out;
  for (const auto& name : split(text, ',')) {
    auto d = DeviceSpec{name}.resolve();
    if (!d.ok()) return d.error();
    out.push_back(d.value());
  }
  if (out.empty()) return Error::usage("--devices: no device named");
  return out;
}

struct RunOut {
  GenerationStats stats;
  double total_s = 0;
  Mem mem;                       // the first device's
  std::vector<Mem> per_device;   // every replica's device, when there are several
  at::Tensor latents, frames;
};

Result<RunOut> run_generation(const Generator& gen, const Conds& c, const SamplingSettings& s, bool keep_frames) {
  std::vector<at::Device> devices;
  for (const Bundle* b : gen.replicas()) devices.push_back(b->device());
  const at::Device dev = devices.front();
  TensorConditionSource src(c.has("environment") ? c.get("environment") : at::Tensor(), c.has("mask") ? c.get("mask") : at::Tensor(),
                            c.get("pose"), c.has("object") ? c.get("object") : at::Tensor(),
                            c.has("depth") ? c.get("depth") : at::Tensor());
  RunOut r;
  const at::Tensor pose = c.get("pose");
  if (keep_frames) r.frames = at::empty({pose.size(0), 3, pose.size(2), pose.size(3)}, at::kFloat);
  for (const auto& d : devices) sync(d), reset_peak(d);
  const auto t0 = Clock::now();
  auto out = gen.generate({c.get("reference"), c.get("reference_clip"), &src, c.get("noise")}, s,
                          [&](int64_t first, const at::Tensor& f) {
                            if (keep_frames) r.frames.slice(0, first, first + f.size(0)).copy_(f);
                            return Status::success();
                          });
  for (const auto& d : devices) sync(d);
  r.total_s = since(t0);
  if (!out.ok()) return out.error();
  r.mem = peak(dev);
  if (devices.size() > 1)
    for (const auto& d : devices) r.per_device.push_back(peak(d));
  r.stats = out->stats;
  r.latents = out->latents.to(at::kCPU).to(at::kFloat);
  return r;
}

json stats_json(const RunOut& r) {
  const auto& s = r.stats;
  const double frames = static_cast<double>(std::max<int64_t>(1, s.frames));
  return {{"frames", s.frames},
          {"windows", s.windows},
          {"steps", s.steps},
          {"unet_calls", s.unet_calls},
          {"seconds", {{"reference", s.reference_s}, {"conditions", s.conditions_s}, {"denoise", s.denoise_s},
                       {"decode", s.decode_s}, {"total", r.total_s}}},
          {"seconds_per_frame", r.total_s / frames},
          {"denoise_seconds_per_frame", s.denoise_s / frames},
          {"devices_used", s.devices},
          {"memory", mem_json(r.mem)}};
}

// ---------------------------------------------------------------- UNet micro-benchmark

struct Variant {
  std::string name;
  CfgMode mode = CfgMode::split;
  bool cudnn_benchmark = false, channels_last = false, jit = false;
  std::string sdpa;  // preferred SDPA backend, "" = default order
};

Result<Variant> parse_variant(const std::string& name) {
  Variant v;
  v.name = name;
  const auto parts = split(name, '+');
  if (parts.empty()) return Error::usage("empty variant");
  if (parts[0] == "batched") v.mode = CfgMode::batched;
  else if (parts[0] == "split") v.mode = CfgMode::split;
  else return Error::usage("variant '" + name + "': must start with batched or split");
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i] == "cudnn_benchmark") v.cudnn_benchmark = true;
    else if (parts[i].rfind("sdpa_", 0) == 0) v.sdpa = parts[i].substr(5);
    else if (parts[i] == "channels_last") v.channels_last = true;
    else if (parts[i] == "jit") v.jit = true;
    else return Error::usage("variant '" + name + "': unknown option '" + parts[i] + "'");
  }
  return v;
}

json unet_bench(const Bundle& bundle, const Generator& gen, const Conds& c, const SamplingSettings& s,
                const std::vector<Variant>& variants, int iters, bool jit_default, bool* channels_last_applied) {
  const at::Device dev = bundle.device();
  const at::ScalarType dt = bundle.dtype();
  const auto& cfg = bundle.config();
  const at::Tensor pose = c.get("pose");
  const int64_t T = pose.size(0), H = pose.size(2), W = pose.size(3);
  const int64_t fw = std::min<int64_t>(s.window, T), lh = H / cfg.vae_scale_factor, lw = W / cfg.vae_scale_factor;
  json out = json::array();

  auto ref = gen.encode_reference(c.get("reference"), c.get("reference_clip"));
  if (!ref.ok()) return {{"error", ref.error().message}};
  auto g = at::detail::createCPUGenerator(1234);
  const auto o = at::TensorOptions().dtype(dt).device(dev);
  const at::Tensor embed = ref->embed;
  const auto t1 = at::full({1}, 500, at::TensorOptions().dtype(at::kLong).device(dev));
  const auto t2 = at::full({2}, 500, at::TensorOptions().dtype(at::kLong).device(dev));
  const auto fdev = at::TensorOptions().dtype(at::kFloat).device(dev);
  at::Tensor sample, pf;
  {
    compat::InferenceGuard guard;
    sample = at::randn({1, cfg.unet_in_channels, fw, lh, lw}, g, at::kFloat).to(o);
    pf = bundle.pose_guider().features(pose.slice(0, 0, fw)).permute({1, 0, 2, 3}).unsqueeze(0).contiguous();
  }

  for (const auto& v : variants) {
    json row = {{"variant", v.name}, {"window", fw}, {"iters", iters}};
    try {
      set_cudnn_benchmark(v.cudnn_benchmark);
      if (!set_sdpa_prefer(v.sdpa)) throw std::runtime_error("sdpa_" + v.sdpa + ": unknown, or LibTorch < 2.8");
      if (v.channels_last && !*channels_last_applied) {
        to_channels_last(bundle.denoising_unet());
        *channels_last_applied = true;
      }
      ModuleAccess::set_jit(bundle.denoising_unet(), v.jit || jit_default);
      const auto eval = [&]() {
        compat::InferenceGuard guard;
        if (v.mode == CfgMode::batched) {
          UnetInputs u;
          u.sample = at::cat({sample, sample}, 0);
          u.timestep = t2;
          u.context = at::cat({at::zeros_like(embed), embed}, 0);
          u.pose = at::cat({pf, pf}, 0);
          u.reference = ref->tokens;
          u.reference_keep = at::tensor({0.0f, 1.0f}).to(dev);
          return bundle.denoising_unet().predict(u);
        }
        UnetInputs un;
        un.sample = sample;
        un.timestep = t1;
        un.context = at::zeros_like(embed);
        un.pose = pf;
        un.reference_keep = at::ones({1}, fdev);
        at::Tensor a = bundle.denoising_unet().predict(un);
        UnetInputs uc = un;
        uc.context = embed;
        uc.reference = ref->tokens;
        at::Tensor b = bundle.denoising_unet().predict(uc);
        return at::cat({a, b}, 0);
      };
      const auto tw = Clock::now();
      for (int i = 0; i < 3; ++i) eval();
      sync(dev);
      row["warmup_s"] = since(tw);
      reset_peak(dev);
      std::vector<double> times;
      for (int i = 0; i < iters; ++i) {
        const auto t0 = Clock::now();
        at::Tensor r = eval();
        sync(dev);
        times.push_back(since(t0));
        if (i == 0) row["finite"] = bool(at::isfinite(r).all().item<bool>());
      }
      std::sort(times.begin(), times.end());
      row["median_s"] = times[times.size() / 2];
      row["min_s"] = times.front();
      row["max_s"] = times.back();
      row["memory"] = mem_json(peak(dev));
      say("unet-bench %-32s window %lld: median %.4f s (min %.4f, max %.4f), peak %.2f GiB", v.name.c_str(),
          static_cast<long long>(fw), times[times.size() / 2], times.front(), times.back(),
          peak(dev).peak_allocated / double(1 << 30));
    } catch (const std::exception& e) {
      row["error"] = compat::short_message(e);
      say("unet-bench %s: %s", v.name.c_str(), compat::short_message(e).c_str());
      compat::empty_device_cache();
    }
    out.push_back(row);
  }
  set_cudnn_benchmark(false);
  set_sdpa_prefer("");
  ModuleAccess::set_jit(bundle.denoising_unet(), jit_default);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"standin generator benchmark (docs/BENCHMARKS.md)"};
  std::string bundle_dir, conds_path, device = "cpu", devices_arg, dtype, metrics_path, out_prefix, modes = "split", variants_arg;
  int warmup_steps = 1, unet_iters = 0, steps = 0;
  bool no_verify = false, jit_optimize = false, cudnn_benchmark = false;
  app.add_option("--bundle", bundle_dir, "Bundle directory")->required();
  app.add_option("--conds", conds_path, "conds.pt (scripts/reference_pipeline.py input format)")->required();
  app.add_option("--device", device, "cpu | cuda | cuda:N")->capture_default_str();
  app.add_option("--devices", devices_arg,
                 "Several devices (replaces --device): cuda (every visible GPU) or a list cuda:0,cuda:1; each mode is "
                 "timed on the first alone, then on all");
  app.add_option("--dtype", dtype, "fp32 | fp16 | bf16 (default: the bundle's)");
  app.add_option("--modes", modes, "Comma-separated CFG modes for full timed runs: split, batched (empty: none)")
      ->capture_default_str();
  app.add_option("--steps", steps, "Override conds.pt's steps");
  app.add_option("--warmup-steps", warmup_steps, "Steps of the untimed warm-up generation before each mode (0: none)")
      ->capture_default_str();
  app.add_option("--out-prefix", out_prefix, "Write <prefix><mode>.pt = {latents, frames} per mode");
  app.add_option("--metrics", metrics_path, "Write timings / memory as JSON");
  app.add_option("--unet-bench", unet_iters, "Timed window evaluations per variant (0: skip)")->capture_default_str();
  app.add_option("--variants", variants_arg, "Comma-separated micro-benchmark variants (see the file's header)");
  app.add_flag("--no-verify", no_verify, "Skip the modules' sha256 check");
  app.add_flag("--cudnn-benchmark", cudnn_benchmark, "cuDNN autotuning during the full runs");
  app.add_option("--jit-optimize", jit_optimize, "TorchScript graph optimisation (profiling executor, fusers): 1 | 0")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  set_progress_enabled(false);

  json metrics = {{"tool", "bench_generate"}, {"bundle", bundle_dir}, {"conds", conds_path}};
  try {
    std::optional<DType> dt;
    if (!dtype.empty()) {
      auto d = parse_dtype(dtype);
      if (!d.ok()) throw std::runtime_error(d.error().message);
      dt = d.value();
    }
    LoadOptions lo;
    lo.verify_checksums = !no_verify;
    lo.jit_optimize = jit_optimize;
    const auto tl = Clock::now();
    std::vector<Bundle> bundles;
    if (devices_arg.empty()) {
      auto loaded = Bundle::load(bundle_dir, DeviceSpec{device}, dt, lo);
      if (!loaded.ok()) throw std::runtime_error(loaded.error().message);
      bundles.push_back(std::move(loaded).value());
    } else {
      auto listed = bench_devices(devices_arg);
      if (!listed.ok()) throw std::runtime_error(listed.error().message);
      auto loaded = load_replicas(bundle_dir, listed.value(), dt, lo);
      if (!loaded.ok()) throw std::runtime_error(loaded.error().message);
      bundles = std::move(loaded).value();
    }
    const Bundle& bundle = bundles.front();
    const at::Device dev = bundle.device();
    metrics["load_s"] = since(tl);
    metrics["device"] = device_json(dev);
    if (bundles.size() > 1) {
      metrics["devices"] = json::array();
      for (const auto& b : bundles) metrics["devices"].push_back(device_json(b.device()));
    }
    metrics["dtype"] = std::string(c10::toString(bundle.dtype()));
    metrics["jit_optimize"] = jit_optimize;
    metrics["cudnn_benchmark"] = cudnn_benchmark;
    say("loaded %s on %s as %s in %.1f s (%zu device(s))", bundle_dir.c_str(), dev.str().c_str(), c10::toString(bundle.dtype()),
        since(tl), bundles.size());

    const Conds c = load_conds(conds_path);
    SamplingSettings s = SamplingSettings::from_bundle(bundle.config());
    s.steps = steps > 0 ? steps : static_cast<int>(c.scalar("steps", s.steps));
    s.cfg = c.scalar("cfg", s.cfg);
    s.window = static_cast<int>(c.scalar("window", s.window));
    s.overlap = static_cast<int>(c.scalar("overlap", s.overlap));
    s.sampler = static_cast<SamplerKind>(static_cast<int>(c.scalar("sampler", 0)));
    s.show_progress = false;
    metrics["settings"] = {{"steps", s.steps}, {"cfg", s.cfg}, {"window", s.window}, {"overlap", s.overlap},
                           {"sampler", to_string(s.sampler)}, {"frames", c.get("pose").size(0)},
                           {"height", c.get("pose").size(2)}, {"width", c.get("pose").size(3)}};
    const Generator gen(bundle);
    std::vector<const Bundle*> all;
    for (const auto& b : bundles) all.push_back(&b);
    const Generator gen_all(all);
    const std::string all_key = "@" + std::to_string(all.size()) + "dev";
    set_cudnn_benchmark(cudnn_benchmark);

    json runs = json::object();
    for (const auto& mode_name : split(modes, ',')) {
      SamplingSettings sm = s;
      if (mode_name == "split") sm.cfg_mode = CfgMode::split;
      else if (mode_name == "batched") sm.cfg_mode = CfgMode::batched;
      else throw std::runtime_error("--modes: unknown mode '" + mode_name + "'");
      const auto warm_up = [&](const Generator& g, json& run) {
        if (warmup_steps <= 0) return;
        SamplingSettings w = sm;
        w.steps = warmup_steps;
        const auto tw = Clock::now();
        auto r = run_generation(g, c, w, false);
        if (!r.ok()) throw std::runtime_error("warm-up: " + r.error().message);
        run["warmup_s"] = since(tw);
        run["warmup_steps"] = warmup_steps;
      };
      const auto timed = [&](const Generator& g, const std::string& key, json& run) -> RunOut {
        auto r = run_generation(g, c, sm, !out_prefix.empty());
        if (!r.ok()) throw std::runtime_error(key + ": " + r.error().message);
        run.update(stats_json(r.value()));
        say("%s: %lld frames in %.2f s = %.4f s/frame (denoise %.2f s, %lld window evaluations on %d device(s)), peak %.2f GiB",
            key.c_str(), static_cast<long long>(r->stats.frames), r->total_s,
            r->total_s / double(std::max<int64_t>(1, r->stats.frames)), r->stats.denoise_s,
            static_cast<long long>(r->stats.unet_calls), r->stats.devices, r->mem.peak_allocated / double(1 << 30));
        if (!r->per_device.empty()) {
          run["memory_per_device"] = json::array();
          for (const auto& m : r->per_device) run["memory_per_device"].push_back(mem_json(m));
        }
        if (!out_prefix.empty()) {
          c10::Dict<std::string, at::Tensor> d;
          d.insert("latents", r->latents.contiguous());
          d.insert("frames", r->frames);
          const std::string path = out_prefix + key + ".pt";
          write_bytes(path, compat::pickle_save(d));
          run["result"] = path;
        }
        return std::move(r).value();
      };
      json run;
      warm_up(gen, run);
      const RunOut one = timed(gen, mode_name, run);
      if (all.size() > 1) {  // the same run over every device, after its own warm-up
        json spread;
        warm_up(gen_all, spread);
        const RunOut many = timed(gen_all, mode_name + all_key, spread);
        const bool identical = at::equal(one.latents, many.latents);
        spread["speedup_vs_1_device"] = one.total_s / many.total_s;
        spread["denoise_speedup_vs_1_device"] = one.stats.denoise_s / many.stats.denoise_s;
        spread["latents_identical_to_1_device"] = identical;
        spread["latents_max_abs_diff_to_1_device"] = (one.latents - many.latents).abs().max().item<double>();
        say("%s on %zu devices: %.2fx the one-device speed (denoise %.2fx), latents %s", mode_name.c_str(), all.size(),
            one.total_s / many.total_s, one.stats.denoise_s / many.stats.denoise_s,
            identical ? "bit-identical" : "DIFFERENT");
        runs[mode_name + all_key] = spread;
      }
      runs[mode_name] = run;
      if (!metrics_path.empty()) {  // write as we go: a later failure keeps what was measured
        metrics["runs"] = runs;
        std::ofstream(metrics_path) << metrics.dump(2) << "\n";
      }
    }
    metrics["runs"] = runs;

    if (unet_iters > 0 && !variants_arg.empty()) {
      std::vector<Variant> variants;
      for (const auto& name : split(variants_arg, ',')) {
        auto v = parse_variant(name);
        if (!v.ok()) throw std::runtime_error(v.error().message);
        variants.push_back(v.value());
      }
      bool cl = false;
      metrics["unet_bench"] = unet_bench(bundle, gen, c, s, variants, unet_iters, jit_optimize, &cl);
    }
  } catch (const std::exception& e) {
    metrics["error"] = compat::short_message(e);
    say("error: %s", compat::short_message(e).c_str());
    if (!metrics_path.empty()) std::ofstream(metrics_path) << metrics.dump(2) << "\n";
    return 1;
  }
  if (!metrics_path.empty()) std::ofstream(metrics_path) << metrics.dump(2) << "\n";
  return 0;
}
