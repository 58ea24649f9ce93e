// Issue 14: a cache folder is data from disk (validated, never trusted); memory that cannot
// suffice is refused up front with the value to change.
#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>
#include <filesystem>
#include <fstream>

#include "run_cache.hpp"
#include "standin/pipeline/memory.hpp"

namespace fs = std::filesystem;

namespace standin::pipeline {
namespace {

CacheShape shape() {
  CacheShape s;
  s.steps = 4;
  s.latent_sizes = {1, 4, 3, 8, 12};
  return s;
}

TEST(RunCacheState, EveryValueReadBackIsValidated) {
  const fs::path dir = fs::temp_directory_path() / ("standin-cache-" + std::to_string(getpid()));
  fs::remove_all(dir);
  auto cache = RunCache::open(dir.string(), "settings", {});
  ASSERT_TRUE(cache.ok()) << cache.error().message;
  const at::Tensor latents = at::randn({1, 4, 3, 8, 12});
  ASSERT_TRUE(cache->save(CachedStep{2, latents, {latents * 2}}).ok());
  auto good = cache->load(shape());
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(good->next_step, 2);
  EXPECT_TRUE(good->latents.equal(latents));

  const fs::path state = fs::path(cache->folder()) / "state.pt";
  struct Case {
    CachedStep step;
    const char* why;
  };
  const at::Tensor nan = at::full({1, 4, 3, 8, 12}, std::numeric_limits<float>::quiet_NaN());
  for (const auto& c : std::vector<Case>{
           {{INT_MIN, latents, {}}, "a negative step counter (once a segmentation fault)"},
           {{5, latents, {}}, "more steps than the run has"},
           {{1, at::randn({1, 4, 2, 8, 12}), {}}, "latents of another clip"},
           {{1, latents.to(at::kDouble), {}}, "latents of another dtype"},
           {{1, nan, {}}, "NaN latents"},
           {{1, latents, {latents, latents}}, "a longer sampler history than any sampler keeps"},
           {{1, latents, {at::randn({2})}}, "a sampler history of another shape"},
       }) {
    ASSERT_TRUE(cache->save(c.step).ok());
    EXPECT_FALSE(cache->load(shape()).has_value()) << c.why;
    EXPECT_FALSE(fs::exists(state)) << c.why << ": a corrupt state is removed";
  }
  std::ofstream(state) << "not a tensor archive";
  EXPECT_FALSE(cache->load(shape()).has_value());
  EXPECT_FALSE(fs::exists(state));
  fs::remove_all(dir);
}

TEST(MemoryCheck, NamesTheLargestTermWithItsCode) {
  const std::vector<MemoryTerm> terms = {
      {"clip.mp4: 30 frames", 1e9, ExitCode::bad_input, "render a shorter clip"},
      {"--size 8192x8192 with --window 24", 90e9, ExitCode::usage, "use a smaller --size or --window"},
  };
  EXPECT_TRUE(check_memory(terms, int64_t{200} << 30, 0).ok());
  const Status refused = check_memory(terms, int64_t{16} << 30, int64_t{1} << 30);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ExitCode::usage);
  const std::string& m = refused.error().message;
  EXPECT_EQ(m.rfind("--size 8192x8192 with --window 24 need at least 91 GB", 0), 0u) << m;
  EXPECT_NE(m.find("use a smaller --size or --window"), std::string::npos) << m;
  EXPECT_GT(resident_bytes(), 0);
}

}  // namespace
}  // namespace standin::pipeline
