#pragma once
// Silences spdlog (FFmpeg's log lines and per-input warnings would flood the fuzzer's output).
// Only for fuzz targets whose translation unit includes no Torch header: CUDA LibTorch's bundled
// fmt shadows the system fmt spdlog is built against (see include/standin/core/log.hpp).
#include <spdlog/spdlog.h>

namespace standin::fuzz {

inline void quiet() {
  static const bool once = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)once;
}

}  // namespace standin::fuzz
