// Test-only hook into checkpoint saving, so crash-safety tests can kill a process at a chosen
// point of a save (after the adapter weights are written, before the rename, ...) and check
// that the previous checkpoint survives. Production code never sets it.
#pragma once

#include <functional>
#include <string>

namespace eztinker::engine::testing {

// Called with a stage name at each step of save_checkpoint: "tmp_dir_created",
// "adapter_written", "optimizer_written", "metadata_written", "before_rename", "renamed".
// Pass an empty function to clear. Not synchronised: set it before starting any save.
void set_checkpoint_save_hook(std::function<void(const std::string& stage)> hook);

}  // namespace eztinker::engine::testing
