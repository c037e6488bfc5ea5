// `eztinker make-model`: writes a complete random-initialised Hugging Face Qwen2 directory
// (config.json, generation_config.json, model.safetensors, tokenizer files) from a preset:
// `tiny` for tests and demos, `qwen2-0.5b` (real Qwen2-0.5B shapes) for benchmarks.
//   eztinker make-model --preset tiny --out /tmp/tiny [--seed 0] [--dtype fp32|bf16]
//                       [--tokenizer-from DIR]
#include "cli_common.h"

#include "model/random_model.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <memory>
#include <stdexcept>

namespace eztinker::cli {

void register_make_model_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "make-model",
      "Write a random-initialised Qwen2 model directory (config.json, model.safetensors, "
      "tokenizer files) from a preset: tiny (2 layers, hidden 64) or qwen2-0.5b (real shapes)");
  auto opt = std::make_shared<model::RandomModelOptions>();
  auto out = std::make_shared<std::string>();
  auto tokenizer_from = std::make_shared<std::string>();
  cmd->add_option("--preset", opt->preset, "Model preset")
      ->check(CLI::IsMember(model::kRandomModelPresets))
      ->capture_default_str();
  cmd->add_option("--out", *out, "Output directory (created; model files are replaced)")
      ->required();
  cmd->add_option("--seed", opt->seed, "Weight init seed")->capture_default_str();
  cmd->add_option("--dtype", opt->dtype, "Stored weight dtype")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--tokenizer-from", *tokenizer_from,
                  "Copy the tokenizer files from this directory instead of training the built-in "
                  "tiny byte-level BPE")
      ->check(CLI::ExistingDirectory);
  cmd->callback([opt, out, tokenizer_from, &ctx] {
    opt->out_dir = *out;
    opt->tokenizer_from = *tokenizer_from;
    const auto start = std::chrono::steady_clock::now();
    model::Qwen2Config config;
    try {
      config = model::write_random_model(*opt);
    } catch (const std::exception& e) {
      throw CliExit(kExitApiError, e.what());
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int64_t h = config.hidden_size, i = config.intermediate_size;
    const int64_t kv = config.num_key_value_heads * config.head_dim();
    const int64_t per_layer = h * h * 2 + h + 2 * (h * kv + kv) + 3 * h * i + 2 * h;
    const int64_t params = config.num_hidden_layers * per_layer + config.vocab_size * h *
                           (config.tie_word_embeddings ? 1 : 2) + h;
    if (ctx.json) {
      std::cout << nlohmann::json{{"path", *out},
                                  {"preset", opt->preset},
                                  {"dtype", opt->dtype},
                                  {"seed", opt->seed},
                                  {"parameters", params},
                                  {"vocab_size", config.vocab_size}}
                       .dump(2)
                << "\n";
    } else {
      std::cout << "wrote " << opt->preset << " model (" << params << " parameters, "
                << opt->dtype << ", vocab " << config.vocab_size << ", seed " << opt->seed
                << ") to " << *out << " in " << seconds << " s\n";
    }
  });
}

}  // namespace eztinker::cli
