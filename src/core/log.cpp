#include "standin/core/log.hpp"

#include <chrono>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace standin::log {
namespace {

Format g_format = Format::text;

// Writes each record as {"ts":..., "level":..., "msg":...} on stderr.
class JsonLineSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
    nlohmann::json record = {
        {"ts", ms / 1000.0},
        {"level", std::string(spdlog::level::to_string_view(msg.level).data(),
                              spdlog::level::to_string_view(msg.level).size())},
        {"msg", std::string(msg.payload.data(), msg.payload.size())},
    };
    const std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

void configure(Format format, int verbosity, bool quiet) {
  g_format = format;
  std::shared_ptr<spdlog::logger> logger;
  if (format == Format::json) {
    logger = std::make_shared<spdlog::logger>("standin", std::make_shared<JsonLineSink>());
  } else {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    logger = std::make_shared<spdlog::logger>("standin", sink);
    logger->set_pattern(verbosity > 0 ? "[%H:%M:%S.%e] [%^%l%$] %v" : "%^%l%$: %v");
  }
  spdlog::level::level_enum level = spdlog::level::info;
  if (quiet) level = spdlog::level::warn;
  if (verbosity == 1) level = spdlog::level::debug;
  if (verbosity >= 2) level = spdlog::level::trace;
  logger->set_level(level);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

Format format() { return g_format; }

void emit(Level level, const std::string& message) {
  switch (level) {
    case Level::debug: spdlog::debug("{}", message); break;
    case Level::info: spdlog::info("{}", message); break;
    case Level::warn: spdlog::warn("{}", message); break;
    case Level::error: spdlog::error("{}", message); break;
  }
}

void event(const std::string& name, const std::string& fields_json) {
  auto fields = nlohmann::json::parse(fields_json, nullptr, /*allow_exceptions=*/false);
  if (fields.is_discarded() || !fields.is_object()) fields = nlohmann::json::object();
  if (g_format == Format::json) {
    fields["event"] = name;
    const std::string line = fields.dump() + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
    return;
  }
  spdlog::info("{} {}", name, fields.dump());
}

}  // namespace standin::log
