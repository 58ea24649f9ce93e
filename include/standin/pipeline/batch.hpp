#pragma once
// `standin batch`: a JSON-lines job file, one replace/animate job per line. Each job runs as a
// child `standin` process (a failing or crashing job cannot take the batch down) with its own
// log; a status file records every job's outcome and is rewritten atomically after each job.
//
// A job line: {"command": "replace", "input": "a.mp4", "reference": "r.png", "output": "o.mp4",
//              "steps": 25, "seed": 1, ...} — keys are the long option names of the command
// (without dashes; "object_mask" or "object-mask" both work). Blank lines and lines starting
// with '#' are skipped.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "standin/core/error.hpp"

namespace standin::pipeline {

struct BatchJob {
  int index = 0;     // 0-based among the jobs (not counting blank/comment lines)
  int line = 0;      // 1-based line in the file, for messages
  std::string command;  // replace | animate
  std::string input, output;
  std::vector<std::string> arguments;  // the child's arguments after the program name and -y
  bool overwrite = true;  // "overwrite": false: an existing (incomplete) output is not replaced
};

// Every problem is Error::bad_input naming the file, the line and the key. Lines are parsed
// with limits (core/json_bounded.hpp): a job is a flat object (a repeatable key may hold a list).
Result<std::vector<BatchJob>> parse_jobs(const std::string& text, const std::string& name = "jobs.jsonl");

// Keys a job may carry: the long options of replace/animate, with whether they take a value
// (false = a true/false flag). tests/cpp/cli checks them against the command-line parser.
const std::map<std::string, bool>& job_keys();
// Keys whose value may also be a list, one argument per element (--person ID=IMAGE, repeated).
const std::set<std::string>& repeatable_job_keys();

// Jobs get their arguments through an inherited file descriptor named by this environment
// variable (NUL-separated), never through argv, so no argument length limit applies.
constexpr const char* kArgumentsFdVariable = "STANDIN_ARGS_FD";

struct BatchOptions {
  std::string jobs_path;
  int shard_index = 0, shard_count = 1;
  std::string status_path;  // default: JOBS.status.json next to the jobs file
  std::string log_dir;      // default: JOBS.logs/ next to the jobs file
  std::string executable;   // the standin binary to run jobs with
  bool log_json = false;
};

struct BatchSummary {
  int done = 0, skipped = 0, failed = 0;
};

// Runs this shard's jobs. Returns the summary; an error only when the batch itself cannot run
// (unreadable jobs file, status file not writable or held by another batch; all checked before
// the first job). Failed jobs are counted, not fatal.
Result<BatchSummary> run_batch(const BatchOptions& options);

// True when `output` exists and decodes to as many frames as `input` (a finished render).
bool output_complete(const std::string& input, const std::string& output);

}  // namespace standin::pipeline
