// Placeholder for `eztinker demo` so the CLI links; its owner replaces this file with the real
// command. Fails with exit code 1 until then.
#include "cli_common.h"

namespace eztinker::cli {

void register_demo_command(CLI::App& app, CliContext& /*ctx*/) {
  auto* cmd = app.add_subcommand("demo", "Rejection-sampling demo (not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { throw CliExit(kExitApiError, "`eztinker demo` is not implemented yet"); });
}

}  // namespace eztinker::cli
