#include "run_cache.hpp"

#include <filesystem>
#include <sstream>

#include "standin/core/files.hpp"
#include "standin/core/log.hpp"
#include "standin/diffusion/sha256.hpp"
#include "standin/diffusion/torch_compat.hpp"

namespace fs = std::filesystem;

namespace standin::pipeline {
namespace {
constexpr const char* kStateFile = "state.pt";

std::string sizes_text(at::IntArrayRef sizes) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < sizes.size(); ++i) out << (i ? "," : "") << sizes[i];
  out << "]";
  return out.str();
}

std::optional<std::string> tensor_problem(const at::Tensor& t, const std::vector<int64_t>& sizes, const std::string& what) {
  if (!t.defined()) return what + " is missing";
  if (t.scalar_type() != at::kFloat) return what + " is " + std::string(c10::toString(t.scalar_type())) + ", not float32";
  if (!t.sizes().equals(sizes)) return what + " is " + sizes_text(t.sizes()) + ", this run needs " + sizes_text(sizes);
  // A crafted file can describe a tensor larger than the bytes behind it: never read past them.
  if (!t.device().is_cpu() || !t.is_contiguous() || t.storage_offset() < 0 ||
      static_cast<int64_t>(t.storage().nbytes()) < (t.storage_offset() + t.numel()) * static_cast<int64_t>(t.element_size()))
    return what + " does not have the data its shape needs";
  if (!at::isfinite(t).all().item<bool>()) return what + " holds NaN or infinite values";
  return std::nullopt;
}
}  // namespace

std::optional<std::string> cache_problem(const CachedStep& step, const CacheShape& shape) {
  if (step.next_step < 0 || step.next_step > shape.steps)
    return "its step counter is " + std::to_string(step.next_step) + ", this run has " + std::to_string(shape.steps) + " steps";
  if (auto p = tensor_problem(step.latents, shape.latent_sizes, "the saved latents")) return p;
  if (step.sampler_state.size() > shape.max_sampler_tensors)
    return "it holds " + std::to_string(step.sampler_state.size()) + " sampler tensors, at most " +
           std::to_string(shape.max_sampler_tensors) + " are possible";
  for (const auto& t : step.sampler_state)
    if (auto p = tensor_problem(t, shape.latent_sizes, "the saved sampler history")) return p;
  return std::nullopt;
}

Result<RunCache> RunCache::open(const std::string& dir, const std::string& key_material,
                                const std::vector<std::string>& files) {
  diffusion::Sha256 hash;
  hash.update(key_material.data(), key_material.size());
  for (const auto& file : files) {
    if (file.empty()) continue;
    STANDIN_TRY(check_regular_file(file, "input"));
    STANDIN_ASSIGN_OR_RETURN(const std::string digest, diffusion::sha256_file(file));
    hash.update(digest.data(), digest.size());
  }
  RunCache cache;
  cache.key_ = hash.hex_digest();
  cache.folder_ = (fs::path(dir) / cache.key_.substr(0, 24)).string();
  std::error_code ec;
  fs::create_directories(cache.folder_, ec);
  if (ec) return Error::bad_input(dir + ": cannot create the cache folder: " + ec.message());
  if (!fs::is_directory(cache.folder_, ec)) return Error::bad_input(cache.folder_ + ": the cache entry is not a folder; remove it");
  return cache;
}

std::optional<CachedStep> RunCache::load(const CacheShape& shape) const {
  const std::string path = (fs::path(folder_) / kStateFile).string();
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) return std::nullopt;
  const auto discard = [&](const std::string& why) -> std::optional<CachedStep> {
    log::warn("{}: the cached state is corrupt or from another run ({}); removed, starting from the beginning", path, why);
    std::error_code ignored;
    fs::remove(path, ignored);
    return std::nullopt;
  };
  // A state is the latents plus at most the sampler's history and a little pickle framing.
  int64_t elements = 1;
  for (int64_t s : shape.latent_sizes) elements *= std::max<int64_t>(s, 1);
  const int64_t cap = elements * 4 * static_cast<int64_t>(1 + shape.max_sampler_tensors) + (int64_t{1} << 20);
  auto bytes = read_file_capped(path, cap, "cached state");
  if (!bytes.ok()) return discard(bytes.error().message);
  CachedStep step;
  try {
    const std::vector<char> data(bytes->begin(), bytes->end());
    const auto value = diffusion::compat::pickle_load(data);
    if (!value.isTensorList()) return discard("not a list of tensors");
    const auto list = value.toTensorList().vec();
    if (list.size() < 2) return discard("too few tensors");
    if (list[0].numel() != 1 || list[0].scalar_type() != at::kLong) return discard("no step counter");
    const int64_t next = list[0].item<int64_t>();
    if (next < 0 || next > shape.steps) return discard("step counter " + std::to_string(next));
    step.next_step = static_cast<int>(next);
    step.latents = list[1];
    step.sampler_state.assign(list.begin() + 2, list.end());
  } catch (const std::exception& e) {
    return discard(diffusion::compat::short_message(e));
  }
  if (auto problem = cache_problem(step, shape)) return discard(*problem);
  return step;
}

Status RunCache::save(const CachedStep& step) const {
  c10::List<at::Tensor> list;
  list.push_back(at::tensor(static_cast<int64_t>(step.next_step)));
  list.push_back(step.latents.to(at::kCPU));
  for (const auto& t : step.sampler_state) list.push_back(t.to(at::kCPU));
  const std::vector<char> bytes = diffusion::compat::pickle_save(list);
  const std::string path = (fs::path(folder_) / kStateFile).string();
  return write_file_atomically(path, std::string_view(bytes.data(), bytes.size()), /*overwrite=*/true, "cache");
}

void RunCache::clear() const {
  std::error_code ec;
  fs::remove_all(folder_, ec);
}

}  // namespace standin::pipeline
