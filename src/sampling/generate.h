// The decode loop: one prefill of the prompt into a preallocated KV cache, the cache copied to
// num_samples rows, then one batched decode step per new token (all samples in one forward).
// Finished rows are dropped from the batch (the cache rows are compacted) so a long sample
// does not pay for the ones that already stopped. Mirrors HF generate's greedy/sample loop.
#pragma once

#include "model/qwen2.h"
#include "sampling/sampler.h"

#include <optional>
#include <vector>

namespace eztinker::sampling {

struct GenerateRequest {
  std::vector<int32_t> prompt_ids;  // non-empty, ids < vocab
  SamplingParams params;
  int64_t num_samples = 1;
  std::optional<uint64_t> seed;
  StopCriteria stop;  // max_new_tokens lives here
};

// Runs under c10::InferenceMode (the cache and logits are per-request temporaries; the adapter
// is only read). Returns num_samples finished sequences with text finalized.
std::vector<SequenceState> generate(model::Qwen2ForCausalLMImpl& model,
                                    const lora::LoraAdapter* adapter,
                                    const GenerateRequest& request);

// Reference without a KV cache: recomputes the full prefix each step (tests only; O(T^2)).
std::vector<SequenceState> generate_without_cache(model::Qwen2ForCausalLMImpl& model,
                                                  const lora::LoraAdapter* adapter,
                                                  const GenerateRequest& request);

}  // namespace eztinker::sampling
