#include "commands.hpp"

namespace standin::cli {

Status run_models(const CommandLine&) { return Error::runtime("models: not implemented yet"); }

}  // namespace standin::cli
