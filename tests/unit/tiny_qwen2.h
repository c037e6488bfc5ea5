// A tiny random Qwen2 built in-process (the style guide's test model): 2 layers, hidden 64,
// 4 heads, 2 kv heads, intermediate 128, vocab 256. Shared by the model and LoRA tests.
#pragma once

#include "model/qwen2.h"
#include "model/random_model.h"

#include <torch/torch.h>

namespace eztinker::testing {

inline model::Qwen2Config tiny_qwen2_config(bool tied = true) {
  model::Qwen2Config c = model::random_model_preset("tiny");
  c.vocab_size = 256;
  c.tie_word_embeddings = tied;
  c.rope_theta = 10000.0;
  return c;
}

inline model::Qwen2ForCausalLM tiny_qwen2(uint64_t seed = 1234,
                                          bool tied = true,
                                          torch::Dtype dtype = torch::kFloat32) {
  model::Qwen2ForCausalLM m(tiny_qwen2_config(tied), dtype, torch::Device(torch::kCPU));
  model::init_random_weights(*m, seed);
  return m;
}

// Random token ids in [0, vocab): [B, T] int64, from a fixed seed.
inline torch::Tensor random_ids(int64_t B, int64_t T, int64_t vocab = 256, uint64_t seed = 7) {
  torch::manual_seed(seed);
  return torch::randint(0, vocab, {B, T}, torch::kInt64);
}

}  // namespace eztinker::testing
