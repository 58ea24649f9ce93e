#pragma once
// `standin replace` and `standin animate` as one library call: decode -> analyse -> conditions
// -> generate -> composite -> encode, streaming frames so host memory stays bounded.
#include <cstdint>
#include <optional>
#include <string>

#include "standin/core/error.hpp"

namespace standin::pipeline {

enum class Mode { replace, animate };

struct GenerateRequest {
  Mode mode = Mode::replace;
  std::string input;      // source (replace) or driving (animate) video; may be empty for animate + poses
  std::string reference;  // reference image
  std::string output;
  bool overwrite = false;

  std::string bundle;         // empty = default lookup (default_bundle_dir)
  std::string vision_models;  // empty = default lookup
  std::string device = "cpu";
  std::string dtype;          // empty = the bundle's
  int width = 0, height = 0;  // 0 = the bundle's
  int steps = 0;              // 0 = the bundle's
  double cfg = -1;            // < 0 = the bundle's
  uint64_t seed = 0;
  int window = 0;             // 0 = the bundle's
  int overlap = -1;           // < 0 = the bundle's
  std::string sampler = "ddim";
  std::string beta_schedule;  // empty = the bundle's (model.json scheduler.beta_schedule)

  std::string mask;         // character mask video (white = character)
  std::string poses;        // poses.json
  std::string object_mask;  // object mask video
  int person = -1;          // -1 = auto
  std::string landmark_model = "full";
  int max_people = 4;
  int crf = 12;  // the whole frame is re-encoded: 12 keeps the background >= 45 dB PSNR (vtest: ~48)
  std::string preview;
  std::string metrics;
  std::string cache;
};

// Where the default bundle is looked up: $STANDIN_BUNDLE, then models/tiny under the working
// directory, then models/tiny next to the executable's parent folder (build/../models/tiny).
std::string default_bundle_dir();
std::string default_vision_dir();

Status run_generate(const GenerateRequest& request);

}  // namespace standin::pipeline
