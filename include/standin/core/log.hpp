#pragma once
// One logging hook for every stage. Human-readable lines by default; with --log-json each
// record is one JSON object per line on stderr so batch drivers can parse it.
#include <string>

#include <spdlog/spdlog.h>

namespace standin::log {

enum class Format { text, json };

// Call once from main. verbosity: 0 = info, 1 = debug, 2+ = trace; quiet = warnings only.
void configure(Format format, int verbosity, bool quiet = false);
Format format();

// A structured event (e.g. progress, stage timing) emitted as a JSON object in json mode
// and as a readable line in text mode. `fields_json` must be a JSON object text.
void event(const std::string& name, const std::string& fields_json);

}  // namespace standin::log
