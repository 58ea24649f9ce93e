#pragma once
// Colour anchoring (--anchor-color) and the character-region estimate it uses. Windowed video
// models drift in colour over long shots; this moves each generated frame's character region
// back to the reference character's mean colour in CIE Lab (OpenCV's float Lab: L 0..100).
#include <optional>

#include <opencv2/core.hpp>

#include "standin/vision/pose.hpp"

namespace standin::pipeline {

// Weighted mean Lab of `rgb` (CV_8UC3, R,G,B order) over `weight` (CV_8U: > 0 counts 1;
// CV_32F: the weight). nullopt when the weights sum to (almost) nothing.
std::optional<cv::Vec3d> mean_lab(const cv::Mat& rgb, const cv::Mat& weight);

// `rgb` with `shift` added to the Lab colour of every pixel in proportion to `weight` (CV_32F
// 0..1, same size), converted back to 8-bit RGB (rounded, clamped).
cv::Mat shift_lab(const cv::Mat& rgb, const cv::Vec3d& shift, const cv::Mat& weight);

// Where the character is in a frame, from its skeleton alone: the convex hull of the shown
// joints (through `source_to_canvas`, may be empty = identity), grown by `grow_px`. CV_8U 0/255
// of `canvas` size; all zero without at least two shown joints.
cv::Mat skeleton_region(const vision::Body18& body, cv::Size canvas, const cv::Mat& source_to_canvas, int grow_px);

// One frame's anchoring: the region's mean Lab moved onto `target` with a soft edge (the region
// blurred by `soft_px`). Returns `rgb` itself when the region is empty.
cv::Mat anchor_color(const cv::Mat& rgb, const cv::Mat& region, const cv::Vec3d& target, int soft_px);

}  // namespace standin::pipeline
