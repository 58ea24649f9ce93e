#pragma once
// One function per subcommand; each returns a Status the caller maps to an exit code.
#include "options.hpp"

namespace standin::cli {

Status run_generate(const CommandLine& line);  // replace and animate
Status run_extract(const CommandLine& line);
Status run_models(const CommandLine& line);
Status run_compare(const CommandLine& line, int& exit_code);
Status run_batch(const CommandLine& line);

}  // namespace standin::cli
