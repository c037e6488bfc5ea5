// The rejection-sampling fine-tuning demo, shared by `eztinker demo`,
// examples/rejection_sft_demo.cpp and tests/e2e/demo_test.cpp: create a LoRA run, measure the
// model on a held-out set, optionally warm it up with a little SFT on labelled problems (the
// STaR recipe: a model that never answers correctly gives rejection sampling nothing to keep),
// then for each epoch sample candidates per training problem, train on the verified-correct
// ones, and measure again. Everything reported is measured on the server during the run;
// nothing is canned.
//
// Metrics (per evaluation, on the same held-out problems with the same sampling seeds):
//   reward       fraction of sampled candidates that the verifier accepts
//   accuracy     fraction of problems whose greedy (temperature 0) answer is correct
//   answer_loss  mean NLL per token of the gold answer " N" right after the prompt
//                (one batched forward job; loss on the answer tokens only)
//
// Thread safety: run_gsm8k_demo uses the client from the calling thread only.
// Errors: client errors propagate; data errors throw datasets::DatasetError; bad options
// std::invalid_argument.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "eztinker/client.h"
#include "eztinker/datasets/gsm8k.h"

namespace eztinker::recipes {

struct DemoOptions {
  // Base model name as the server knows it (alias, path or HF name).
  std::string model = "Qwen/Qwen2-0.5B-Instruct";
  // "gsm8k": GSM8K train/test (found as GSM8KOptions describes, or data_path);
  // "arithmetic": the built-in procedural problems; "auto": gsm8k when found, else arithmetic.
  std::string dataset = "auto";
  std::filesystem::path data_path;  // GSM8K file or directory; empty = the usual lookup
  size_t max_samples = 50;          // training problems
  size_t eval_size = 20;            // held-out problems (GSM8K test split / other seed)
  int epochs = 3;
  int num_candidates = 4;
  double temperature = 0.8;
  int top_k = 0;  // 0 = off
  int max_new_tokens = 256;
  std::vector<std::string> stop;  // stop strings for sampling, e.g. {"\n"}
  double learning_rate = 2e-4;
  int lora_rank = 1;
  int lora_alpha = 0;  // 0 = lora_rank (the Python helper's alpha = rank)
  // SFT warm-up before rejection sampling: warmup_examples labelled problems (disjoint from
  // the training and held-out ones) with completion " N" + completion_suffix, for
  // warmup_epochs passes, one optim_step per warmup_batch examples. 0 = no warm-up.
  size_t warmup_examples = 0;
  int warmup_epochs = 1;
  size_t warmup_batch = 4;
  double warmup_learning_rate = 0.0;  // 0 = learning_rate
  size_t max_train_candidates = 1;
  bool truncate_after_answer = false;
  // Appended to trained completions so the model learns to stop (Qwen2's EOS; both the
  // Qwen2 tokenizer and the built-in tiny one have it). Empty for other tokenizers.
  std::string completion_suffix = "<|im_end|>";
  uint64_t seed = 0;  // data order, arithmetic problems, LoRA init and sampling seeds
  // Written: summary.json, plot.svg. Empty = write nothing.
  std::filesystem::path output_dir = "demo_output";
  // Save a server-side checkpoint "<checkpoint_prefix>-epoch<N>" after each epoch (and the
  // final one as "<checkpoint_prefix>-final").
  bool save_checkpoints = true;
  std::string checkpoint_prefix = "rejection-sft";
  std::optional<std::string> run_id;  // default: server-generated
  // Progress and per-epoch lines go here (nullptr = silent); progress bars redraw with '\r'.
  std::ostream* log = nullptr;
  bool progress_bars = true;
  // Examples of completions (before/after) to keep in the summary.
  size_t num_examples_in_summary = 3;
};

struct DemoEvaluation {
  int epoch = 0;  // 0 = before rejection sampling (phase "base" or "sft")
  std::string phase = "base";  // "base" (untrained), "sft" (after the warm-up), "rft"
  double reward = 0.0;
  double accuracy = 0.0;
  double answer_loss = 0.0;
  // Training stats of the epoch that led here (absent for epoch 0).
  std::optional<double> train_reward;        // fraction of correct candidates while training
  std::optional<double> train_loss;          // mean loss of the trained completions
  size_t trained_examples = 0;               // completions trained on
  size_t problems_with_correct = 0;          // training problems with >= 1 correct candidate
  double seconds = 0.0;                      // wall time of the epoch (training + evaluation)
  std::string checkpoint;                    // checkpoint saved after the epoch, if any
};

struct DemoExample {
  std::string question;
  std::string answer;
  std::string before;  // greedy completion before training
  std::string after;   // greedy completion after training
};

struct DemoSummary {
  std::string run_id;
  std::string model;
  std::string dataset;  // "gsm8k" or "arithmetic"
  std::string data_source;
  size_t train_size = 0;
  size_t eval_size = 0;
  DemoOptions options;
  // [0] = before training, then after the warm-up (if any), then one per epoch.
  std::vector<DemoEvaluation> evaluations;
  std::vector<DemoExample> examples;
  double seconds = 0.0;
  // Measured deltas, final minus initial (answer_loss: initial minus final, so > 0 = better).
  double reward_gain = 0.0;
  double accuracy_gain = 0.0;
  double answer_loss_drop = 0.0;
  // Rejection sampling's own share: last epoch minus the evaluation before the first epoch
  // (after the warm-up when there is one).
  double rft_reward_gain = 0.0;
  double rft_accuracy_gain = 0.0;
  bool improved = false;  // any of the three moved the right way
  std::filesystem::path summary_path;  // written JSON ("" when not written)
  std::filesystem::path plot_path;     // written SVG
};

// Runs the demo end to end. Throws std::invalid_argument for options out of range.
DemoSummary run_gsm8k_demo(EZTinkerClient& client, const DemoOptions& options);

// The settings `eztinker demo` uses on its built-in tiny model (docs/datasets.md, "The demo"):
// SFT warm-up, then rejection sampling on one-digit arithmetic. Shared by the CLI and its test.
DemoOptions builtin_demo_options();

// The summary as JSON text (what summary.json holds).
std::string demo_summary_json(const DemoSummary& summary);
// A self-contained SVG: reward and accuracy (left axis, 0..1) and answer loss plus training
// loss (right axis) per epoch.
std::string demo_plot_svg(const DemoSummary& summary);

// Writes the built-in demo tokenizer into dir: a byte-level BPE (tokenizer.json +
// tokenizer_config.json, Qwen2 chat template, <|im_end|> EOS) trained on
// arithmetic_tokenizer_corpus(), so the demo prompt is a few dozen tokens. Pair it with a
// random tiny Qwen2 (`eztinker make-model --preset tiny --tokenizer-from dir`).
void write_demo_tokenizer(const std::filesystem::path& dir, int num_merges = 300);

// "[#########...........]  12/50" — the progress bar the demos draw.
std::string progress_bar(size_t done, size_t total, size_t width = 24);

}  // namespace eztinker::recipes
