// Shared pieces of the `eztinker` CLI: global options, exit codes, output helpers (aligned
// tables / --json), and the registration functions each subcommand file provides (one file
// per subcommand or small group, registered explicitly in main.cpp; no static-init
// registration). Errors: subcommands just throw; main.cpp maps ApiError -> 1, CLI11 parse
// errors -> 2, ConnectionError -> 3, each with one `error: ...` line on stderr.
#pragma once

#include "eztinker/client.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <vector>

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

// A client for the global options (short connect timeout: a CLI should fail fast).
EZTinkerClient make_client(const CliContext& ctx);

// Prints `rows` under `headers` as left-aligned columns separated by two spaces.
void print_table(const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows);
// Pretty-prints JSON to stdout (the --json output of every command).
void print_json(const nlohmann::json& value);
// "1.5 KiB", "3.2 MiB".
std::string human_bytes(int64_t bytes);

// Client-side subcommands (cli/*.cpp, always built).
void register_client_commands(CLI::App& app, CliContext& ctx);  // all of the below
void register_info_commands(CLI::App& app, CliContext& ctx);        // version, health, status
void register_run_commands(CLI::App& app, CliContext& ctx);         // create, list-runs, delete
void register_sample_commands(CLI::App& app, CliContext& ctx);      // sample, tokenize
void register_checkpoint_commands(CLI::App& app, CliContext& ctx);  // save, checkpoints, load
void register_demo_command(CLI::App& app, CliContext& ctx);         // cli/demo.cpp

// Engine subcommands (cli/engine_*.cpp, only with EZTINKER_WITH_ENGINE).
void register_server_command(CLI::App& app, CliContext& ctx);      // cli/engine_server.cpp
void register_make_model_command(CLI::App& app, CliContext& ctx);  // cli/engine_make_model.cpp
void register_bench_command(CLI::App& app, CliContext& ctx);       // cli/engine_bench.cpp

}  // namespace eztinker::cli
