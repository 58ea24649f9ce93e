// Render presets: lookup, parsing and validation (presets.hpp).
#include "standin/pipeline/presets.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "standin/core/files.hpp"
#include "standin/core/json_bounded.hpp"

namespace fs = std::filesystem;

namespace standin::pipeline {
namespace {

constexpr int64_t kMaxPresetBytes = 64 << 10;
constexpr JsonLimits kPresetLimits{4, 256};

std::string shown(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

fs::path executable_dir() {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

}  // namespace

std::vector<std::string> preset_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("STANDIN_PRESETS"); env && *env) dirs.emplace_back(env);
  dirs.push_back("configs/presets");
  const fs::path exe = executable_dir();
  if (!exe.empty()) dirs.push_back((exe / ".." / "configs" / "presets").lexically_normal().string());
  return dirs;
}

std::vector<std::string> preset_names() {
  std::set<std::string> names;
  for (const auto& dir : preset_dirs()) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      if (it->path().extension() == ".json") names.insert(it->path().stem().string());
  }
  return {names.begin(), names.end()};
}

Result<Preset> parse_preset(const std::string& text, const std::string& origin) {
  STANDIN_ASSIGN_OR_RETURN(const nlohmann::json j, parse_json_bounded(text, origin, kPresetLimits, ExitCode::bad_input));
  if (!j.is_object()) return Error::bad_input(origin + ": a preset is a JSON object");
  Preset p;
  p.name = origin;
  const auto number = [&](const std::string& key, double lo, double hi, bool whole) -> Result<double> {
    const auto& v = j.at(key);
    if (!v.is_number()) return Error::bad_input(origin + ": \"" + key + "\" must be a number");
    const double x = v.get<double>();
    if (!std::isfinite(x) || x < lo || x > hi || (whole && x != std::floor(x)))
      return Error::bad_input(origin + ": \"" + key + "\" must be " + (whole ? "a whole number" : "a number") + " in " +
                              shown(lo) + ".." + shown(hi) + ", got " + v.dump());
    return x;
  };
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    if (key == "description") {
      if (!it->is_string()) return Error::bad_input(origin + ": \"description\" must be a string");
      p.description = it->get<std::string>();
    } else if (key == "size") {
      const std::string text_size = it->is_string() ? it->get<std::string>() : "";
      const auto x = text_size.find('x');
      int w = 0, h = 0;
      try {
        size_t used_w = 0, used_h = 0;
        if (x != std::string::npos) {
          w = std::stoi(text_size.substr(0, x), &used_w);
          h = std::stoi(text_size.substr(x + 1), &used_h);
        }
        if (x == std::string::npos || used_w != x || used_h != text_size.size() - x - 1) w = h = 0;
      } catch (const std::exception&) {
        w = h = 0;
      }
      if (w <= 0 || h <= 0 || w % 8 || h % 8 || w > 8192 || h > 8192)
        return Error::bad_input(origin + ": \"size\" must look like \"512x768\" (multiples of 8, up to 8192), got " +
                                it->dump());
      p.size = std::make_pair(w, h);
    } else if (key == "work_scale") {
      STANDIN_ASSIGN_OR_RETURN(double v, number(key, 0.0625, 4.0, false));
      p.work_scale = v;
    } else if (key == "steps") {
      STANDIN_ASSIGN_OR_RETURN(double v, number(key, 1, 1000, true));
      p.steps = static_cast<int>(v);
    } else if (key == "window") {
      STANDIN_ASSIGN_OR_RETURN(double v, number(key, 1, 256, true));
      p.window = static_cast<int>(v);
    } else if (key == "overlap") {
      STANDIN_ASSIGN_OR_RETURN(double v, number(key, 0, 255, true));
      p.overlap = static_cast<int>(v);
    } else if (key == "cfg") {
      STANDIN_ASSIGN_OR_RETURN(double v, number(key, 0, 50, false));
      p.cfg = v;
    } else if (key == "sampler") {
      const std::string s = it->is_string() ? it->get<std::string>() : "";
      if (s != "ddim" && s != "dpmpp-2m")
        return Error::bad_input(origin + ": \"sampler\" must be \"ddim\" or \"dpmpp-2m\", got " + it->dump());
      p.sampler = s;
    } else {
      return Error::bad_input(origin + ": unknown key \"" + key +
                              "\" (a preset has description, size or work_scale, steps, sampler, window, overlap, cfg)");
    }
  }
  if (p.size && p.work_scale) return Error::bad_input(origin + ": give \"size\" or \"work_scale\", not both");
  return p;
}

Result<Preset> load_preset(const std::string& name_or_path) {
  std::string path;
  const bool is_path = name_or_path.find('/') != std::string::npos ||
                       (name_or_path.size() > 5 && name_or_path.compare(name_or_path.size() - 5, 5, ".json") == 0);
  if (is_path) {
    path = name_or_path;
  } else {
    const bool plain = !name_or_path.empty() && name_or_path.find_first_not_of(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == std::string::npos;
    for (const auto& dir : preset_dirs()) {
      std::error_code ec;
      const fs::path candidate = fs::path(dir) / (name_or_path + ".json");
      if (plain && fs::is_regular_file(candidate, ec)) {
        path = candidate.string();
        break;
      }
    }
    if (path.empty()) {
      std::string known;
      for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
      return Error::usage("--preset " + name_or_path + ": no such preset" +
                          (known.empty() ? " (none found in configs/presets)" : " (known: " + known + ")") +
                          "; or give a preset file path ending in .json");
    }
  }
  STANDIN_ASSIGN_OR_RETURN(const std::string text, read_file_capped(path, kMaxPresetBytes, "preset file"));
  STANDIN_ASSIGN_OR_RETURN(Preset preset, parse_preset(text, path));
  preset.name = is_path ? path : name_or_path;
  return preset;
}

std::pair<int, int> scaled_work_size(int width, int height, double scale, int multiple) {
  multiple = std::max(1, multiple);
  const auto side = [&](int n) {
    const long k = std::lround(n * scale / multiple);
    return static_cast<int>(std::max<long>(1, k)) * multiple;
  };
  return {side(width), side(height)};
}

}  // namespace standin::pipeline
