// Placeholder for `eztinker bench` so the CLI links; its owner replaces this file with the real
// command. Fails with exit code 1 until then.
#include "cli_common.h"

namespace eztinker::cli {

void register_bench_command(CLI::App& app, CliContext& /*ctx*/) {
  auto* cmd = app.add_subcommand("bench", "Benchmark job overhead (not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { throw CliExit(kExitApiError, "`eztinker bench` is not implemented yet"); });
}

}  // namespace eztinker::cli
