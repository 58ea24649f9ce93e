#include "options.hpp"

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <sstream>

#include <torch/cuda.h>
#include <torch/version.h>

#include "standin/diffusion/bundle.hpp"

namespace standin::cli {
namespace {

// CLI::Range lets NaN through (every comparison with NaN is false) and the integer
// conversions clamp: these read the text itself, so a value is exact or refused (exit 2).
CLI::Validator finite_number(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        char* end = nullptr;
        errno = 0;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v) || errno == ERANGE)
          return "must be a finite number, got '" + text + "'";
        if (v < lo || v > hi) {
          std::ostringstream range;
          range << lo << ".." << hi;
          return "must be in " + range.str() + ", got " + text;
        }
        return std::string();
      },
      "FLOAT");
}

CLI::Validator seed_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const std::string max = std::to_string(INT64_MAX);
        const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        const std::string trimmed = digits ? text.substr(std::min(text.find_first_not_of('0'), text.size() - 1)) : text;
        if (!digits || trimmed.size() > max.size() || (trimmed.size() == max.size() && trimmed > max))
          return "must be a whole number in 0.." + max + ", got '" + text + "'";
        return std::string();
      },
      "UINT");
}

void add_generate_options(CLI::App& cmd, GenerateOptions& o, bool needs_source) {
  auto* input = cmd.add_option("-i,--input", o.input,
                               needs_source ? "Source video whose character is replaced"
                                            : "Driving video whose poses animate the reference");
  if (needs_source) input->required();
  cmd.add_option("-r,--reference", o.reference,
                 "Reference image of the new character (not with --person ID=IMAGE, which names one per person)");
  cmd.add_option("-o,--output", o.output, "Output video (.mp4)")->required();
  cmd.add_option("-b,--bundle", o.bundle, "Model bundle directory (default: $STANDIN_BUNDLE, then models/demo: the trained demo model)");
  cmd.add_option("--device", o.device,
                 "auto (every visible CUDA device when present, else the CPU) | cpu | cuda (every visible CUDA device; "
                 "CUDA_VISIBLE_DEVICES narrows them) | cuda:N | a list cuda:0,cuda:1. With several devices each step's "
                 "windows are spread over them (same result as one); --chain-frames runs on the first")
      ->capture_default_str();
  cmd.add_option("--dtype", o.dtype, "fp32 | fp16 | bf16 (default: the bundle's)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  cmd.add_option("--size", o.size, "Work resolution WxH (default: the bundle's)");
  cmd.add_option("--steps", o.steps, "Denoising steps (default: the bundle's)")->check(CLI::Range(1, 1000));
  cmd.add_option("--cfg", o.cfg, "Classifier-free guidance scale (default: the bundle's)")->check(finite_number(0.0, 50.0));
  cmd.add_option("--seed", o.seed, "Random seed; same seed and device give the same output")
      ->check(seed_number())
      ->capture_default_str();
  cmd.add_option("--window", o.window, "Frames per temporal window")->check(CLI::Range(1, 256));
  cmd.add_option("--overlap", o.overlap, "Frames shared by neighbouring windows")->check(CLI::Range(0, 255));
  cmd.add_option("--sampler", o.sampler, "ddim | dpmpp-2m (default: the preset's, else the bundle's)")
      ->check(CLI::IsMember({"ddim", "dpmpp-2m"}));
  cmd.add_option("--preset", o.preset,
                 "Render preset: preview | standard | final (configs/presets) or a preset .json file; "
                 "options given explicitly win");
  cmd.add_option("--beta-schedule", o.beta_schedule,
                 "linear | scaled_linear (default: the bundle's, i.e. its checkpoint authors' schedule)")
      ->check(CLI::IsMember({"linear", "scaled_linear"}));
  cmd.add_option("--mask", o.mask, "Character mask video (white = character) instead of the built-in segmentation");
  cmd.add_option("--poses", o.poses, "poses.json (from `standin extract`) instead of the built-in pose tracker");
  cmd.add_option("--object-mask", o.object_mask, "Mask video of objects the character interacts with");
  cmd.add_option("--person", o.person,
                 "Which person to replace: auto | track id; or ID=IMAGE, repeatable, to replace several people "
                 "each with its own reference (ids from `standin extract`)")
      ->allow_extra_args(false);
  cmd.add_option("--mask-mode", o.mask_mode,
                 "Region the model redraws: agnostic (blocks, hides the old silhouette) | tight (the character mask) | "
                 "box (its bounding box). Default: the bundle's (models/demo: tight; others: agnostic)")
      ->check(CLI::IsMember({"agnostic", "tight", "box"}));
  cmd.add_option("--mask-blocks", o.mask_blocks,
                 "Shape-agnostic blocks per box side (default: the bundle's, usually one per 10 pixels; fewer = coarser)")
      ->check(CLI::Range(1, 1024));
  cmd.add_option("--mask-dilate", o.mask_dilate,
                 "Grow the redraw region by this many source pixels (default: the bundle's; 4 unless it says)")
      ->check(CLI::Range(0, 1024));
  cmd.add_option("--feather", o.feather,
                 "Compositing edge in source pixels: grow PX then blur (default: the bundle's, else 1% of the short side; 0 = hard edge)")
      ->check(CLI::Range(0, 1024));
  cmd.add_option("--matte", o.matte, "Also write the generated character's alpha per frame here (.mkv, lossless FFV1)");
  cmd.add_option("--retarget", o.retarget,
                 "Redraw the driving skeleton with the reference's body proportions: on | off (default: on in animate, "
                 "off in replace)")
      ->check(CLI::IsMember({"on", "off"}));
  cmd.add_option("--pose-smoothing", o.pose_smoothing,
                 "Pose tracker smoothing: 0 = off, 1 = MediaPipe's, larger = smoother with more lag")
      ->check(finite_number(0.0, 100.0))
      ->capture_default_str();
  cmd.add_option("--chain-frames", o.chain_frames,
                 "Long shots: generate windows one after another, each continuing the previous window's last N frames "
                 "(0 = averaged overlapping windows)")
      ->check(CLI::Range(0, 255))
      ->capture_default_str();
  cmd.add_option("--anchor-color", o.anchor_color,
                 "Long shots: pull the character's mean colour (Lab) back to the reference's in every frame: on | off")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  cmd.add_option("--landmark-model", o.landmark_model, "Pose model: lite (fastest) | full | heavy (most accurate)")
      ->check(CLI::IsMember({"lite", "full", "heavy"}))
      ->capture_default_str();
  cmd.add_option("--vision-models", o.vision_models,
                 "Converted MediaPipe models (default: $STANDIN_VISION_MODELS, then models/vision)");
  cmd.add_option("--max-people", o.max_people, "People tracked at once (fewer is faster)")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  cmd.add_option("--crf", o.crf, "x264 quality (lower = better)")->check(CLI::Range(0, 51))->capture_default_str();
  cmd.add_option("--preview", o.preview, "Also write a side-by-side preview video here");
  cmd.add_option("--metrics", o.metrics, "Write stage timings and settings as JSON here");
  cmd.add_option("--cache", o.cache, "Keep finished work here so an interrupted run resumes");
}

}  // namespace

std::map<std::string, bool> generate_long_options() {
  CLI::App app;
  GenerateOptions ignored;
  add_generate_options(app, ignored, /*needs_source=*/false);
  std::map<std::string, bool> names;
  for (const CLI::Option* option : app.get_options()) {
    for (const auto& name : option->get_lnames())
      if (name != "help") names[name] = option->get_type_size() != 0;
  }
  return names;
}

std::string version_string() {
  std::ostringstream out;
  out << "standin " << STANDIN_VERSION << " (LibTorch " << TORCH_VERSION << ")";
  return out.str();
}

std::string concrete_device(const std::string& name) {
  if (name != "auto") return name;
  return torch::cuda::is_available() ? "cuda" : "cpu";
}

ParseOutcome parse_command_line(int argc, const char* const* argv) {
  CommandLine line;
  CLI::App app{"standin: replace a character in a video with the character of a reference image", "standin"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags work after the subcommand too: `standin replace ... -y`
  app.set_version_flag("--version", version_string());
  app.add_flag("-v,--verbose", line.global.verbosity, "More log detail (repeat for trace)");
  app.add_flag("-q,--quiet", line.global.quiet, "Warnings and errors only");
  app.add_flag("--log-json", line.global.log_json, "Log one JSON object per line on stderr");
  app.add_flag("-y,--overwrite", line.global.overwrite, "Allow replacing an existing output");
  app.footer("Exit codes: 0 ok, 1 compare below threshold, 2 usage, 3 bad input, 4 model/bundle error,\n5 runtime failure, 130 interrupted.\n");

  auto* replace = app.add_subcommand("replace", "Replace the character of a video with the reference character");
  add_generate_options(*replace, line.generate, /*needs_source=*/true);
  auto* animate = app.add_subcommand("animate", "Animate the reference image with the poses of a video (no environment)");
  add_generate_options(*animate, line.generate, /*needs_source=*/false);

  auto* extract = app.add_subcommand("extract", "Write poses.json, pose/mask/overlay videos for a video");
  extract->add_option("-i,--input", line.extract.input, "Video to analyse")->required();
  extract->add_option("-o,--output", line.extract.output_dir, "Output directory")->required();
  extract->add_option("--person", line.extract.person, "auto | track id")->capture_default_str();
  extract->add_option("--vision-models", line.extract.vision_models, "Converted MediaPipe models (default: models/vision)");
  extract->add_option("--device", line.extract.device, "auto (CUDA when present, else CPU) | cpu | cuda | cuda:N")->capture_default_str();
  extract->add_option("--landmark-model", line.extract.landmark_model, "lite | full | heavy")
      ->check(CLI::IsMember({"lite", "full", "heavy"}))
      ->capture_default_str();
  extract->add_option("--max-people", line.extract.max_people, "People tracked at once (fewer is faster)")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  extract->add_option("--pose-smoothing", line.extract.pose_smoothing,
                      "Pose smoothing: 0 = off, 1 = MediaPipe's, larger = smoother (use the same value in replace)")
      ->check(finite_number(0.0, 100.0))
      ->capture_default_str();

  auto* models = app.add_subcommand("models", "List or verify model bundles");
  models->add_option("bundles", line.models.bundles, "Bundle directories (default: the known locations)");
  models->add_flag("--verify", line.models.verify, "Check sha256 and run each module's contract dry run");
  models->add_option("--device", line.models.device, "Device for --verify: auto | cpu | cuda | cuda:N")->capture_default_str();

  auto* compare = app.add_subcommand("compare", "PSNR/SSIM between two videos; fails past a threshold");
  compare->add_option("a", line.compare.a, "First video")->required();
  compare->add_option("b", line.compare.b, "Second video")->required();
  compare->add_option("--mask", line.compare.mask, "Mask video: also report inside/outside");
  compare->add_flag("--json", line.compare.json, "Print JSON");
  compare->add_option("--min-psnr", line.compare.min_psnr, "Exit 1 if whole-frame PSNR is lower (dB)")
      ->check(finite_number(0.0, 1000.0));

  auto* batch = app.add_subcommand("batch", "Run many replace/animate jobs from a JSON-lines file");
  batch->add_option("jobs", line.batch.jobs, "JOBS.jsonl")->required();
  batch->add_option("--shard", line.batch.shard, "I/N: run only jobs with index % N == I");
  batch->add_option("--status", line.batch.status_file, "Status file (default: JOBS.status.json next to the jobs file)");
  batch->add_option("--log-dir", line.batch.log_dir, "Per-job logs (default: JOBS.logs/ next to the jobs file)");

  ParseOutcome outcome;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    outcome.text = app.help();
    return outcome;
  } catch (const CLI::CallForAllHelp&) {
    outcome.text = app.help("", CLI::AppFormatMode::All);
    return outcome;
  } catch (const CLI::CallForVersion&) {
    outcome.text = version_string() + "\n";
    return outcome;
  } catch (const CLI::ParseError& e) {
    outcome.text = std::string("error: ") + e.what() + "\nRun with --help for usage.\n";
    outcome.exit_code = static_cast<int>(ExitCode::usage);
    return outcome;
  }

  if (replace->parsed()) line.command = Subcommand::replace;
  if (animate->parsed()) line.command = Subcommand::animate;
  if (extract->parsed()) line.command = Subcommand::extract;
  if (models->parsed()) line.command = Subcommand::models;
  if (compare->parsed()) line.command = Subcommand::compare;
  if (batch->parsed()) line.command = Subcommand::batch;

  auto usage_error = [&](const std::string& message) {
    outcome.text = "error: " + message + "\nRun with --help for usage.\n";
    outcome.exit_code = static_cast<int>(ExitCode::usage);
    return outcome;
  };
  if (line.command == Subcommand::replace || line.command == Subcommand::animate) {
    if (line.generate.device != "auto") {  // the spelling now; whether the devices exist, when loading
      auto devices = diffusion::parse_device_list(line.generate.device);
      if (!devices.ok()) return usage_error(devices.error().message);
    }
    if (!line.generate.size.empty()) {
      auto size = parse_size(line.generate.size);
      if (!size.ok()) return usage_error(size.error().message);
    }
    if (line.command == Subcommand::animate && line.generate.input.empty() && line.generate.poses.empty())
      return usage_error("animate needs a driving video (-i) or --poses");
    auto people = parse_people(line.generate.person);
    if (!people.ok()) return usage_error(people.error().message);
    if (people->people.empty() && line.generate.reference.empty())
      return usage_error("--reference is required (or name each person's reference with --person ID=IMAGE)");
    if (!people->people.empty() && !line.generate.reference.empty())
      return usage_error("--reference and --person ID=IMAGE together: name every person's reference with --person ID=IMAGE");
  }
  if (line.command == Subcommand::batch && !line.batch.shard.empty()) {
    auto shard = parse_shard(line.batch.shard);
    if (!shard.ok()) return usage_error(shard.error().message);
  }
  outcome.command = std::move(line);
  return outcome;
}

Result<std::pair<int, int>> parse_size(const std::string& text) {
  const auto x = text.find_first_of("xX");
  auto bad = [&] {
    return Error::usage("--size must look like 512x768 (width x height, multiples of 8, up to 8192), got '" + text + "'");
  };
  if (x == std::string::npos || x == 0 || x + 1 >= text.size()) return bad();
  int w = 0, h = 0;
  try {
    size_t used_w = 0, used_h = 0;
    w = std::stoi(text.substr(0, x), &used_w);
    h = std::stoi(text.substr(x + 1), &used_h);
    if (used_w != x || used_h != text.size() - x - 1) return bad();
  } catch (const std::exception&) {
    return bad();
  }
  if (w <= 0 || h <= 0 || w % 8 || h % 8 || w > 8192 || h > 8192) return bad();
  return std::make_pair(w, h);
}

Result<int> parse_person(const std::string& text) {
  if (text.empty() || text == "auto") return -1;
  try {
    size_t used = 0;
    const long v = std::stol(text, &used);
    if (used == text.size() && v >= 0 && v < 1000000) return static_cast<int>(v);
  } catch (const std::exception&) {
  }
  return Error::usage("--person " + text + ": expected auto or a track id (0, 1, ...)");
}

Result<PersonChoice> parse_people(const std::vector<std::string>& values) {
  PersonChoice choice;
  bool plain = false;
  for (const auto& value : values) {
    const auto eq = value.find('=');
    if (eq == std::string::npos) {
      if (plain || !choice.people.empty())
        return Error::usage("--person " + value + ": give --person auto|N once, or ID=IMAGE for each person to replace");
      plain = true;
      STANDIN_ASSIGN_OR_RETURN(choice.person, parse_person(value));
      continue;
    }
    if (plain) return Error::usage("--person " + value + ": ID=IMAGE cannot be mixed with --person auto|N");
    const std::string id = value.substr(0, eq), image = value.substr(eq + 1);
    auto track = parse_person(id);
    if (id.empty() || id == "auto" || !track.ok() || image.empty())
      return Error::usage("--person " + value + ": expected ID=IMAGE with a track id from `standin extract` (e.g. 3=hero.png)");
    choice.people.emplace_back(*track, image);
  }
  return choice;
}

Result<std::pair<int, int>> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  auto bad = [&] { return Error::usage("--shard must look like I/N with 0 <= I < N, got '" + text + "'"); };
  if (slash == std::string::npos) return bad();
  try {
    size_t used_i = 0, used_n = 0;
    const int i = std::stoi(text.substr(0, slash), &used_i);
    const int n = std::stoi(text.substr(slash + 1), &used_n);
    if (used_i != slash || used_n != text.size() - slash - 1 || n <= 0 || i < 0 || i >= n) return bad();
    return std::make_pair(i, n);
  } catch (const std::exception&) {
    return bad();
  }
}

}  // namespace standin::cli
