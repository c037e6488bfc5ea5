// Qwen2ForCausalLM in libtorch, matching HF transformers `modeling_qwen2.py`. Modules are
// registered under their exact HF names, so named_parameters() keys equal the safetensors keys
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ..., lm_head.weight).
// The base weights are frozen (requires_grad=false) and shared by every run; LoRA arrives per
// call through ForwardOptions::adapter, so one base serves many adapters concurrently.
//
// Thread safety: forward* / logits never mutate the module, so concurrent calls (different
// runs, different caches) are safe. Weights are loaded by model/weights.h under NoGradGuard.
#pragma once

#include "lora/lora_adapter.h"
#include "model/qwen2_config.h"

#include <torch/torch.h>

#include <string>
#include <utility>
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

// Reference implementations of the numerically delicate ops. The modules call exactly these;
// tests compare them against straightforward tensor math.
namespace detail {

// x: [..., hidden] -> [..., hidden] in x's dtype. Computes in fp32 and casts back before the
// weight multiply, as HF Qwen2RMSNorm does. weight: [hidden].
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// position_ids: [B, T] int64 -> (cos, sin), each [B, T, head_dim] fp32, with HF's layout
// cat(freqs, freqs) and inv_freq = theta^(-2i/head_dim).
std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const torch::Tensor& position_ids,
                                                     int64_t head_dim,
                                                     double rope_theta);

// x: [B, T, heads, head_dim]; cos/sin: [B, T, head_dim] (any float dtype; cast to x's) ->
// x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2]).
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// Additive attention bias [B, 1, T, past + T] fp32: 0 where query t (absolute position past + t)
// may see key s (s <= past + t and attention_mask[b, s] == 1), a large negative value elsewhere.
// attention_mask: [B, past + T] or undefined (all ones; then B may be 1 and broadcast).
torch::Tensor attention_bias(const torch::Tensor& attention_mask,
                             int64_t batch,
                             int64_t past,
                             int64_t T,
                             torch::Device device);

// Scaled dot-product attention with grouped-query heads, written out (libtorch 1.13 has no
// SDPA). q: [B, H, T, D]; k, v: [B, KV, S, D] with H % KV == 0 (query head h reads kv head
// h / (H / KV), HF repeat_kv); bias: [B or 1, 1, T, S] additive, or undefined = causal with the
// queries at the last T positions. Softmax in fp32. Returns [B, H, T, D] in q's dtype.
torch::Tensor causal_attention(const torch::Tensor& q,
                               const torch::Tensor& k,
                               const torch::Tensor& v,
                               const torch::Tensor& bias);

}  // namespace detail

// A frozen linear layer (weight [out, in], optional bias [out]) that knows its HF module path,
// so LoRA lookups need no string building per call.
class Qwen2LinearImpl : public torch::nn::Module {
 public:
  Qwen2LinearImpl(std::string path, int64_t in, int64_t out, bool bias,
                  const torch::TensorOptions& options);
  // x: [..., in] -> [..., out]: base(x) + B(A(dropout(x))) * scaling when `adapter` targets
  // this path (the LoRA term in the adapter's fp32, added to the base output once).
  torch::Tensor forward(const torch::Tensor& x, const lora::LoraAdapter* adapter);
  const std::string& path() const { return path_; }
  torch::Tensor weight;
  torch::Tensor bias;  // undefined when the layer has none

 private:
  std::string path_;
};
TORCH_MODULE(Qwen2Linear);

class Qwen2RMSNormImpl : public torch::nn::Module {
 public:
  Qwen2RMSNormImpl(int64_t hidden, double eps, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x);  // [..., hidden] -> [..., hidden]
  torch::Tensor weight;                           // [hidden]

 private:
  double eps_;
};
TORCH_MODULE(Qwen2RMSNorm);

class Qwen2EmbeddingImpl : public torch::nn::Module {
 public:
  Qwen2EmbeddingImpl(int64_t vocab, int64_t hidden, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& ids);  // [B, T] int64 -> [B, T, hidden]
  torch::Tensor weight;                             // [vocab, hidden]
};
TORCH_MODULE(Qwen2Embedding);

// Per-call inputs shared by every decoder layer (computed once per forward).
struct Qwen2LayerInputs {
  torch::Tensor cos;   // [B, T, head_dim] in the model dtype
  torch::Tensor sin;   // [B, T, head_dim]
  torch::Tensor bias;  // [B or 1, 1, T, past + T] fp32, or undefined (no masking needed)
  const lora::LoraAdapter* adapter = nullptr;
  KVCache* cache = nullptr;
  int64_t past = 0;    // cache length before this call
};

class Qwen2AttentionImpl : public torch::nn::Module {
 public:
  Qwen2AttentionImpl(const Qwen2Config& config, int64_t layer, const torch::TensorOptions& options);
  // x: [B, T, hidden] (normed) -> [B, T, hidden]
  torch::Tensor forward(const torch::Tensor& x, const Qwen2LayerInputs& in);
  Qwen2Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t layer_, num_heads_, num_kv_heads_, head_dim_;
};
TORCH_MODULE(Qwen2Attention);

class Qwen2MLPImpl : public torch::nn::Module {
 public:
  Qwen2MLPImpl(const Qwen2Config& config, int64_t layer, const torch::TensorOptions& options);
  // x: [B, T, hidden] -> down(silu(gate(x)) * up(x)): [B, T, hidden]
  torch::Tensor forward(const torch::Tensor& x, const lora::LoraAdapter* adapter);
  Qwen2Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Qwen2MLP);

class Qwen2DecoderLayerImpl : public torch::nn::Module {
 public:
  Qwen2DecoderLayerImpl(const Qwen2Config& config, int64_t layer, const torch::TensorOptions& options);
  // h: [B, T, hidden] -> [B, T, hidden] (pre-norm residual blocks)
  torch::Tensor forward(const torch::Tensor& h, const Qwen2LayerInputs& in);
  Qwen2Attention self_attn{nullptr};
  Qwen2MLP mlp{nullptr};
  Qwen2RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(Qwen2DecoderLayer);

// The decoder stack, registered as "model": embed_tokens, layers.N, norm.
class Qwen2ModelImpl : public torch::nn::Module {
 public:
  Qwen2ModelImpl(const Qwen2Config& config, const torch::TensorOptions& options);
  Qwen2Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  std::vector<Qwen2DecoderLayer> layer_list;  // typed handles of `layers`
  Qwen2RMSNorm norm{nullptr};
};
TORCH_MODULE(Qwen2Model);

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

  // The HF module paths of every LoRA-targetable projection, in layer then kAllLinearTargets
  // order, e.g. "model.layers.0.self_attn.q_proj". `short_name` filters ("" = all).
  std::vector<std::string> projection_paths(const std::string& short_name = "") const;
  // The frozen projection at `path` (nullptr when there is none); its weight gives LoRA shapes.
  const Qwen2LinearImpl* projection(const std::string& path) const;
  // Submodule access (weights loading, merging).
  Qwen2Model& model() { return model_; }
  const Qwen2Model& model() const { return model_; }

 private:
  Qwen2Config config_;
  torch::Dtype dtype_;
  torch::Device device_;
  Qwen2Model model_{nullptr};
  Qwen2Linear lm_head_{nullptr};  // registered as "lm_head" only when untied
  std::vector<std::pair<std::string, Qwen2LinearImpl*>> projections_;  // path -> module
};
TORCH_MODULE(Qwen2ForCausalLM);

}  // namespace eztinker::model
