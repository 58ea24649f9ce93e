#include "commands.hpp"

namespace standin::cli {

Status run_generate(const CommandLine&) { return Error::runtime("replace/animate: not implemented yet"); }

}  // namespace standin::cli
