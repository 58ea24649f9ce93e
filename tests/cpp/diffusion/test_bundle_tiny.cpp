// Bundle::load against the tiny exported bundle: success, and every "wrong bundle" case is an
// Error::model (exit 4) whose message names the module.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "standin/core/progress.hpp"
#include "standin/diffusion/bundle.hpp"
#include "tiny_bundle.hpp"

namespace fs = std::filesystem;

namespace standin::diffusion {
namespace {

class TinyBundle : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = testing::tiny_bundle_dir();
    ASSERT_FALSE(src_.empty()) << "could not export the tiny bundle (see export_tiny.log)";
    ASSERT_TRUE(fs::exists(src_ + "/model.json"));
  }
  // A private copy to break.
  std::string copy(const std::string& tag) {
    const fs::path dst = fs::path(STANDIN_BINARY_DIR) / ("broken_bundle_" + tag);
    fs::remove_all(dst);
    fs::create_directories(dst);
    for (const auto& e : fs::directory_iterator(src_)) fs::copy_file(e.path(), dst / e.path().filename());
    return dst.string();
  }
  static nlohmann::json read_json(const std::string& dir) {
    std::ifstream in(dir + "/model.json");
    return nlohmann::json::parse(in);
  }
  static void write_json(const std::string& dir, const nlohmann::json& j) { std::ofstream(dir + "/model.json") << j.dump(2); }
  static void expect_model_error(const Result<Bundle>& b, const std::string& module, const std::string& what) {
    ASSERT_FALSE(b.ok()) << "a broken bundle loaded (" << what << ")";
    EXPECT_EQ(b.error().code, ExitCode::model) << b.error().message;
    EXPECT_NE(b.error().message.find("'" + module + "'"), std::string::npos) << b.error().message;
    EXPECT_NE(b.error().message.find(what), std::string::npos) << b.error().message;
  }
  std::string src_;
};

TEST_F(TinyBundle, LoadsWithDryRun) {
  auto b = Bundle::load(src_, DeviceSpec{"cpu"});
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->config().name, "tiny");
  EXPECT_EQ(b->dtype(), at::kFloat);
  EXPECT_NE(b->object_guider(), nullptr);
  EXPECT_EQ(b->config().max_window, 32);
  EXPECT_EQ(b->config().size_multiple, 16);
}

TEST_F(TinyBundle, LoadsInBf16) {
  auto b = Bundle::load(src_, DeviceSpec{"cpu"}, DType::bf16);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->dtype(), at::kBFloat16);
  auto fp16 = Bundle::load(src_, DeviceSpec{"cpu"}, DType::fp16);
  ASSERT_FALSE(fp16.ok());
  EXPECT_EQ(fp16.error().code, ExitCode::usage);
}

TEST_F(TinyBundle, MissingModuleFile) {
  const auto dir = copy("missing");
  fs::remove(dir + "/pose_guider.pt");
  expect_model_error(Bundle::load(dir, DeviceSpec{"cpu"}), "pose_guider", "missing");
}

TEST_F(TinyBundle, CorruptFileFailsSha256) {
  const auto dir = copy("corrupt");
  {
    std::fstream f(dir + "/vae_decoder.pt", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('\x5a');
  }
  expect_model_error(Bundle::load(dir, DeviceSpec{"cpu"}), "vae_decoder", "sha256 mismatch");
}

TEST_F(TinyBundle, RememberedVerificationStillCatchesLaterCorruption) {
  const fs::path cache = fs::path(STANDIN_BINARY_DIR) / "verified_cache_test";
  fs::remove_all(cache);
  setenv("STANDIN_CACHE_DIR", cache.c_str(), 1);
  const auto dir = copy("remembered");
  ASSERT_TRUE(Bundle::load(dir, DeviceSpec{"cpu"}).ok());
  // One stamp per module file once they passed.
  const auto stamps = std::distance(fs::directory_iterator(cache / "verified"), fs::directory_iterator());
  EXPECT_EQ(stamps, static_cast<long>(read_json(dir)["modules"].size()));
  {
    // the contract dry run that passed is remembered as well ...
    auto again = Bundle::load(dir, DeviceSpec{"cpu"});
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(again.value().dry_run_remembered());
    // ... for this dtype only, and not when model.json (the contract) changes
    auto other_dtype = Bundle::load(dir, DeviceSpec{"cpu"}, DType::bf16);
    ASSERT_TRUE(other_dtype.ok()) << other_dtype.error().message;
    EXPECT_FALSE(other_dtype.value().dry_run_remembered());
    auto j = read_json(dir);
    j["name"] = "tiny, renamed";
    write_json(dir, j);
    auto edited = Bundle::load(dir, DeviceSpec{"cpu"});
    ASSERT_TRUE(edited.ok()) << edited.error().message;
    EXPECT_FALSE(edited.value().dry_run_remembered());
    LoadOptions fresh;
    fresh.remember_verified = false;  // `models --verify`: everything again
    auto verified = Bundle::load(dir, DeviceSpec{"cpu"}, std::nullopt, fresh);
    ASSERT_TRUE(verified.ok());
    EXPECT_FALSE(verified.value().dry_run_remembered());
  }
  {
    std::fstream f(dir + "/vae_decoder.pt", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('\x5a');  // same size: only the modification time tells
  }
  expect_model_error(Bundle::load(dir, DeviceSpec{"cpu"}), "vae_decoder", "sha256 mismatch");
  unsetenv("STANDIN_CACHE_DIR");
}

TEST_F(TinyBundle, CorruptFileWithMatchingShaFailsToLoad) {
  const auto dir = copy("garbage");
  { std::ofstream(dir + "/image_encoder.pt", std::ios::binary) << "this is not a TorchScript archive"; }
  LoadOptions o;
  o.verify_checksums = false;
  expect_model_error(Bundle::load(dir, DeviceSpec{"cpu"}, std::nullopt, o), "image_encoder", "TorchScript");
}

TEST_F(TinyBundle, WrongDeclaredOutputShape) {
  const auto dir = copy("shape");
  auto j = read_json(dir);
  j["modules"]["denoising_unet"]["outputs"][0]["shape"][1] = 8;
  write_json(dir, j);
  expect_model_error(Bundle::load(dir, DeviceSpec{"cpu"}), "denoising_unet", "declares [B,8,F,h,w]");
}

TEST_F(TinyBundle, WrongReferenceCount) {
  const auto dir = copy("refcount");
  auto j = read_json(dir);
  j["modules"]["reference_net"]["outputs"][0]["items"].erase(0);
  write_json(dir, j);
  expect_model_error(Bundle::load(dir, DeviceSpec{"cpu"}), "reference_net", "declares 3");
}

TEST_F(TinyBundle, SwappedModuleFailsDryRun) {
  const auto dir = copy("swapped");
  auto j = read_json(dir);
  j["modules"]["vae_encoder"]["file"] = "vae_decoder.pt";
  j["modules"]["vae_encoder"]["sha256"] = j["modules"]["vae_decoder"]["sha256"];
  write_json(dir, j);
  expect_model_error(Bundle::load(dir, DeviceSpec{"cpu"}), "vae_encoder", "dry run");
}

TEST_F(TinyBundle, UnknownFormatVersion) {
  const auto dir = copy("version");
  auto j = read_json(dir);
  j["format_version"] = 7;
  write_json(dir, j);
  auto b = Bundle::load(dir, DeviceSpec{"cpu"});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, ExitCode::model);
  EXPECT_NE(b.error().message.find("format_version 7"), std::string::npos);
}

}  // namespace
}  // namespace standin::diffusion
