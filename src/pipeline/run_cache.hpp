#pragma once
// --cache DIR: the denoising state after every step, keyed by a hash of everything that
// determines the result (input bytes, bundle checksums, settings, seed, device, dtype). A killed
// run started again with the same command resumes after the last finished step; because the
// state is the exact float32 latents (plus the sampler's history), the resumed output is
// bit-identical to an uninterrupted run on the same device.
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

class RunCache {
 public:
  // `key_material`: settings text; `files`: inputs whose bytes enter the key.
  static Result<RunCache> open(const std::string& dir, const std::string& key_material,
                               const std::vector<std::string>& files);
  const std::string& key() const { return key_; }
  const std::string& folder() const { return folder_; }

  // The latest saved step, if any (a damaged state file is ignored with a warning).
  std::optional<CachedStep> load() const;
  Status save(const CachedStep& step) const;
  void clear() const;  // after a successful run

 private:
  std::string key_, folder_;
};

}  // namespace standin::pipeline
