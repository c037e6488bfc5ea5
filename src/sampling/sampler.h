// Next-token selection and stop handling, independent of the model: greedy / temperature /
// top-k / top-p (HF's warper order: temperature, then top-k, then top-p), a per-request seeded
// torch::Generator so the same seed gives the same tokens, temperature-1 log-probs of the chosen
// tokens, and stop strings / stop token ids tracked per sequence of a batch. The decoding loop
// that drives the model with a KV cache is sampling/generate.h.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace eztinker::sampling {

struct SamplingParams {
  double temperature = 1.0;  // 0 = greedy
  double top_p = 1.0;        // 1 = off
  int64_t top_k = 50;        // 0 = off
};

// A CPU generator seeded with `seed`, or from std::random_device when there is none.
torch::Generator make_generator(std::optional<uint64_t> seed);

// Applies temperature, top-k and top-p to logits [B, V] (fp32) and returns the filtered,
// temperature-scaled logits [B, V] with removed entries at -inf. Not used for greedy.
torch::Tensor filter_logits(const torch::Tensor& logits, const SamplingParams& params);

// Chooses one token per row. logits: [B, V] fp32 -> [B] int64. Greedy (argmax) when
// temperature == 0, otherwise draw_tokens(filter_logits(...)) with `gen`.
torch::Tensor select_tokens(const torch::Tensor& logits, const SamplingParams& params,
                            torch::Generator& gen);

// One draw per row from softmax(filtered): filtered [B, V] fp32 with removed entries at -inf
// -> [B] int64. Inverse CDF on one uniform per row from `gen` (same seed, same tokens).
torch::Tensor draw_tokens(const torch::Tensor& filtered, torch::Generator& gen);

// log softmax(logits)[token] at temperature 1 (the model's own distribution, whatever the
// sampling settings). logits: [B, V], tokens: [B] -> [B] fp32.
torch::Tensor token_logprobs(const torch::Tensor& logits, const torch::Tensor& tokens);

// Byte offset of the earliest occurrence of any of `stops` in `text`, or std::string::npos.
size_t find_stop_string(const std::string& text, const std::vector<std::string>& stops);

// One sequence's completion as it is decoded.
struct SequenceState {
  std::vector<int32_t> token_ids;  // completion tokens (a stop token id is kept, see below)
  std::vector<float> logprobs;     // aligned with token_ids
  std::string text;                // completion text, cut before the first stop string
  std::string finish_reason;       // "" while running, then "stop" | "length"
  bool text_final = false;         // text already cut by a stop string (or finalized)
  bool finished() const { return !finish_reason.empty(); }
};

// Stop criteria of a request. `decode` turns completion token ids into text (special tokens
// skipped); it is called only while `stop_strings` is non-empty, and once at the end.
struct StopCriteria {
  std::vector<std::string> stop_strings;
  std::vector<int32_t> stop_token_ids;
  int64_t max_new_tokens = 100;
  std::function<std::string(const std::vector<int32_t>&)> decode;
};

// Appends `token` (with its logprob) to `state` and updates finish_reason:
//   - a stop token id ends the sequence with "stop" (the token stays in token_ids, so RL
//     training sees the EOS it sampled; its text is empty when it is a special token);
//   - a stop string ends it with "stop"; `text` is cut before the string and the tokens up to
//     the one that completed it are kept;
//   - reaching max_new_tokens ends it with "length".
void append_token(SequenceState& state, int32_t token, float logprob, const StopCriteria& stop);

// Decodes `text` unless a stop string already cut it; a final stop token's text is dropped.
void finalize_text(SequenceState& state, const StopCriteria& stop);

}  // namespace eztinker::sampling
