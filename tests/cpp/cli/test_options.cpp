#include <gtest/gtest.h>

#include <torch/cuda.h>

#include <vector>

#include "options.hpp"
#include "standin/diffusion/bundle.hpp"

namespace standin::cli {
namespace {

ParseOutcome parse(std::vector<const char*> args) {
  args.insert(args.begin(), "standin");
  return parse_command_line(static_cast<int>(args.size()), args.data());
}

TEST(CommandLine, ReplaceWithDefaults) {
  auto out = parse({"replace", "-i", "in.mp4", "-r", "ref.png", "-o", "out.mp4"});
  ASSERT_TRUE(out.command) << out.text;
  EXPECT_EQ(out.command->command, Subcommand::replace);
  EXPECT_EQ(out.command->generate.input, "in.mp4");
  EXPECT_EQ(out.command->generate.reference, "ref.png");
  EXPECT_EQ(out.command->generate.output, "out.mp4");
  EXPECT_EQ(out.command->generate.device, "auto");
  EXPECT_EQ(out.command->generate.sampler, "");  // the preset's, else the bundle's
  EXPECT_EQ(out.command->generate.crf, 12);
  EXPECT_FALSE(out.command->global.overwrite);
}

TEST(CommandLine, GlobalFlags) {
  auto out = parse({"-vv", "--log-json", "-y", "replace", "-i", "a", "-r", "b", "-o", "c", "--steps", "4",
                    "--size", "256x384", "--sampler", "dpmpp-2m", "--seed", "42"});
  ASSERT_TRUE(out.command) << out.text;
  EXPECT_EQ(out.command->global.verbosity, 2);
  EXPECT_TRUE(out.command->global.log_json);
  EXPECT_TRUE(out.command->global.overwrite);
  EXPECT_EQ(out.command->generate.steps, 4);
  EXPECT_EQ(out.command->generate.seed, 42);
  EXPECT_EQ(out.command->generate.sampler, "dpmpp-2m");
}

TEST(CommandLine, BetaScheduleOverride) {
  auto none = parse({"replace", "-i", "a", "-r", "b", "-o", "c"});
  ASSERT_TRUE(none.command) << none.text;
  EXPECT_EQ(none.command->generate.beta_schedule, "");  // the bundle's
  auto linear = parse({"animate", "-i", "a", "-r", "b", "-o", "c", "--beta-schedule", "linear"});
  ASSERT_TRUE(linear.command) << linear.text;
  EXPECT_EQ(linear.command->generate.beta_schedule, "linear");
  EXPECT_EQ(parse({"replace", "-i", "a", "-r", "b", "-o", "c", "--beta-schedule", "cosine"}).exit_code, 2);
}

TEST(CommandLine, UsageErrorsExitTwo) {
  EXPECT_EQ(parse({}).exit_code, 2);
  EXPECT_EQ(parse({"replace", "-i", "a", "-o", "c"}).exit_code, 2);              // no reference
  EXPECT_EQ(parse({"replace", "-i", "a", "-r", "b", "-o", "c", "--steps", "0"}).exit_code, 2);
  EXPECT_EQ(parse({"replace", "-i", "a", "-r", "b", "-o", "c", "--sampler", "euler"}).exit_code, 2);
  auto bad_size = parse({"replace", "-i", "a", "-r", "b", "-o", "c", "--size", "512by768"});
  EXPECT_EQ(bad_size.exit_code, 2);
  EXPECT_NE(bad_size.text.find("--size must look like 512x768"), std::string::npos) << bad_size.text;
  EXPECT_EQ(parse({"animate", "-r", "b", "-o", "c"}).exit_code, 2);  // nothing drives the animation
  EXPECT_EQ(parse({"batch", "jobs.jsonl", "--shard", "3/3"}).exit_code, 2);
  EXPECT_EQ(parse({"frobnicate"}).exit_code, 2);
}

TEST(CommandLine, HelpAndVersionExitZero) {
  auto help = parse({"--help"});
  EXPECT_FALSE(help.command);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.text.find("replace"), std::string::npos);
  EXPECT_NE(help.text.find("Exit codes"), std::string::npos);
  auto version = parse({"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.text.rfind("standin ", 0), 0u) << version.text;
}

TEST(CommandLine, OtherSubcommands) {
  auto cmp = parse({"compare", "a.mp4", "b.mp4", "--min-psnr", "35", "--json"});
  ASSERT_TRUE(cmp.command) << cmp.text;
  EXPECT_EQ(cmp.command->command, Subcommand::compare);
  ASSERT_TRUE(cmp.command->compare.min_psnr.has_value());
  EXPECT_DOUBLE_EQ(*cmp.command->compare.min_psnr, 35.0);
  auto ext = parse({"extract", "-i", "v.mp4", "-o", "outdir", "--person", "2"});
  ASSERT_TRUE(ext.command) << ext.text;
  EXPECT_EQ(ext.command->extract.person, "2");
  auto batch = parse({"batch", "jobs.jsonl", "--shard", "1/4"});
  ASSERT_TRUE(batch.command) << batch.text;
  EXPECT_EQ(batch.command->batch.shard, "1/4");
}

TEST(ParseSize, AcceptsAndRejects) {
  auto ok = parse_size("512x768");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value(), std::make_pair(512, 768));
  for (const char* bad : {"", "x", "512x", "x768", "512x770", "0x64", "-8x8", "512x768x3", "16384x64", "abcxdef"})
    EXPECT_FALSE(parse_size(bad).ok()) << bad;
}

TEST(ParseShard, AcceptsAndRejects) {
  auto ok = parse_shard("2/8");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value(), std::make_pair(2, 8));
  for (const char* bad : {"", "1", "1/0", "8/8", "-1/4", "a/b", "1/4/2"}) EXPECT_FALSE(parse_shard(bad).ok()) << bad;
}

TEST(CommandLine, DeviceListForSeveralGpus) {
  auto out = parse({"replace", "-i", "in.mp4", "-r", "ref.png", "-o", "out.mp4", "--device", "cuda:0,cuda:1"});
  ASSERT_TRUE(out.command) << out.text;
  EXPECT_EQ(out.command->generate.device, "cuda:0,cuda:1");
  auto list = diffusion::parse_device_list(out.command->generate.device);
  ASSERT_TRUE(list.ok()) << list.error().message;
  EXPECT_EQ(list.value(), (std::vector<std::string>{"cuda:0", "cuda:1"}));
  for (const char* single : {"cpu", "cuda", "cuda:3"}) {
    auto one = parse({"animate", "--poses", "p.json", "-r", "ref.png", "-o", "out.mp4", "--device", single});
    ASSERT_TRUE(one.command) << single << ": " << one.text;
    EXPECT_EQ(one.command->generate.device, single);
  }
  // Misspelt lists are usage errors at parse time (exit 2), before anything is loaded.
  for (const char* bad : {"cuda:0,cuda:0", "cpu,cuda:0", "cuda:0,,cuda:1", "gpu:1"}) {
    auto r = parse({"replace", "-i", "in.mp4", "-r", "ref.png", "-o", "out.mp4", "--device", bad});
    EXPECT_FALSE(r.command) << bad;
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.text.find("--device"), std::string::npos) << r.text;
  }
  // Without CUDA, asking for it stays the actionable usage error of loading (exit 2).
  if (!torch::cuda::is_available()) {
    for (const char* cuda : {"cuda", "cuda:0,cuda:1"}) {
      auto r = diffusion::resolve_devices(concrete_device(cuda));
      ASSERT_FALSE(r.ok()) << cuda;
      EXPECT_EQ(r.error().code, ExitCode::usage);
      EXPECT_NE(r.error().message.find("has no CUDA device; use --device cpu"), std::string::npos) << r.error().message;
    }
  }
}

TEST(CommandLine, DeviceAutoPicksCudaOnlyWhereThereIsOne) {
  EXPECT_EQ(concrete_device("auto"), torch::cuda::is_available() ? "cuda" : "cpu");
  for (const char* name : {"cpu", "cuda", "cuda:1", "bogus"}) EXPECT_EQ(concrete_device(name), name);
  auto out = parse({"extract", "-i", "in.mp4", "-o", "dir"});
  ASSERT_TRUE(out.command) << out.text;
  EXPECT_EQ(out.command->extract.device, "auto");
}

}  // namespace
}  // namespace standin::cli

namespace standin::cli {
namespace {

TEST(ParsePerson, AutoOrTrackId) {
  EXPECT_EQ(parse_person("auto").value(), -1);
  EXPECT_EQ(parse_person("").value(), -1);
  EXPECT_EQ(parse_person("3").value(), 3);
  for (const char* bad : {"x", "-1", "2a", "1.5"}) {
    auto r = parse_person(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ExitCode::usage);
  }
}

}  // namespace
}  // namespace standin::cli

#include "standin/pipeline/batch.hpp"

namespace standin::cli {
namespace {

// Issue 14: numbers are exact or refused; NaN never slips through a range check.
TEST(CommandLine, NonFiniteAndOutOfRangeNumbersAreUsageErrors) {
  const std::vector<const char*> base = {"replace", "-i", "a", "-r", "b", "-o", "c"};
  const auto with = [&](std::vector<const char*> extra) {
    auto args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return parse(args);
  };
  for (const char* cfg : {"nan", "NaN", "inf", "-inf", "1e999", "51", "-1", "3.5x"}) {
    auto out = with({"--cfg", cfg});
    EXPECT_EQ(out.exit_code, 2) << cfg;
    EXPECT_NE(out.text.find("--cfg"), std::string::npos) << out.text;
  }
  for (const char* seed : {"18446744073709551616", "9223372036854775808", "1e23", "-1", "1.5", ""})
    EXPECT_EQ(with({"--seed", seed}).exit_code, 2) << seed;
  auto largest = with({"--seed", "9223372036854775807", "--cfg", "0"});
  ASSERT_TRUE(largest.command) << largest.text;
  EXPECT_EQ(largest.command->generate.seed, INT64_MAX);
  EXPECT_EQ(largest.command->generate.cfg, 0.0);
  for (const char* psnr : {"nan", "inf", "-3"}) EXPECT_EQ(parse({"compare", "a", "b", "--min-psnr", psnr}).exit_code, 2) << psnr;
  auto gate = parse({"compare", "a", "b", "--min-psnr", "40.5"});
  ASSERT_TRUE(gate.command) << gate.text;
  EXPECT_EQ(*gate.command->compare.min_psnr, 40.5);
}

// README: batch job keys are the long option names of replace/animate, so the two lists must
// not drift apart (landmark_model and max_people once did).
TEST(CommandLine, BatchJobKeysAreTheLongOptions) {
  auto options = generate_long_options();
  EXPECT_TRUE(options.count("landmark-model") && options.count("max-people"));
  options["overwrite"] = false;  // the global -y/--overwrite, a true/false key in jobs
  EXPECT_EQ(pipeline::job_keys(), options);
}

}  // namespace
}  // namespace standin::cli
