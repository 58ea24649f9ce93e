#pragma once
// --cache DIR: the denoising state after every step, keyed by a hash of everything that
// determines the result (input bytes, bundle checksums, settings, seed, device, dtype). A killed
// run started again with the same command resumes after the last finished step; because the
// state is the exact float32 latents (plus the sampler's history), the resumed output is
// bit-identical to an uninterrupted run on the same device.
//
// A cache folder is data from disk like any input: everything read back is validated against
// the run (step count, tensor shapes, finite values). A damaged or foreign state is reported as
// a warning, removed, and the run starts from the beginning.
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "standin/core/error.hpp"

namespace standin::pipeline {

struct CachedStep {
  int next_step = 0;                    // steps already done
  at::Tensor latents;                   // float32 CPU
  std::vector<at::Tensor> sampler_state;
};

// What a state saved by this run must look like.
struct CacheShape {
  int steps = 0;                       // a state holds 0..steps finished steps
  std::vector<int64_t> latent_sizes;   // [1, C, T, h, w]
  size_t max_sampler_tensors = 1;      // multistep history (DPM-Solver++ 2M: one latent-shaped tensor)
};

class RunCache {
 public:
  // `key_material`: settings text; `files`: inputs whose bytes enter the key.
  static Result<RunCache> open(const std::string& dir, const std::string& key_material,
                               const std::vector<std::string>& files);
  const std::string& key() const { return key_; }
  const std::string& folder() const { return folder_; }

  // The latest saved step, if any and if it fits `shape` (a damaged state file is reported,
  // removed, and ignored).
  std::optional<CachedStep> load(const CacheShape& shape) const;
  Status save(const CachedStep& step) const;
  void clear() const;  // after a successful run

 private:
  std::string key_, folder_;
};

// Whether `step` fits `shape`; the reason when it does not. Exposed for tests.
std::optional<std::string> cache_problem(const CachedStep& step, const CacheShape& shape);

}  // namespace standin::pipeline
