// standin's entry point: parse, configure logging, dispatch, map errors to exit codes.
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "commands.hpp"
#include "standin/core/log.hpp"
#include "standin/core/output.hpp"
#include "standin/core/progress.hpp"
#include "standin/pipeline/batch.hpp"

namespace {
// OpenMP threads that spin while waiting starve each other on busy or small machines (a
// landmark model call measured 0.1 s alone, up to 4 s spinning against another process).
// The runtime reads OMP_WAIT_POLICY when it loads, before main: so set it and start again.
void prefer_passive_openmp_waits(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // on failure, carry on as we are
}

// glibc hands blocks above its mmap threshold (32 MiB at most by default) back to the kernel when
// freed, and trims the heap's top: every denoising step then faults in hundreds of MB of fresh
// zeroed pages (attention scores alone are ~300 MB per layer on the demo bundle). Keeping freed
// memory for reuse cut CPU denoising by ~38 % on a 2-core VM (55 -> 34 s, docs/BENCHMARKS.md "CPU");
// peak memory is unchanged, it is just not returned before exit. The user's own settings win.
void keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  const bool user_set = std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr ||
                        std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr ||
                        (tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr);
  if (user_set) return;
  mallopt(M_MMAP_THRESHOLD, 1 << 30);  // only single blocks over 1 GiB still come from mmap
  mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
#endif
}

// `standin batch` runs each job with its arguments in an inherited descriptor (NUL-separated)
// instead of argv, which the kernel limits (128 KB per argument). Empty when not a batch job.
std::vector<std::string> arguments_from_batch() {
  const char* fd_text = std::getenv(standin::pipeline::kArgumentsFdVariable);
  if (fd_text == nullptr) return {};
  const int fd = std::atoi(fd_text);
  unsetenv(standin::pipeline::kArgumentsFdVariable);  // not for the processes this one starts
  std::string bytes;
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  std::vector<std::string> arguments;
  size_t start = 0;
  for (size_t end; (end = bytes.find('\0', start)) != std::string::npos; start = end + 1)
    arguments.push_back(bytes.substr(start, end - start));
  return arguments;
}

bool wants_json_log(const std::vector<const char*>& argv) {
  for (size_t i = 1; i < argv.size(); ++i)
    if (std::strcmp(argv[i], "--log-json") == 0) return true;
  return false;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace standin;
  prefer_passive_openmp_waits(argv);
  keep_freed_memory_for_reuse();
  const std::vector<std::string> batch_arguments = arguments_from_batch();
  std::vector<const char*> args(argv, argv + argc);
  if (!batch_arguments.empty()) {
    args.resize(1);
    for (const auto& a : batch_arguments) args.push_back(a.c_str());
  }
  const cli::ParseOutcome parsed = cli::parse_command_line(static_cast<int>(args.size()), args.data());
  if (!parsed.command) {
    if (parsed.exit_code != 0 && wants_json_log(args)) {  // batch drivers parse every error line
      log::configure(log::Format::json, 0);
      std::string message = parsed.text;
      if (message.rfind("error: ", 0) == 0) message = message.substr(7);
      while (!message.empty() && message.back() == '\n') message.pop_back();
      for (size_t at; (at = message.find("\nRun")) != std::string::npos;) message.replace(at, 4, "; run");
      for (size_t at; (at = message.find('\n')) != std::string::npos;) message.replace(at, 1, "; ");
      log::error("{}", message);
      return parsed.exit_code;
    }
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
  } catch (const std::filesystem::filesystem_error& e) {
    // Stages check the filesystem with error codes; this is the backstop, still naming the path.
    status = Error::bad_input(e.path1().string() + ": " + e.code().message());
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
