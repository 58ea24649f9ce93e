#include "commands.hpp"

namespace standin::cli {

Status run_compare(const CommandLine&, int&) { return Error::runtime("compare: not implemented yet"); }

}  // namespace standin::cli
