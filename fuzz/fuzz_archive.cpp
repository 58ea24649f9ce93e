// TorchScript archive check: the zip central-directory reader Bundle::load runs on every module
// file before LibTorch sees it (declared sizes, zip64 records), on arbitrary bytes in a file.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.hpp"
#include "standin/diffusion/bundle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static standin::fuzz::TempFileCleanup cleanup{standin::fuzz::temp_path("archive")};
  standin::fuzz::write_file(cleanup.path, data, size);
  const std::string problem = standin::diffusion::module_archive_problem(cleanup.path);
  // A file too short for a zip directory can never pass.
  if (size < 22) STANDIN_FUZZ_CHECK(!problem.empty());
  return 0;
}
