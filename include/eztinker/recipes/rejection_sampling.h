// Rejection-sampling fine-tuning helpers (RFT / STaR-style) over an EZTinker server: create a
// LoRA run, sample N candidates in ONE sample job, verify them against the gold answer and
// train only on verified-correct ones, with loss on the completion tokens only. Mirrors the
// Python EZTinker helpers (create_training_run, generate_candidates,
// select_best_candidate_and_train) with one deliberate change: the Python original also trained
// on wrong candidates; this never does.
//
// Thread safety: the functions are stateless; they are as thread-safe as the client passed in
// (EZTinkerClient is). Errors: client errors propagate (ApiError / ConnectionError); bad
// arguments throw std::invalid_argument.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "eztinker/client.h"
#include "eztinker/datasets/answer_verifier.h"
#include "eztinker/datasets/gsm8k.h"

namespace eztinker::recipes {

// POST /v1/runs with lora r = lora_rank and lora_alpha = lora_rank (scaling 1, as the Python
// helper did), all-linear targets. Returns the run id.
std::string create_training_run(EZTinkerClient& client, const std::string& base_model,
                                int lora_rank = 1, std::optional<uint64_t> seed = std::nullopt);

// Sampling settings for generate_candidates beyond the Python signature.
struct CandidateOptions {
  double top_p = 1.0;
  int top_k = 0;                     // 0 = off: sample the full distribution
  std::optional<uint64_t> seed;      // absent = nondeterministic
  std::vector<std::string> stop;     // stop strings, e.g. {"\n"} for one-line answers
};

// One /v1/sample job with num_samples = num_candidates through the run's adapter; returns
// the completions (prompt not included), in sample order. Throws std::invalid_argument when
// num_candidates < 1.
std::vector<std::string> generate_candidates(EZTinkerClient& client, const std::string& run_id,
                                             const std::string& prompt, int num_candidates = 4,
                                             double temperature = 0.8, int max_new_tokens = 256,
                                             const CandidateOptions& options = {});

struct SelectOptions {
  // How many distinct verified-correct candidates to train on (best first). 1 = only the
  // selected one (the Python behaviour); more uses every correct sample as extra data.
  size_t max_train_candidates = 1;
  // Sent with optim_step; the defaults are the wire defaults.
  double weight_decay = 0.0;
  double grad_clip_norm = 1.0;
  // false: only forward_backward (gradients accumulate on the server); the caller steps.
  bool optim_step = true;
  // Cut a trained completion right after its extracted answer, so the model is not taught
  // whatever it wrote after answering. The answer text itself is always kept.
  bool truncate_after_answer = false;
  // Appended to every trained completion, e.g. "<|im_end|>" so the model also learns to stop
  // after answering (the server's text form adds no EOS; special-token text is parsed).
  std::string completion_suffix;
};

struct SelectionResult {
  // Best candidate: highest score; ties go to the shortest completion, then the first.
  std::optional<size_t> selected_index;
  double selected_score = 0.0;
  bool is_correct = false;
  bool trained = false;
  std::string skip_reason;  // why nothing was trained ("" when trained)
  size_t num_correct = 0;   // verified-correct candidates
  size_t num_trained = 0;   // candidates trained on (distinct, correct)
  std::optional<double> loss;  // mean forward_backward loss over the trained candidates
  std::vector<datasets::VerificationResult> verdicts;  // one per candidate
};

// Scores every candidate with the verifier (dataset->evaluate_answer when a dataset is given,
// else evaluate_answer), selects the best, and when it is verified-correct trains on it (and
// up to max_train_candidates - 1 other distinct correct ones) with the text form
// {prompt, completion}: the server tokenizes and puts loss weight 0 on the prompt, 1 on the
// completion. Then one optim_step at learning_rate. No correct candidate: nothing is sent.
// note: each trained candidate is its own forward_backward (mean loss over its completion
// tokens) and gradients add up on the server, so k candidates give k times the gradient of
// one before clipping (grad_clip_norm bounds the step).
SelectionResult select_best_candidate_and_train(
    EZTinkerClient& client, const std::string& run_id, const std::string& prompt,
    const std::vector<std::string>& candidates, const std::string& ground_truth,
    const std::string& question, const datasets::GSM8KDataset* dataset = nullptr,
    double learning_rate = 2e-4, const SelectOptions& options = {});

// The completion with everything after its extracted answer removed (the verifier's own
// extraction); returns it unchanged when no answer is found.
std::string truncate_after_answer(const std::string& completion);

}  // namespace eztinker::recipes
