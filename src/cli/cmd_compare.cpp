#include <cstdio>


#include "commands.hpp"
#include "standin/core/log.hpp"
#include "standin/pipeline/compare.hpp"

namespace standin::cli {

Status run_compare(const CommandLine& line, int& exit_code) {
  const CompareOptions& o = line.compare;
  STANDIN_ASSIGN_OR_RETURN(auto report, pipeline::compare_videos(o.a, o.b, o.mask));
  const std::string text = o.json ? pipeline::to_json(report) + "\n" : pipeline::to_text(report);
  std::fputs(text.c_str(), stdout);
  if (o.min_psnr && !(report.whole.psnr_db >= *o.min_psnr)) {
    log::error("PSNR {:.2f} dB is below --min-psnr {:.2f} dB", report.whole.psnr_db, *o.min_psnr);
    exit_code = 1;
  }
  return Status::success();
}

}  // namespace standin::cli
