#include "standin/core/progress.hpp"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "standin/core/log.hpp"

namespace standin {
namespace {
std::atomic<bool> g_enabled{true};
constexpr auto kTtyRedraw = std::chrono::milliseconds(100);
constexpr auto kPlainInterval = std::chrono::seconds(5);
}  // namespace

void set_progress_enabled(bool enabled) { g_enabled = enabled; }

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(total),
      tty_(isatty(STDERR_FILENO) != 0 && log::format() == log::Format::text),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::advance(int64_t n) { set(done_ + n); }

void Progress::set(int64_t done) {
  done_ = done;
  draw(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
  if (tty_ && g_enabled) std::fputc('\n', stderr);
}

std::string Progress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = static_cast<int64_t>(std::llround(seconds));
  const int64_t h = total / 3600, m = (total / 60) % 60, s = total % 60;
  char buf[32];
  if (h > 0) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(h), static_cast<long long>(m),
                  static_cast<long long>(s));
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(m), static_cast<long long>(s));
  }
  return buf;
}

void Progress::draw(bool force) {
  if (!g_enabled) return;
  const auto now = std::chrono::steady_clock::now();
  const auto since_draw = now - last_draw_;
  if (!force && since_draw < (tty_ ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(kTtyRedraw)
                                   : std::chrono::duration_cast<std::chrono::steady_clock::duration>(kPlainInterval)))
    return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? done_ / elapsed : 0.0;
  const double eta = (total_ > 0 && rate > 0) ? (total_ - done_) / rate : NAN;

  if (log::format() == log::Format::json) {
    nlohmann::json fields = {{"label", label_}, {"done", done_}, {"total", total_},
                             {"elapsed_s", elapsed}, {"eta_s", std::isfinite(eta) ? eta : -1.0}};
    log::event("progress", fields.dump());
    return;
  }
  if (tty_) {
    constexpr int kWidth = 30;
    const double fraction = total_ > 0 ? std::min(1.0, static_cast<double>(done_) / total_) : 0.0;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar(filled, '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %.2f/s ETA %s   ", label_.c_str(), bar.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_), rate,
                 format_duration(eta).c_str());
    std::fflush(stderr);
  } else {
    spdlog::info("{}: {}/{} ({:.2f}/s, elapsed {}, ETA {})", label_, done_, total_, rate,
                 format_duration(elapsed), format_duration(eta));
  }
}

}  // namespace standin
