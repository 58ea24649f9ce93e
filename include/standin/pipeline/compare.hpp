#pragma once
// Render drift between two videos: PSNR and SSIM over the whole frame, and inside/outside a
// mask video when one is given. Used by `standin compare` to gate CI renders.
#include <optional>
#include <string>

#include "standin/core/error.hpp"

namespace standin::pipeline {

struct RegionScore {
  // PSNR from the mean squared error pooled over all frames and RGB channels (not an average of
  // per-frame PSNRs, which would let one bad frame hide). Infinity when identical.
  double psnr_db = 0;
  double min_frame_psnr_db = 0;  // worst single frame
  double ssim = 0;               // mean SSIM of the luma plane (Gaussian 11x11, sigma 1.5)
  int64_t pixels = 0;            // pixels per video in this region, summed over frames
};

struct CompareReport {
  int64_t frames = 0;
  int width = 0, height = 0;
  RegionScore whole;
  std::optional<RegionScore> inside_mask;   // mask > 127
  std::optional<RegionScore> outside_mask;
};

// Errors: bad_input when a file cannot be read or the videos (and mask) differ in size or
// frame count.
Result<CompareReport> compare_videos(const std::string& a, const std::string& b, const std::string& mask = "");

std::string to_json(const CompareReport& report);
std::string to_text(const CompareReport& report);

}  // namespace standin::pipeline
