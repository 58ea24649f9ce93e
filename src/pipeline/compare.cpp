#include "standin/pipeline/compare.hpp"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "standin/core/output.hpp"
#include "standin/media/video.hpp"

namespace standin::pipeline {
namespace {

constexpr double kPeak = 255.0;

double psnr_from_mse(double mse) {
  return mse <= 0 ? std::numeric_limits<double>::infinity() : 10.0 * std::log10(kPeak * kPeak / mse);
}

// Structural similarity map of two 8-bit single-channel images (Wang et al. 2004 constants).
cv::Mat ssim_map(const cv::Mat& a8, const cv::Mat& b8) {
  constexpr double c1 = (0.01 * kPeak) * (0.01 * kPeak);
  constexpr double c2 = (0.03 * kPeak) * (0.03 * kPeak);
  cv::Mat a, b;
  a8.convertTo(a, CV_64F);
  b8.convertTo(b, CV_64F);
  auto blur = [](const cv::Mat& m) {
    cv::Mat out;
    cv::GaussianBlur(m, out, cv::Size(11, 11), 1.5, 1.5, cv::BORDER_REFLECT);
    return out;
  };
  const cv::Mat mu_a = blur(a), mu_b = blur(b);
  const cv::Mat mu_a2 = mu_a.mul(mu_a), mu_b2 = mu_b.mul(mu_b), mu_ab = mu_a.mul(mu_b);
  const cv::Mat var_a = blur(a.mul(a)) - mu_a2;
  const cv::Mat var_b = blur(b.mul(b)) - mu_b2;
  const cv::Mat cov = blur(a.mul(b)) - mu_ab;
  cv::Mat numerator = (2 * mu_ab + c1).mul(2 * cov + c2);
  cv::Mat denominator = (mu_a2 + mu_b2 + c1).mul(var_a + var_b + c2);
  cv::Mat map;
  cv::divide(numerator, denominator, map);
  return map;
}

// Sums one region's error and similarity over all frames.
struct Accumulator {
  double squared_error = 0;  // over pixels x 3 channels
  int64_t pixels = 0;
  double ssim_sum = 0;
  double min_frame_psnr = std::numeric_limits<double>::infinity();

  // diff_sq: CV_64FC3 squared differences; ssim: CV_64F map; region: CV_8U (empty = all).
  void add(const cv::Mat& diff_sq, const cv::Mat& ssim, const cv::Mat& region) {
    const int64_t n = region.empty() ? static_cast<int64_t>(diff_sq.total()) : cv::countNonZero(region);
    if (n == 0) return;
    // mean() over a mask times the count is the masked sum (cv::sum takes no mask).
    const cv::Scalar channel_means = region.empty() ? cv::mean(diff_sq) : cv::mean(diff_sq, region);
    const double se = (channel_means[0] + channel_means[1] + channel_means[2]) * static_cast<double>(n);
    squared_error += se;
    pixels += n;
    ssim_sum += (region.empty() ? cv::mean(ssim) : cv::mean(ssim, region))[0] * static_cast<double>(n);
    min_frame_psnr = std::min(min_frame_psnr, psnr_from_mse(se / (3.0 * n)));
  }

  RegionScore score() const {
    RegionScore s;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    s.psnr_db = pixels ? psnr_from_mse(squared_error / (3.0 * pixels)) : nan;
    s.min_frame_psnr_db = pixels ? min_frame_psnr : nan;
    s.ssim = pixels ? ssim_sum / pixels : nan;
    s.pixels = pixels;
    return s;
  }
};

Result<media::VideoReader> open_video(const std::string& path) {
  media::ReaderOptions options;
  options.scan_packets = true;  // exact frame counts, so a mismatch is caught before decoding
  return media::VideoReader::open(path, options);
}

nlohmann::json region_json(const RegionScore& s) {
  auto number = [](double v) -> nlohmann::json {
    if (std::isnan(v)) return nullptr;
    if (std::isinf(v)) return "inf";
    return v;
  };
  return {{"psnr_db", number(s.psnr_db)},
          {"min_frame_psnr_db", number(s.min_frame_psnr_db)},
          {"ssim", number(s.ssim)},
          {"pixels", s.pixels}};
}

}  // namespace

Result<CompareReport> compare_videos(const std::string& a_path, const std::string& b_path, const std::string& mask_path) {
  STANDIN_ASSIGN_OR_RETURN(auto a, open_video(a_path));
  STANDIN_ASSIGN_OR_RETURN(auto b, open_video(b_path));
  std::optional<media::VideoReader> mask;
  if (!mask_path.empty()) {
    STANDIN_ASSIGN_OR_RETURN(auto m, open_video(mask_path));
    mask.emplace(std::move(m));
  }
  const auto& ia = a.info();
  const auto& ib = b.info();
  if (ia.width != ib.width || ia.height != ib.height)
    return Error::bad_input("cannot compare " + a_path + " (" + std::to_string(ia.width) + "x" +
                            std::to_string(ia.height) + ") with " + b_path + " (" + std::to_string(ib.width) + "x" +
                            std::to_string(ib.height) + "): sizes differ");
  if (ia.frame_count != ib.frame_count)
    return Error::bad_input("cannot compare " + a_path + " (" + std::to_string(ia.frame_count) + " frames) with " +
                            b_path + " (" + std::to_string(ib.frame_count) + " frames): frame counts differ");
  if (mask && (mask->info().width != ia.width || mask->info().height != ia.height ||
               mask->info().frame_count != ia.frame_count))
    return Error::bad_input(mask_path + ": the mask video must have the same size and frame count as the videos");

  CompareReport report;
  report.width = ia.width;
  report.height = ia.height;
  Accumulator whole, inside, outside;
  media::Frame fa, fb, fm;
  cv::Mat da, db, diff, diff_sq, gray_a, gray_b, region, outside_region;
  while (true) {
    STANDIN_TRY(check_interrupted());
    STANDIN_ASSIGN_OR_RETURN(bool got_a, a.read(fa));
    STANDIN_ASSIGN_OR_RETURN(bool got_b, b.read(fb));
    if (got_a != got_b) return Error::bad_input("cannot compare: " + a_path + " and " + b_path + " end at different frames");
    if (!got_a) break;
    fa.rgb.convertTo(da, CV_64FC3);
    fb.rgb.convertTo(db, CV_64FC3);
    cv::subtract(da, db, diff);
    diff_sq = diff.mul(diff);
    cv::cvtColor(fa.rgb, gray_a, cv::COLOR_RGB2GRAY);
    cv::cvtColor(fb.rgb, gray_b, cv::COLOR_RGB2GRAY);
    const cv::Mat ssim = ssim_map(gray_a, gray_b);
    whole.add(diff_sq, ssim, {});
    if (mask) {
      STANDIN_ASSIGN_OR_RETURN(bool got_m, mask->read(fm));
      if (!got_m) return Error::bad_input(mask_path + ": ends before the videos do");
      cv::Mat gray_m;
      cv::cvtColor(fm.rgb, gray_m, cv::COLOR_RGB2GRAY);
      cv::compare(gray_m, 127, region, cv::CMP_GT);
      cv::bitwise_not(region, outside_region);
      inside.add(diff_sq, ssim, region);
      outside.add(diff_sq, ssim, outside_region);
    }
    ++report.frames;
  }
  if (report.frames == 0) return Error::bad_input(a_path + ": no decodable frames");
  report.whole = whole.score();
  if (mask) {
    report.inside_mask = inside.score();
    report.outside_mask = outside.score();
  }
  return report;
}

std::string to_json(const CompareReport& report) {
  nlohmann::json j = {{"frames", report.frames},
                      {"width", report.width},
                      {"height", report.height},
                      {"whole", region_json(report.whole)}};
  if (report.inside_mask) j["inside_mask"] = region_json(*report.inside_mask);
  if (report.outside_mask) j["outside_mask"] = region_json(*report.outside_mask);
  return j.dump(2);
}

std::string to_text(const CompareReport& report) {
  auto line = [](const char* name, const RegionScore& s) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%-8s PSNR %7.2f dB (worst frame %7.2f dB)  SSIM %.5f\n", name, s.psnr_db,
                  s.min_frame_psnr_db, s.ssim);
    return std::string(buf);
  };
  std::string text = std::to_string(report.frames) + " frames, " + std::to_string(report.width) + "x" +
                     std::to_string(report.height) + "\n";
  text += line("whole", report.whole);
  if (report.inside_mask) text += line("inside", *report.inside_mask);
  if (report.outside_mask) text += line("outside", *report.outside_mask);
  return text;
}

}  // namespace standin::pipeline
