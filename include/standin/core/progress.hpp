#pragma once
// Progress for long work: a redrawn bar with ETA on a terminal, plain periodic lines otherwise
// (and JSON events with --log-json), so logs from batch runs stay readable.
#include <chrono>
#include <cstdint>
#include <string>

namespace standin {

class Progress {
 public:
  // total == 0 means unknown; the bar then shows a count and a rate only.
  Progress(std::string label, int64_t total);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(int64_t n = 1);
  void set(int64_t done);
  void finish();

  // Formats seconds as "1:05" / "1:02:03"; exposed for tests.
  static std::string format_duration(double seconds);

 private:
  void draw(bool force);

  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

// Hidden when false: tests and --quiet runs.
void set_progress_enabled(bool enabled);

}  // namespace standin
