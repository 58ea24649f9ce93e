// model.json parsing on hand-written fixtures (no TorchScript needed).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "standin/diffusion/bundle.hpp"
#include "standin/diffusion/generator.hpp"

namespace standin::diffusion {
namespace {

nlohmann::json good() {
  return nlohmann::json::parse(R"({
    "format": "standin-bundle", "format_version": 1, "name": "tiny", "config": "tiny", "dtype": "float32",
    "geometry": {"width": 128, "height": 192, "vae_scale_factor": 8, "latent_channels": 4,
                 "clip_size": 224, "context_dim": 64, "unet_in_channels": 9},
    "latent": {"scaling_factor": 0.18215},
    "conditioning": {"environment": true, "mask_channel": true, "reference_blocks": "all",
                     "object_guider": false, "pose_channels": 32},
    "scheduler": {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                  "beta_schedule": "scaled_linear", "prediction_type": "v_prediction",
                  "rescale_betas_zero_snr": true, "timestep_spacing": "trailing",
                  "steps_offset": 1, "clip_sample": false},
    "defaults": {"steps": 4, "cfg": 3.5, "window": 8, "overlap": 2},
    "modules": {
      "vae_encoder": {"file": "vae_encoder.pt", "sha256": "00",
        "inputs": [{"name": "image", "shape": ["N", 3, "H", "W"], "dtype": "float32"}],
        "outputs": [{"name": "latent", "shape": ["N", 4, "h", "w"], "dtype": "float32"}]},
      "vae_decoder": {"file": "vae_decoder.pt", "sha256": "00", "inputs": [],
        "outputs": [{"name": "image", "shape": ["N", 3, "H", "W"], "dtype": "float32"}]},
      "image_encoder": {"file": "image_encoder.pt", "sha256": "00", "inputs": [],
        "outputs": [{"name": "embeds", "shape": ["N", 1, "D"], "dtype": "float32"}]},
      "reference_net": {"file": "reference_net.pt", "sha256": "00", "inputs": [],
        "outputs": [{"name": "reference", "type": "tensor_list", "items": [
            {"shape": [1, "h*w", 32], "dtype": "float32"}, {"shape": [1, "h/2*w/2", 64], "dtype": "float32"}]}]},
      "pose_guider": {"file": "pose_guider.pt", "sha256": "00", "inputs": [],
        "outputs": [{"name": "features", "shape": ["N", 32, "h", "w"]}]},
      "denoising_unet": {"file": "denoising_unet.pt", "sha256": "00", "inputs": [],
        "outputs": [{"name": "prediction", "shape": ["B", 4, "F", "h", "w"]}]}
    }})");
}

Result<BundleConfig> parse(const nlohmann::json& j) { return BundleConfig::parse(j.dump(), "fixture/model.json"); }

TEST(BundleConfig, ParsesAGoodManifest) {
  auto c = parse(good());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->width, 128);
  EXPECT_EQ(c->height, 192);
  EXPECT_EQ(c->context_dim, 64);
  EXPECT_EQ(c->pose_channels, 32);
  EXPECT_DOUBLE_EQ(c->scaling_factor, 0.18215);
  EXPECT_EQ(c->defaults.window, 8);
  EXPECT_EQ(c->scheduler.prediction_type, PredictionType::v_prediction);
  ASSERT_EQ(c->modules.size(), 6u);
  const auto& ref = c->modules.at("reference_net").outputs.at(0);
  EXPECT_TRUE(ref.is_list);
  EXPECT_EQ(ref.shape_str(), "List[[1,h*w,32], [1,h/2*w/2,64]]");
  EXPECT_EQ(c->dry_run.at("H"), 64);
  EXPECT_EQ(c->dry_run.at("h"), 8);
  EXPECT_EQ(c->modules.at("vae_encoder").inputs.at(0).shape_str(), "[N,3,H,W]");
  EXPECT_FALSE(c->pose_hands_face);  // absent: body-only pose maps, as every bundle so far
  auto j = good();
  j["conditioning"]["pose_hands_face"] = true;
  auto detailed = parse(j);
  ASSERT_TRUE(detailed.ok()) << detailed.error().message;
  EXPECT_TRUE(detailed->pose_hands_face);
  j["conditioning"]["pose_hands_face"] = "yes";
  EXPECT_EQ(parse(j).error().code, ExitCode::model);
}

TEST(BundleConfig, BetaScheduleFromModelJsonAndPerRunOverride) {
  auto j = good();
  j["scheduler"]["beta_schedule"] = "linear";  // what a Moore-AA bundle records
  auto c = parse(j);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->scheduler.beta_schedule, "linear");
  auto s = SamplingSettings::from_bundle(*c);
  EXPECT_EQ(s.scheduler_config(*c).beta_schedule, "linear");  // no override: the bundle's
  s.beta_schedule = "scaled_linear";
  EXPECT_TRUE(s.validate(*c).ok());
  const auto overridden = s.scheduler_config(*c);
  EXPECT_EQ(overridden.beta_schedule, "scaled_linear");
  EXPECT_EQ(overridden.timestep_spacing, c->scheduler.timestep_spacing);  // the rest is kept
  EXPECT_NE(alphas_cumprod(overridden)[500], alphas_cumprod(c->scheduler)[500]);
  s.beta_schedule = "cosine";
  ASSERT_FALSE(s.validate(*c).ok());
  EXPECT_EQ(s.validate(*c).error().code, ExitCode::usage);
}

void expect_model_error(const nlohmann::json& j, const std::string& needle) {
  auto c = parse(j);
  ASSERT_FALSE(c.ok()) << "accepted: " << needle;
  EXPECT_EQ(c.error().code, ExitCode::model);
  EXPECT_NE(c.error().message.find(needle), std::string::npos) << c.error().message;
}

TEST(BundleConfig, RedrawRegionDefaults) {
  auto c = parse(good());
  ASSERT_TRUE(c.ok()) << c.error().message;
  // absent: the paper's shape-agnostic blocks, grown 4 px (every bundle before the field)
  EXPECT_EQ(c->defaults.mask_mode, "agnostic");
  EXPECT_EQ(c->defaults.mask_dilate, 4);
  EXPECT_EQ(c->defaults.mask_blocks, 0);
  EXPECT_EQ(c->defaults.feather, -1);  // absent: replace's own edge for the source size
  auto j = good();
  j["defaults"]["mask_mode"] = "tight";
  j["defaults"]["mask_dilate"] = 1;
  j["defaults"]["mask_blocks"] = 12;
  auto tight = parse(j);
  ASSERT_TRUE(tight.ok()) << tight.error().message;
  EXPECT_EQ(tight->defaults.mask_mode, "tight");
  EXPECT_EQ(tight->defaults.mask_dilate, 1);
  EXPECT_EQ(tight->defaults.mask_blocks, 12);
  j["defaults"]["mask_mode"] = "loose";
  expect_model_error(j, "defaults.mask_mode must be agnostic, tight or box, got 'loose'");
  j["defaults"]["mask_mode"] = "box";
  j["defaults"]["mask_dilate"] = -1;
  expect_model_error(j, "defaults.mask_dilate -1 is out of range");
  j["defaults"]["mask_dilate"] = 2;
  j["defaults"]["mask_blocks"] = 5000;
  expect_model_error(j, "defaults.mask_blocks 5000 is out of range");
  j["defaults"]["mask_blocks"] = 0;
  j["defaults"]["feather"] = 1;
  auto narrow = parse(j);
  ASSERT_TRUE(narrow.ok()) << narrow.error().message;
  EXPECT_EQ(narrow->defaults.feather, 1);
  j["defaults"]["feather"] = -2;
  expect_model_error(j, "defaults.feather -2 is out of range");
  j["defaults"]["feather"] = "wide";
  auto typed = parse(j);
  ASSERT_FALSE(typed.ok());
  EXPECT_NE(typed.error().message.find("defaults.feather"), std::string::npos) << typed.error().message;
}

TEST(BundleConfig, RefusesBadManifests) {
  auto j = good();
  j["format"] = "something-else";
  expect_model_error(j, "unknown format");
  j = good();
  j["format_version"] = 2;
  expect_model_error(j, "format_version 2");
  j = good();
  j["geometry"].erase("width");
  expect_model_error(j, "geometry.width");
  j = good();
  j.erase("latent");
  expect_model_error(j, "'latent'");
  j = good();
  j["modules"].erase("pose_guider");
  expect_model_error(j, "pose_guider");
  j = good();
  j["modules"]["vae_decoder"].erase("sha256");
  expect_model_error(j, "modules.vae_decoder.sha256");
  j = good();
  j["geometry"]["unet_in_channels"] = 4;
  expect_model_error(j, "unet_in_channels");
  j = good();
  j["conditioning"]["object_guider"] = true;
  expect_model_error(j, "object_guider");
  j = good();
  j["geometry"]["width"] = "wide";
  expect_model_error(j, "geometry.width");
  j = good();
  j["scheduler"]["prediction_type"] = "sample";
  expect_model_error(j, "prediction_type");
  EXPECT_EQ(BundleConfig::parse("{not json", "x").error().code, ExitCode::model);
}

TEST(BundleConfig, MissingDirectoryIsAModelError) {
  auto b = Bundle::load("/nonexistent/bundle", DeviceSpec{"cpu"});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, ExitCode::model);
}

TEST(Device, ParseAndResolve) {
  EXPECT_TRUE(DeviceSpec{"cpu"}.resolve().ok());
  EXPECT_EQ(DeviceSpec{"gpu"}.resolve().error().code, ExitCode::usage);
  EXPECT_EQ(DeviceSpec{"cuda:x"}.resolve().error().code, ExitCode::usage);
  if (!torch::cuda::is_available()) {
    EXPECT_FALSE(DeviceSpec{"cuda:0"}.resolve().ok());
  }
  EXPECT_EQ(parse_dtype("bf16").value(), DType::bf16);
  EXPECT_EQ(parse_dtype("float16").value(), DType::fp16);
  EXPECT_FALSE(parse_dtype("int8").ok());
}

TEST(MatchSpec, Expressions) {
  const std::map<std::string, int64_t> b = {{"B", 2}, {"F", 3}, {"h", 12}, {"w", 8}};
  EXPECT_EQ((Dim{-1, "B*F"}.eval(b).value()), 6);
  EXPECT_EQ((Dim{-1, "h/2*w/2"}.eval(b).value()), 24);  // left to right: ((12/2)*8)/2
  EXPECT_EQ((Dim{-1, "h*w"}.eval(b).value()), 96);
  EXPECT_EQ((Dim{-1, "h / 4"}.eval(b).value()), 3);
  EXPECT_EQ((Dim{7, ""}.eval(b).value()), 7);
  EXPECT_FALSE((Dim{-1, "L"}.eval(b).has_value()));
  EXPECT_FALSE((Dim{-1, "h**2"}.eval(b).has_value()));
}

TEST(MatchSpec, Lists) {
  TensorSpec list;
  list.is_list = true;
  list.optional = true;
  TensorSpec item;
  item.shape = {{1, ""}, {-1, "h*w"}, {32, ""}};
  list.items = {item, item};
  const std::map<std::string, int64_t> b = {{"h", 2}, {"w", 3}};
  EXPECT_EQ(match_list(list, {torch::zeros({1, 6, 32}), torch::zeros({1, 6, 32})}, b, at::kFloat), "");
  EXPECT_EQ(match_list(list, {}, b, at::kFloat), "");
  EXPECT_NE(match_list(list, {torch::zeros({1, 6, 32})}, b, at::kFloat), "");
  EXPECT_NE(match_list(list, {torch::zeros({1, 6, 32}), torch::zeros({1, 5, 32})}, b, at::kFloat), "");
  list.optional = false;
  EXPECT_NE(match_list(list, {}, b, at::kFloat), "");
}

TEST(MatchSpec, SymbolsBindConsistently) {
  TensorSpec spec;
  spec.shape = {{-1, "N"}, {4, ""}, {-1, "x"}, {-1, "x"}};
  spec.dtype = "float32";
  std::map<std::string, int64_t> bind = {{"N", 2}};
  EXPECT_EQ(match_spec(spec, torch::zeros({2, 4, 8, 8}), bind, at::kFloat), "");
  EXPECT_NE(match_spec(spec, torch::zeros({2, 4, 8, 6}), bind, at::kFloat), "");  // unbound x twice, differs
  EXPECT_NE(match_spec(spec, torch::zeros({3, 4, 8, 8}), bind, at::kFloat), "");  // N bound to 2
  EXPECT_NE(match_spec(spec, torch::zeros({2, 5, 8, 8}), bind, at::kFloat), "");
  EXPECT_NE(match_spec(spec, torch::zeros({2, 4, 8, 8}, torch::kLong), bind, at::kFloat), "");
  EXPECT_EQ(match_spec(spec, torch::zeros({2, 4, 8, 8}, torch::kHalf), bind, at::kHalf), "");  // run dtype
}

}  // namespace
}  // namespace standin::diffusion
