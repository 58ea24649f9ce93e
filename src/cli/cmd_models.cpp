// `standin models`: which bundles are where, and (--verify) whether each one is intact.
#include <cstdio>
#include <filesystem>


#include "commands.hpp"
#include "standin/core/log.hpp"
#include "standin/diffusion/bundle.hpp"
#include "standin/pipeline/generate.hpp"

namespace fs = std::filesystem;

namespace standin::cli {

Status run_models(const CommandLine& line) {
  const ModelsOptions& o = line.models;
  std::vector<std::string> dirs = o.bundles;
  if (dirs.empty()) {
    // Every folder with a model.json under the default bundle's parent (models/ by default).
    const fs::path parent = fs::path(pipeline::default_bundle_dir()).parent_path();
    std::error_code ec;
    // Error codes throughout: an unreadable entry is skipped, never an exception.
    for (fs::directory_iterator it(parent.empty() ? "." : parent, ec), end; !ec && it != end; it.increment(ec))
      if (std::error_code exists_ec; fs::exists(it->path() / "model.json", exists_ec)) dirs.push_back(it->path().string());
    std::sort(dirs.begin(), dirs.end());
    if (dirs.empty()) {
      log::warn("no bundles under '{}'; export one with scripts/export_bundle.py", parent.string());
      return Status::success();
    }
  }
  Status first_failure;
  for (const auto& dir : dirs) {
    auto config = diffusion::BundleConfig::read((fs::path(dir) / "model.json").string());
    if (!config.ok()) {
      std::printf("%-28s INVALID  %s\n", dir.c_str(), config.error().message.c_str());
      if (first_failure.ok()) first_failure = config.error();
      continue;
    }
    // the compositing edge: the bundle's, or replace's rule for the source size ("auto")
    const std::string edge = config->defaults.feather >= 0 ? std::to_string(config->defaults.feather) + "px" : "auto";
    std::printf("%-28s %-8s %-8s %dx%d  %s %d steps  cfg %.1f  window %d/%d  region %s+%dpx  edge %s  modules %zu\n",
                dir.c_str(), config->name.c_str(), config->dtype.c_str(), config->width, config->height,
                config->defaults.sampler.c_str(), config->defaults.steps, config->defaults.cfg,
                config->defaults.window, config->defaults.overlap, config->defaults.mask_mode.c_str(),
                config->defaults.mask_dilate, edge.c_str(), config->modules.size());
    if (o.verify) {
      diffusion::LoadOptions load_options;
      load_options.remember_verified = false;  // --verify always hashes every file again
      auto bundle = diffusion::Bundle::load(dir, diffusion::DeviceSpec{concrete_device(o.device)}, std::nullopt, load_options);
      std::printf("%-28s %s\n", "", bundle.ok() ? "verified: checksums and contract dry run pass"
                                                 : ("FAILED: " + bundle.error().message).c_str());
      if (!bundle.ok() && first_failure.ok()) first_failure = bundle.error();
    }
  }
  return first_failure;
}

}  // namespace standin::cli
