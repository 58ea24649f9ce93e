#pragma once
// One logging hook for every stage. Human-readable lines by default; with --log-json each
// record is one JSON object per line on stderr so batch drivers can parse it.
//
// Sources that include Torch headers must log through the functions below, never through
// spdlog directly: CUDA LibTorch 2.x ships its own fmt headers (torch/include/fmt), which shadow
// the system fmt the system spdlog is built against. This header includes neither.
#include <sstream>
#include <string>
#include <string_view>

namespace standin::log {

enum class Format { text, json };
enum class Level { debug, info, warn, error };

// Call once from main. verbosity: 0 = info, 1 = debug, 2+ = trace; quiet = warnings only.
void configure(Format format, int verbosity, bool quiet = false);
Format format();

// A structured event (e.g. progress, stage timing) emitted as a JSON object in json mode
// and as a readable line in text mode. `fields_json` must be a JSON object text.
void event(const std::string& name, const std::string& fields_json);

void emit(Level level, const std::string& message);

namespace detail {
// "{}" takes the next argument; "{:.Nf}" the next number with N decimals. Other specs print
// the argument plainly. Enough for log lines, without fmt.
inline void format_into(std::ostringstream& out, std::string_view f) { out << f; }
template <class First, class... Rest>
void format_into(std::ostringstream& out, std::string_view f, const First& first, const Rest&... rest) {
  const auto open = f.find('{');
  const auto close = open == std::string_view::npos ? open : f.find('}', open);
  if (close == std::string_view::npos) {
    out << f;
    return;
  }
  out << f.substr(0, open);
  const std::string_view spec = f.substr(open + 1, close - open - 1);
  if (spec.size() >= 3 && spec[0] == ':' && spec[1] == '.' && spec.back() == 'f') {
    const auto old_flags = out.flags();
    const auto old_precision = out.precision();
    out.setf(std::ios::fixed, std::ios::floatfield);
    out.precision(std::stoi(std::string(spec.substr(2, spec.size() - 3))));
    out << first;
    out.flags(old_flags);
    out.precision(old_precision);
  } else {
    out << first;
  }
  format_into(out, f.substr(close + 1), rest...);
}
}  // namespace detail

template <class... Args>
std::string format(std::string_view f, const Args&... args) {
  std::ostringstream out;
  detail::format_into(out, f, args...);
  return out.str();
}

template <class... Args>
void debug(std::string_view f, const Args&... args) { emit(Level::debug, format(f, args...)); }
template <class... Args>
void info(std::string_view f, const Args&... args) { emit(Level::info, format(f, args...)); }
template <class... Args>
void warn(std::string_view f, const Args&... args) { emit(Level::warn, format(f, args...)); }
template <class... Args>
void error(std::string_view f, const Args&... args) { emit(Level::error, format(f, args...)); }

}  // namespace standin::log
