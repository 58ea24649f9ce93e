#include "standin/compose/compositor.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

namespace standin::compose {

// ---------------------------------------------------------------- geometry

cv::Point2d WorkGeometry::source_to_work(cv::Point2d p) const {
  return {(p.x - crop.x) * scale(), (p.y - crop.y) * scale_y()};
}

cv::Point2d WorkGeometry::work_to_source(cv::Point2d p) const {
  return {p.x / scale() + crop.x, p.y / scale_y() + crop.y};
}

Status WorkGeometry::validate() const {
  if (source.width <= 0 || source.height <= 0) return Error::bad_input("work geometry: empty source size");
  if (work.width <= 0 || work.height <= 0) return Error::bad_input("work geometry: empty work size");
  if (crop.width <= 0 || crop.height <= 0) return Error::bad_input("work geometry: empty crop");
  if (visible().empty()) return Error::bad_input("work geometry: the crop does not overlap the source frame");
  // Aspect kept: x and y scales may differ by the rounding of the crop to whole pixels only.
  const double sx = scale(), sy = scale_y();
  if (std::abs(sx - sy) > std::max(sx, sy) * (1.0 / std::min(crop.width, crop.height) + 1e-9) + 1e-12)
    return Error::bad_input("work geometry would distort the image (x scale " + std::to_string(sx) + ", y scale " +
                            std::to_string(sy) + ")");
  return Status::success();
}

namespace {

// Crop of size (cw, ch) around a centre, along one axis: inside [0, n) when it fits, else
// centred on the source.
int place(double centre, int size, int n) {
  if (size <= n) {
    const int x = static_cast<int>(std::lround(centre - size / 2.0));
    return std::clamp(x, 0, n - size);
  }
  return static_cast<int>(std::floor((n - size) / 2.0));
}

// Integer crop size of the work aspect that is at least (min_w, min_h).
cv::Size crop_size(double min_w, double min_h, cv::Size work) {
  const double aspect = double(work.width) / work.height;
  double w = std::max(min_w, min_h * aspect);
  int cw = std::max(1, static_cast<int>(std::ceil(w - 1e-9)));
  int ch = std::max(1, static_cast<int>(std::lround(cw / aspect)));
  if (ch < std::ceil(min_h - 1e-9)) {
    ch = static_cast<int>(std::ceil(min_h - 1e-9));
    cw = std::max(1, static_cast<int>(std::lround(ch * aspect)));
  }
  return {cw, ch};
}

}  // namespace

WorkGeometry fit_frame(cv::Size source, cv::Size work, FitMode mode) {
  WorkGeometry g{source, work, {}};
  const double sx = double(work.width) / source.width, sy = double(work.height) / source.height;
  const double s = mode == FitMode::pad ? std::min(sx, sy) : std::max(sx, sy);
  int cw = static_cast<int>(std::lround(work.width / s));
  int ch = static_cast<int>(std::lround(work.height / s));
  // The fitting axis matches the source exactly.
  if (s == sx) cw = source.width;
  if (s == sy) ch = source.height;
  g.crop = cv::Rect(static_cast<int>(std::floor((source.width - cw) / 2.0)),
                    static_cast<int>(std::floor((source.height - ch) / 2.0)), cw, ch);
  return g;
}

WorkGeometry fit_box(cv::Size source, cv::Size work, const cv::Rect2d& box, double margin) {
  if (box.width <= 0 || box.height <= 0) return fit_frame(source, work, FitMode::pad);
  const double gw = box.width * (1 + 2 * margin), gh = box.height * (1 + 2 * margin);
  const cv::Size size = crop_size(gw, gh, work);
  const double cx = box.x + box.width / 2, cy = box.y + box.height / 2;
  WorkGeometry g{source, work, {}};
  g.crop = cv::Rect(place(cx, size.width, source.width), place(cy, size.height, source.height), size.width, size.height);
  return g;
}

// ---------------------------------------------------------------- resampling

cv::Mat to_work(const cv::Mat& src, const WorkGeometry& g, int upscale, const cv::Scalar& pad_value,
                bool replicate_border) {
  CV_Assert(src.cols == g.source.width && src.rows == g.source.height);
  const cv::Rect vis = g.visible();
  cv::Mat region;
  if (vis == g.crop) {
    region = src(vis);
  } else if (vis.empty()) {
    region = cv::Mat(g.crop.size(), src.type(), pad_value);
  } else {
    cv::copyMakeBorder(src(vis), region, vis.y - g.crop.y, g.crop.br().y - vis.br().y, vis.x - g.crop.x,
                       g.crop.br().x - vis.br().x, replicate_border ? cv::BORDER_REPLICATE : cv::BORDER_CONSTANT,
                       pad_value);
  }
  if (region.size() == g.work) return region.clone();
  const bool shrinking = g.work.width < region.cols || g.work.height < region.rows;
  cv::Mat out;
  cv::resize(region, out, g.work, 0, 0, shrinking && upscale != cv::INTER_NEAREST ? cv::INTER_AREA : upscale);
  return out;
}

cv::Mat mask_to_work(const cv::Mat& source_mask, const WorkGeometry& g) {
  return to_work(source_mask, g, cv::INTER_LINEAR, cv::Scalar::all(0), false);
}

Placed from_work(const cv::Mat& work_image, const WorkGeometry& g, int interpolation) {
  CV_Assert(work_image.cols == g.work.width && work_image.rows == g.work.height);
  Placed p;
  p.rect = g.visible();
  cv::Mat full;
  if (g.crop.size() == g.work) {
    full = work_image;
  } else {
    const bool shrinking = g.crop.width < g.work.width || g.crop.height < g.work.height;
    cv::resize(work_image, full, g.crop.size(), 0, 0, shrinking ? cv::INTER_AREA : interpolation);
  }
  p.image = full(cv::Rect(p.rect.tl() - g.crop.tl(), p.rect.size())).clone();
  return p;
}

// ---------------------------------------------------------------- feathering and blending

FeatherOptions FeatherOptions::for_source(cv::Size source) {
  FeatherOptions o;
  o.dilate_px = std::max(3, static_cast<int>(std::lround(0.01 * std::min(source.width, source.height))));
  o.sigma_px = o.dilate_px / 2.0;
  return o;
}

FeatherOptions FeatherOptions::with_width(int px) {
  FeatherOptions o;
  o.dilate_px = std::max(0, px);
  o.sigma_px = o.dilate_px / 2.0;
  return o;
}

cv::Mat feather_mask(const cv::Mat& mask, const FeatherOptions& o) {
  CV_Assert(mask.channels() == 1 && (mask.depth() == CV_8U || mask.depth() == CV_32F));
  cv::Mat alpha = cv::Mat::zeros(mask.size(), CV_32F);
  cv::Mat nz = mask.depth() == CV_8U ? mask : (mask > 0);
  const cv::Rect bbox = cv::boundingRect(nz);
  if (bbox.empty()) return alpha;
  // Work on the mask's bounding box grown by the full filter support; beyond it alpha is 0.
  const int blur_r = o.sigma_px > 0 ? static_cast<int>(std::ceil(3 * o.sigma_px)) : 0;
  const int grow = std::max(o.dilate_px, 0) + blur_r + 2;
  const cv::Rect roi = cv::Rect(bbox.x - grow, bbox.y - grow, bbox.width + 2 * grow, bbox.height + 2 * grow) &
                       cv::Rect(cv::Point(0, 0), mask.size());
  cv::Mat a;
  if (mask.depth() == CV_8U) mask(roi).convertTo(a, CV_32F, 1.0 / 255);
  else a = cv::min(cv::max(mask(roi), 0.0), 1.0);
  if (o.dilate_px > 0) {
    const cv::Mat k = cv::getStructuringElement(cv::MORPH_ELLIPSE, {2 * o.dilate_px + 1, 2 * o.dilate_px + 1});
    cv::dilate(a, a, k, {-1, -1}, 1, cv::BORDER_CONSTANT, cv::Scalar::all(0));
  }
  if (blur_r > 0) cv::GaussianBlur(a, a, {2 * blur_r + 1, 2 * blur_r + 1}, o.sigma_px, o.sigma_px, cv::BORDER_REFLECT_101);
  a.setTo(0.0f, a < o.zero_below);
  a.setTo(1.0f, a > o.one_above);
  a.copyTo(alpha(roi));
  return alpha;
}

namespace {
template <int C>
void blend_rows(cv::Mat& out, const cv::Mat& gen, const cv::Rect& rect, const cv::Mat& alpha) {
  using Px = cv::Vec<uchar, C>;
  for (int y = 0; y < rect.height; ++y) {
    const float* a = alpha.ptr<float>(rect.y + y) + rect.x;
    Px* o = out.ptr<Px>(rect.y + y) + rect.x;
    const Px* g = gen.ptr<Px>(y);
    for (int x = 0; x < rect.width; ++x) {
      const float w = a[x];
      if (w == 0.0f) continue;  // untouched: bit-identical to the original
      if (w == 1.0f) {
        o[x] = g[x];
        continue;
      }
      for (int c = 0; c < C; ++c) o[x][c] = cv::saturate_cast<uchar>(o[x][c] + w * (float(g[x][c]) - float(o[x][c])));
    }
  }
}
}  // namespace

cv::Mat blend(const cv::Mat& original, const cv::Mat& generated, const cv::Rect& rect, const cv::Mat& alpha) {
  CV_Assert(original.depth() == CV_8U && generated.type() == original.type());
  CV_Assert(generated.size() == rect.size() && alpha.type() == CV_32F && alpha.size() == original.size());
  CV_Assert((rect & cv::Rect(cv::Point(0, 0), original.size())) == rect);
  cv::Mat out = original.clone();
  switch (original.channels()) {
    case 1: blend_rows<1>(out, generated, rect, alpha); break;
    case 3: blend_rows<3>(out, generated, rect, alpha); break;
    case 4: blend_rows<4>(out, generated, rect, alpha); break;
    default: CV_Error(cv::Error::StsBadArg, "blend: 1, 3 or 4 channels");
  }
  return out;
}

Compositor::Compositor(WorkGeometry geometry, FeatherOptions feather) : geometry_(geometry), feather_(feather) {}

Result<cv::Mat> Compositor::composite(const cv::Mat& original, const cv::Mat& generated_work, const cv::Mat& mask) const {
  const auto& g = geometry_;
  if (original.type() != CV_8UC3 || original.size() != g.source)
    return Error::bad_input("compositor: original frame must be 8-bit BGR " + std::to_string(g.source.width) + "x" +
                            std::to_string(g.source.height));
  if (generated_work.type() != CV_8UC3 || generated_work.size() != g.work)
    return Error::bad_input("compositor: generated frame must be 8-bit BGR " + std::to_string(g.work.width) + "x" +
                            std::to_string(g.work.height));
  if (mask.size() != g.source || mask.channels() != 1 || (mask.depth() != CV_8U && mask.depth() != CV_32F))
    return Error::bad_input("compositor: character mask must be a single-channel 8-bit or float image of the source size");
  try {
    return composite_with_alpha(original, generated_work, feather_mask(mask, feather_));
  } catch (const cv::Exception& e) {
    return Error::runtime(std::string("compositor: OpenCV failed: ") + e.what());
  }
}

Result<cv::Mat> Compositor::composite_with_alpha(const cv::Mat& original, const cv::Mat& generated_work,
                                                 const cv::Mat& alpha) const {
  const auto& g = geometry_;
  if (original.type() != CV_8UC3 || original.size() != g.source)
    return Error::bad_input("compositor: original frame must be 8-bit BGR " + std::to_string(g.source.width) + "x" +
                            std::to_string(g.source.height));
  if (generated_work.type() != CV_8UC3 || generated_work.size() != g.work)
    return Error::bad_input("compositor: generated frame must be 8-bit BGR " + std::to_string(g.work.width) + "x" +
                            std::to_string(g.work.height));
  if (alpha.type() != CV_32F || alpha.size() != g.source)
    return Error::bad_input("compositor: alpha must be a float image of the source size");
  try {
    const Placed placed = from_work(generated_work, g);
    return blend(original, placed.image, placed.rect, alpha);
  } catch (const cv::Exception& e) {
    return Error::runtime(std::string("compositor: OpenCV failed: ") + e.what());
  }
}

// ---------------------------------------------------------------- pixel bridges

void bgr8_to_planar_rgb(const cv::Mat& bgr, float* out, bool unit_range) {
  CV_Assert(bgr.type() == CV_8UC3);
  const int H = bgr.rows, W = bgr.cols;
  const size_t plane = size_t(H) * W;
  const float mul = unit_range ? 1.0f / 255.0f : 1.0f / 127.5f;
  const float add = unit_range ? 0.0f : -1.0f;
  for (int y = 0; y < H; ++y) {
    const cv::Vec3b* row = bgr.ptr<cv::Vec3b>(y);
    for (int x = 0; x < W; ++x) {
      const size_t i = size_t(y) * W + x;
      out[i] = row[x][2] * mul + add;              // R
      out[plane + i] = row[x][1] * mul + add;      // G
      out[2 * plane + i] = row[x][0] * mul + add;  // B
    }
  }
}

cv::Mat planar_rgb_to_bgr8(const float* planar, int H, int W) {
  cv::Mat out(H, W, CV_8UC3);
  const size_t plane = size_t(H) * W;
  const auto to8 = [](float v) { return cv::saturate_cast<uchar>((std::clamp(v, -1.0f, 1.0f) + 1.0f) * 127.5f); };
  for (int y = 0; y < H; ++y) {
    cv::Vec3b* row = out.ptr<cv::Vec3b>(y);
    for (int x = 0; x < W; ++x) {
      const size_t i = size_t(y) * W + x;
      row[x] = cv::Vec3b(to8(planar[2 * plane + i]), to8(planar[plane + i]), to8(planar[i]));
    }
  }
  return out;
}

}  // namespace standin::compose
