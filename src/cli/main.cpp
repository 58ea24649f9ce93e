// standin's entry point: parse, configure logging, dispatch, map errors to exit codes.
#include <cstdio>
#include <exception>


#include "commands.hpp"
#include "standin/core/log.hpp"
#include "standin/core/output.hpp"
#include "standin/core/progress.hpp"

int main(int argc, char** argv) {
  using namespace standin;
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
