// `eztinker demo`: the rejection-sampling fine-tuning demo (datasets/demo.cpp,
// run_gsm8k_demo) against the server at --url, or, when none answers and this build has the
// engine, against a server started in-process on 127.0.0.1 (free port). Model choice: --model
// if given; else Qwen/Qwen2-0.5B-Instruct when the server can load it; else the built-in tiny
// model (random Qwen2 + a BPE trained on the demo's problems, written under --output-dir;
// nothing is downloaded) with the built-in arithmetic problems and settings sized to finish in
// well under 3 minutes on 2 cores. Mirrors the Python EZTinker `eztinker demo`.
#include "cli_common.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "eztinker/recipes/demo.h"
#include "eztinker/error.h"

#ifdef EZTINKER_WITH_ENGINE
#include "model/random_model.h"
#include "server.h"
#endif

namespace eztinker::cli {
namespace {

namespace fs = std::filesystem;
namespace ezr = eztinker::recipes;

constexpr const char* kQwenModel = "Qwen/Qwen2-0.5B-Instruct";
constexpr const char* kBuiltinModelAlias = "eztinker-demo-tiny";

// Settings measured to show learning on the built-in tiny model in about a minute on 2 cores
// (docs/datasets.md, "The demo"): a short SFT warm-up on 32 labelled problems (a random model
// never answers correctly, so rejection sampling alone has nothing to keep), then rejection
// sampling with one-digit answers, short samples and 16 candidates per problem, training the
// two shortest distinct correct ones at a lower learning rate (higher rates collapse the model
// onto one answer).
ezr::DemoOptions builtin_defaults() { return ezr::builtin_demo_options(); }

// The Python demo's settings, trimmed so a CPU run of Qwen2-0.5B ends in minutes.
ezr::DemoOptions qwen_defaults() {
  ezr::DemoOptions o;
  o.dataset = "auto";
  o.max_samples = 20;
  o.eval_size = 10;
  o.epochs = 2;
  o.num_candidates = 4;
  o.temperature = 0.8;
  o.max_new_tokens = 256;
  o.learning_rate = 2e-4;
  o.lora_rank = 1;
  return o;
}

struct DemoFlags {
  std::string model;
  std::string dataset;
  std::string data_path;
  std::string output_dir = "demo_output";
  std::optional<size_t> max_samples, eval_size, max_train_candidates, warmup_examples;
  std::optional<int> warmup_epochs;
  std::optional<int> epochs, num_candidates, max_new_tokens, lora_rank;
  std::optional<double> temperature, learning_rate, warmup_learning_rate;
  uint64_t seed = 0;
  bool no_checkpoints = false;
  bool in_process = false;
  int threads = 0;
};

bool server_answers(const CliContext& ctx) {
  ClientOptions o;
  o.base_url = ctx.url;
  o.api_key = ctx.api_key;
  o.connect_timeout_s = 1;
  o.read_timeout_s = 5;
  o.max_retries = 0;
  try {
    EZTinkerClient probe(o);
    probe.health();
    return true;
  } catch (const ConnectionError&) {
    return false;
  }
}

// True when the server can load `model` (creates and deletes a throwaway run).
bool server_can_load(EZTinkerClient& client, const std::string& model) {
  try {
    std::string run = client.create_run(model);
    client.delete_run(run);
    return true;
  } catch (const ConnectionError&) {
    throw;
  } catch (const ApiError&) {
    return false;
  }
}

void apply_flags(ezr::DemoOptions& o, const DemoFlags& f) {
  if (!f.dataset.empty()) o.dataset = f.dataset;
  if (!f.data_path.empty()) o.data_path = f.data_path;
  if (f.max_samples) o.max_samples = *f.max_samples;
  if (f.eval_size) o.eval_size = *f.eval_size;
  if (f.max_train_candidates) o.max_train_candidates = *f.max_train_candidates;
  if (f.warmup_examples) o.warmup_examples = *f.warmup_examples;
  if (f.warmup_epochs) o.warmup_epochs = *f.warmup_epochs;
  if (f.warmup_learning_rate) o.warmup_learning_rate = *f.warmup_learning_rate;
  if (f.epochs) o.epochs = *f.epochs;
  if (f.num_candidates) o.num_candidates = *f.num_candidates;
  if (f.max_new_tokens) o.max_new_tokens = *f.max_new_tokens;
  if (f.lora_rank) {
    o.lora_rank = *f.lora_rank;
    o.lora_alpha = 2 * *f.lora_rank;
  }
  if (f.temperature) o.temperature = *f.temperature;
  if (f.learning_rate) o.learning_rate = *f.learning_rate;
  o.seed = f.seed;
  o.save_checkpoints = !f.no_checkpoints;
  o.output_dir = f.output_dir;
}

#ifdef EZTINKER_WITH_ENGINE
// Writes the built-in model (deterministic for the seed) and returns its directory.
fs::path write_builtin_model(const fs::path& output_dir, uint64_t seed) {
  fs::path dir = output_dir / "builtin-model";
  fs::path tok_dir = output_dir / "builtin-tokenizer";
  fs::create_directories(tok_dir);
  ezr::write_demo_tokenizer(tok_dir);
  model::write_demo_model(dir, tok_dir, seed);
  return dir;
}
#endif

void print_result(const ezr::DemoSummary& s, const CliContext& ctx) {
  if (ctx.json) {
    std::cout << ezr::demo_summary_json(s) << "\n";
    return;
  }
  const auto& a = s.evaluations.front();
  const auto& b = s.evaluations.back();
  const ezr::DemoEvaluation* sft = nullptr;
  for (const auto& e : s.evaluations) {
    if (e.phase == "sft") sft = &e;
  }
  std::cout << "\nheld-out results (" << s.eval_size << " problems): untrained"
            << (sft ? " -> after SFT warm-up" : "") << " -> after " << b.epoch
            << " epochs of rejection sampling\n";
  auto row = [&](const char* name, double x, std::optional<double> m, double y) {
    std::printf("  %-28s %.3f%s -> %.3f\n", name, x,
                m ? (" -> " + std::to_string(*m).substr(0, 5)).c_str() : "", y);
  };
  row("reward (correct candidates)", a.reward, sft ? std::optional<double>(sft->reward) : std::nullopt, b.reward);
  row("greedy accuracy", a.accuracy, sft ? std::optional<double>(sft->accuracy) : std::nullopt, b.accuracy);
  row("gold answer loss", a.answer_loss, sft ? std::optional<double>(sft->answer_loss) : std::nullopt,
      b.answer_loss);
  std::cout << (s.improved ? "improved: yes" : "improved: no measurable improvement this time")
            << "\n";
  for (const auto& ex : s.examples) {
    std::cout << "  Q: " << ex.question << "  (answer " << ex.answer << ")\n"
              << "     before: " << ex.before << "\n     after:  " << ex.after << "\n";
  }
  if (!s.summary_path.empty()) {
    std::cout << "summary: " << s.summary_path.string() << "\nplot:    " << s.plot_path.string()
              << "\n";
  }
}

void run_demo(const CliContext& ctx, const DemoFlags& flags) {
  const bool have_server = !flags.in_process && server_answers(ctx);
  std::ostream* log = ctx.json ? &std::cerr : &std::cout;

#ifdef EZTINKER_WITH_ENGINE
  std::unique_ptr<server::Server> local;
#endif
  std::string url = ctx.url;
  fs::path builtin_dir;
  if (!have_server) {
#ifdef EZTINKER_WITH_ENGINE
    *log << "demo: no server answers at " << (ctx.url.empty() ? "the default URL" : ctx.url)
         << "; starting one in-process on 127.0.0.1\n";
    server::ServerConfig config;
    config.host = "127.0.0.1";
    config.port = 0;
    config.workers = 1;
    config.threads = flags.threads;
    config.log_level = "warn";
    config.checkpoints_dir = fs::path(flags.output_dir) / "checkpoints";
    if (flags.model.empty()) {
      builtin_dir = write_builtin_model(flags.output_dir, flags.seed);
      config.aliases[kBuiltinModelAlias] = builtin_dir;
    }
    local = std::make_unique<server::Server>(config);
    local->start();
    url = local->url();
#else
    throw CliExit(kExitConnect,
                  "no EZTinker server answers at " + (ctx.url.empty() ? std::string("the default URL") : ctx.url) +
                      " and this build has no engine to start one; run `eztinker server` first");
#endif
  }

  CliContext client_ctx = ctx;
  client_ctx.url = url;
  EZTinkerClient client = make_client(client_ctx);

  std::string model = flags.model;
  bool builtin = false;
  if (model.empty()) {
    if (server_can_load(client, kQwenModel)) {
      model = kQwenModel;
    } else {
#ifdef EZTINKER_WITH_ENGINE
      if (builtin_dir.empty()) builtin_dir = write_builtin_model(flags.output_dir, flags.seed);
      // A server of ours knows the alias; another local server takes the path.
      model = local ? std::string(kBuiltinModelAlias) : fs::absolute(builtin_dir).string();
      builtin = true;
#else
      throw CliExit(kExitApiError, std::string("the server cannot load ") + kQwenModel +
                                       "; pass --model NAME (a model the server has)");
#endif
    }
  }
  ezr::DemoOptions options = builtin ? builtin_defaults() : qwen_defaults();
  options.model = model;
  apply_flags(options, flags);
  options.log = log;
  options.progress_bars = ::isatty(ctx.json ? STDERR_FILENO : STDOUT_FILENO) != 0;
  if (builtin) {
    *log << "demo: built-in tiny model (random Qwen2, 2 layers, hidden 64; nothing downloaded)"
         << " on built-in arithmetic problems\n";
  }
  ezr::DemoSummary summary = ezr::run_gsm8k_demo(client, options);
  print_result(summary, ctx);
#ifdef EZTINKER_WITH_ENGINE
  if (local) local->stop();
#endif
}

}  // namespace

void register_demo_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "demo",
      "Rejection-sampling fine-tuning demo: sample candidates, verify answers, train on the "
      "correct ones, report held-out reward/accuracy/loss before and after. Uses the server at "
      "--url, or starts one in-process; Qwen/Qwen2-0.5B-Instruct when available, else a "
      "built-in tiny model (no download).");
  auto flags = std::make_shared<DemoFlags>();
  cmd->add_option("--model", flags->model, "Base model (default: Qwen2-0.5B-Instruct if loadable, else built-in)");
  cmd->add_option("--dataset", flags->dataset, "auto | gsm8k | arithmetic")
      ->check(CLI::IsMember({"auto", "gsm8k", "arithmetic"}));
  cmd->add_option("--data-path", flags->data_path, "GSM8K jsonl file or directory");
  cmd->add_option("--max-samples", flags->max_samples, "Training problems");
  cmd->add_option("--eval-size", flags->eval_size, "Held-out problems");
  cmd->add_option("--epochs", flags->epochs, "Epochs")->check(CLI::PositiveNumber);
  cmd->add_option("--num-candidates", flags->num_candidates, "Candidates per problem (one sample job)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--temperature", flags->temperature, "Sampling temperature")->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-new-tokens", flags->max_new_tokens, "Tokens per candidate")->check(CLI::Range(1, 2048));
  cmd->add_option("--learning-rate", flags->learning_rate, "AdamW learning rate")->check(CLI::PositiveNumber);
  cmd->add_option("--lora-rank", flags->lora_rank, "LoRA rank (alpha = 2 x rank)")->check(CLI::PositiveNumber);
  cmd->add_option("--max-train-candidates", flags->max_train_candidates,
                  "Distinct correct candidates trained per problem");
  cmd->add_option("--warmup-examples", flags->warmup_examples,
                  "Labelled problems for the SFT warm-up before rejection sampling (0 = none)");
  cmd->add_option("--warmup-epochs", flags->warmup_epochs, "Passes over the warm-up problems");
  cmd->add_option("--warmup-learning-rate", flags->warmup_learning_rate,
                  "Learning rate of the warm-up (default: --learning-rate)");
  cmd->add_option("--seed", flags->seed, "Seed (data, LoRA init, sampling)")->capture_default_str();
  cmd->add_option("--output-dir", flags->output_dir, "summary.json, plot.svg, built-in model, checkpoints")
      ->capture_default_str();
  cmd->add_flag("--no-checkpoints", flags->no_checkpoints, "Do not save per-epoch checkpoints");
  cmd->add_flag("--in-process", flags->in_process, "Always start an in-process server");
  cmd->add_option("--threads", flags->threads, "In-process server: intra-op threads (0 = default)");
  cmd->callback([&ctx, flags] {
    try {
      run_demo(ctx, *flags);
    } catch (const std::invalid_argument& e) {
      throw CliExit(kExitUsage, e.what());
    }
  });
}

}  // namespace eztinker::cli
