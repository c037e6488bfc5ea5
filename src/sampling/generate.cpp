// Decode loop with a preallocated KV cache (see generate.h).
#include "sampling/generate.h"

#include "model/small_linear.h"

#include <c10/core/InferenceMode.h>

namespace eztinker::sampling {

namespace {

// Decode-step logits [A, V] fp32 from hidden [A, 1, H]: the matrix-vector kernel when the
// lm_head is bf16 on an avx512_bf16 CPU (a bf16 one-row torch::linear re-lays-out the
// 136 M-parameter lm_head per call), else the model's own lm_head.
torch::Tensor step_logits(model::Qwen2ForCausalLMImpl& model, const torch::Tensor& hidden) {
  const auto weight = model.lm_head_weight();
  if (hidden.size(0) <= kernels::kSmallLinearMaxRows && kernels::small_linear_supported(weight)) {
    return kernels::small_linear(hidden.squeeze(1), weight, {}, torch::kFloat32);  // [A, V]
  }
  return model.logits(hidden).squeeze(1);  // [A, V]
}

torch::Tensor ids_tensor(const std::vector<int32_t>& ids, torch::Device device) {
  return torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kLong)
      .to(device)
      .unsqueeze(0);  // [1, P]
}

// Appends one sampled token per active row; returns the row indices (into the current batch)
// that are still running, and updates `active` (indices into `states`) to match.
std::vector<int64_t> append_step(std::vector<SequenceState>& states, std::vector<int64_t>& active,
                                 const torch::Tensor& tokens, const torch::Tensor& logprobs,
                                 const StopCriteria& stop) {
  auto tok = tokens.to(torch::kCPU, torch::kLong).contiguous();   // [A]
  auto lp = logprobs.to(torch::kCPU, torch::kFloat).contiguous();  // [A]
  const int64_t* tp = tok.data_ptr<int64_t>();
  const float* lpp = lp.data_ptr<float>();
  std::vector<int64_t> keep_rows;
  std::vector<int64_t> still_active;
  for (size_t r = 0; r < active.size(); ++r) {
    auto& s = states[active[r]];
    append_token(s, static_cast<int32_t>(tp[r]), lpp[r], stop);
    if (!s.finished()) {
      keep_rows.push_back(static_cast<int64_t>(r));
      still_active.push_back(active[r]);
    }
  }
  active = std::move(still_active);
  return keep_rows;
}

}  // namespace

std::vector<SequenceState> generate(model::Qwen2ForCausalLMImpl& model,
                                    const lora::LoraAdapter* adapter,
                                    const GenerateRequest& request) {
  c10::InferenceMode inference;
  const int64_t prompt_len = static_cast<int64_t>(request.prompt_ids.size());
  const int64_t n = request.num_samples;
  TORCH_CHECK(prompt_len > 0 && n > 0 && request.stop.max_new_tokens > 0,
              "generate: empty prompt, num_samples or max_new_tokens");
  auto gen = make_generator(request.seed);

  // Prefill once with batch 1; every sample shares the prompt's keys and values.
  model::KVCache prefill_cache = model.make_cache(1, prompt_len + request.stop.max_new_tokens);
  model::ForwardOptions options;
  options.adapter = adapter;
  options.cache = &prefill_cache;
  auto hidden = model.forward_hidden(ids_tensor(request.prompt_ids, model.device()), options);  // [1, P, H]
  // The last prompt position's logits only, through the same matrix-vector path as the steps.
  auto logits = step_logits(model, hidden.narrow(1, prompt_len - 1, 1));  // [1, V] fp32

  model::KVCache cache;
  if (n == 1) {
    cache = std::move(prefill_cache);
  } else {
    cache.capacity = prefill_cache.capacity;
    cache.length = prefill_cache.length;
    for (size_t i = 0; i < prefill_cache.k.size(); ++i) {
      cache.k.push_back(prefill_cache.k[i].expand({n, -1, -1, -1}).contiguous());  // [n, KV, cap, D]
      cache.v.push_back(prefill_cache.v[i].expand({n, -1, -1, -1}).contiguous());  // [n, KV, cap, D]
    }
    prefill_cache = model::KVCache();
    logits = logits.expand({n, logits.size(1)});  // [n, V]
  }
  options.cache = &cache;

  std::vector<SequenceState> states(static_cast<size_t>(n));
  std::vector<int64_t> active(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    active[static_cast<size_t>(i)] = i;
  }
  while (true) {
    auto tokens = select_tokens(logits, request.params, gen);  // [A]
    auto logprobs = token_logprobs(logits, tokens);             // [A]
    const int64_t batch = tokens.size(0);
    auto keep_rows = append_step(states, active, tokens, logprobs, request.stop);
    if (active.empty()) {
      break;
    }
    if (static_cast<int64_t>(keep_rows.size()) < batch) {
      // Drop finished rows from the cache so the next steps only decode live samples.
      auto index = torch::tensor(keep_rows, torch::kLong).to(model.device());  // [A']
      for (size_t i = 0; i < cache.k.size(); ++i) {
        cache.k[i] = cache.k[i].index_select(0, index);  // [A', KV, cap, D]
        cache.v[i] = cache.v[i].index_select(0, index);  // [A', KV, cap, D]
      }
      tokens = tokens.index_select(0, index);  // [A']
    }
    hidden = model.forward_hidden(tokens.unsqueeze(1), options);  // [A, 1, H]
    logits = step_logits(model, hidden);                          // [A, V] fp32
  }
  for (auto& s : states) {
    finalize_text(s, request.stop);
  }
  return states;
}

std::vector<SequenceState> generate_without_cache(model::Qwen2ForCausalLMImpl& model,
                                                  const lora::LoraAdapter* adapter,
                                                  const GenerateRequest& request) {
  c10::InferenceMode inference;
  const int64_t n = request.num_samples;
  auto gen = make_generator(request.seed);
  model::ForwardOptions options;
  options.adapter = adapter;
  // Every live row has the same length (finished rows leave), so the batch stays rectangular.
  auto sequences = ids_tensor(request.prompt_ids, model.device()).expand({n, -1}).contiguous();  // [n, P]
  std::vector<SequenceState> states(static_cast<size_t>(n));
  std::vector<int64_t> active(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    active[static_cast<size_t>(i)] = i;
  }
  while (true) {
    auto hidden = model.forward_hidden(sequences, options);                      // [A, L, H]
    auto logits = model.logits(hidden.narrow(1, hidden.size(1) - 1, 1)).squeeze(1);  // [A, V]
    auto tokens = select_tokens(logits, request.params, gen);                    // [A]
    auto logprobs = token_logprobs(logits, tokens);                              // [A]
    auto keep_rows = append_step(states, active, tokens, logprobs, request.stop);
    if (active.empty()) {
      break;
    }
    auto index = torch::tensor(keep_rows, torch::kLong).to(model.device());      // [A']
    sequences = torch::cat({sequences, tokens.unsqueeze(1)}, 1).index_select(0, index);  // [A', L+1]
  }
  for (auto& s : states) {
    finalize_text(s, request.stop);
  }
  return states;
}

}  // namespace eztinker::sampling
