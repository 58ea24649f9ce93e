#include "standin/core/log.hpp"
#include "standin/pipeline/batch.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "standin/core/files.hpp"
#include "standin/core/json_bounded.hpp"
#include "standin/core/output.hpp"
#include "standin/media/video.hpp"

namespace fs = std::filesystem;

namespace standin::pipeline {
namespace {

// A job line is a flat object of a few dozen keys.
constexpr JsonLimits kJobLimits{8, 4096};

std::string value_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    std::ostringstream out;
    out << v.get<double>();
    return out.str();
  }
  return {};
}

Status write_status(const std::string& path, const nlohmann::json& status) {
  return write_file_atomically(path, status.dump(2) + "\n", /*overwrite=*/true, "batch status file");
}

// A job's command line for its log: arguments quoted where a shell would need it.
std::string quoted_command(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& a : argv) {
    if (!line.empty()) line += ' ';
    const bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == std::string::npos;
    if (plain) {
      line += a.size() > 4096 ? a.substr(0, 4096) + "...(" + std::to_string(a.size()) + " bytes)" : a;
      continue;
    }
    std::string q = "'";
    for (char ch : a.size() > 4096 ? a.substr(0, 4096) : a) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    line += q + "'" + (a.size() > 4096 ? "...(" + std::to_string(a.size()) + " bytes)" : "");
  }
  return line;
}

// Opens (creates) a job's log: a regular file, never through a symlink, emptied.
Result<int> open_log(const std::string& path) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0) return Error::runtime(path + ": cannot write the job log (" + std::strerror(errno) + ")");
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || ftruncate(fd, 0) != 0) {
    close(fd);
    return Error::runtime(path + ": the job log is not a regular file; remove it");
  }
  return fd;
}

// The job's arguments travel in an anonymous memory file whose descriptor the child inherits
// (main.cpp reads it: STANDIN_ARGS_FD), so no argument is subject to the kernel's argv limits.
Result<int> arguments_file(const std::vector<std::string>& arguments) {
  const int fd = memfd_create("standin-job-arguments", 0);  // inherited: no MFD_CLOEXEC
  if (fd < 0) return Error::runtime(std::string("cannot pass the job's arguments (") + std::strerror(errno) + ")");
  std::string bytes;
  for (const auto& a : arguments) bytes.append(a).push_back('\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return Error::runtime("cannot pass the job's arguments (out of memory)");
    }
    done += static_cast<size_t>(n);
  }
  lseek(fd, 0, SEEK_SET);
  return fd;
}

// Runs `executable` with `arguments` (passed through arguments_file) and stdout+stderr into
// the log; returns the exit code (128+signal if killed).
int run_child(const std::string& executable, const std::vector<std::string>& arguments, int log_fd, int args_fd) {
  const std::string fd_text = std::to_string(args_fd);
  const pid_t pid = fork();
  if (pid < 0) return static_cast<int>(ExitCode::runtime);
  if (pid == 0) {
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    setenv(kArgumentsFdVariable, fd_text.c_str(), 1);
    const char* argv[] = {executable.c_str(), nullptr};
    execv(argv[0], const_cast<char* const*>(argv));
    const std::string message = "error: cannot run " + executable + ": " + std::strerror(errno) + "\n";
    [[maybe_unused]] const ssize_t ignored = write(STDERR_FILENO, message.data(), message.size());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return static_cast<int>(ExitCode::runtime);
    if (interrupt_requested()) kill(pid, SIGTERM);  // pass Ctrl-C on; the child cleans up
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return static_cast<int>(ExitCode::runtime);
}

}  // namespace

const std::map<std::string, bool>& job_keys() {
  // The long options of replace/animate (test_cli checks this list against the parser), with
  // whether they take a value (false = flag).
  static const std::map<std::string, bool> keys = {
      {"input", true},     {"reference", true},      {"output", true},        {"bundle", true},
      {"device", true},    {"dtype", true},          {"size", true},          {"steps", true},
      {"cfg", true},       {"seed", true},           {"window", true},        {"overlap", true},
      {"sampler", true},   {"beta-schedule", true},  {"mask", true},          {"poses", true},
      {"object-mask", true},
      {"person", true},    {"landmark-model", true}, {"vision-models", true}, {"max-people", true},
      {"crf", true},       {"preview", true},        {"metrics", true},       {"cache", true},
      {"preset", true},    {"mask-mode", true},      {"mask-blocks", true},   {"mask-dilate", true},
      {"feather", true},   {"matte", true},          {"retarget", true},      {"pose-smoothing", true},
      {"chain-frames", true}, {"anchor-color", true},
      {"overwrite", false},
  };
  return keys;
}

const std::set<std::string>& repeatable_job_keys() {
  static const std::set<std::string> keys = {"person"};
  return keys;
}

Result<std::vector<BatchJob>> parse_jobs(const std::string& text, const std::string& name) {
  std::vector<BatchJob> jobs;
  std::istringstream lines(text);
  std::string line;
  int line_number = 0;
  while (std::getline(lines, line)) {
    ++line_number;
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const std::string where = name + ":" + std::to_string(line_number);
    STANDIN_ASSIGN_OR_RETURN(const nlohmann::json j, parse_json_bounded(line, where, kJobLimits, ExitCode::bad_input));
    if (!j.is_object()) return Error::bad_input(where + ": each line must be a JSON object");
    BatchJob job;
    job.index = static_cast<int>(jobs.size());
    job.line = line_number;
    job.command = "replace";
    if (j.contains("command")) {
      if (!j["command"].is_string()) return Error::bad_input(where + ": \"command\" must be a string");
      job.command = j["command"].get<std::string>();
      if (job.command != "replace" && job.command != "animate")
        return Error::bad_input(where + ": \"command\" must be \"replace\" or \"animate\", got \"" + job.command + "\"");
    }
    job.arguments.push_back(job.command);
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "command") continue;
      std::string key = it.key();
      std::replace(key.begin(), key.end(), '_', '-');
      const auto known = job_keys().find(key);
      if (known == job_keys().end())
        return Error::bad_input(where + ": unknown key \"" + it.key() + "\" (keys are the long options of standin " +
                                job.command + ", e.g. \"input\", \"max_people\")");
      if (!known->second) {
        if (!it.value().is_boolean()) return Error::bad_input(where + ": \"" + it.key() + "\" must be true or false");
        if (key == "overwrite") job.overwrite = it.value().get<bool>();
        continue;
      }
      if (it.value().is_array()) {
        // A repeatable option: one argument per element ("person": ["1=a.png", "4=b.png"]).
        if (!repeatable_job_keys().count(key) || it.value().empty())
          return Error::bad_input(where + ": \"" + it.key() + "\" takes one value" +
                                  (repeatable_job_keys().count(key) ? " or a non-empty list" : std::string()));
        for (const auto& element : it.value()) {
          const std::string value = value_text(element);
          if (value.empty())
            return Error::bad_input(where + ": \"" + it.key() + "\" must list non-empty strings or numbers");
          job.arguments.push_back("--" + key);
          job.arguments.push_back(value);
        }
        continue;
      }
      const std::string value = value_text(it.value());
      if (value.empty()) return Error::bad_input(where + ": \"" + it.key() + "\" must be a non-empty string or a number");
      job.arguments.push_back("--" + key);
      job.arguments.push_back(value);
      if (key == "input") job.input = value;
      if (key == "output") job.output = value;
    }
    if (job.output.empty()) return Error::bad_input(where + ": the job has no \"output\"");
    if (job.command == "replace" && job.input.empty()) return Error::bad_input(where + ": a replace job needs \"input\"");
    jobs.push_back(std::move(job));
  }
  if (jobs.empty()) return Error::bad_input(name + ": no jobs in the file");
  return jobs;
}

bool output_complete(const std::string& input, const std::string& output) {
  std::error_code ec;
  if (!fs::exists(output, ec)) return false;
  media::ReaderOptions options;
  options.scan_packets = true;
  auto out = media::VideoReader::open(output, options);
  if (!out.ok()) return false;
  if (input.empty()) return out->info().frame_count > 0;
  auto in = media::VideoReader::open(input, options);
  return in.ok() && in->info().frame_count == out->info().frame_count;
}

Result<BatchSummary> run_batch(const BatchOptions& options) {
  STANDIN_ASSIGN_OR_RETURN(const std::string text, read_file_capped(options.jobs_path, kMaxJobsFileBytes, "jobs file"));
  STANDIN_ASSIGN_OR_RETURN(auto jobs, parse_jobs(text, options.jobs_path));

  const fs::path jobs_path(options.jobs_path);
  const std::string stem = (jobs_path.parent_path() / jobs_path.stem()).string();
  const std::string shard_suffix =
      options.shard_count > 1 ? "." + std::to_string(options.shard_index) + "of" + std::to_string(options.shard_count) : "";
  const std::string status_path = options.status_path.empty() ? stem + shard_suffix + ".status.json" : options.status_path;
  const fs::path log_dir = options.log_dir.empty() ? fs::path(stem + ".logs") : fs::path(options.log_dir);
  // Everything the batch itself writes is checked before the first job runs.
  STANDIN_TRY(check_output_path(status_path, /*overwrite=*/true, {options.jobs_path}));
  std::error_code ec;
  fs::create_directories(log_dir, ec);
  if (ec) return Error::bad_input(log_dir.string() + ": cannot create the log folder: " + ec.message());
  if (!fs::is_directory(log_dir, ec)) return Error::bad_input(log_dir.string() + ": the log folder is not a folder");
  // One batch per status file: a second one would run the same jobs and overwrite the logs.
  STANDIN_ASSIGN_OR_RETURN(auto lock, FileLock::acquire(status_path + ".lock", "batch status file " + status_path));

  nlohmann::json status = {{"jobs_file", options.jobs_path},
                           {"shard", {options.shard_index, options.shard_count}},
                           {"jobs", nlohmann::json::array()}};
  BatchSummary summary;
  for (const auto& job : jobs) {
    if (job.index % options.shard_count != options.shard_index) continue;
    STANDIN_TRY(check_interrupted());
    const std::string log_path = (log_dir / ("job" + std::to_string(job.index) + ".log")).string();
    nlohmann::json entry = {{"index", job.index}, {"line", job.line}, {"output", job.output}, {"log", log_path}};
    const auto start = std::chrono::steady_clock::now();
    if (output_complete(job.input, job.output)) {
      entry["status"] = "skipped";
      entry["reason"] = "output exists and is complete";
      ++summary.skipped;
      log::info("job {} (line {}): {} already complete, skipped", job.index, job.line, job.output);
    } else {
      std::vector<std::string> arguments;
      if (options.log_json) arguments.push_back("--log-json");
      // An incomplete output from an earlier attempt is replaced, unless the job says not to.
      if (job.overwrite) arguments.push_back("-y");
      arguments.insert(arguments.end(), job.arguments.begin(), job.arguments.end());
      log::info("job {} (line {}): {} -> {}", job.index, job.line, job.command, job.output);
      int code = static_cast<int>(ExitCode::runtime);
      auto log_fd = open_log(log_path);
      auto args_fd = arguments_file(arguments);
      if (!log_fd.ok() || !args_fd.ok()) {
        entry["reason"] = !log_fd.ok() ? log_fd.error().message : args_fd.error().message;
        log::error("job {} (line {}): {}", job.index, job.line, entry["reason"].get<std::string>());
      } else {
        std::vector<std::string> shown = {options.executable};
        shown.insert(shown.end(), arguments.begin(), arguments.end());
        const std::string header = "# " + quoted_command(shown) + "\n";
        [[maybe_unused]] const ssize_t ignored = write(*log_fd, header.data(), header.size());
        code = run_child(options.executable, arguments, *log_fd, *args_fd);
      }
      if (log_fd.ok()) close(*log_fd);
      if (args_fd.ok()) close(*args_fd);
      entry["exit_code"] = code;
      entry["status"] = code == 0 ? "done" : "failed";
      if (code == 0) {
        ++summary.done;
      } else {
        ++summary.failed;
        log::error("job {} (line {}) failed with exit code {}; see {}", job.index, job.line, code, log_path);
      }
    }
    entry["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    status["jobs"].push_back(entry);
    status["summary"] = {{"done", summary.done}, {"skipped", summary.skipped}, {"failed", summary.failed}};
    STANDIN_TRY(write_status(status_path, status));
  }
  log::info("batch: {} done, {} skipped, {} failed; status in {}", summary.done, summary.skipped, summary.failed,
               status_path);
  return summary;
}

}  // namespace standin::pipeline
