// `eztinker`: the command-line front end (the Python EZTinker CLI, C++-side). Global options
// --url / --api-key / --json / --version, one subcommand per action; the engine subcommands
// (server, make-model, bench) exist only in builds with the engine. This file owns the exit
// code mapping: 0 ok, 1 server/API error, 2 usage, 3 cannot connect.
#include "cli_common.h"

#include "eztinker/error.h"
#include "eztinker/version.h"

#include <iostream>

namespace {

// "error: <message>" on stderr, one line (newlines in server messages are flattened).
int fail(int code, std::string message) {
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::cerr << "error: " << message << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace eztinker;
  using namespace eztinker::cli;

  CLI::App app{"eztinker: LoRA fine-tuning service - server, client commands and tools"};
  app.name("eztinker");
  CliContext ctx;
  app.add_option("--url", ctx.url, "Server base URL (default http://localhost:8000)")
      ->envname("EZTINKER_BASE_URL");
  app.add_option("--api-key", ctx.api_key, "Bearer token for a server started with --api-key")
      ->envname("EZTINKER_API_KEY");
  app.add_flag("--json", ctx.json, "Machine-readable JSON output");
  app.set_version_flag("--version", std::string("eztinker ") + kVersion);
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the subcommand

  register_client_commands(app, ctx);
  register_demo_command(app, ctx);
#ifdef EZTINKER_WITH_ENGINE
  register_server_command(app, ctx);
  register_make_model_command(app, ctx);
  register_bench_command(app, ctx);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return fail(kExitUsage, std::string(e.what()) + " (see eztinker --help)");
  } catch (const ConnectionError& e) {
    return fail(kExitConnect, std::string(e.what()) + " (is `eztinker server` running? set --url)");
  } catch (const ApiError& e) {
    std::string status = e.http_status() ? " (HTTP " + std::to_string(e.http_status()) + ")" : "";
    std::string job = e.job_id().empty() ? "" : " [job " + e.job_id() + "]";
    return fail(kExitApiError, e.message() + status + job);
  } catch (const CliExit& e) {
    return fail(e.code, e.what());
  } catch (const std::exception& e) {
    return fail(kExitApiError, e.what());
  }
  return kExitOk;
}
