#pragma once
// Reading and writing files the way a hostile filesystem cannot abuse: inputs are regular files
// only (a FIFO, device or socket is refused before anything waits on it), text inputs are read
// with a size cap, small outputs are written atomically with every write error checked, and
// lock files are exclusive between processes.
#include <cstdint>
#include <istream>
#include <memory>
#include <string>
#include <string_view>

#include "standin/core/error.hpp"

namespace standin {

// Size caps for the text inputs, chosen far above what real files need (docs/FUZZING.md).
constexpr int64_t kMaxPosesJsonBytes = int64_t{2} << 30;   // a 2-hour 4-person track is ~1.5 GB
constexpr int64_t kMaxJobsFileBytes = int64_t{64} << 20;    // ~200,000 jobs
constexpr int64_t kMaxModelJsonBytes = int64_t{4} << 20;    // sd15's is ~40 KB

// Checks that `path` is an existing regular file (symlinks followed) that can be opened for
// reading, without opening anything that could block. `what` names the input in messages
// ("poses file"); errors carry `code` and say what the path is instead (folder, FIFO, device…).
Status check_regular_file(const std::string& path, const std::string& what, ExitCode code = ExitCode::bad_input);

// A regular file opened for reading with a byte cap: opened non-blocking (a FIFO swapped in
// after a check cannot hang the open), checked with fstat on the open descriptor, and read
// through stream(), which stops at the cap; read errors and a file that grew past the cap are
// reported by finish().
class InputFile {
 public:
  static Result<InputFile> open(const std::string& path, int64_t max_bytes, const std::string& what,
                                ExitCode code = ExitCode::bad_input);
  InputFile(InputFile&&) noexcept;
  InputFile& operator=(InputFile&&) noexcept;
  ~InputFile();

  int64_t size() const;        // at open
  std::istream& stream();
  Status finish() const;       // after reading: read error or cap exceeded
  const std::string& path() const;

 private:
  struct Impl;
  explicit InputFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The whole file as bytes, with the checks of InputFile.
Result<std::string> read_file_capped(const std::string& path, int64_t max_bytes, const std::string& what,
                                     ExitCode code = ExitCode::bad_input);

// Writes `bytes` to `path` atomically (temporary + rename, see AtomicOutput) and checks every
// write, the flush to disk and the close: a full disk is an error, never a short file in place.
// Without `overwrite` an existing file is never replaced, even one created meanwhile.
Status write_file_atomically(const std::string& path, std::string_view bytes, bool overwrite, const std::string& what);

// An exclusive advisory lock on `path` (created if missing, removed on release), held while the
// object lives. A second process asking for the same lock gets an error naming the holder's pid.
class FileLock {
 public:
  static Result<FileLock> acquire(const std::string& path, const std::string& what);
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  ~FileLock();

 private:
  FileLock(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_ = -1;
};

// "1.5 GB", "320 MB", "12 KB": sizes in messages.
std::string format_bytes(double bytes);

// Memory this process may use: physical memory, lowered by a cgroup limit, or
// $STANDIN_MEMORY_LIMIT (bytes, or with a K/M/G suffix) when set.
int64_t memory_budget_bytes();

// Names a file type for messages: "a folder", "a FIFO", "a character device", ...
std::string describe_file_type(unsigned mode);

}  // namespace standin
