// `eztinker save | checkpoints | load`: checkpoints of training runs.
#include "cli_common.h"

#include "eztinker/api_json.h"

#include <iostream>

namespace eztinker::cli {

void register_checkpoint_commands(CLI::App& app, CliContext& ctx) {
  struct SaveArgs {
    std::string run_id, name;
  };
  auto s = std::make_shared<SaveArgs>();
  auto* save = app.add_subcommand("save", "Save a run's adapter and optimizer state");
  save->add_option("RUN_ID", s->run_id, "Run to save")->required();
  save->add_option("NAME", s->name, "Checkpoint name (no '/' or '..')")->required();
  save->callback([&ctx, s] {
    api::SaveResult result = make_client(ctx).save_checkpoint(s->run_id, s->name);
    if (ctx.json) {
      print_json(result);
    } else {
      std::cout << "saved " << s->run_id << "/" << s->name << " -> "
                << (result.path.empty() ? result.adapter_path : result.path) << "\n";
    }
  });

  auto list_run = std::make_shared<std::optional<std::string>>();
  auto* list = app.add_subcommand("checkpoints", "List checkpoints (all runs, or one)");
  list->add_option("--run-id", *list_run, "Only this run's checkpoints");
  list->callback([&ctx, list_run] {
    std::vector<api::CheckpointInfo> checkpoints = make_client(ctx).list_checkpoints(*list_run);
    if (ctx.json) {
      print_json({{"checkpoints", checkpoints}});
      return;
    }
    if (checkpoints.empty()) {
      std::cout << "no checkpoints\n";
      return;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& c : checkpoints) {
      rows.push_back({c.name, c.run_id, c.created_at, human_bytes(c.size_bytes),
                      c.is_sampler ? "sampler" : "full", c.adapter_path});
    }
    print_table({"NAME", "RUN_ID", "CREATED_AT", "SIZE", "KIND", "ADAPTER_PATH"}, rows);
  });

  struct LoadArgs {
    std::string run_id;
    std::optional<std::string> name, path;
    bool no_optimizer = false;
  };
  auto l = std::make_shared<LoadArgs>();
  auto* load = app.add_subcommand("load", "Load a checkpoint into a run (by name or --path)");
  load->add_option("RUN_ID", l->run_id, "Run to load into")->required();
  auto* name_opt = load->add_option("NAME", l->name, "Checkpoint name of this run");
  auto* path_opt = load->add_option("--path", l->path, "Checkpoint or PEFT adapter directory");
  name_opt->excludes(path_opt);
  load->add_flag("--no-optimizer", l->no_optimizer, "Load the adapter only (keep optimizer state)");
  load->callback([&ctx, l] {
    if (!l->name && !l->path) throw CLI::RequiredError("NAME or --path");
    api::LoadRequest request;
    request.name = l->name;
    request.path = l->path;
    request.load_optimizer = !l->no_optimizer;
    api::LoadResult result = make_client(ctx).load_checkpoint(l->run_id, request);
    if (ctx.json) {
      print_json(result);
    } else {
      std::cout << "loaded " << (result.path.empty() ? l->name.value_or(*l->path) : result.path)
                << " into " << l->run_id << " (step " << result.step << ")\n";
    }
  });
}

}  // namespace eztinker::cli
