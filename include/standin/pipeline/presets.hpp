#pragma once
// Render presets (--preset preview|standard|final, or a JSON file): named sets of sampling
// settings in configs/presets/NAME.json. A preset fills only what the command line leaves
// unset; the bundle's defaults fill the rest.
//
//   {"description": "...", "work_scale": 0.5, "steps": 8, "sampler": "dpmpp-2m",
//    "window": 8, "overlap": 1, "cfg": 3.5}
//
// Every key is optional. The work size is "size": "WxH" or "work_scale": a factor on the
// bundle's own work size (rounded to the bundle's size multiple), never both.
#include <optional>
#include <string>
#include <vector>

#include "standin/core/error.hpp"

namespace standin::pipeline {

struct Preset {
  std::string name;         // the name or file it came from (messages, --metrics)
  std::string description;
  std::optional<std::pair<int, int>> size;  // explicit work size
  std::optional<double> work_scale;         // relative to the bundle's work size
  std::optional<int> steps;
  std::optional<std::string> sampler;       // "ddim" | "dpmpp-2m"
  std::optional<int> window;
  std::optional<int> overlap;
  std::optional<double> cfg;
};

// Folders searched for named presets, in order: $STANDIN_PRESETS, configs/presets under the
// working directory, configs/presets next to the executable's parent folder.
std::vector<std::string> preset_dirs();
// Names of the presets found in preset_dirs() (sorted, without duplicates).
std::vector<std::string> preset_names();

// `name_or_path`: a name (looked up in preset_dirs()) or a path to a .json file. An unknown name
// is Error::usage listing the known ones; an unreadable or invalid file Error::bad_input naming
// the file and the key.
Result<Preset> load_preset(const std::string& name_or_path);
// Parses a preset's JSON text; `origin` prefixes messages.
Result<Preset> parse_preset(const std::string& json_text, const std::string& origin);

// The work size a preset's work_scale gives for a bundle size: each side scaled and rounded to
// the nearest multiple of `multiple` (at least one multiple).
std::pair<int, int> scaled_work_size(int width, int height, double scale, int multiple);

}  // namespace standin::pipeline
