#include "standin/core/log.hpp"
#include "standin/pipeline/batch.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "standin/core/output.hpp"
#include "standin/media/video.hpp"

namespace fs = std::filesystem;

namespace standin::pipeline {
namespace {

// Keys a job may carry, with whether they take a value (false = flag).
const std::map<std::string, bool>& known_keys() {
  static const std::map<std::string, bool> keys = {
      {"input", true},   {"reference", true}, {"output", true},  {"bundle", true},  {"device", true},
      {"dtype", true},   {"size", true},      {"steps", true},   {"cfg", true},     {"seed", true},
      {"window", true},  {"overlap", true},   {"sampler", true}, {"mask", true},    {"poses", true},
      {"beta-schedule", true},
      {"object-mask", true}, {"person", true}, {"crf", true},    {"preview", true}, {"metrics", true},
      {"cache", true},   {"overwrite", false},
  };
  return keys;
}

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
  AtomicOutput out(path);
  {
    std::ofstream file(out.temp_path());
    file << status.dump(2) << "\n";
    if (!file) return Error::runtime(path + ": cannot write the batch status file");
  }
  return out.commit();
}

// Runs `argv` with stdout+stderr into `log_path`; returns the exit code (128+signal if killed).
int run_child(const std::vector<std::string>& argv, const std::string& log_path) {
  const pid_t pid = fork();
  if (pid < 0) return static_cast<int>(ExitCode::runtime);
  if (pid == 0) {
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
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
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Error::bad_input(where + ": not valid JSON");
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
      const auto known = known_keys().find(key);
      if (known == known_keys().end()) return Error::bad_input(where + ": unknown key \"" + it.key() + "\"");
      if (!known->second) {
        if (!it.value().is_boolean()) return Error::bad_input(where + ": \"" + it.key() + "\" must be true or false");
        if (it.value().get<bool>()) job.arguments.push_back("--" + key);
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
  std::ifstream file(options.jobs_path);
  if (!file) return Error::bad_input(options.jobs_path + ": cannot read the jobs file");
  std::stringstream text;
  text << file.rdbuf();
  STANDIN_ASSIGN_OR_RETURN(auto jobs, parse_jobs(text.str(), options.jobs_path));

  const fs::path jobs_path(options.jobs_path);
  const std::string stem = (jobs_path.parent_path() / jobs_path.stem()).string();
  const std::string shard_suffix =
      options.shard_count > 1 ? "." + std::to_string(options.shard_index) + "of" + std::to_string(options.shard_count) : "";
  const std::string status_path = options.status_path.empty() ? stem + shard_suffix + ".status.json" : options.status_path;
  const fs::path log_dir = options.log_dir.empty() ? fs::path(stem + ".logs") : fs::path(options.log_dir);
  std::error_code ec;
  fs::create_directories(log_dir, ec);
  if (ec) return Error::bad_input(log_dir.string() + ": cannot create the log folder: " + ec.message());

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
      std::vector<std::string> argv = {options.executable};
      if (options.log_json) argv.push_back("--log-json");
      argv.push_back("-y");  // an incomplete output from an earlier attempt is replaced
      argv.insert(argv.end(), job.arguments.begin(), job.arguments.end());
      log::info("job {} (line {}): {} -> {}", job.index, job.line, job.command, job.output);
      const int code = run_child(argv, log_path);
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
