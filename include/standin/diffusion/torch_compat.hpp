#pragma once
// Every LibTorch-version difference of the diffusion stage lives in this one header.
//
// Builds against: Debian's LibTorch 1.13 (CPU) and a CUDA LibTorch 2.x (the GPU machine).
// Everything else in src/diffusion uses only the names below for APIs that moved or appeared
// between those versions; grep for `compat::` to find every place a version matters.
//
// Feature macros (0/1):
//   STANDIN_TORCH_HAS_SDPA        at::scaled_dot_product_attention exists (>= 2.0)
//   STANDIN_TORCH_CUDA            linked against a CUDA LibTorch (set by src/diffusion/CMakeLists)
//   STANDIN_TORCH_HAS_CUDA_GRAPH  at::cuda::CUDAGraph usable (CUDA build, >= 1.10)
//   STANDIN_TORCH_AUTOCAST_DEVICE autocast API takes a device type (>= 2.4)
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/serialize.h>
#include <torch/version.h>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <string>
#include <vector>

#if TORCH_VERSION_MAJOR >= 2
#define STANDIN_TORCH_HAS_SDPA 1
#else
#define STANDIN_TORCH_HAS_SDPA 0
#endif

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define STANDIN_TORCH_AUTOCAST_DEVICE 1
#else
#define STANDIN_TORCH_AUTOCAST_DEVICE 0
#endif

#ifndef STANDIN_TORCH_CUDA
#define STANDIN_TORCH_CUDA 0
#endif

#if STANDIN_TORCH_CUDA
#define STANDIN_TORCH_HAS_CUDA_GRAPH 1
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#else
#define STANDIN_TORCH_HAS_CUDA_GRAPH 0
#endif

namespace standin::diffusion::compat {

// RAII guard for inference: no autograd bookkeeping, no version counters.
// (c10::InferenceMode exists in 1.9+; NoGradGuard is kept alongside for TorchScript paths
// that check grad mode only.)
class InferenceGuard {
 public:
  InferenceGuard() = default;

 private:
  c10::InferenceMode inference_;
  torch::NoGradGuard no_grad_;
};

// Makes `device` the calling thread's current CUDA device for the scope (the current device is
// per thread); a no-op for the CPU and in CPU builds.
class CurrentDeviceGuard {
 public:
  explicit CurrentDeviceGuard(const c10::Device& device) {
#if STANDIN_TORCH_CUDA
    if (device.is_cuda()) guard_.set_device(device);
#else
    (void)device;
#endif
  }

 private:
#if STANDIN_TORCH_CUDA
  c10::cuda::OptionalCUDAGuard guard_;
#endif
};

// What a thread of its own needs before it runs modules on `device` (generator replicas, one
// thread per device): these settings are per thread in LibTorch. The intra-op thread count the
// process uses (a new thread otherwise gets the OpenMP default, not at::set_num_threads'), the
// current device (kernels, streams and library handles are that device's) and inference mode.
class WorkerThreadScope {
 public:
  explicit WorkerThreadScope(const c10::Device& device) : device_(device) { at::init_num_threads(); }

 private:
  CurrentDeviceGuard device_;
  InferenceGuard inference_;
};

// Scoped switch of TorchScript's graph optimisation (profiling executor, fusion). Off, a module
// runs its graph as scripted: no slow profiling runs on the first calls of every new input
// shape (docs/BUNDLE.md), numerics as in eager mode. Thread-local in both 1.13 and 2.x.
class JitOptimizeGuard {
 public:
  explicit JitOptimizeGuard(bool optimize) : guard_(optimize) {}

 private:
  torch::jit::GraphOptimizerEnabledGuard guard_;
};

// Wait for queued device work (accurate stage timings); no-op on the CPU.
inline void synchronize(const c10::Device& device) {
#if STANDIN_TORCH_CUDA
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
#else
  (void)device;
#endif
}

// Serialise an IValue to bytes readable by Python's torch.load, and back.
inline std::vector<char> pickle_save(const c10::IValue& value) { return torch::pickle_save(value); }
inline c10::IValue pickle_load(const std::vector<char>& bytes) { return torch::pickle_load(bytes); }

// Autocast on/off for one device type (CUDA only is meaningful for our use).
inline void set_cuda_autocast(bool enabled, at::ScalarType dtype) {
#if STANDIN_TORCH_AUTOCAST_DEVICE
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
  at::autocast::set_enabled(enabled);
  at::autocast::set_autocast_gpu_dtype(dtype);
#endif
}

// True when `e` is an out-of-memory failure of the accelerator (typed in >= 1.13; the
// message test covers builds and backends that throw a plain c10::Error).
inline bool is_out_of_memory(const std::exception& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return true;
  const std::string what = e.what();
  return what.find("out of memory") != std::string::npos ||
         what.find("CUDA out of memory") != std::string::npos;
}

// c10::Error's message without the C++ backtrace LibTorch appends (first line(s) only).
inline std::string short_message(const std::exception& e) {
  if (const auto* ce = dynamic_cast<const c10::Error*>(&e)) {
    std::string m = ce->what_without_backtrace();
    // TorchScript interpreter errors carry a long "The following operation failed..." trace;
    // keep the tail line that states the actual failure when there is one.
    const auto pos = m.rfind("RuntimeError: ");
    if (pos != std::string::npos) m = m.substr(pos + 14);
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    return m;
  }
  return e.what();
}

// Make the caching allocator give memory back (after a failed window, before retrying smaller).
inline void empty_device_cache() {
#if STANDIN_TORCH_CUDA
  c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

// Peak bytes allocated on a CUDA device since start or the last reset; 0 without CUDA or
// before the device was used.
inline int64_t cuda_peak_allocated(int device_index) {
#if STANDIN_TORCH_CUDA
  try {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_index);
    return stats.allocated_bytes[0].peak;
  } catch (const std::exception&) {
    return 0;
  }
#else
  (void)device_index;
  return 0;
#endif
}

}  // namespace standin::diffusion::compat
