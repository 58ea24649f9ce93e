// model.json parser: BundleConfig::parse on arbitrary bytes, then what Bundle::load does next
// with a parsed config that needs no module files (evaluating every declared shape against the
// dry-run bindings). Nothing here logs, and this file includes Torch, so no spdlog.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.hpp"
#include "standin/diffusion/bundle.hpp"

namespace {
void touch_spec(const standin::diffusion::TensorSpec& spec, const std::map<std::string, int64_t>& bindings) {
  (void)spec.shape_str();
  for (const auto& dim : spec.shape) {
    (void)dim.str();
    (void)dim.eval(bindings);
  }
  for (const auto& item : spec.items) touch_spec(item, bindings);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = standin::diffusion::BundleConfig::parse(text, "model.json");
  if (!config.ok()) {
    standin::fuzz::check_error(config.error(), standin::ExitCode::model);
    return 0;
  }
  for (const auto& [name, module] : config->modules) {
    STANDIN_FUZZ_CHECK(!name.empty());
    for (const auto& spec : module.inputs) touch_spec(spec, config->dry_run);
    for (const auto& spec : module.outputs) touch_spec(spec, config->dry_run);
  }
  return 0;
}
