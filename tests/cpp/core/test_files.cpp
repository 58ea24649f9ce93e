// Hostile filesystems (issue 14): inputs are regular files read with caps, outputs replace only
// regular files, exclusive creation without -y, dead writers' temporaries are cleaned up, write
// errors are errors, JSON is parsed within limits.
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>

#include "standin/core/files.hpp"
#include "standin/core/json_bounded.hpp"
#include "standin/core/output.hpp"

namespace fs = std::filesystem;

namespace standin {
namespace {

class HostileFs : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("standin-files-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string fifo(const std::string& name) const {
    const std::string p = path(name);
    EXPECT_EQ(mkfifo(p.c_str(), 0644), 0);
    return p;
  }
  static std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  size_t entries() const { return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), {})); }
  fs::path dir_;
};

// --- inputs ------------------------------------------------------------------------------

TEST_F(HostileFs, NonRegularInputsAreRefusedWithoutBlocking) {
  // A FIFO without a writer: open() would wait forever without O_NONBLOCK.
  const std::string pipe = fifo("poses.json");
  auto from_fifo = read_file_capped(pipe, 1 << 20, "poses file");
  ASSERT_FALSE(from_fifo.ok());
  EXPECT_EQ(from_fifo.error().code, ExitCode::bad_input);
  EXPECT_NE(from_fifo.error().message.find("FIFO"), std::string::npos) << from_fifo.error().message;
  EXPECT_FALSE(check_regular_file(pipe, "video").ok());

  // An endless device, directly and behind a symlink.
  fs::create_symlink("/dev/zero", dir_ / "zero.json");
  for (const std::string p : {std::string("/dev/zero"), path("zero.json")}) {
    auto endless = read_file_capped(p, 1 << 20, "jobs file", ExitCode::model);
    ASSERT_FALSE(endless.ok()) << p;
    EXPECT_EQ(endless.error().code, ExitCode::model);
    EXPECT_NE(endless.error().message.find("character device"), std::string::npos) << endless.error().message;
  }

  // A folder where a file belongs, and a missing file.
  auto folder = read_file_capped(dir_.string(), 1 << 20, "jobs file");
  ASSERT_FALSE(folder.ok());
  EXPECT_NE(folder.error().message.find("jobs file is a folder"), std::string::npos) << folder.error().message;
  auto missing = check_regular_file(path("nope.mp4"), "video");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("video not found"), std::string::npos);
}

TEST_F(HostileFs, UnreadableInputsNameThePath) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads every file";
  std::ofstream(path("locked.json")) << "{}";
  fs::permissions(path("locked.json"), fs::perms::none);
  auto locked = read_file_capped(path("locked.json"), 1 << 20, "poses file");
  ASSERT_FALSE(locked.ok());
  EXPECT_EQ(locked.error().message, path("locked.json") + ": cannot read the poses file: permission denied");
  EXPECT_FALSE(check_regular_file(path("locked.json"), "video").ok());
}

TEST_F(HostileFs, TextInputsHaveASizeCap) {
  std::ofstream(path("big.json")) << std::string(5000, ' ') << "{}";
  auto capped = read_file_capped(path("big.json"), 4096, "model.json", ExitCode::model);
  ASSERT_FALSE(capped.ok());
  EXPECT_EQ(capped.error().code, ExitCode::model);
  EXPECT_NE(capped.error().message.find("5.0 KB"), std::string::npos) << capped.error().message;
  auto fits = read_file_capped(path("big.json"), 8192, "model.json");
  ASSERT_TRUE(fits.ok());
  EXPECT_EQ(fits->size(), 5002u);
}

// --- JSON limits --------------------------------------------------------------------------

TEST(JsonBounded, RefusesDeepNestingAndTooManyValues) {
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  auto nested = parse_json_bounded(deep, "x.json", JsonLimits{64, 1000}, ExitCode::bad_input);
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(nested.error().message.find("nested deeper than 64"), std::string::npos) << nested.error().message;

  std::string many = "[";
  for (int i = 0; i < 2000; ++i) many += i ? ",0" : "0";
  many += "]";
  auto counted = parse_json_bounded(many, "x.json", JsonLimits{8, 1000}, ExitCode::model);
  ASSERT_FALSE(counted.ok());
  EXPECT_EQ(counted.error().code, ExitCode::model);

  auto ok = parse_json_bounded(R"({"a": [1, 2.5, "x", null, true], "b": {"c": {}}})", "x.json", {}, ExitCode::bad_input);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok.value(), nlohmann::json::parse(R"({"a": [1, 2.5, "x", null, true], "b": {"c": {}}})"));

  auto broken = parse_json_bounded("{\"a\": ", "x.json", {}, ExitCode::bad_input);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message.find("x.json: not valid JSON"), std::string::npos) << broken.error().message;
}

// --- outputs ------------------------------------------------------------------------------

TEST_F(HostileFs, OutputsReplaceOnlyRegularFiles) {
  const std::string pipe = fifo("out.mp4");
  fs::create_symlink("/dev/null", dir_ / "null.mp4");
  for (const std::string target : {std::string("/dev/null"), pipe, path("null.mp4")}) {
    for (bool overwrite : {false, true}) {
      auto refused = check_output_path(target, overwrite);
      ASSERT_FALSE(refused.ok()) << target;
      EXPECT_EQ(refused.error().code, ExitCode::bad_input);
      EXPECT_NE(refused.error().message.find("regular files"), std::string::npos) << refused.error().message;
    }
  }
  // Even past the check (the node appeared while the run worked), commit leaves it alone.
  auto out = AtomicOutput::create(path("late.mp4"), /*overwrite=*/true);
  ASSERT_TRUE(out.ok());
  std::ofstream(out->temp_path()) << "video";
  ASSERT_EQ(mkfifo(path("late.mp4").c_str(), 0644), 0);
  auto committed = out->commit();
  ASSERT_FALSE(committed.ok());
  EXPECT_EQ(committed.error().code, ExitCode::bad_input);
  EXPECT_TRUE(fs::is_fifo(path("late.mp4")));
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
}

TEST_F(HostileFs, WithoutOverwriteCreationIsExclusive) {
  const std::string dest = path("out.mp4");
  auto first = AtomicOutput::create(dest, /*overwrite=*/false);
  auto second = AtomicOutput::create(dest, /*overwrite=*/false);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE(first->temp_path(), second->temp_path());
  std::ofstream(first->temp_path()) << "first";
  std::ofstream(second->temp_path()) << "second";
  ASSERT_TRUE(first->commit().ok());
  auto lost = second->commit();
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.error().code, ExitCode::bad_input);
  EXPECT_NE(lost.error().message.find("already exists"), std::string::npos);
  EXPECT_EQ(slurp(dest), "first");

  auto replacing = AtomicOutput::create(dest, /*overwrite=*/true);
  ASSERT_TRUE(replacing.ok());
  std::ofstream(replacing->temp_path()) << "third";
  ASSERT_TRUE(replacing->commit().ok());
  EXPECT_EQ(slurp(dest), "third");
}

TEST_F(HostileFs, DeadWritersTemporariesAreRemovedLiveOnesKept) {
  const std::string dest = path("shot.mp4");
  // What a SIGKILLed run leaves: a temporary nobody holds a lock on.
  const std::string tag = partial_host_tag();
  const std::string dead = path(".shot.partial-" + tag + "-0123abcd.mp4");
  std::ofstream(dead) << "half a video";
  const std::string unrelated = path(".other.partial-" + tag + "-0123abcd.mp4");
  std::ofstream(unrelated) << "another destination's";
  // Another machine's (on a shared folder its lock may not be visible here): never touched.
  const std::string foreign = path(".shot.partial-" + std::string(tag == "00000000" ? "11111111" : "00000000") + "-0123abcd.mp4");
  std::ofstream(foreign) << "another host's";
  auto live = AtomicOutput::create(dest, false);
  ASSERT_TRUE(live.ok());
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(unrelated));
  EXPECT_TRUE(fs::exists(foreign));
  // A second run to the same destination must not take the first one's temporary.
  auto concurrent = AtomicOutput::create(dest, false);
  ASSERT_TRUE(concurrent.ok());
  EXPECT_TRUE(fs::exists(live->temp_path()));
}

TEST_F(HostileFs, LongNamesFitTheirTemporary) {
  const size_t name_max = static_cast<size_t>(pathconf(dir_.c_str(), _PC_NAME_MAX));
  const std::string longest = std::string(name_max - 4, 'a') + ".mp4";
  ASSERT_TRUE(check_output_path(path(longest), false).ok());
  auto out = AtomicOutput::create(path(longest), false);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_LE(fs::path(out->temp_path()).filename().string().size(), name_max);
  EXPECT_EQ(fs::path(out->temp_path()).extension(), ".mp4");
  std::ofstream(out->temp_path()) << "x";
  ASSERT_TRUE(out->commit().ok());
  EXPECT_TRUE(fs::exists(path(longest)));

  auto too_long = check_output_path(path(std::string(name_max + 1, 'b')), false);
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().message.find("this filesystem allows"), std::string::npos);
  EXPECT_EQ(temporary_name("clip.mp4", "0a1b2c3d-abcdefgh", 255), ".clip.partial-0a1b2c3d-abcdefgh.mp4");
  EXPECT_EQ(temporary_name("clip.mp4", "0a1b2c3d-abcdefgh", 33), ".cl.partial-0a1b2c3d-abcdefgh.mp4");  // 33 bytes
}

TEST_F(HostileFs, FileInPlaceOfAFolderIsNamedSo) {
  std::ofstream(path("notes")) << "a file";
  auto bad = check_output_path(path("notes") + "/out.mp4", true);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("not a folder"), std::string::npos) << bad.error().message;
  auto missing = check_output_path(path("nope") + "/out.mp4", true);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("does not exist"), std::string::npos);
}

// A full disk, simulated with the file size limit: the write fails with EFBIG.
TEST_F(HostileFs, WriteErrorsAreErrorsAndLeaveNothing) {
  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 1000;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string dest = path("metrics.json");
  const Status status = write_file_atomically(dest, std::string(5000, 'x'), false, "metrics file");
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ExitCode::runtime);
  EXPECT_NE(status.error().message.find("metrics file"), std::string::npos);
  EXPECT_FALSE(fs::exists(dest));
  EXPECT_EQ(entries(), 0u);  // no temporary either

  ASSERT_TRUE(write_file_atomically(dest, "{}\n", false, "metrics file").ok());
  EXPECT_EQ(slurp(dest), "{}\n");
  EXPECT_FALSE(write_file_atomically(dest, "{}\n", false, "metrics file").ok());  // exists, no overwrite
}

TEST_F(HostileFs, FileLockIsExclusive) {
  const std::string lock_path = path("status.json.lock");
  {
    auto held = FileLock::acquire(lock_path, "batch status file");
    ASSERT_TRUE(held.ok()) << held.error().message;
    auto again = FileLock::acquire(lock_path, "batch status file");
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.error().message.find("in use by another standin process (pid " + std::to_string(getpid())),
              std::string::npos)
        << again.error().message;
  }
  EXPECT_FALSE(fs::exists(lock_path));  // released and removed
  EXPECT_TRUE(FileLock::acquire(lock_path, "batch status file").ok());
}

TEST(MemoryBudget, EnvironmentOverridesAndSizesFormat) {
  setenv("STANDIN_MEMORY_LIMIT", "2G", 1);
  EXPECT_EQ(memory_budget_bytes(), int64_t{2} << 30);
  unsetenv("STANDIN_MEMORY_LIMIT");
  EXPECT_GT(memory_budget_bytes(), int64_t{64} << 20);
  EXPECT_EQ(format_bytes(1.5e9), "1.5 GB");
  EXPECT_EQ(format_bytes(320e6), "320 MB");
}

}  // namespace
}  // namespace standin
