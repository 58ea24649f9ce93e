#include "run_cache.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>


#include "standin/core/log.hpp"
#include "standin/core/log.hpp"
#include "standin/core/output.hpp"
#include "standin/diffusion/sha256.hpp"
#include "standin/diffusion/torch_compat.hpp"

namespace fs = std::filesystem;

namespace standin::pipeline {
namespace {
constexpr const char* kStateFile = "state.pt";
}

Result<RunCache> RunCache::open(const std::string& dir, const std::string& key_material,
                                const std::vector<std::string>& files) {
  diffusion::Sha256 hash;
  hash.update(key_material.data(), key_material.size());
  for (const auto& file : files) {
    if (file.empty()) continue;
    STANDIN_ASSIGN_OR_RETURN(const std::string digest, diffusion::sha256_file(file));
    hash.update(digest.data(), digest.size());
  }
  RunCache cache;
  cache.key_ = hash.hex_digest();
  cache.folder_ = (fs::path(dir) / cache.key_.substr(0, 24)).string();
  std::error_code ec;
  fs::create_directories(cache.folder_, ec);
  if (ec) return Error::bad_input(dir + ": cannot create the cache folder: " + ec.message());
  return cache;
}

std::optional<CachedStep> RunCache::load() const {
  const fs::path path = fs::path(folder_) / kStateFile;
  std::ifstream file(path, std::ios::binary);
  if (!file) return std::nullopt;
  const std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  try {
    const auto list = diffusion::compat::pickle_load(bytes).toTensorList().vec();
    if (list.size() < 2) throw std::runtime_error("too few tensors");
    CachedStep step;
    step.next_step = static_cast<int>(list[0].item<int64_t>());
    step.latents = list[1];
    step.sampler_state.assign(list.begin() + 2, list.end());
    return step;
  } catch (const std::exception& e) {
    log::warn("{}: cached state unreadable ({}); starting from the beginning", path.string(), e.what());
    return std::nullopt;
  }
}

Status RunCache::save(const CachedStep& step) const {
  c10::List<at::Tensor> list;
  list.push_back(at::tensor(static_cast<int64_t>(step.next_step)));
  list.push_back(step.latents.to(at::kCPU));
  for (const auto& t : step.sampler_state) list.push_back(t.to(at::kCPU));
  const std::vector<char> bytes = diffusion::compat::pickle_save(list);
  const std::string path = (fs::path(folder_) / kStateFile).string();
  AtomicOutput out(path);
  {
    std::ofstream file(out.temp_path(), std::ios::binary);
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!file) return Error::runtime(path + ": cannot write the cache (disk full?)");
  }
  return out.commit();
}

void RunCache::clear() const {
  std::error_code ec;
  fs::remove_all(folder_, ec);
}

}  // namespace standin::pipeline
