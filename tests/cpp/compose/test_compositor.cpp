#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include "standin/compose/compositor.hpp"

namespace standin::compose {
namespace {

cv::Mat random_bgr(cv::Size s, int seed) {
  cv::Mat m(s, CV_8UC3);
  cv::RNG rng(seed);
  rng.fill(m, cv::RNG::UNIFORM, 0, 256);
  return m;
}

cv::Mat smooth_bgr(cv::Size s) {
  cv::Mat m(s, CV_8UC3);
  for (int y = 0; y < s.height; ++y)
    for (int x = 0; x < s.width; ++x)
      m.at<cv::Vec3b>(y, x) = cv::Vec3b(uchar(128 + 100 * std::sin(x * 0.02)), uchar(128 + 100 * std::cos(y * 0.03)),
                                        uchar((x + y) * 255 / (s.width + s.height)));
  return m;
}

TEST(Geometry, FitFramePadAndCrop) {
  const cv::Size src(1920, 1080), work(512, 768);
  auto pad = fit_frame(src, work, FitMode::pad);
  EXPECT_EQ(pad.crop, cv::Rect(0, -900, 1920, 2880));
  EXPECT_TRUE(pad.padded());
  EXPECT_EQ(pad.visible(), cv::Rect(0, 0, 1920, 1080));
  EXPECT_NEAR(pad.scale(), 512.0 / 1920, 1e-12);
  EXPECT_NEAR(pad.scale_y(), pad.scale(), 1e-12);
  EXPECT_TRUE(pad.validate().ok());
  auto crop = fit_frame(src, work, FitMode::crop);
  EXPECT_EQ(crop.crop, cv::Rect(600, 0, 720, 1080));
  EXPECT_FALSE(crop.padded());
  EXPECT_TRUE(crop.validate().ok());
  // Same aspect: identity crop.
  EXPECT_EQ(fit_frame({1024, 1536}, work, FitMode::pad).crop, cv::Rect(0, 0, 1024, 1536));
}

TEST(Geometry, FitBoxContainsTheCharacterKeepsAspect) {
  const cv::Size src(1920, 1080), work(512, 768);
  for (const cv::Rect2d box : {cv::Rect2d(900, 300, 200, 500), cv::Rect2d(10, 100, 150, 300),
                               cv::Rect2d(1800, 50, 100, 1000), cv::Rect2d(500, 0, 800, 1080)}) {
    auto g = fit_box(src, work, box, 0.1);
    ASSERT_TRUE(g.validate().ok()) << g.validate().error().message;
    const cv::Rect2d c(g.crop);
    EXPECT_LE(c.x, box.x);
    EXPECT_LE(c.y, box.y);
    EXPECT_GE(c.x + c.width, box.x + box.width);
    EXPECT_GE(c.y + c.height, box.y + box.height);
    EXPECT_NEAR(c.width / c.height, 512.0 / 768.0, 1.0 / c.height + 1e-9);
    // Inside the source along an axis where the crop fits.
    if (g.crop.width <= src.width) {
      EXPECT_GE(g.crop.x, 0);
      EXPECT_LE(g.crop.br().x, src.width);
    }
    if (g.crop.height <= src.height) {
      EXPECT_GE(g.crop.y, 0);
      EXPECT_LE(g.crop.br().y, src.height);
    }
  }
  // A tall character in a landscape frame: the crop is taller than the frame -> padded, centred.
  auto g = fit_box(src, work, cv::Rect2d(800, 0, 200, 1080), 0.1);
  EXPECT_TRUE(g.padded());
  EXPECT_EQ(g.crop.y, (1080 - g.crop.height) / 2);
  EXPECT_EQ(fit_box(src, work, cv::Rect2d(), 0.1).crop, fit_frame(src, work, FitMode::pad).crop);
}

TEST(Geometry, PointMappingRoundTrip) {
  auto g = fit_box({1280, 720}, {256, 384}, cv::Rect2d(400, 100, 200, 400), 0.15);
  const cv::Point2d p(517.25, 311.5);
  const auto q = g.work_to_source(g.source_to_work(p));
  EXPECT_NEAR(q.x, p.x, 1e-9);
  EXPECT_NEAR(q.y, p.y, 1e-9);
  const auto tl = g.source_to_work(cv::Point2d(g.crop.x, g.crop.y));
  EXPECT_NEAR(tl.x, 0, 1e-12);
  EXPECT_NEAR(tl.y, 0, 1e-12);
}

TEST(Resample, ToWorkPadsAndRoundTrips) {
  const cv::Size src(640, 360), work(128, 192);
  auto g = fit_frame(src, work, FitMode::pad);
  cv::Mat img(src, CV_8UC3, cv::Scalar(200, 100, 50));
  cv::Mat w = to_work(img, g, cv::INTER_LINEAR, cv::Scalar(0, 0, 0));
  ASSERT_EQ(w.size(), work);
  EXPECT_EQ(w.at<cv::Vec3b>(0, 64), cv::Vec3b(0, 0, 0));          // top padding
  EXPECT_EQ(w.at<cv::Vec3b>(96, 64), cv::Vec3b(200, 100, 50));    // content
  EXPECT_EQ(w.at<cv::Vec3b>(191, 64), cv::Vec3b(0, 0, 0));        // bottom padding
  cv::Mat rep = to_work(img, g, cv::INTER_LINEAR, cv::Scalar(0, 0, 0), /*replicate_border=*/true);
  EXPECT_EQ(rep.at<cv::Vec3b>(0, 64), cv::Vec3b(200, 100, 50));

  // work -> source of a smooth image comes back close (crop mode, enlargement then reduction)
  const cv::Mat smooth = smooth_bgr(src);
  auto gc = fit_box(src, {256, 384}, cv::Rect2d(250, 60, 120, 240), 0.1);
  const cv::Mat wk = to_work(smooth, gc, cv::INTER_CUBIC);
  const Placed back = from_work(wk, gc);
  ASSERT_EQ(back.rect, gc.visible());
  cv::Mat diff;
  cv::absdiff(back.image, smooth(back.rect), diff);
  EXPECT_LE(cv::mean(diff)[0], 1.5);
}

TEST(Feather, RampsAndSnaps) {
  cv::Mat mask = cv::Mat::zeros(200, 300, CV_8U);
  cv::rectangle(mask, cv::Rect(100, 50, 80, 100), 255, cv::FILLED);
  FeatherOptions o;
  o.dilate_px = 10;
  o.sigma_px = 2.0;
  const cv::Mat a = feather_mask(mask, o);
  ASSERT_EQ(a.type(), CV_32F);
  double lo, hi;
  cv::minMaxLoc(a, &lo, &hi);
  EXPECT_EQ(lo, 0.0);
  EXPECT_EQ(hi, 1.0);
  EXPECT_EQ(a.at<float>(100, 140), 1.0f);          // inside
  EXPECT_EQ(a.at<float>(100, 100 - 3), 1.0f);       // inside the dilation, > 3 sigma from its edge
  EXPECT_GT(a.at<float>(100, 100 - 10), 0.0f);      // on the dilated edge: feathered
  EXPECT_LT(a.at<float>(100, 100 - 10), 1.0f);
  EXPECT_EQ(a.at<float>(100, 100 - 10 - 8), 0.0f);  // beyond dilation + 3 sigma
  EXPECT_EQ(a.at<float>(5, 5), 0.0f);
  // Float masks give the same result as 8-bit ones.
  cv::Mat mf;
  mask.convertTo(mf, CV_32F, 1.0 / 255);
  cv::Mat d;
  cv::absdiff(feather_mask(mf, o), a, d);
  EXPECT_EQ(cv::countNonZero(d > 1e-6), 0);
  // Empty mask: all zero.
  EXPECT_EQ(cv::countNonZero(feather_mask(cv::Mat::zeros(20, 20, CV_8U), o)), 0);
}

TEST(Feather, RoiProcessingEqualsFullFrame) {
  // The implementation works on the mask's bounding box; compare with a full-frame reference.
  cv::Mat mask = cv::Mat::zeros(120, 160, CV_8U);
  cv::circle(mask, {3, 60}, 20, 255, cv::FILLED);  // touches the left frame edge
  FeatherOptions o;
  o.dilate_px = 5;
  o.sigma_px = 2.5;
  cv::Mat ref;
  mask.convertTo(ref, CV_32F, 1.0 / 255);
  cv::dilate(ref, ref, cv::getStructuringElement(cv::MORPH_ELLIPSE, {11, 11}), {-1, -1}, 1, cv::BORDER_CONSTANT, 0);
  const int r = static_cast<int>(std::ceil(3 * o.sigma_px));
  cv::GaussianBlur(ref, ref, {2 * r + 1, 2 * r + 1}, o.sigma_px, o.sigma_px, cv::BORDER_REFLECT_101);
  ref.setTo(0.0f, ref < o.zero_below);
  ref.setTo(1.0f, ref > o.one_above);
  cv::Mat d;
  cv::absdiff(feather_mask(mask, o), ref, d);
  double mx;
  cv::minMaxLoc(d, nullptr, &mx);
  EXPECT_LE(mx, 1e-6);
}

TEST(Compositor, UntouchedPixelsAreBitIdentical) {
  const cv::Size src(320, 180), work(128, 192);
  const cv::Rect2d box(140, 30, 50, 120);
  auto g = fit_box(src, work, box, 0.15);
  const cv::Mat original = random_bgr(src, 1);
  const cv::Mat generated = random_bgr(work, 2);
  cv::Mat mask = cv::Mat::zeros(src, CV_8U);
  cv::ellipse(mask, {165, 90}, {20, 55}, 0, 0, 360, 255, cv::FILLED);
  FeatherOptions o;
  o.dilate_px = 4;
  o.sigma_px = 2;
  Compositor comp(g, o);
  auto out = comp.composite(original, generated, mask);
  ASSERT_TRUE(out.ok()) << out.error().message;
  const cv::Mat alpha = feather_mask(mask, o);
  int untouched = 0, changed_inside = 0;
  for (int y = 0; y < src.height; ++y)
    for (int x = 0; x < src.width; ++x) {
      if (alpha.at<float>(y, x) == 0.0f) {
        ASSERT_EQ(out->at<cv::Vec3b>(y, x), original.at<cv::Vec3b>(y, x)) << x << "," << y;
        ++untouched;
      } else if (out->at<cv::Vec3b>(y, x) != original.at<cv::Vec3b>(y, x)) {
        ++changed_inside;
      }
    }
  EXPECT_GT(untouched, src.area() / 2);
  EXPECT_GT(changed_inside, 1000);
  // Where alpha == 1 the output is the generated frame mapped to the source.
  const Placed placed = from_work(generated, g);
  for (int y = 40; y < 140; ++y)
    for (int x = 150; x < 180; ++x)
      if (alpha.at<float>(y, x) == 1.0f) {
        ASSERT_EQ(out->at<cv::Vec3b>(y, x), placed.image.at<cv::Vec3b>(y - placed.rect.y, x - placed.rect.x));
      }
}

TEST(Compositor, PaddedGeometryAndErrors) {
  const cv::Size src(320, 180), work(128, 192);
  auto g = fit_frame(src, work, FitMode::pad);
  const cv::Mat original = random_bgr(src, 3);
  cv::Mat mask = cv::Mat::zeros(src, CV_8U);
  cv::rectangle(mask, cv::Rect(100, 40, 60, 100), 255, cv::FILLED);
  Compositor comp(g, FeatherOptions::for_source(src));
  auto out = comp.composite(original, random_bgr(work, 4), mask);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->at<cv::Vec3b>(5, 5), original.at<cv::Vec3b>(5, 5));
  EXPECT_FALSE(comp.composite(original, random_bgr({64, 64}, 5), mask).ok());
  EXPECT_EQ(comp.composite(random_bgr({10, 10}, 6), random_bgr(work, 4), mask).error().code, ExitCode::bad_input);
  EXPECT_FALSE(comp.composite(original, random_bgr(work, 4), cv::Mat::zeros(10, 10, CV_8U)).ok());
}

// --feather PX and the matte (issue 13): composite() = composite_with_alpha(alpha()); width 0
// is a hard edge on the mask; wider feathers reach further out.
TEST(Compositor, AlphaIsWhatCompositeBlendsWith) {
  const cv::Size src(320, 180), work(128, 192);
  auto g = fit_box(src, work, cv::Rect2d(140, 30, 50, 120), 0.15);
  const cv::Mat original = random_bgr(src, 7), generated = random_bgr(work, 8);
  cv::Mat mask = cv::Mat::zeros(src, CV_8U);
  cv::rectangle(mask, cv::Rect(150, 50, 30, 80), 255, cv::FILLED);
  for (const int width : {0, 3, 12}) {
    Compositor comp(g, FeatherOptions::with_width(width));
    const cv::Mat alpha = comp.alpha(mask);
    auto a = comp.composite(original, generated, mask);
    auto b = comp.composite_with_alpha(original, generated, alpha);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(cv::norm(*a, *b, cv::NORM_INF), 0) << width;
    // (Nearly) opaque on the mask, the soft edge outside it: at least `width` out, at most the
    // dilation plus the blur's 3 sigma.
    EXPECT_EQ(cv::countNonZero((mask > 0) & (alpha < 0.9)), 0) << width;
    const cv::Rect covered = cv::boundingRect(alpha > 0);
    const int reach = width + (width * 3 + 1) / 2 + 1;
    EXPECT_TRUE((covered & cv::Rect(150 - width, 50 - width, 30 + 2 * width, 80 + 2 * width)) ==
                cv::Rect(150 - width, 50 - width, 30 + 2 * width, 80 + 2 * width)) << width;
    EXPECT_TRUE((covered | cv::Rect(150 - reach, 50 - reach, 30 + 2 * reach, 80 + 2 * reach)) ==
                cv::Rect(150 - reach, 50 - reach, 30 + 2 * reach, 80 + 2 * reach)) << width;
    if (width == 0) EXPECT_EQ(cv::countNonZero((alpha > 0) != (mask > 0)), 0);
    else EXPECT_GT(cv::countNonZero((alpha > 0) & (alpha < 1)), 0);
  }
  Compositor comp(g, FeatherOptions::with_width(2));
  EXPECT_EQ(comp.composite_with_alpha(original, generated, cv::Mat::zeros(src, CV_8U)).error().code, ExitCode::bad_input);
}

TEST(PixelBridges, RoundTripExact) {
  const cv::Mat bgr = random_bgr({37, 23}, 9);
  std::vector<float> planar(3 * 37 * 23);
  bgr8_to_planar_rgb(bgr, planar.data());
  EXPECT_NEAR(planar[0], bgr.at<cv::Vec3b>(0, 0)[2] / 127.5f - 1.0f, 1e-7);  // R plane first
  const cv::Mat back = planar_rgb_to_bgr8(planar.data(), bgr.rows, bgr.cols);
  EXPECT_EQ(cv::norm(back, bgr, cv::NORM_INF), 0.0);
  bgr8_to_planar_rgb(bgr, planar.data(), /*unit_range=*/true);
  EXPECT_NEAR(planar[2 * 37 * 23], bgr.at<cv::Vec3b>(0, 0)[0] / 255.0f, 1e-7);
}

}  // namespace
}  // namespace standin::compose
