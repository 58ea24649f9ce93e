// poses.json parser: parse_pose_track on arbitrary bytes; a track it accepts must meet the
// documented guarantees (include/standin/vision/pose.hpp) and render as a pose map.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.hpp"
#include "fuzz_quiet.hpp"
#include "standin/vision/pose.hpp"

namespace {
void check_keypoint(const standin::vision::Keypoint& k) {
  STANDIN_FUZZ_CHECK(std::isfinite(k.x) && std::isfinite(k.y));
  STANDIN_FUZZ_CHECK(k.score >= 0.f && k.score <= 1.f);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace standin::vision;
  standin::fuzz::quiet();
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto track = parse_pose_track(text, "poses.json");
  if (!track.ok()) {
    standin::fuzz::check_error(track.error(), standin::ExitCode::bad_input);
    return 0;
  }
  int64_t previous = -1;
  int rendered = 0;
  for (const auto& frame : track->frames) {
    STANDIN_FUZZ_CHECK(frame.frame_index > previous);
    previous = frame.frame_index;
    STANDIN_FUZZ_CHECK(frame.target >= -1 && frame.target < static_cast<int>(frame.people.size()));
    for (const auto& person : frame.people) {
      STANDIN_FUZZ_CHECK(person.landmarks.empty() || person.landmarks.size() == kBlazePoseCount);
      for (const auto& k : person.body) check_keypoint(k);
      for (const auto& k : person.landmarks) check_keypoint(k);
    }
    // What the pipeline does with a loaded track: one pose map per frame (a few here).
    if (const PersonPose* target = frame.target_person(); target && rendered < 2) {
      cv::Mat map = render_pose_map(target->body, cv::Size(64, 48));
      STANDIN_FUZZ_CHECK(map.type() == CV_8UC3 && map.cols == 64 && map.rows == 48);
      ++rendered;
    }
  }
  return 0;
}
