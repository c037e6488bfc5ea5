// Placeholder for `eztinker server` so the CLI links; its owner replaces this file with the real
// command. Fails with exit code 1 until then.
#include "cli_common.h"

namespace eztinker::cli {

void register_server_command(CLI::App& app, CliContext& /*ctx*/) {
  auto* cmd = app.add_subcommand("server", "Start the EZTinker server (not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { throw CliExit(kExitApiError, "`eztinker server` is not implemented yet"); });
}

}  // namespace eztinker::cli
