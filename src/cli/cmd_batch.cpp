#include "commands.hpp"

namespace standin::cli {

Status run_batch(const CommandLine&) { return Error::runtime("batch: not implemented yet"); }

}  // namespace standin::cli
