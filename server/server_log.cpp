// Named spdlog loggers of the server; see server_log.h.
#include "server_log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>
#include <stdexcept>

namespace eztinker::server {

namespace {
std::mutex& logger_mutex() {
  static std::mutex mutex;
  return mutex;
}
}  // namespace

std::shared_ptr<spdlog::logger> named_logger(const std::string& name) {
  std::lock_guard<std::mutex> lock(logger_mutex());
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = spdlog::stderr_color_mt(name);
  logger->set_level(spdlog::default_logger()->level());
  return logger;
}

void set_server_log_level(const std::string& level) {
  const auto parsed = spdlog::level::from_str(level);
  // from_str maps unknown names to "off"; only accept "off" when it was asked for.
  if (parsed == spdlog::level::off && level != "off") {
    throw std::invalid_argument("unknown log level '" + level +
                                "' (expected trace, debug, info, warn, error, critical or off)");
  }
  named_logger("http");
  named_logger("jobs");
  spdlog::set_level(parsed);  // applies to every registered logger
}

}  // namespace eztinker::server
