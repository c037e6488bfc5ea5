// Shared pieces of the `eztinker` CLI: global options, exit codes, and the registration
// functions each subcommand file provides (one file per subcommand, registered explicitly in
// main.cpp; no static-init registration).
#pragma once

#include <CLI/CLI.hpp>

#include <stdexcept>
#include <string>

namespace eztinker::cli {

// Exit codes (documented in docs/cli.md): 0 ok, 1 server/API error, 2 usage, 3 cannot connect.
inline constexpr int kExitOk = 0;
inline constexpr int kExitApiError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitConnect = 3;

// Global options, filled by CLI11 before any subcommand callback runs.
struct CliContext {
  std::string url;      // --url, env EZTINKER_BASE_URL, default http://localhost:8000
  std::string api_key;  // --api-key, env EZTINKER_API_KEY
  bool json = false;    // --json: machine-readable output for every command
};

// Thrown by a subcommand to end with a specific exit code and a one-line stderr message.
struct CliExit : std::runtime_error {
  CliExit(int exit_code, const std::string& message)
      : std::runtime_error(message), code(exit_code) {}
  int code;
};

// Client-side subcommands (cli/*.cpp, always built).
void register_client_commands(CLI::App& app, CliContext& ctx);  // version, health, status, ...
void register_demo_command(CLI::App& app, CliContext& ctx);     // cli/demo.cpp

// Engine subcommands (cli/engine_*.cpp, only with EZTINKER_WITH_ENGINE).
void register_server_command(CLI::App& app, CliContext& ctx);      // cli/engine_server.cpp
void register_make_model_command(CLI::App& app, CliContext& ctx);  // cli/engine_make_model.cpp
void register_bench_command(CLI::App& app, CliContext& ctx);       // cli/engine_bench.cpp

}  // namespace eztinker::cli
