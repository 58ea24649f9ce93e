// standin's entry point: parse, configure logging, dispatch, map errors to exit codes.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>


#include "commands.hpp"
#include "standin/core/log.hpp"
#include "standin/core/output.hpp"
#include "standin/core/progress.hpp"

namespace {
// OpenMP threads that spin while waiting starve each other on busy or small machines (a
// landmark model call measured 0.1 s alone, up to 4 s spinning against another process).
// The runtime reads OMP_WAIT_POLICY when it loads, before main: so set it and start again.
void prefer_passive_openmp_waits(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // on failure, carry on as we are
}
}  // namespace

int main(int argc, char** argv) {
  using namespace standin;
  prefer_passive_openmp_waits(argv);
  const cli::ParseOutcome parsed = cli::parse_command_line(argc, argv);
  if (!parsed.command) {
    std::fputs(parsed.text.c_str(), parsed.exit_code == 0 ? stdout : stderr);
    return parsed.exit_code;
  }
  const cli::CommandLine& line = *parsed.command;
  log::configure(line.global.log_json ? log::Format::json : log::Format::text, line.global.verbosity,
                 line.global.quiet);
  set_progress_enabled(!line.global.quiet);
  install_interrupt_handlers();

  Status status;
  int exit_code = 0;
  try {
    switch (line.command) {
      case cli::Subcommand::replace:
      case cli::Subcommand::animate: status = cli::run_generate(line); break;
      case cli::Subcommand::extract: status = cli::run_extract(line); break;
      case cli::Subcommand::models: status = cli::run_models(line); break;
      case cli::Subcommand::compare: status = cli::run_compare(line, exit_code); break;
      case cli::Subcommand::batch: status = cli::run_batch(line); break;
      case cli::Subcommand::none: status = Error::usage("no subcommand given"); break;
    }
  } catch (const std::bad_alloc&) {
    status = Error::runtime("out of host memory; lower --size or --window");
  } catch (const std::exception& e) {
    // Stages return errors as values; reaching here is a bug, but the user still gets one line.
    status = Error::runtime(std::string("internal error: ") + e.what());
  }
  if (!status.ok()) {
    log::error("{}", status.error().message);
    return static_cast<int>(status.error().code);
  }
  return exit_code;
}
