#include "standin/core/output.hpp"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <random>
#include <system_error>

namespace fs = std::filesystem;

namespace standin {
namespace {

std::atomic<bool> g_interrupted{false};

void on_signal(int signal_number) {
  if (g_interrupted.exchange(true)) {
    // Second signal: the user wants out now.
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
  }
}

std::string random_suffix() {
  std::random_device device;
  std::uniform_int_distribution<unsigned> digit(0, 35);
  std::string s;
  for (int i = 0; i < 8; ++i) s += "0123456789abcdefghijklmnopqrstuvwxyz"[digit(device)];
  return s;
}

bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec)) return fs::equivalent(a, b, ec);
  return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

}  // namespace

Status check_output_path(const std::string& path, bool overwrite, const std::vector<std::string>& inputs) {
  if (path.empty()) return Error::usage("no output path given");
  const fs::path out(path);
  for (const auto& input : inputs) {
    if (!input.empty() && same_file(out, input))
      return Error::bad_input(path + ": the output path is also an input; choose another output");
  }
  std::error_code ec;
  if (fs::is_directory(out, ec)) return Error::bad_input(path + ": is a directory; give a file name");
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec))
    return Error::bad_input(path + ": folder '" + parent.string() + "' does not exist");
  if (access(parent.c_str(), W_OK) != 0)
    return Error::bad_input(path + ": folder '" + parent.string() + "' is not writable");
  if (fs::exists(out, ec) && !overwrite)
    return Error::bad_input(path + ": already exists; pass -y to overwrite");
  return Status::success();
}

AtomicOutput::AtomicOutput(std::string destination) : destination_(std::move(destination)) {
  const fs::path dest(destination_);
  const std::string stem = dest.stem().string();
  const std::string ext = dest.extension().string();
  temp_ = (dest.parent_path() / ("." + stem + ".partial-" + random_suffix() + ext)).string();
}

AtomicOutput::AtomicOutput(AtomicOutput&& other) noexcept
    : destination_(std::move(other.destination_)), temp_(std::move(other.temp_)), committed_(other.committed_) {
  other.committed_ = true;  // the moved-from object owns nothing
  other.temp_.clear();
}

AtomicOutput::~AtomicOutput() {
  if (temp_.empty()) return;
  if (!committed_) {
    std::error_code ec;
    fs::remove(temp_, ec);
  }
}

Status AtomicOutput::commit() {
  std::error_code ec;
  if (!fs::exists(temp_, ec)) return Error::runtime(destination_ + ": nothing was written");
  fs::rename(temp_, destination_, ec);
  if (ec) return Error::runtime(destination_ + ": could not move the finished file into place: " + ec.message());
  committed_ = true;
  return Status::success();
}

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool interrupt_requested() { return g_interrupted.load(); }
void request_interrupt() { g_interrupted = true; }

Status check_interrupted() {
  if (!g_interrupted.load()) return Status::success();
  return Error{ExitCode::interrupted, "interrupted; no output was written"};
}

}  // namespace standin
