# All third-party lookups live here so the same tree builds against Debian's packages
# (LibTorch 1.13 CPU) and a CUDA LibTorch 2.x given through -DCMAKE_PREFIX_PATH.
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(FFMPEG REQUIRED IMPORTED_TARGET libavformat libavcodec libavutil libswscale libswresample)
find_package(OpenCV REQUIRED COMPONENTS core imgproc video calib3d)
find_package(Torch REQUIRED)
find_package(CLI11 REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
if(STANDIN_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

# Torch's exported flags carry -D_GLIBCXX_USE_CXX11_ABI; keep them only on targets that link Torch.
add_library(standin_torch INTERFACE)
target_link_libraries(standin_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(standin_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
message(STATUS "standin: Torch ${Torch_VERSION}, OpenCV ${OpenCV_VERSION}, FFmpeg avformat ${FFMPEG_libavformat_VERSION}")
