// Named spdlog loggers of the server ("http", "jobs"): created on first use, sharing one sink
// format so that `grep job_id=...` over the server's output shows a job's whole life.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace eztinker::server {

// The logger `name`, registered with spdlog (stderr, colour when a terminal) on first use.
// Thread-safe.
std::shared_ptr<spdlog::logger> named_logger(const std::string& name);

// Sets the level of the server's loggers (and spdlog's default): "trace".."off".
// Throws std::invalid_argument for an unknown level name.
void set_server_log_level(const std::string& level);

}  // namespace eztinker::server
