#include "standin/core/files.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <streambuf>
#include <vector>

#include "standin/core/output.hpp"

namespace standin {

std::string describe_file_type(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a folder";
    case S_IFIFO: return "a FIFO (named pipe)";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFSOCK: return "a socket";
    case S_IFLNK: return "a symbolic link";
    default: return "not a regular file";
  }
}

namespace {

std::string errno_text(int error) { return std::strerror(error); }

Error open_error(const std::string& path, const std::string& what, int error, ExitCode code) {
  if (error == ENOENT) return {code, path + ": " + what + " not found"};
  if (error == EACCES || error == EPERM) return {code, path + ": cannot read the " + what + ": permission denied"};
  if (error == ELOOP) return {code, path + ": cannot read the " + what + ": too many levels of symbolic links"};
  if (error == ENOTDIR) return {code, path + ": cannot read the " + what + ": a part of the path is not a folder"};
  if (error == ENAMETOOLONG) return {code, path.substr(0, 80) + "...: the " + what + " path is too long"};
  return {code, path + ": cannot read the " + what + " (" + errno_text(error) + ")"};
}

Error not_regular(const std::string& path, const std::string& what, unsigned mode, ExitCode code) {
  return {code, path + ": the " + what + " is " + describe_file_type(mode) + ", not a regular file; give a file"};
}

// A streambuf over a file descriptor that never yields more than `limit` bytes.
class CappedFdBuf final : public std::streambuf {
 public:
  CappedFdBuf(int fd, int64_t limit) : fd_(fd), remaining_(limit + 1), buffer_(1 << 16) {}
  bool exceeded() const { return exceeded_; }
  int read_error() const { return read_error_; }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    if (remaining_ <= 0) {
      exceeded_ = true;
      return traits_type::eof();
    }
    const size_t want = static_cast<size_t>(std::min<int64_t>(remaining_, static_cast<int64_t>(buffer_.size())));
    ssize_t got;
    do {
      got = ::read(fd_, buffer_.data(), want);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
      read_error_ = errno;
      return traits_type::eof();
    }
    if (got == 0) return traits_type::eof();
    remaining_ -= got;
    if (remaining_ <= 0) {  // read one byte past the cap: the file is larger than allowed
      exceeded_ = true;
      return traits_type::eof();
    }
    setg(buffer_.data(), buffer_.data(), buffer_.data() + got);
    return traits_type::to_int_type(*gptr());
  }

 private:
  int fd_;
  int64_t remaining_;
  std::vector<char> buffer_;
  bool exceeded_ = false;
  int read_error_ = 0;
};

}  // namespace

Status check_regular_file(const std::string& path, const std::string& what, ExitCode code) {
  if (path.empty()) return Error{code, "no " + what + " given"};
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return open_error(path, what, errno, code);
  if (!S_ISREG(st.st_mode)) return not_regular(path, what, st.st_mode, code);
  if (::access(path.c_str(), R_OK) != 0) return open_error(path, what, errno, code);
  return Status::success();
}

struct InputFile::Impl {
  std::string path, what;
  ExitCode code = ExitCode::bad_input;
  int fd = -1;
  int64_t size = 0, max_bytes = 0;
  std::unique_ptr<CappedFdBuf> buf;
  std::unique_ptr<std::istream> stream;
  ~Impl() {
    if (fd >= 0) ::close(fd);
  }
};

Result<InputFile> InputFile::open(const std::string& path, int64_t max_bytes, const std::string& what, ExitCode code) {
  if (path.empty()) return Error{code, "no " + what + " given"};
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->what = what;
  impl->code = code;
  impl->max_bytes = max_bytes;
  // O_NONBLOCK: opening a FIFO without a writer would wait forever; the fstat below refuses it.
  impl->fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (impl->fd < 0) return open_error(path, what, errno, code);
  struct stat st {};
  if (::fstat(impl->fd, &st) != 0) return open_error(path, what, errno, code);
  if (!S_ISREG(st.st_mode)) return not_regular(path, what, st.st_mode, code);
  const int flags = ::fcntl(impl->fd, F_GETFL);
  if (flags >= 0) ::fcntl(impl->fd, F_SETFL, flags & ~O_NONBLOCK);
  impl->size = static_cast<int64_t>(st.st_size);
  if (impl->size > max_bytes)
    return Error{code, path + ": the " + what + " is " + format_bytes(static_cast<double>(impl->size)) +
                           ", more than the " + format_bytes(static_cast<double>(max_bytes)) + " a " + what +
                           " may have"};
  impl->buf = std::make_unique<CappedFdBuf>(impl->fd, max_bytes);
  impl->stream = std::make_unique<std::istream>(impl->buf.get());
  return InputFile(std::move(impl));
}

InputFile::InputFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
InputFile::InputFile(InputFile&&) noexcept = default;
InputFile& InputFile::operator=(InputFile&&) noexcept = default;
InputFile::~InputFile() = default;

int64_t InputFile::size() const { return impl_->size; }
std::istream& InputFile::stream() { return *impl_->stream; }
const std::string& InputFile::path() const { return impl_->path; }

Status InputFile::finish() const {
  if (impl_->buf->read_error() != 0)
    return Error{impl_->code, impl_->path + ": read error in the " + impl_->what + " (" +
                                  errno_text(impl_->buf->read_error()) + ")"};
  if (impl_->buf->exceeded())
    return Error{impl_->code, impl_->path + ": the " + impl_->what + " grew past the " +
                                  format_bytes(static_cast<double>(impl_->max_bytes)) + " a " + impl_->what +
                                  " may have while it was read"};
  return Status::success();
}

Result<std::string> read_file_capped(const std::string& path, int64_t max_bytes, const std::string& what,
                                     ExitCode code) {
  STANDIN_ASSIGN_OR_RETURN(auto file, InputFile::open(path, max_bytes, what, code));
  std::string text;
  text.reserve(static_cast<size_t>(file.size()));
  text.assign(std::istreambuf_iterator<char>(file.stream()), std::istreambuf_iterator<char>());
  STANDIN_TRY(file.finish());
  return text;
}

Status write_file_atomically(const std::string& path, std::string_view bytes, bool overwrite, const std::string& what) {
  STANDIN_ASSIGN_OR_RETURN(auto out, AtomicOutput::create(path, overwrite));
  const int fd = ::open(out.temp_path().c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return Error::runtime(path + ": cannot write the " + what + " (" + errno_text(errno) + ")");
  size_t done = 0;
  int error = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n < 0 ? errno : ENOSPC;
      break;
    }
    done += static_cast<size_t>(n);
  }
  // Some filesystems (NFS, quotas) report a full disk only when the data is flushed or closed.
  if (error == 0 && ::fsync(fd) != 0 && errno != EINVAL && errno != EROFS) error = errno;
  if (::close(fd) != 0 && error == 0 && errno != EINTR) error = errno;
  if (error != 0)
    return Error::runtime(path + ": cannot write the " + what + " (" + errno_text(error) +
                          "); nothing was written there");
  return out.commit();
}

Result<FileLock> FileLock::acquire(const std::string& path, const std::string& what) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (fd < 0)
      return Error::bad_input(path + ": cannot create the lock file for the " + what + " (" + errno_text(errno) + ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return Error::bad_input(path + ": the lock file for the " + what + " is not a regular file; remove it");
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      char holder[32] = {};
      const ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
      ::close(fd);
      if (error != EWOULDBLOCK)
        return Error::bad_input(path + ": cannot lock the " + what + " (" + errno_text(error) + ")");
      std::string pid = n > 0 ? std::string(holder, static_cast<size_t>(n)) : std::string();
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      return Error::bad_input("the " + what + " is in use by another standin process" +
                              (pid.empty() ? std::string() : " (pid " + pid + ")") + " (lock " + path +
                              "); wait for it to finish or use another file");
    }
    // The previous holder may have removed the file between our open and our lock: then the
    // lock is on an orphan and the path may already hold someone else's lock file. Start again.
    struct stat now {};
    if (::stat(path.c_str(), &now) != 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
      ::close(fd);
      continue;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) == 0) {
      [[maybe_unused]] const ssize_t ignored = ::pwrite(fd, pid.data(), pid.size(), 0);
    }
    return FileLock(path, fd);
  }
  return Error::bad_input(path + ": cannot lock the " + what + " (the lock file keeps changing)");
}

FileLock::FileLock(FileLock&& other) noexcept : path_(std::move(other.path_)), fd_(other.fd_) { other.fd_ = -1; }

FileLock::~FileLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still holding the lock: waiters re-check the inode
  ::close(fd_);
}

std::string format_bytes(double bytes) {
  const char* units[] = {"bytes", "KB", "MB", "GB", "TB", "PB"};
  int unit = 0;
  while (bytes >= 1000 && unit < 5) {
    bytes /= 1000;
    ++unit;
  }
  char text[64];
  if (unit == 0) std::snprintf(text, sizeof text, "%.0f %s", bytes, units[unit]);
  else std::snprintf(text, sizeof text, bytes < 10 ? "%.1f %s" : "%.0f %s", bytes, units[unit]);
  return text;
}

namespace {

int64_t parse_byte_count(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !std::isfinite(value) || value <= 0) return -1;
  double scale = 1;
  const std::string suffix = end;
  if (suffix == "K" || suffix == "k") scale = 1024.0;
  else if (suffix == "M" || suffix == "m") scale = 1024.0 * 1024;
  else if (suffix == "G" || suffix == "g") scale = 1024.0 * 1024 * 1024;
  else if (suffix == "T" || suffix == "t") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (!suffix.empty()) return -1;
  const double bytes = value * scale;
  return bytes >= 9e18 ? INT64_MAX : static_cast<int64_t>(bytes);
}

int64_t read_limit_file(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return -1;
  return parse_byte_count(text);
}

}  // namespace

int64_t memory_budget_bytes() {
  if (const char* env = std::getenv("STANDIN_MEMORY_LIMIT"); env && *env) {
    const int64_t v = parse_byte_count(env);
    if (v > 0) return v;
  }
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  int64_t budget = pages > 0 && page_size > 0 ? static_cast<int64_t>(pages) * page_size : INT64_MAX;
  for (const char* limit_file : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const int64_t limit = read_limit_file(limit_file);
    if (limit > 0) budget = std::min(budget, limit);
  }
  return budget;
}

}  // namespace standin
