#include "commands.hpp"

namespace standin::cli {

Status run_extract(const CommandLine&) { return Error::runtime("extract: not implemented yet"); }

}  // namespace standin::cli
