#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "standin/core/output.hpp"

namespace fs = std::filesystem;

namespace standin {
namespace {

class OutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("standin-output-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  size_t entries() const { return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), {})); }
  fs::path dir_;
};

TEST_F(OutputTest, CommitMovesIntoPlace) {
  const auto dest = (dir_ / "out.mp4").string();
  {
    auto created = AtomicOutput::create(dest, /*overwrite=*/false);
    ASSERT_TRUE(created.ok()) << created.error().message;
    AtomicOutput out = std::move(created).value();
    EXPECT_EQ(fs::path(out.temp_path()).extension(), ".mp4");
    EXPECT_NE(out.temp_path(), dest);
    std::ofstream(out.temp_path()) << "data";
    EXPECT_FALSE(fs::exists(dest));
    ASSERT_TRUE(out.commit().ok());
  }
  EXPECT_TRUE(fs::exists(dest));
  EXPECT_EQ(entries(), 1u);
}

TEST_F(OutputTest, AbandonedOutputLeavesNothing) {
  const auto dest = (dir_ / "out.mp4").string();
  {
    auto out = AtomicOutput::create(dest, /*overwrite=*/false);
    ASSERT_TRUE(out.ok());
    std::ofstream(out->temp_path()) << "half written";
  }
  EXPECT_FALSE(fs::exists(dest));
  EXPECT_EQ(entries(), 0u);
}

TEST_F(OutputTest, CheckOutputPathRules) {
  const auto existing = (dir_ / "exists.mp4").string();
  std::ofstream(existing) << "x";
  EXPECT_TRUE(check_output_path((dir_ / "new.mp4").string(), false).ok());
  auto refused = check_output_path(existing, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ExitCode::bad_input);
  EXPECT_NE(refused.error().message.find("pass -y"), std::string::npos);
  EXPECT_TRUE(check_output_path(existing, true).ok());

  auto missing_dir = check_output_path((dir_ / "nope" / "out.mp4").string(), true);
  ASSERT_FALSE(missing_dir.ok());
  EXPECT_NE(missing_dir.error().message.find("does not exist"), std::string::npos);

  auto same_as_input = check_output_path(existing, true, {existing});
  ASSERT_FALSE(same_as_input.ok());
  EXPECT_NE(same_as_input.error().message.find("also an input"), std::string::npos);

  if (geteuid() != 0) {  // root writes anywhere; the check cannot fail there
    fs::permissions(dir_, fs::perms::owner_write, fs::perm_options::remove);
    EXPECT_FALSE(check_output_path((dir_ / "new.mp4").string(), true).ok());
  }
}

TEST(Interrupt, FlagTurnsIntoError) {
  EXPECT_TRUE(check_interrupted().ok());
  request_interrupt();
  auto s = check_interrupted();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ExitCode::interrupted);
}

}  // namespace
}  // namespace standin
