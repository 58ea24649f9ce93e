// Subcommands whose stages have not landed yet say so plainly (exit 5) instead of pretending.
#include "commands.hpp"

namespace standin::cli {

Status run_generate(const CommandLine&) { return Error::runtime("replace/animate: not implemented yet"); }
Status run_extract(const CommandLine&) { return Error::runtime("extract: not implemented yet"); }
Status run_models(const CommandLine&) { return Error::runtime("models: not implemented yet"); }
Status run_compare(const CommandLine&, int&) { return Error::runtime("compare: not implemented yet"); }
Status run_batch(const CommandLine&) { return Error::runtime("batch: not implemented yet"); }

}  // namespace standin::cli
