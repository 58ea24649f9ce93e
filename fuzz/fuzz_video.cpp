// Video-open path: the bytes become a file (tmpfs) that VideoReader opens with a packet scan,
// then up to 5 frames are decoded. Decoded frames must meet VideoReader's documented contract.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.hpp"
#include "fuzz_quiet.hpp"
#include "standin/media/video.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace standin::media;
  standin::fuzz::quiet();
  static standin::fuzz::TempFileCleanup cleanup{standin::fuzz::temp_path("video")};
  const std::string& path = cleanup.path;
  standin::fuzz::write_file(path, data, size);

  ReaderOptions options;
  options.scan_packets = true;
  options.threads = 1;  // deterministic, and no decoder threads under the sanitizers
  auto reader = VideoReader::open(path, options);
  if (!reader.ok()) {
    standin::fuzz::check_error(reader.error(), standin::ExitCode::bad_input);
    return 0;
  }
  const VideoInfo& info = reader->info();
  STANDIN_FUZZ_CHECK(info.width > 0 && info.height > 0);
  STANDIN_FUZZ_CHECK(info.width <= kMaxFrameSide && info.height <= kMaxFrameSide);
  int64_t previous_pts = -1;
  for (int i = 0; i < 5; ++i) {
    Frame frame;
    auto got = reader->read(frame);
    if (!got.ok()) {
      STANDIN_FUZZ_CHECK(!got.error().message.empty());
      break;
    }
    if (!got.value()) break;
    STANDIN_FUZZ_CHECK(frame.rgb.type() == CV_8UC3);
    STANDIN_FUZZ_CHECK(frame.rgb.cols == info.width && frame.rgb.rows == info.height);
    STANDIN_FUZZ_CHECK(frame.pts >= 0 && frame.pts > previous_pts);
    previous_pts = frame.pts;
  }
  return 0;
}
