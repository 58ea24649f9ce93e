#include "standin/core/output.hpp"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <random>
#include <system_error>

#include "standin/core/files.hpp"
#include "standin/core/log.hpp"

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

constexpr const char* kSuffixAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
constexpr size_t kHostTagLength = 8;
constexpr size_t kRandomLength = 8;
constexpr size_t kSuffixLength = kHostTagLength + 1 + kRandomLength;  // HOSTTAG-random
constexpr const char* kPartialMarker = ".partial-";

// Temporaries are "HOSTTAG-random": a lock proves a writer dead only on the machine that took it
// (on NFS without lock sharing another host's writer looks unlocked), so only this host's
// temporaries are ever removed.
std::string random_suffix() {
  std::random_device device;
  std::uniform_int_distribution<unsigned> digit(0, 35);
  std::string s = partial_host_tag() + "-";
  for (size_t i = 0; i < kRandomLength; ++i) s += kSuffixAlphabet[digit(device)];
  return s;
}

bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec)) return fs::equivalent(a, b, ec);
  return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

fs::path folder_of(const fs::path& path) { return path.has_parent_path() ? path.parent_path() : fs::path("."); }

size_t name_max_in(const fs::path& folder) {
  const long n = ::pathconf(folder.c_str(), _PC_NAME_MAX);
  return n > 0 ? static_cast<size_t>(n) : 255;
}

std::string errno_text(int error) { return std::strerror(error); }

// Temporaries of dead writers for this destination: same name pattern, and nobody holds the
// lock every live writer keeps on its temporary.
void remove_dead_partials(const fs::path& folder, const std::string& name, size_t name_max) {
  const std::string pattern = temporary_name(name, std::string(kSuffixLength, '#'), name_max);
  const size_t at = pattern.find(std::string(kSuffixLength, '#'));
  const std::string prefix = pattern.substr(0, at), tail = pattern.substr(at + kSuffixLength);
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string candidate = it->path().filename().string();
    if (candidate.size() != pattern.size() || candidate.compare(0, prefix.size(), prefix) != 0 ||
        candidate.compare(candidate.size() - tail.size(), tail.size(), tail) != 0)
      continue;
    const std::string suffix = candidate.substr(prefix.size(), kSuffixLength);
    if (suffix.compare(0, kHostTagLength, partial_host_tag()) != 0 || suffix[kHostTagLength] != '-' ||
        suffix.find_first_not_of(kSuffixAlphabet, kHostTagLength + 1) != std::string::npos)
      continue;
    const std::string path = it->path().string();
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) continue;
    struct stat held {}, now {};
    if (::fstat(fd, &held) == 0 && S_ISREG(held.st_mode) && ::flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        ::lstat(path.c_str(), &now) == 0 && now.st_ino == held.st_ino && now.st_dev == held.st_dev) {
      if (::unlink(path.c_str()) == 0) log::info("removed {}, left behind by an interrupted run", path);
    }
    ::close(fd);
  }
}

}  // namespace

std::string partial_host_tag() {
  static const std::string tag = [] {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    uint32_t hash = 2166136261u;  // FNV-1a
    for (const char* p = host; *p; ++p) hash = (hash ^ static_cast<unsigned char>(*p)) * 16777619u;
    char text[9];
    std::snprintf(text, sizeof text, "%08x", hash);
    return std::string(text);
  }();
  return tag;
}

std::string temporary_name(const std::string& destination_name, const std::string& suffix, size_t name_max) {
  const fs::path name(destination_name);
  std::string stem = name.stem().string();
  std::string ext = name.extension().string();
  const size_t fixed = 1 + std::strlen(kPartialMarker) + suffix.size();
  if (fixed + ext.size() > name_max) ext.clear();  // only absurd extensions; muxers then use MP4
  if (fixed + ext.size() + stem.size() > name_max) stem.resize(name_max > fixed + ext.size() ? name_max - fixed - ext.size() : 0);
  return "." + stem + kPartialMarker + suffix + ext;
}

Status check_output_path(const std::string& path, bool overwrite, const std::vector<std::string>& inputs) {
  if (path.empty()) return Error::usage("no output path given");
  const fs::path out(path);
  for (const auto& input : inputs) {
    if (!input.empty() && same_file(out, input))
      return Error::bad_input(path + ": the output path is also an input; choose another output");
  }
  const fs::path folder = folder_of(out);
  struct stat st {};
  if (::stat(folder.c_str(), &st) != 0) {
    const int error = errno;
    if (error == ENOENT) return Error::bad_input(path + ": folder '" + folder.string() + "' does not exist; create it first");
    if (error == ENOTDIR)
      return Error::bad_input(path + ": a part of '" + folder.string() + "' is a file, not a folder");
    return Error::bad_input(path + ": cannot use folder '" + folder.string() + "' (" + errno_text(error) + ")");
  }
  if (!S_ISDIR(st.st_mode))
    return Error::bad_input(path + ": '" + folder.string() + "' is " + describe_file_type(st.st_mode) + ", not a folder");
  const std::string name = out.filename().string();
  if (name.empty() || name == "." || name == "..") return Error::bad_input(path + ": give a file name, not a folder");
  const size_t name_max = name_max_in(folder);
  if (name.size() > name_max)
    return Error::bad_input(path + ": the file name is " + std::to_string(name.size()) + " bytes; this filesystem allows " +
                            std::to_string(name_max));
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Error::bad_input(path + ": is a folder; give a file name");
    if (!S_ISREG(st.st_mode))
      return Error::bad_input(path + ": is " + describe_file_type(st.st_mode) +
                              "; standin writes only regular files and leaves this one alone (also with -y); "
                              "choose another output");
    if (!overwrite) return Error::bad_input(path + ": already exists; pass -y to overwrite");
  } else if (errno == ENOENT) {
    if (::lstat(path.c_str(), &st) == 0 && !overwrite)  // a symlink to nothing: a name that is taken
      return Error::bad_input(path + ": already exists (a symbolic link to a missing file); pass -y to replace the link");
  } else {
    const int error = errno;
    if (error == ELOOP) return Error::bad_input(path + ": symbolic link loop; choose another output");
    return Error::bad_input(path + ": cannot use this output (" + errno_text(error) + ")");
  }
  if (::access(folder.c_str(), W_OK | X_OK) != 0)
    return Error::bad_input(path + ": folder '" + folder.string() + "' is not writable");
  return Status::success();
}

Result<AtomicOutput> AtomicOutput::create(const std::string& destination, bool overwrite) {
  const fs::path dest(destination);
  const fs::path folder = folder_of(dest);
  const std::string name = dest.filename().string();
  const size_t name_max = name_max_in(folder);
  remove_dead_partials(folder, name, name_max);
  for (int attempt = 0; attempt < 16; ++attempt) {
    const std::string temp = (folder / temporary_name(name, random_suffix(), name_max)).string();
    const int fd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      return Error::bad_input(destination + ": cannot create a file in '" + folder.string() + "' (" + errno_text(errno) + ")");
    }
    // A concurrent remove_dead_partials may hold the lock for an instant and unlink the file;
    // then this inode is no longer at `temp` and we start over with a new name.
    struct stat held {}, now {};
    if (::flock(fd, LOCK_EX) != 0 || ::fstat(fd, &held) != 0 || ::lstat(temp.c_str(), &now) != 0 ||
        now.st_ino != held.st_ino || now.st_dev != held.st_dev) {
      ::close(fd);
      continue;
    }
    AtomicOutput out;
    out.destination_ = destination;
    out.temp_ = temp;
    out.lock_fd_ = fd;
    out.overwrite_ = overwrite;
    return out;
  }
  return Error::runtime(destination + ": cannot create a temporary file next to it");
}

AtomicOutput::AtomicOutput(AtomicOutput&& other) noexcept
    : destination_(std::move(other.destination_)),
      temp_(std::move(other.temp_)),
      lock_fd_(other.lock_fd_),
      overwrite_(other.overwrite_),
      committed_(other.committed_) {
  other.committed_ = true;  // the moved-from object owns nothing
  other.temp_.clear();
  other.lock_fd_ = -1;
}

AtomicOutput::~AtomicOutput() {
  if (!temp_.empty() && !committed_) ::unlink(temp_.c_str());
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status AtomicOutput::commit() {
  if (committed_) return Status::success();
  struct stat st {};
  if (::lstat(temp_.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return Error::runtime(destination_ + ": the temporary file " + temp_ + " disappeared; nothing was written");
  if (::stat(destination_.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    return Error::bad_input(destination_ + ": became " + describe_file_type(st.st_mode) +
                            " while this run worked; it is left alone and nothing was written");
  int rc = 0;
  if (overwrite_) {
    rc = ::rename(temp_.c_str(), destination_.c_str());
  } else {
    // Exclusive: the destination must still be free at this instant, whoever else is running.
    rc = ::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, destination_.c_str(), RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP || errno == EOPNOTSUPP)) {
      rc = ::link(temp_.c_str(), destination_.c_str());  // filesystems without RENAME_NOREPLACE (NFS)
      if (rc == 0) {
        ::unlink(temp_.c_str());
      } else if (errno != EEXIST) {
        // No hard links either (FAT, some FUSE): the best left is check, then rename.
        if (::lstat(destination_.c_str(), &st) == 0) {
          errno = EEXIST;
        } else {
          rc = ::rename(temp_.c_str(), destination_.c_str());
        }
      }
    }
  }
  if (rc != 0) {
    const int error = errno;
    if (error == EEXIST)
      return Error::bad_input(destination_ + ": already exists (another run created it while this one worked); "
                              "nothing was replaced; pass -y to overwrite");
    return Error::runtime(destination_ + ": could not move the finished file into place: " + errno_text(error));
  }
  committed_ = true;
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
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
