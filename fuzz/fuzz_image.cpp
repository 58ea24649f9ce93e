// Still-image path: the bytes become a file (tmpfs) that media::read_image decodes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.hpp"
#include "fuzz_quiet.hpp"
#include "standin/media/image.hpp"
#include "standin/media/video.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace standin::media;
  standin::fuzz::quiet();
  static standin::fuzz::TempFileCleanup cleanup{standin::fuzz::temp_path("image")};
  const std::string& path = cleanup.path;
  standin::fuzz::write_file(path, data, size);

  auto image = read_image(path);
  if (!image.ok()) {
    standin::fuzz::check_error(image.error(), standin::ExitCode::bad_input);
    return 0;
  }
  STANDIN_FUZZ_CHECK(image->type() == CV_8UC3);
  STANDIN_FUZZ_CHECK(image->cols > 0 && image->rows > 0);
  STANDIN_FUZZ_CHECK(image->cols <= kMaxFrameSide && image->rows <= kMaxFrameSide);
  return 0;
}
