// `eztinker sample | tokenize`: text generation (POST /v1/sample) and the tokenizer.
#include "cli_common.h"

#include "eztinker/api_json.h"

#include <iostream>

namespace eztinker::cli {

void register_sample_commands(CLI::App& app, CliContext& ctx) {
  struct SampleArgs {
    std::string prompt;
    api::SampleParams params;
    std::optional<std::string> run_id;
    std::optional<std::string> base_model;
    std::optional<uint64_t> seed;
    bool greedy = false;
  };
  auto a = std::make_shared<SampleArgs>();
  auto* sample = app.add_subcommand("sample", "Generate text from a prompt");
  sample->add_option("PROMPT", a->prompt, "Prompt text")->required();
  sample->add_option("--max-tokens", a->params.max_new_tokens, "New tokens at most (1..2048)")
      ->capture_default_str();
  sample->add_option("--temperature", a->params.temperature, "Sampling temperature (0..10; 0 = greedy)")
      ->capture_default_str();
  sample->add_option("--top-p", a->params.top_p, "Nucleus sampling mass (0..1)")->capture_default_str();
  sample->add_option("--top-k", a->params.top_k, "Top-k cutoff (0 = off)")->capture_default_str();
  sample->add_option("--num-samples,-n", a->params.num_samples, "Completions to sample")
      ->capture_default_str();
  sample->add_option("--seed", a->seed, "Random seed (reproducible sampling)");
  sample->add_option("--stop", a->params.stop, "Stop string (repeatable)");
  sample->add_flag("--greedy", a->greedy, "Greedy decoding (do_sample=false)");
  sample->add_flag("--logprobs", a->params.return_logprobs, "Return per-token log-probs");
  sample->add_option("--run-id", a->run_id, "Sample through this run's adapter");
  sample->add_option("--model", a->base_model, "Sample from this base model (no adapter)");
  sample->callback([&ctx, a] {
    api::SampleRequest request;
    request.prompt = a->prompt;
    request.params = a->params;
    request.params.seed = a->seed;
    if (a->greedy) request.params.do_sample = false;
    request.run_id = a->run_id;
    request.base_model = a->base_model;
    api::SampleResult result = make_client(ctx).sample(request);
    if (ctx.json) {
      print_json(result);
      return;
    }
    if (result.samples.size() <= 1) {
      std::cout << result.generated_text << "\n";
      return;
    }
    for (size_t i = 0; i < result.samples.size(); ++i) {
      std::cout << "[" << i << "] (" << result.samples[i].finish_reason << ") " << a->prompt
                << result.samples[i].text << "\n";
    }
  });

  struct TokenizeArgs {
    std::string text;
    std::optional<std::string> run_id;
    std::optional<std::string> base_model;
  };
  auto t = std::make_shared<TokenizeArgs>();
  auto* tokenize = app.add_subcommand("tokenize", "Show the token ids of a text");
  tokenize->add_option("TEXT", t->text, "Text to tokenize")->required();
  tokenize->add_option("--run-id", t->run_id, "Use this run's model tokenizer");
  tokenize->add_option("--model", t->base_model, "Use this base model's tokenizer");
  tokenize->callback([&ctx, t] {
    api::TokenIds tokens = make_client(ctx).tokenize(t->text, t->run_id, t->base_model);
    if (ctx.json) {
      print_json({{"tokens", tokens}});
      return;
    }
    std::string line;
    for (int32_t id : tokens) line += (line.empty() ? "" : " ") + std::to_string(id);
    std::cout << line << "\n";
  });
}

}  // namespace eztinker::cli
