// Batch job file parser: parse_jobs on arbitrary bytes (JSON lines).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.hpp"
#include "fuzz_quiet.hpp"
#include "standin/pipeline/batch.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  standin::fuzz::quiet();
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto jobs = standin::pipeline::parse_jobs(text, "jobs.jsonl");
  if (!jobs.ok()) {
    standin::fuzz::check_error(jobs.error(), standin::ExitCode::bad_input);
    return 0;
  }
  int previous_line = 0;
  for (size_t i = 0; i < jobs->size(); ++i) {
    const auto& job = (*jobs)[i];
    STANDIN_FUZZ_CHECK(job.index == static_cast<int>(i));
    STANDIN_FUZZ_CHECK(job.line > previous_line);
    previous_line = job.line;
    STANDIN_FUZZ_CHECK(job.command == "replace" || job.command == "animate");
  }
  return 0;
}
