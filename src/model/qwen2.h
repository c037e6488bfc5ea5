// Qwen2ForCausalLM in libtorch, matching HF transformers `modeling_qwen2.py`. Modules are
// registered under their exact HF names, so named_parameters() keys equal the safetensors keys
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ..., lm_head.weight).
// The base weights are frozen (requires_grad=false) and shared by every run; LoRA arrives per
// call through ForwardOptions::adapter, so one base serves many adapters concurrently.
#pragma once

#include "lora/lora_adapter.h"
#include "model/qwen2_config.h"

#include <torch/torch.h>

#include <vector>

namespace eztinker::model {

// Preallocated KV cache for decoding. Per layer: k/v [B, num_kv_heads, capacity, head_dim] in
// the model dtype; `length` positions are filled. Created by Qwen2ForCausalLMImpl::make_cache.
struct KVCache {
  std::vector<torch::Tensor> k;
  std::vector<torch::Tensor> v;
  int64_t length = 0;
  int64_t capacity = 0;
};

struct ForwardOptions {
  const lora::LoraAdapter* adapter = nullptr;  // nullptr = bare base model
  // [B, T_total] with 1 for real tokens and 0 for padding, where T_total = cache length + T.
  // Undefined = all ones. Left or right padding both work.
  torch::Tensor attention_mask;
  // [B, T] positions; undefined = derived from attention_mask (cumsum - 1, pads clamp to 0).
  torch::Tensor position_ids;
  KVCache* cache = nullptr;  // when set: attend to cached keys, then append this call's k/v
};

class Qwen2ForCausalLMImpl : public torch::nn::Module {
 public:
  // Allocates parameters (uninitialised) of `dtype` on `device`; load weights with
  // model/weights.h. All parameters have requires_grad=false.
  Qwen2ForCausalLMImpl(const Qwen2Config& config, torch::Dtype dtype, torch::Device device);

  // input_ids: [B, T] int64 -> final-norm hidden states [B, T, hidden] (model dtype).
  torch::Tensor forward_hidden(const torch::Tensor& input_ids, const ForwardOptions& options);
  // hidden: [B, T, hidden] -> logits [B, T, vocab] in fp32.
  torch::Tensor logits(const torch::Tensor& hidden);
  // forward_hidden + logits.
  torch::Tensor forward(const torch::Tensor& input_ids, const ForwardOptions& options = {});
  // The [vocab, hidden] output projection (the embedding when tied).
  torch::Tensor lm_head_weight() const;

  KVCache make_cache(int64_t batch, int64_t capacity) const;

  const Qwen2Config& config() const { return config_; }
  torch::Dtype dtype() const { return dtype_; }
  torch::Device device() const { return device_; }

 private:
  Qwen2Config config_;
  torch::Dtype dtype_;
  torch::Device device_;
  // ... submodules registered under HF names (model.embed_tokens, model.layers, model.norm, lm_head)
};
TORCH_MODULE(Qwen2ForCausalLM);

}  // namespace eztinker::model
