// `eztinker version | health | status`: client/server versions, liveness, server facts and
// the runs table.
#include "cli_common.h"

#include "eztinker/api_json.h"
#include "eztinker/version.h"

#include <iostream>

namespace eztinker::cli {

void register_info_commands(CLI::App& app, CliContext& ctx) {
  auto* version = app.add_subcommand("version", "Show the client and server versions");
  version->callback([&ctx] {
    nlohmann::json out = {{"client_version", kVersion}};
    std::optional<api::Version> server;
    std::string unreachable;
    try {
      server = make_client(ctx).version();
    } catch (const ConnectionError& e) {
      unreachable = e.what();  // the client version is still worth printing
    }
    if (server) out["server"] = *server;
    if (ctx.json) {
      print_json(out);
      return;
    }
    std::cout << "eztinker " << kVersion << " (client)\n";
    if (server) {
      std::cout << "server   " << server->version << " (api " << server->api_version
                << (server->git_sha ? ", git " + *server->git_sha : "") << ")\n";
    } else {
      std::cout << "server   not reachable (" << unreachable << ")\n";
    }
  });

  auto* health = app.add_subcommand("health", "Check that the server is up (GET /health)");
  health->callback([&ctx] {
    auto client = make_client(ctx);
    api::Health h = client.health();
    if (ctx.json) {
      print_json({{"status", h.status}, {"url", client.base_url()}});
    } else {
      std::cout << h.status << " (" << client.base_url() << ")\n";
    }
  });

  auto* status = app.add_subcommand("status", "Server facts, loaded models and the runs table");
  status->callback([&ctx] {
    auto client = make_client(ctx);
    api::Status s = client.status();
    std::vector<api::RunSummary> runs = client.list_runs();
    if (ctx.json) {
      print_json({{"url", client.base_url()}, {"status", s}, {"runs", nlohmann::json(runs)}});
      return;
    }
    std::cout << "server    " << client.base_url() << "\n"
              << "version   " << s.version << "\n"
              << "uptime    " << static_cast<int64_t>(s.uptime_s) << " s\n"
              << "device    " << s.device << " (" << s.threads << " threads, " << s.workers
              << " workers)\n"
              << "queue     " << s.queue_depth << " queued; jobs: " << s.jobs.queued << " queued, "
              << s.jobs.running << " running, " << s.jobs.completed << " completed, "
              << s.jobs.failed << " failed, " << s.jobs.cancelled << " cancelled\n\n";
    if (s.models.empty()) {
      std::cout << "no base models loaded\n";
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& m : s.models) {
        rows.push_back({m.name, m.dtype, std::to_string(m.num_parameters), human_bytes(m.bytes)});
      }
      print_table({"MODEL", "DTYPE", "PARAMETERS", "MEMORY"}, rows);
    }
    std::cout << "\n";
    if (runs.empty()) {
      std::cout << "no runs\n";
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& r : runs) rows.push_back({r.run_id, r.base_model, r.device});
      print_table({"RUN_ID", "BASE_MODEL", "DEVICE"}, rows);
    }
  });
}

}  // namespace eztinker::cli
