#pragma once
// Up-front memory estimates: work that cannot fit is refused before anything is allocated,
// with a message naming the value to change, instead of growing for minutes and dying as
// "out of memory". The estimates are lower bounds (what the run allocates for certain), so a
// refusal is never a guess; runs that pass may still need more. With several devices (one model
// replica on each, diffusion::Generator) a device needs what a single-device run needs of it, no
// more: the estimates hold per device unchanged.
#include <cstdint>
#include <string>
#include <vector>

#include "standin/core/error.hpp"

namespace standin::pipeline {

// One contribution to a run's memory, with what to blame when it does not fit.
struct MemoryTerm {
  std::string what;     // "--size 8192x8192 with --window 24", "clip.mp4: 16000x16000 frames"
  double bytes = 0;
  ExitCode code = ExitCode::bad_input;  // usage for option-driven terms, bad_input for inputs
  std::string advice;   // "use a smaller --size or --window"
};

// Refuses when the terms together exceed `budget_bytes` minus `in_use_bytes` (memory the
// process holds already: libraries, loaded models). The error names the largest term and
// carries its code.
Status check_memory(const std::vector<MemoryTerm>& terms, int64_t budget_bytes, int64_t in_use_bytes);

// Resident memory of this process now (0 when unknown).
int64_t resident_bytes();

// Bytes per source pixel that `extract` holds at once (decoded frames, pose/mask/overlay
// images, three encoders). Peak RSS per pixel measured on this project's 2-core test machine:
// 95 (H.264 1280x720 -> 3840x2160, nobody in view; 140 with a person, whose overlay is blended
// in float) and 58 (FFV1 16000x16000, nobody in view): the smallest, rounded down.
constexpr double kExtractBytesPerPixel = 48;
// Bytes per source pixel that replace holds for decoding, compositing and encoding one frame
// (measured slope 51, H.264 1280x720 -> 3840x2160), rounded down well below it.
constexpr double kCompositeBytesPerPixel = 32;

}  // namespace standin::pipeline
