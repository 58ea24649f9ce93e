#pragma once
// `standin replace` and `standin animate` as one library call: decode -> analyse -> conditions
// -> generate -> composite -> encode, streaming frames so host memory stays bounded.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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
  std::string sampler;        // "ddim" | "dpmpp-2m"; empty = the preset's, else the bundle's
  std::string beta_schedule;  // empty = the bundle's (model.json scheduler.beta_schedule)
  std::string preset;         // --preset NAME|FILE.json (pipeline/presets.hpp); fills unset settings
  int chain_frames = 0;       // --chain-frames: 0 = averaged windows; N = chained, N motion frames
  bool anchor_color = false;  // --anchor-color: match the character's mean Lab to the reference's

  std::string mask;         // character mask video (white = character)
  std::string poses;        // poses.json
  std::string object_mask;  // object mask video
  int person = -1;          // -1 = auto
  // --person ID=IMAGE (replace only): several people, each replaced by its own reference, one
  // generation pass per person over the frames where it appears, composited in this order.
  // When set, `reference` and `person` are unused.
  struct PersonReference {
    int track_id = 0;
    std::string reference;
  };
  std::vector<PersonReference> people;
  std::string landmark_model = "full";
  int max_people = 4;
  double pose_smoothing = 1.0;  // tracker smoothing strength: 0 = off, 1 = MediaPipe's, more = smoother
  // Pose retargeting to the reference's proportions: nullopt = on in animate, off in replace.
  std::optional<bool> retarget;

  // Masks and compositing (replace).
  std::string mask_mode;  // agnostic | tight | box (vision::MaskMode); empty = the bundle's
  int mask_blocks = -1;   // shape-agnostic blocks per box side, 0 = box side / 10; < 0 = the bundle's
  int mask_dilate = -1;   // redraw-region dilation, source pixels; < 0 = the bundle's
  int feather = -1;      // compositing edge, source pixels; < 0 = the bundle's, else 1 % of the short side
  std::string matte;     // --matte FILE.mkv: the compositing alpha per output frame (FFV1, gray)
  int crf = 12;  // the whole frame is re-encoded: 12 keeps the background >= 45 dB PSNR (vtest: ~48)
  std::string preview;
  std::string metrics;
  std::string cache;
};

// Where the default bundle is looked up: $STANDIN_BUNDLE, then models/demo (the trained demo
// model that scripts/setup.sh exports) under the working directory, then next to the
// executable's parent folder (build/../models/demo).
std::string default_bundle_dir();
std::string default_vision_dir();

Status run_generate(const GenerateRequest& request);

}  // namespace standin::pipeline
