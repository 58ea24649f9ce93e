#pragma once
// Outputs appear atomically: work goes to a temporary file next to the destination and is
// renamed over it only when complete. Interrupted or failed runs leave nothing that looks finished.
#include <string>
#include <vector>

#include "standin/core/error.hpp"

namespace standin {

// Checks that `path` can be written: its folder exists and is writable, it is not one of
// `inputs`, and it does not exist unless `overwrite`. Errors are bad_input (exit 3).
Status check_output_path(const std::string& path, bool overwrite, const std::vector<std::string>& inputs = {});

class AtomicOutput {
 public:
  explicit AtomicOutput(std::string destination);
  ~AtomicOutput();  // removes the temporary unless committed
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;
  AtomicOutput(AtomicOutput&& other) noexcept;
  AtomicOutput& operator=(AtomicOutput&&) = delete;

  // Where to write now; keeps the destination's extension so muxers pick the right format.
  const std::string& temp_path() const { return temp_; }
  const std::string& destination() const { return destination_; }
  Status commit();

 private:
  std::string destination_;
  std::string temp_;
  bool committed_ = false;
};

// SIGINT/SIGTERM set a flag that long loops poll (check_interrupted); they return an error, and
// AtomicOutput destructors remove the temporaries as the stack unwinds. A second signal kills.
void install_interrupt_handlers();
bool interrupt_requested();
void request_interrupt();  // for tests
Status check_interrupted();  // Error with ExitCode::interrupted when a signal arrived

}  // namespace standin
