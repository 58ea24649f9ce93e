#pragma once
// Outputs appear atomically: work goes to a temporary file next to the destination and is
// renamed over it only when complete. Interrupted or failed runs leave nothing that looks finished.
//
// Guarantees (docs/FUZZING.md, "Hostile filesystems"):
//  - only regular files are written: an existing folder, FIFO, device or socket at the
//    destination (also behind a symlink) is refused, with or without -y, and left untouched;
//  - without -y the destination is created exclusively: if another process created it while
//    this one worked, commit() fails instead of replacing it;
//  - every temporary is locked while its writer lives, so a later run on the same machine to
//    the same destination removes temporaries whose writer died (SIGKILL, power loss) and
//    never a live one's;
//  - the temporary's name fits the filesystem whenever the destination's name does.
#include <string>
#include <vector>

#include "standin/core/error.hpp"

namespace standin {

// Checks that `path` can be written: a regular file or a new name in an existing, writable
// folder; not one of `inputs`; not existing unless `overwrite`; a name the filesystem allows.
// Errors are bad_input (exit 3).
Status check_output_path(const std::string& path, bool overwrite, const std::vector<std::string>& inputs = {});

class AtomicOutput {
 public:
  // Creates (and locks) the temporary next to `destination`, after removing dead writers'
  // temporaries for the same destination. Errors: bad_input naming the folder.
  static Result<AtomicOutput> create(const std::string& destination, bool overwrite);
  ~AtomicOutput();  // removes the temporary unless committed
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;
  AtomicOutput(AtomicOutput&& other) noexcept;
  AtomicOutput& operator=(AtomicOutput&&) = delete;

  // Where to write now (an existing, empty file); keeps the destination's extension so muxers
  // pick the right format.
  const std::string& temp_path() const { return temp_; }
  const std::string& destination() const { return destination_; }
  // Moves the temporary into place: replacing a regular file only with `overwrite`, else only
  // creating a new name. Errors: bad_input when the destination appeared or changed type,
  // runtime for I/O failures.
  Status commit();

 private:
  AtomicOutput() = default;
  std::string destination_;
  std::string temp_;
  int lock_fd_ = -1;
  bool overwrite_ = false;
  bool committed_ = false;
};

// Name of the temporary AtomicOutput uses for `destination_name` (a file name, no folder) with
// the given suffix ("HOSTTAG-random"), shortened to at most `name_max` bytes:
// ".NAME.partial-HOSTTAG-random.EXT". Exposed for tests.
std::string temporary_name(const std::string& destination_name, const std::string& suffix, size_t name_max);
// This machine's tag in temporary names (8 hex digits of its host name): only temporaries with
// it are candidates for removal, since a lock proves a writer dead only on its own machine.
std::string partial_host_tag();

// SIGINT/SIGTERM set a flag that long loops poll (check_interrupted); they return an error, and
// AtomicOutput destructors remove the temporaries as the stack unwinds. A second signal kills.
void install_interrupt_handlers();
bool interrupt_requested();
void request_interrupt();  // for tests
Status check_interrupted();  // Error with ExitCode::interrupted when a signal arrived

}  // namespace standin
