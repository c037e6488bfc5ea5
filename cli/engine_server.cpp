// `eztinker server`: CLI11 flags -> ServerConfig (server/server_config.h documents every field)
// -> run_server(), which serves until SIGINT/SIGTERM and then stops gracefully (no new jobs,
// running jobs finish, exit 0). `--api-key` is the global option (env EZTINKER_API_KEY), which
// may follow the subcommand: `eztinker server --api-key KEY`.
#include "cli_common.h"

#include "server.h"

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace eztinker::cli {

void register_server_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "server",
      "Start the EZTinker server (the /v1 REST API over an async job queue). "
      "--api-key KEY (env EZTINKER_API_KEY) requires Authorization: Bearer KEY on every "
      "endpoint but /health. SIGINT/SIGTERM: stop accepting, finish the running job, exit 0.");
  // Owned by the callback below; the subcommand lives as long as `app`.
  auto config = std::make_shared<server::ServerConfig>();
  auto aliases = std::make_shared<std::vector<std::string>>();
  auto checkpoints_dir = std::make_shared<std::string>(config->checkpoints_dir.string());
  auto models_dir = std::make_shared<std::string>();

  cmd->add_option("--host", config->host, "Address to bind (0.0.0.0 exposes the server)")
      ->capture_default_str();
  cmd->add_option("--port", config->port, "TCP port; 0 = pick a free port (printed)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--workers", config->workers,
                  "Job worker threads: jobs of different runs run concurrently up to this many")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--http-threads", config->http_threads,
                  "HTTP connection threads (each long-poll / keep-alive connection holds one)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--checkpoints-dir", *checkpoints_dir,
                  "Checkpoints (<dir>/<run_id>/<name>/) and the run registry (runs.json)")
      ->capture_default_str();
  cmd->add_option("--models-dir", *models_dir, "Directory searched for model names")
      ->envname("EZTINKER_MODELS_DIR");
  cmd->add_option("--model", config->model,
                  "Base model to preload; the default model of /v1/sample and /v1/tokenize");
  cmd->add_option("--dtype", config->dtype, "Base weight dtype: auto | fp32 | bf16")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--device", config->device, "Torch device (cpu, cuda:0)")->capture_default_str();
  cmd->add_option("--threads", config->threads, "Intra-op threads; 0 = libtorch default")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--wait-default", config->wait_default_s,
                  "Seconds job POSTs without ?wait= hold the reply (0 = pure async)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-wait", config->max_wait_s, "Upper bound for any ?wait= (seconds)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", config->max_body_bytes,
                  "Larger request bodies are rejected with 413")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-queued", config->max_queued,
                  "Queued jobs accepted before 503 + Retry-After")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-results", config->max_results, "Finished jobs kept pollable")
      ->capture_default_str();
  cmd->add_option("--result-ttl", config->result_ttl_s,
                  "Seconds a finished job stays pollable")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--log-level", config->log_level,
                  "trace | debug | info | warn | error | off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  cmd->add_option("--alias", *aliases,
                  "NAME=DIR: serve the model directory DIR under NAME (repeatable), e.g. "
                  "Qwen/Qwen2-0.5B-Instruct=/models/qwen2-0.5b-instruct");
  cmd->add_flag("--allow-download", config->allow_download,
                "Fetch unknown models from $HF_ENDPOINT into the HF cache");

  cmd->callback([&ctx, config, aliases, checkpoints_dir, models_dir] {
    server::ServerConfig c = *config;
    c.checkpoints_dir = *checkpoints_dir;
    c.models_dir = *models_dir;
    c.api_key = ctx.api_key;
    for (const auto& alias : *aliases) {
      const auto eq = alias.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == alias.size()) {
        throw CliExit(kExitUsage, "--alias expects NAME=DIR, got '" + alias + "'");
      }
      c.aliases[alias.substr(0, eq)] = alias.substr(eq + 1);
    }
    int code = 0;
    try {
      code = server::run_server(c);
    } catch (const std::invalid_argument& e) {
      throw CliExit(kExitUsage, e.what());
    }
    if (code != 0) throw CliExit(code, "server stopped with an error");
  });
}

}  // namespace eztinker::cli
