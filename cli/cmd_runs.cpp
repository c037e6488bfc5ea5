// `eztinker create | list-runs | delete`: training runs (POST/GET/DELETE /v1/runs).
#include "cli_common.h"

#include "eztinker/api_json.h"

#include <iostream>

namespace eztinker::cli {

void register_run_commands(CLI::App& app, CliContext& ctx) {
  struct CreateArgs {
    std::string model;
    std::string run_id;
    api::LoraConfig lora;
    std::optional<std::string> from_checkpoint;
  };
  auto create_args = std::make_shared<CreateArgs>();
  auto* create = app.add_subcommand("create", "Create a training run (LoRA adapter on a base model)");
  create->add_option("--model,-m", create_args->model, "Base model name or directory")->required();
  create->add_option("--run-id", create_args->run_id, "Run id (default: generated run_xxxxxxxx)");
  create->add_option("--lora-rank,-r", create_args->lora.r, "LoRA rank r (>= 1)")
      ->capture_default_str();
  create->add_option("--lora-alpha", create_args->lora.lora_alpha, "LoRA alpha (>= 1)")
      ->capture_default_str();
  create->add_option("--lora-dropout", create_args->lora.lora_dropout, "LoRA dropout (0..1)")
      ->capture_default_str();
  create->add_option("--from-checkpoint", create_args->from_checkpoint,
                     "Start from this checkpoint directory");
  create->callback([&ctx, create_args] {
    api::CreateRunRequest request;
    request.base_model = create_args->model;
    request.lora_config = create_args->lora;
    if (!create_args->run_id.empty()) request.run_id = create_args->run_id;
    request.from_checkpoint = create_args->from_checkpoint;
    api::CreateRunResponse reply = make_client(ctx).create_run(request);
    if (ctx.json) {
      print_json(reply);
    } else {
      std::cout << reply.run_id << "\n";
    }
  });

  auto* list = app.add_subcommand("list-runs", "List the server's training runs");
  list->callback([&ctx] {
    std::vector<api::RunSummary> runs = make_client(ctx).list_runs();
    if (ctx.json) {
      print_json({{"runs", runs}});
      return;
    }
    if (runs.empty()) {
      std::cout << "no runs\n";
      return;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : runs) rows.push_back({r.run_id, r.base_model, r.device});
    print_table({"RUN_ID", "BASE_MODEL", "DEVICE"}, rows);
  });

  auto run_id = std::make_shared<std::string>();
  auto* del = app.add_subcommand("delete", "Delete a training run (its checkpoints stay on disk)");
  del->add_option("RUN_ID", *run_id, "Run to delete")->required();
  del->callback([&ctx, run_id] {
    api::DeleteRunResponse reply = make_client(ctx).delete_run(*run_id);
    if (ctx.json) {
      print_json(reply);
    } else {
      std::cout << "deleted " << reply.run_id << "\n";
    }
  });
}

}  // namespace eztinker::cli
