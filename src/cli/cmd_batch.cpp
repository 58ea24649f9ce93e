#include <filesystem>

#include "commands.hpp"
#include "standin/pipeline/batch.hpp"

namespace standin::cli {

Status run_batch(const CommandLine& line) {
  pipeline::BatchOptions options;
  options.jobs_path = line.batch.jobs;
  if (!line.batch.shard.empty()) {
    STANDIN_ASSIGN_OR_RETURN(auto shard, parse_shard(line.batch.shard));
    options.shard_index = shard.first;
    options.shard_count = shard.second;
  }
  options.status_path = line.batch.status_file;
  options.log_dir = line.batch.log_dir;
  options.log_json = line.global.log_json;
  std::error_code ec;
  options.executable = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) return Error::runtime("cannot find the standin executable to run jobs with");
  STANDIN_ASSIGN_OR_RETURN(auto summary, pipeline::run_batch(options));
  if (summary.failed > 0)
    return Error::runtime(std::to_string(summary.failed) + " job(s) failed; see the status file and logs");
  return Status::success();
}

}  // namespace standin::cli
