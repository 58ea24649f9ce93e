// BlazePose geometry without networks: anchors, decoding, NMS, letterbox, ROI, One Euro.
#include <cmath>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "standin/vision/blazepose.hpp"

namespace bp = standin::vision::blazepose;

TEST(Anchors, MediaPipePoseDetectorHas2254) {
  const auto a = bp::generate_anchors();
  ASSERT_EQ(a.size(), 2254u);
  // Stride 8: 28x28 cells x 2 anchors; first cell centre.
  EXPECT_FLOAT_EQ(a[0].x_center, 0.5f / 28);
  EXPECT_FLOAT_EQ(a[0].y_center, 0.5f / 28);
  EXPECT_FLOAT_EQ(a[1].x_center, 0.5f / 28);  // two anchors per cell
  EXPECT_FLOAT_EQ(a[2].x_center, 1.5f / 28);
  EXPECT_FLOAT_EQ(a[0].w, 1.0f);  // fixed anchor size
  // Stride 16 layer starts at 1568.
  EXPECT_FLOAT_EQ(a[1568].x_center, 0.5f / 14);
  // The three stride-32 layers share a 7x7 map with 6 anchors per cell.
  EXPECT_FLOAT_EQ(a[1568 + 392].x_center, 0.5f / 7);
  EXPECT_FLOAT_EQ(a[1568 + 392 + 5].x_center, 0.5f / 7);
  EXPECT_FLOAT_EQ(a[1568 + 392 + 6].x_center, 1.5f / 7);
  EXPECT_FLOAT_EQ(a.back().x_center, 6.5f / 7);
  EXPECT_FLOAT_EQ(a.back().y_center, 6.5f / 7);
}

TEST(Decode, BoxAndKeypointsRelativeToAnchor) {
  const auto anchors = bp::generate_anchors();
  std::vector<float> boxes(anchors.size() * 12, 0.0f), scores(anchors.size(), -10.0f);
  const int i = 100;
  scores[i] = 3.0f;
  float* r = &boxes[i * 12];
  r[0] = 22.4f;  // +0.1 in x
  r[1] = -11.2f; // -0.05 in y
  r[2] = 44.8f;  // w 0.2
  r[3] = 89.6f;  // h 0.4
  r[4] = 0; r[5] = 0;          // kp0 at the anchor centre
  r[6] = 0; r[7] = -22.4f;     // kp1 0.1 above
  auto d = bp::decode_detections(boxes.data(), scores.data(), static_cast<int>(anchors.size()), anchors);
  ASSERT_EQ(d.size(), 1u);
  const auto& a = anchors[i];
  EXPECT_NEAR(d[0].score, 1 / (1 + std::exp(-3.0f)), 1e-6);
  EXPECT_NEAR(d[0].box.x + d[0].box.width / 2, a.x_center + 0.1f, 1e-5);
  EXPECT_NEAR(d[0].box.y + d[0].box.height / 2, a.y_center - 0.05f, 1e-5);
  EXPECT_NEAR(d[0].box.width, 0.2f, 1e-5);
  EXPECT_NEAR(d[0].box.height, 0.4f, 1e-5);
  EXPECT_NEAR(d[0].keypoints[0].x, a.x_center, 1e-6);
  EXPECT_NEAR(d[0].keypoints[1].y, a.y_center - 0.1f, 1e-6);
  // Below the threshold nothing comes out; huge logits are clipped, not overflowed.
  scores[i] = -1.0f;
  EXPECT_TRUE(bp::decode_detections(boxes.data(), scores.data(), static_cast<int>(anchors.size()), anchors).empty());
  scores[i] = 1e30f;
  auto d2 = bp::decode_detections(boxes.data(), scores.data(), static_cast<int>(anchors.size()), anchors);
  ASSERT_EQ(d2.size(), 1u);
  EXPECT_TRUE(std::isfinite(d2[0].score));
}

TEST(Nms, WeightedMergesOverlapsAndKeepsSeparatePeople) {
  std::vector<bp::Detection> dets(3);
  dets[0].box = {0.10f, 0.10f, 0.20f, 0.40f}; dets[0].score = 0.9f;
  dets[1].box = {0.12f, 0.10f, 0.20f, 0.40f}; dets[1].score = 0.6f;
  dets[2].box = {0.60f, 0.10f, 0.20f, 0.40f}; dets[2].score = 0.7f;
  dets[0].keypoints[0] = {0.2f, 0.3f};
  dets[1].keypoints[0] = {0.23f, 0.3f};
  auto out = bp::weighted_nms(dets, 0.3f);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FLOAT_EQ(out[0].score, 0.9f);
  EXPECT_NEAR(out[0].box.x, (0.9f * 0.10f + 0.6f * 0.12f) / 1.5f, 1e-6);
  EXPECT_NEAR(out[0].keypoints[0].x, (0.9f * 0.2f + 0.6f * 0.23f) / 1.5f, 1e-6);
  EXPECT_FLOAT_EQ(out[1].box.x, 0.60f);
  EXPECT_EQ(bp::weighted_nms(dets, 0.3f, 1).size(), 1u);
}

TEST(Letterbox, RoundTripsLandscapeFrames) {
  const auto lb = bp::make_letterbox({768, 576}, {224, 224});
  EXPECT_NEAR(lb.scale, 224.0f / 768, 1e-6);
  EXPECT_NEAR(lb.pad_x, 0, 1e-4);
  EXPECT_NEAR(lb.pad_y, 0.5f * (224 - 576 * 224.0f / 768), 1e-4);
  bp::Detection d;
  // A point at image (384, 100) in normalised input coordinates.
  const cv::Point2f in((384 * lb.scale + lb.pad_x) / 224, (100 * lb.scale + lb.pad_y) / 224);
  d.keypoints[0] = in;
  d.box = {in.x, in.y, 0.1f, 0.1f};
  const auto r = bp::remove_letterbox(d, lb);
  EXPECT_NEAR(r.keypoints[0].x, 384, 1e-3);
  EXPECT_NEAR(r.keypoints[0].y, 100, 1e-3);
  EXPECT_NEAR(r.box.width, 0.1f * 224 / lb.scale, 1e-3);
  // image_to_input agrees.
  cv::Mat m = lb.image_to_input();
  EXPECT_NEAR(m.at<double>(0, 0) * 384 + m.at<double>(0, 2), in.x * 224, 1e-3);
  EXPECT_NEAR(m.at<double>(1, 1) * 100 + m.at<double>(1, 2), in.y * 224, 1e-3);
}

TEST(Roi, AlignmentRuleUprightAndRotated) {
  // Upright person: hip centre below the scale point -> no rotation.
  auto roi = bp::roi_from_alignment({100, 200}, {100, 120}, 1.25f);
  EXPECT_NEAR(roi.rotation, 0, 1e-6);
  EXPECT_NEAR(roi.width, 2 * 80 * 1.25f, 1e-4);
  EXPECT_NEAR(roi.height, roi.width, 1e-6);
  EXPECT_EQ(roi.center, cv::Point2f(100, 200));
  // Person lying with the head to the right: body "up" is +x -> rotation +90 deg... the crop's
  // up direction (-y in the crop) must map to +x in the image.
  roi = bp::roi_from_alignment({100, 200}, {180, 200}, 1.0f);
  const cv::Point2f up = bp::crop_to_image(roi, {256, 256}, {128, 0});  // top centre of the crop
  EXPECT_NEAR(up.x, 100 + 80, 1e-3);  // half side = |end - start|
  EXPECT_NEAR(up.y, 200, 1e-3);
  // The matrix form agrees with the point form, and the inverse inverts it.
  const cv::Mat c2i = bp::roi_crop_to_image(roi, {256, 256});
  const cv::Mat i2c = bp::roi_image_to_crop(roi, {256, 256});
  for (cv::Point2f p : {cv::Point2f(0, 0), cv::Point2f(256, 17), cv::Point2f(31, 200)}) {
    const cv::Point2f q = bp::crop_to_image(roi, {256, 256}, p);
    EXPECT_NEAR(c2i.at<double>(0, 0) * p.x + c2i.at<double>(0, 1) * p.y + c2i.at<double>(0, 2), q.x, 1e-3);
    EXPECT_NEAR(c2i.at<double>(1, 0) * p.x + c2i.at<double>(1, 1) * p.y + c2i.at<double>(1, 2), q.y, 1e-3);
    EXPECT_NEAR(i2c.at<double>(0, 0) * q.x + i2c.at<double>(0, 1) * q.y + i2c.at<double>(0, 2), p.x, 1e-3);
    EXPECT_NEAR(i2c.at<double>(1, 0) * q.x + i2c.at<double>(1, 1) * q.y + i2c.at<double>(1, 2), p.y, 1e-3);
  }
  EXPECT_NEAR(std::abs(bp::normalize_radians(3 * CV_PI)), CV_PI, 1e-5);  // [-pi, pi]
  EXPECT_NEAR(bp::normalize_radians(0.5f + 4 * CV_PI), 0.5f, 1e-5);
  EXPECT_NEAR(std::abs(bp::normalize_radians(-3 * CV_PI)), CV_PI, 1e-5);
}

TEST(Roi, CropWarpPutsThePointWhereProjectionSaysSo) {
  // Draw a dot in an image, crop a rotated ROI, find the dot in the crop, project back.
  cv::Mat img = cv::Mat::zeros(300, 400, CV_8UC3);
  cv::circle(img, {250, 120}, 3, cv::Scalar(255, 255, 255), cv::FILLED);
  const auto roi = bp::roi_from_alignment({200, 150}, {230, 100}, 1.25f);
  cv::Mat crop;
  cv::warpAffine(img, crop, bp::roi_image_to_crop(roi, {256, 256}), {256, 256});
  cv::Mat gray;
  cv::cvtColor(crop, gray, cv::COLOR_RGB2GRAY);
  const cv::Moments mo = cv::moments(gray, false);
  ASSERT_GT(mo.m00, 0);
  const cv::Point2f found(static_cast<float>(mo.m10 / mo.m00) + 0.5f, static_cast<float>(mo.m01 / mo.m00) + 0.5f);
  const cv::Point2f back = bp::crop_to_image(roi, {256, 256}, found);
  EXPECT_NEAR(back.x, 250.5f, 1.0f);
  EXPECT_NEAR(back.y, 120.5f, 1.0f);
}

TEST(OneEuro, ConstantStaysAndStepConverges) {
  bp::OneEuroFilter f;
  for (int i = 0; i < 10; ++i) EXPECT_FLOAT_EQ(f.apply(5.0f, 1.0 / 30, 0.01f), 5.0f);
  // A step: the output moves towards the new value monotonically and gets close.
  float prev = 5.0f, v = 5.0f;
  for (int i = 0; i < 60; ++i) {
    v = f.apply(105.0f, 1.0 / 30, 0.01f);
    EXPECT_GE(v, prev - 1e-4f);
    prev = v;
  }
  EXPECT_NEAR(v, 105.0f, 2.0f);
  // Jitter is damped.
  bp::OneEuroFilter g;
  float maxdev = 0;
  for (int i = 0; i < 100; ++i) maxdev = std::max(maxdev, std::abs(g.apply(50.0f + ((i % 2) ? 1.0f : -1.0f), 1.0 / 30, 0.01f) - 50.0f));
  EXPECT_LT(maxdev, 1.0f + 1e-6f);
}
