#pragma once
// Shared by the fuzz targets (libFuzzer under clang) and their replay binaries (gcc, ctest).
// Only what both need: check documented invariants, a per-process temp path. No spdlog and no
// Torch here (CUDA LibTorch bundles its own fmt); targets without Torch silence logging with
// fuzz_quiet.hpp.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "standin/core/error.hpp"

namespace standin::fuzz {

// A documented invariant does not hold: abort so libFuzzer records the input as a crash.
[[noreturn]] inline void fail(const char* what, const char* file, int line) {
  std::fprintf(stderr, "fuzz invariant violated: %s (%s:%d)\n", what, file, line);
  std::abort();
}
#define STANDIN_FUZZ_CHECK(cond) \
  do {                           \
    if (!(cond)) ::standin::fuzz::fail(#cond, __FILE__, __LINE__); \
  } while (0)

// Errors must carry the documented exit code and a message.
inline void check_error(const Error& error, ExitCode expected) {
  STANDIN_FUZZ_CHECK(error.code == expected);
  STANDIN_FUZZ_CHECK(!error.message.empty());
}

// One file per process and tag, in tmpfs when there is one ($STANDIN_FUZZ_TMP overrides).
inline const std::string& temp_path(const char* tag) {
  static const std::string path = [tag] {
    std::string dir = "/tmp";
    if (const char* env = std::getenv("STANDIN_FUZZ_TMP")) dir = env;
    else if (access("/dev/shm", W_OK) == 0) dir = "/dev/shm";
    return dir + "/standin-fuzz-" + tag + "-" + std::to_string(getpid());
  }();
  return path;
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  STANDIN_FUZZ_CHECK(out.good());
}

// Removes the temp file when the process exits (libFuzzer exits via exit()/_Exit on crashes;
// a leftover in /dev/shm after a crash is harmless and named by pid).
struct TempFileCleanup {
  std::string path;
  ~TempFileCleanup() {
    if (!path.empty()) std::remove(path.c_str());
  }
};

}  // namespace standin::fuzz
