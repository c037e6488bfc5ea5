// Rejection-sampling helpers (see include/eztinker/recipes/rejection_sampling.h): one batched
// sample job per prompt, verification of every candidate, training only on verified-correct
// ones through the wire's text form (prompt weight 0, completion weight 1).
#include "eztinker/recipes/rejection_sampling.h"

#include <algorithm>
#include <set>
#include <stdexcept>

namespace eztinker::recipes {

using datasets::evaluate_answer;
using datasets::extract_answer;
using datasets::ExtractedAnswer;
using datasets::GSM8KDataset;

std::string create_training_run(EZTinkerClient& client, const std::string& base_model,
                                int lora_rank, std::optional<uint64_t> seed) {
  if (lora_rank < 1) {
    throw std::invalid_argument("create_training_run: lora_rank must be >= 1, got " +
                                std::to_string(lora_rank));
  }
  api::CreateRunRequest request;
  request.base_model = base_model;
  request.lora_config.r = lora_rank;
  request.lora_config.lora_alpha = lora_rank;  // scaling alpha / r = 1
  request.seed = seed;
  return client.create_run(request).run_id;
}

std::vector<std::string> generate_candidates(EZTinkerClient& client, const std::string& run_id,
                                             const std::string& prompt, int num_candidates,
                                             double temperature, int max_new_tokens,
                                             const CandidateOptions& options) {
  if (num_candidates < 1) {
    throw std::invalid_argument("generate_candidates: num_candidates must be >= 1, got " +
                                std::to_string(num_candidates));
  }
  api::SampleRequest request;
  request.form = api::PromptForm::kText;
  request.prompt = prompt;
  request.run_id = run_id;
  request.params.num_samples = num_candidates;
  request.params.temperature = temperature;
  request.params.do_sample = temperature > 0;
  request.params.max_new_tokens = max_new_tokens;
  request.params.top_p = options.top_p;
  request.params.top_k = options.top_k;
  request.params.seed = options.seed;
  request.params.stop = options.stop;
  api::SampleResult result = client.sample(request);
  std::vector<std::string> candidates;
  candidates.reserve(result.samples.size());
  for (auto& s : result.samples) candidates.push_back(std::move(s.text));
  return candidates;
}

std::string truncate_after_answer(const std::string& completion) {
  ExtractedAnswer answer = extract_answer(completion);
  if (answer.strategy == "none" || answer.text.empty()) return completion;
  size_t pos = completion.rfind(answer.text);
  if (pos == std::string::npos) return completion;  // normalised spelling: keep it all
  size_t end = pos + answer.text.size();
  if (answer.strategy == "boxed") {
    // Keep the closing brace of \boxed{...}.
    size_t brace = completion.find('}', end);
    if (brace != std::string::npos) end = brace + 1;
  }
  return completion.substr(0, end);
}

SelectionResult select_best_candidate_and_train(
    EZTinkerClient& client, const std::string& run_id, const std::string& prompt,
    const std::vector<std::string>& candidates, const std::string& ground_truth,
    const std::string& question, const GSM8KDataset* dataset, double learning_rate,
    const SelectOptions& options) {
  SelectionResult result;
  if (candidates.empty()) {
    result.skip_reason = "no candidates";
    return result;
  }
  for (const std::string& c : candidates) {
    // Completions never contain the prompt, but a model may echo the question; the verifier
    // then ignores everything up to the echo.
    result.verdicts.push_back(dataset ? dataset->evaluate_answer(c, ground_truth, question)
                                      : evaluate_answer(c, ground_truth, question));
  }
  size_t best = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (result.verdicts[i].is_correct) ++result.num_correct;
    // Highest score; among equals the shortest completion (the most direct correct answer
    // teaches the least noise), then the first.
    const double si = result.verdicts[i].score;
    const double sb = result.verdicts[best].score;
    if (si > sb || (si == sb && candidates[i].size() < candidates[best].size())) best = i;
  }
  result.selected_index = best;
  result.selected_score = result.verdicts[best].score;
  result.is_correct = result.verdicts[best].is_correct;
  if (!result.is_correct) {
    result.skip_reason = "no verified-correct candidate (0/" +
                         std::to_string(candidates.size()) + ")";
    return result;
  }

  // The selected one first, then the other correct ones in order, without duplicates (a
  // repeated sample would just weigh that completion twice).
  std::vector<std::string> to_train;
  std::set<std::string> seen;
  std::vector<size_t> order = {best};
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (i != best) order.push_back(i);
  }
  size_t limit = std::max<size_t>(1, options.max_train_candidates);
  for (size_t i : order) {
    if (to_train.size() >= limit) break;
    if (!result.verdicts[i].is_correct) continue;
    std::string completion =
        options.truncate_after_answer ? truncate_after_answer(candidates[i]) : candidates[i];
    if (completion.empty() || !seen.insert(completion).second) continue;
    completion += options.completion_suffix;
    to_train.push_back(std::move(completion));
  }
  if (to_train.empty()) {
    result.skip_reason = "correct candidates have empty completions";
    return result;
  }

  // Submit every forward_backward and the optim_step back to back: the server runs one run's
  // jobs in order, so the step sees all accumulated gradients.
  std::vector<JobFuture<api::ForwardBackwardResult>> futures;
  for (const std::string& completion : to_train) {
    futures.push_back(client.submit_forward_backward(run_id, make_text_request(prompt, completion)));
  }
  std::optional<JobFuture<api::OptimStepResult>> step;
  if (options.optim_step) {
    api::AdamParams adam;
    adam.learning_rate = learning_rate;
    adam.weight_decay = options.weight_decay;
    adam.grad_clip_norm = options.grad_clip_norm;
    step = client.submit_optim_step(run_id, adam);
  }
  double loss_sum = 0.0;
  for (auto& f : futures) loss_sum += f.get().loss;
  if (step) step->get();
  result.loss = loss_sum / static_cast<double>(futures.size());
  result.num_trained = to_train.size();
  result.trained = true;
  return result;
}

}  // namespace eztinker::recipes
