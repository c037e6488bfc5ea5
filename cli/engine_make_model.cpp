// Placeholder for `eztinker make-model` so the CLI links; its owner replaces this file with the real
// command. Fails with exit code 1 until then.
#include "cli_common.h"

namespace eztinker::cli {

void register_make_model_command(CLI::App& app, CliContext& /*ctx*/) {
  auto* cmd = app.add_subcommand("make-model", "Write a tiny random Qwen2 model (not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { throw CliExit(kExitApiError, "`eztinker make-model` is not implemented yet"); });
}

}  // namespace eztinker::cli
