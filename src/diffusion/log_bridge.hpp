#pragma once
// Logging for the diffusion sources without including spdlog next to Torch headers: CUDA
// LibTorch 2.x ships its own fmt (torch/include/fmt), which shadows the system fmt that the
// system spdlog is built against. log_bridge.cpp includes spdlog and no Torch header.
#include <string>

namespace standin::diffusion::detail {
void log_debug(const std::string& message);
void log_info(const std::string& message);
void log_warn(const std::string& message);
}  // namespace standin::diffusion::detail
