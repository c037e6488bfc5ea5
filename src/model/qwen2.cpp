// Qwen2ForCausalLM forward pass, following HF transformers `modeling_qwen2.py` (eager
// attention path): RMSNorm in fp32, RoPE with rotate_half, GQA without materialising repeated
// k/v, SiLU-gated MLP, tied or untied lm_head, additive-mask attention with left or right
// padding, and a preallocated KV cache written in place.
#include "model/qwen2.h"

#include "model/cpu_runtime.h"
#include "model/fused_ops.h"
#include "model/inference_ops.h"
#include "model/small_linear.h"
#include "model/weight_arena.h"
#include "lora/lora_linear.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace eztinker::model {

// ---------------------------------------------------------------------------------------------
// detail:: reference ops

namespace detail {

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  torch::Tensor x32 = x.to(torch::kFloat32);                          // [..., hidden]
  torch::Tensor var = x32.pow(2).mean(-1, /*keepdim=*/true);          // [..., 1]
  torch::Tensor normed = (x32 * torch::rsqrt(var + eps)).to(x.scalar_type());  // [..., hidden]
  return weight * normed;                                             // [..., hidden]
}

std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const torch::Tensor& position_ids,
                                                     int64_t head_dim,
                                                     double rope_theta) {
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(position_ids.device());
  // inv_freq[i] = theta^(-2i / D), computed like HF: 1 / theta^(arange(0, D, 2) / D).
  torch::Tensor exponents = torch::arange(0, head_dim, 2, f32.dtype(torch::kInt64))
                                .to(torch::kFloat32) / static_cast<double>(head_dim);  // [D/2]
  torch::Tensor inv_freq = 1.0 / torch::pow(rope_theta, exponents);                   // [D/2]
  torch::Tensor freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) * inv_freq;    // [B, T, D/2]
  torch::Tensor emb = torch::cat({freqs, freqs}, -1);                                 // [B, T, D]
  return {emb.cos(), emb.sin()};                                                      // [B, T, D] x2
}

torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor c = cos.to(x.scalar_type()).unsqueeze(2);   // [B, T, 1, D]
  torch::Tensor s = sin.to(x.scalar_type()).unsqueeze(2);   // [B, T, 1, D]
  torch::Tensor x1 = x.narrow(-1, 0, half);                  // [B, T, H, D/2]
  torch::Tensor x2 = x.narrow(-1, half, half);               // [B, T, H, D/2]
  torch::Tensor rotated = torch::cat({-x2, x1}, -1);         // [B, T, H, D]
  return x * c + rotated * s;                                // [B, T, H, D]
}

torch::Tensor attention_bias(const torch::Tensor& attention_mask,
                             int64_t batch,
                             int64_t past,
                             int64_t T,
                             torch::Device device) {
  const int64_t S = past + T;
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  torch::Tensor key_pos = torch::arange(S, i64);                                // [S]
  torch::Tensor query_pos = torch::arange(past, S, i64);                        // [T]
  torch::Tensor allowed = key_pos.unsqueeze(0) <= query_pos.unsqueeze(1);       // [T, S] bool
  allowed = allowed.unsqueeze(0);                                               // [1, T, S]
  if (attention_mask.defined()) {
    TORCH_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == batch &&
                    attention_mask.size(1) == S,
                "attention_mask must be [", batch, ", ", S, "] (cache length + T), got ",
                attention_mask.sizes());
    allowed = allowed & attention_mask.to(device).ne(0).unsqueeze(1);           // [B, T, S]
  }
  // A finite minimum rather than -inf: a query row with no visible key (a left pad) then gets a
  // uniform softmax instead of NaN; its output is garbage that the caller ignores.
  const float kMasked = std::numeric_limits<float>::lowest();
  torch::Tensor bias = torch::zeros(allowed.sizes(), i64.dtype(torch::kFloat32));  // [B|1, T, S]
  bias.masked_fill_(allowed.logical_not(), kMasked);
  return bias.unsqueeze(1);                                                     // [B|1, 1, T, S]
}

torch::Tensor causal_attention(const torch::Tensor& q,
                               const torch::Tensor& k,
                               const torch::Tensor& v,
                               const torch::Tensor& bias) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const int64_t KV = k.size(1), S = k.size(2);
  TORCH_CHECK(H % KV == 0, "query heads ", H, " not a multiple of kv heads ", KV);
  const int64_t G = H / KV;
  // GQA without repeat_kv: query heads h = kv * G + g share kv head `kv`, so fold the G query
  // heads of a group into the row dimension and multiply against the un-repeated k/v.
  torch::Tensor qg = q.reshape({B, KV, G * T, D});                            // [B, KV, G*T, D]
  torch::Tensor scores = torch::matmul(qg, k.transpose(-1, -2));              // [B, KV, G*T, S]
  // Scale and mask in place on the fp32 scores (a fresh tensor: the matmul output or its
  // fp32 copy), as HF: softmax(q k^T / sqrt(D) + mask) in fp32.
  scores = scores.to(torch::kFloat32).view({B, KV, G, T, S});                 // [B, KV, G, T, S]
  scores.mul_(1.0 / std::sqrt(static_cast<double>(D)));
  if (bias.defined()) {
    scores.add_(bias.unsqueeze(1));                                           // [B, KV, G, T, S]
  } else if (T > 1) {  // one query at the last position sees every key: nothing to mask
    scores.add_(attention_bias({}, B, S - T, T, q.device()).unsqueeze(1));    // [B, KV, G, T, S]
  }
  torch::Tensor probs = torch::softmax(scores, -1).to(v.scalar_type());       // [B, KV, G, T, S]
  torch::Tensor out = torch::matmul(probs.view({B, KV, G * T, S}), v);        // [B, KV, G*T, D]
  return out.view({B, H, T, D});                                              // [B, H, T, D]
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Modules

Qwen2LinearImpl::Qwen2LinearImpl(std::string path, int64_t in, int64_t out, bool has_bias,
                                 const torch::TensorOptions& options)
    : path_(std::move(path)) {
  weight = register_parameter("weight", torch::empty({out, in}, options), false);  // [out, in]
  if (has_bias) bias = register_parameter("bias", torch::empty({out}, options), false);  // [out]
}

namespace {

// The LoRA branch's input, PEFT's dropout(x): x itself, or while training with dropout a copy
// widened to the LoRA dtype with the mask applied (x stays intact for the base projection).
torch::Tensor lora_input(const torch::Tensor& x, const lora::LoraAdapter& adapter,
                         const lora::LoraPair& pair) {
  const double p = adapter.config.lora_dropout;
  if (!adapter.training || p <= 0.0) return x;                   // [..., in]
  return lora::detail::dropout(x.to(pair.a.scalar_type()), p);  // [..., in] LoRA dtype
}

}  // namespace

torch::Tensor Qwen2LinearImpl::forward(const torch::Tensor& x,
                                       const lora::LoraAdapter* adapter) {
  torch::Tensor y;
  const int64_t in = weight.size(1);
  const int64_t rows = x.numel() / in;
  const bool needs_grad = torch::GradMode::is_enabled() && x.requires_grad();
  const lora::LoraPair* pair = adapter != nullptr ? adapter->find(path_) : nullptr;
  if (rows <= kernels::kSmallLinearMaxRows && !needs_grad && x.device().is_cpu() &&
      kernels::small_linear_supported(weight)) {
    // Decode steps (a few rows, no autograd): bf16 linear() re-lays-out the whole weight in
    // oneDNN on every call; the matrix-vector kernel (bf16 or fp32 weights) reads each weight
    // byte once, in address order (issue 7).
    // An inference-time LoRA pair folds into the kernel's fp32 accumulator, which replaces the
    // six small tensor ops of the generic path below (their dispatch cost dominated decoding).
    const bool lora_grad = pair != nullptr && torch::GradMode::is_enabled() &&
                           (pair->a.requires_grad() || pair->b.requires_grad());
    const bool lora_dropout = pair != nullptr && adapter->training && adapter->config.lora_dropout > 0;
    if (pair != nullptr && !lora_grad && !lora_dropout) {
      const kernels::SmallLinearLora lora{pair->a, pair->b, adapter->config.scaling()};
      if (kernels::small_linear_lora_supported(weight, lora)) {
        return kernels::small_linear(x, weight, bias, lora, weight.scalar_type());  // [..., out]
      }
    }
    y = kernels::small_linear(x, weight, bias, weight.scalar_type());  // [..., out]
  } else if (x.scalar_type() == torch::kFloat32 && rows == 1 && x.device().is_cpu()) {
    // One fp32 row (batch-1 decode) where the kernel above does not run (no avx512_bf16):
    // OpenBLAS gemv runs at about twice the bandwidth of the one-row gemm that linear() picks.
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = weight.size(0);
    y = torch::mv(weight, x.reshape({in}));   // [out]
    if (bias.defined()) y = y + bias;         // [out]
    y = y.view(shape);                        // [..., out]
  } else {
    if (pair != nullptr) {
      // PEFT: result + lora_B(lora_A(dropout(x))) * scaling, with the LoRA products in fp32
      // added into the base output in place (lora_linear.h).
      return lora::lora_linear(x, weight, bias, lora_input(x, *adapter, *pair), pair->a, pair->b,
                               adapter->config.scaling());  // [..., out]
    }
    return torch::linear(x, weight, bias);  // [..., out] base dtype
  }
  if (pair == nullptr) return y;
  // The matrix-vector paths above when the pair could not be folded: the LoRA term as its own
  // node, rounded once when added.
  torch::Tensor delta = lora::detail::lora_delta(lora_input(x, *adapter, *pair), pair->a, pair->b,
                                                 adapter->config.scaling());  // [..., out] fp32
  return y + delta.to(y.scalar_type());  // [..., out]
}

Qwen2RMSNormImpl::Qwen2RMSNormImpl(int64_t hidden, double eps, const torch::TensorOptions& options)
    : eps_(eps) {
  weight = register_parameter("weight", torch::ones({hidden}, options), false);  // [hidden]
}

torch::Tensor Qwen2RMSNormImpl::forward(const torch::Tensor& x) {
  // Without grad mode (sampling, no-grad forwards) one pass and no autograd node. Keyed on the
  // mode, not on x.requires_grad(), so that one forward takes one path throughout: the two
  // differ in fp32 summation order, and an adapter that is still zero must give the base's
  // values exactly.
  if (!torch::GradMode::is_enabled() && inference::supports(x) &&
      x.scalar_type() == weight.scalar_type()) {
    return inference::rms_norm(x, weight, eps_);  // [..., hidden]
  }
  return fused::rms_norm(x, weight, eps_);  // [..., hidden], equal to detail::rms_norm
}

Qwen2EmbeddingImpl::Qwen2EmbeddingImpl(int64_t vocab, int64_t hidden,
                                       const torch::TensorOptions& options) {
  weight = register_parameter("weight", torch::empty({vocab, hidden}, options), false);
}

torch::Tensor Qwen2EmbeddingImpl::forward(const torch::Tensor& ids) {
  return torch::embedding(weight, ids);  // [B, T, hidden]
}

namespace {
std::string layer_path(int64_t layer, const char* block, const char* name) {
  return "model.layers." + std::to_string(layer) + "." + block + "." + name;
}
}  // namespace

Qwen2AttentionImpl::Qwen2AttentionImpl(const Qwen2Config& c, int64_t layer,
                                       const torch::TensorOptions& options)
    : layer_(layer),
      num_heads_(c.num_attention_heads),
      num_kv_heads_(c.num_key_value_heads),
      head_dim_(c.head_dim()) {
  const int64_t q_out = num_heads_ * head_dim_;
  const int64_t kv_out = num_kv_heads_ * head_dim_;
  // Qwen2: q/k/v carry a bias, o_proj does not.
  q_proj = register_module("q_proj", Qwen2Linear(layer_path(layer, "self_attn", "q_proj"),
                                                 c.hidden_size, q_out, true, options));
  k_proj = register_module("k_proj", Qwen2Linear(layer_path(layer, "self_attn", "k_proj"),
                                                 c.hidden_size, kv_out, true, options));
  v_proj = register_module("v_proj", Qwen2Linear(layer_path(layer, "self_attn", "v_proj"),
                                                 c.hidden_size, kv_out, true, options));
  o_proj = register_module("o_proj", Qwen2Linear(layer_path(layer, "self_attn", "o_proj"),
                                                 q_out, c.hidden_size, false, options));
}

torch::Tensor Qwen2AttentionImpl::forward(const torch::Tensor& x, const Qwen2LayerInputs& in) {
  const int64_t B = x.size(0), T = x.size(1);
  if (T == 1 && in.cache != nullptr && !in.bias.defined() && !torch::GradMode::is_enabled() &&
      inference::supports(x) && in.cache->k[layer_].is_contiguous() &&
      in.cache->v[layer_].is_contiguous()) {
    // A decode step: RoPE, the cache write and the attention over the cache in one kernel
    // instead of ~25 small ops (inference_ops.h).
    torch::Tensor q = q_proj->forward(x, in.adapter);  // [B, 1, H*D]
    torch::Tensor k = k_proj->forward(x, in.adapter);  // [B, 1, KV*D]
    torch::Tensor v = v_proj->forward(x, in.adapter);  // [B, 1, KV*D]
    torch::Tensor attn = inference::decode_attention(q, k, v, in.cos, in.sin, in.cache->k[layer_],
                                                     in.cache->v[layer_], in.past, num_heads_);  // [B, 1, H*D]
    return o_proj->forward(attn, in.adapter);  // [B, 1, hidden]
  }
  torch::Tensor q = q_proj->forward(x, in.adapter).view({B, T, num_heads_, head_dim_});     // [B, T, H, D]
  torch::Tensor k = k_proj->forward(x, in.adapter).view({B, T, num_kv_heads_, head_dim_});  // [B, T, KV, D]
  torch::Tensor v = v_proj->forward(x, in.adapter).view({B, T, num_kv_heads_, head_dim_});  // [B, T, KV, D]
  q = fused::rope(q, in.cos, in.sin).transpose(1, 2);  // [B, H, T, D]
  k = fused::rope(k, in.cos, in.sin).transpose(1, 2);  // [B, KV, T, D]
  v = v.transpose(1, 2);                                // [B, KV, T, D]
  if (in.cache != nullptr) {
    // Write this call's k/v into the preallocated cache in place, then attend over its prefix.
    torch::Tensor& ck = in.cache->k[layer_];  // [B, KV, capacity, D]
    torch::Tensor& cv = in.cache->v[layer_];  // [B, KV, capacity, D]
    ck.narrow(2, in.past, T).copy_(k);
    cv.narrow(2, in.past, T).copy_(v);
    k = ck.narrow(2, 0, in.past + T);  // [B, KV, past+T, D]
    v = cv.narrow(2, 0, in.past + T);  // [B, KV, past+T, D]
  }
  // Training: one node that recomputes the probabilities in backward; without gradients the
  // same forward and nothing kept (fused_ops.h).
  torch::Tensor attn = fused::attention(q, k, v, in.bias);                  // [B, H, T, D]
  attn = attn.transpose(1, 2).reshape({B, T, num_heads_ * head_dim_});       // [B, T, H*D]
  return o_proj->forward(attn, in.adapter);                                  // [B, T, hidden]
}

Qwen2MLPImpl::Qwen2MLPImpl(const Qwen2Config& c, int64_t layer, const torch::TensorOptions& options) {
  gate_proj = register_module("gate_proj", Qwen2Linear(layer_path(layer, "mlp", "gate_proj"),
                                                       c.hidden_size, c.intermediate_size, false,
                                                       options));
  up_proj = register_module("up_proj", Qwen2Linear(layer_path(layer, "mlp", "up_proj"),
                                                   c.hidden_size, c.intermediate_size, false,
                                                   options));
  down_proj = register_module("down_proj", Qwen2Linear(layer_path(layer, "mlp", "down_proj"),
                                                       c.intermediate_size, c.hidden_size, false,
                                                       options));
}

torch::Tensor Qwen2MLPImpl::forward(const torch::Tensor& x, const lora::LoraAdapter* adapter) {
  torch::Tensor gate = gate_proj->forward(x, adapter);  // [B, T, inter]
  torch::Tensor up = up_proj->forward(x, adapter);      // [B, T, inter]
  // Keyed on grad mode like the RMSNorm above.
  torch::Tensor act = !torch::GradMode::is_enabled() && inference::supports(gate) &&
                              gate.scalar_type() == up.scalar_type()
                          ? inference::silu_mul(gate, up)
                          : fused::silu_mul(gate, up);  // [B, T, inter]
  return down_proj->forward(act, adapter);  // [B, T, hidden]
}

Qwen2DecoderLayerImpl::Qwen2DecoderLayerImpl(const Qwen2Config& c, int64_t layer,
                                             const torch::TensorOptions& options) {
  self_attn = register_module("self_attn", Qwen2Attention(c, layer, options));
  mlp = register_module("mlp", Qwen2MLP(c, layer, options));
  input_layernorm =
      register_module("input_layernorm", Qwen2RMSNorm(c.hidden_size, c.rms_norm_eps, options));
  post_attention_layernorm = register_module(
      "post_attention_layernorm", Qwen2RMSNorm(c.hidden_size, c.rms_norm_eps, options));
}

torch::Tensor Qwen2DecoderLayerImpl::forward(const torch::Tensor& h, const Qwen2LayerInputs& in) {
  torch::Tensor x = h + self_attn->forward(input_layernorm->forward(h), in);  // [B, T, hidden]
  return x + mlp->forward(post_attention_layernorm->forward(x), in.adapter);   // [B, T, hidden]
}

Qwen2ModelImpl::Qwen2ModelImpl(const Qwen2Config& c, const torch::TensorOptions& options) {
  embed_tokens =
      register_module("embed_tokens", Qwen2Embedding(c.vocab_size, c.hidden_size, options));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layer_list.emplace_back(c, i, options);
    layers->push_back(layer_list.back());
  }
  norm = register_module("norm", Qwen2RMSNorm(c.hidden_size, c.rms_norm_eps, options));
}

Qwen2ForCausalLMImpl::Qwen2ForCausalLMImpl(const Qwen2Config& config, torch::Dtype dtype,
                                           torch::Device device)
    : config_(config), dtype_(dtype), device_(device) {
  config_.validate();
  if (device.is_cpu()) tune_cpu_allocator();
  TORCH_CHECK(dtype == torch::kFloat32 || dtype == torch::kBFloat16 || dtype == torch::kFloat16,
              "Qwen2 base dtype must be float32, bfloat16 or float16, got ", dtype);
  const auto options = torch::TensorOptions().dtype(dtype).device(device);
  model_ = register_module("model", Qwen2Model(config_, options));
  if (!config_.tie_word_embeddings) {
    lm_head_ = register_module(
        "lm_head", Qwen2Linear("lm_head", config_.hidden_size, config_.vocab_size, false, options));
  }
  for (auto& layer : model_->layer_list) {
    for (Qwen2LinearImpl* p :
         {layer->self_attn->q_proj.get(), layer->self_attn->k_proj.get(),
          layer->self_attn->v_proj.get(), layer->self_attn->o_proj.get(),
          layer->mlp->gate_proj.get(), layer->mlp->up_proj.get(), layer->mlp->down_proj.get()}) {
      projections_.emplace_back(p->path(), p);
    }
  }
  // Before any weight is read in: decoding streams all weights once per token, and on huge
  // pages that stream runs ~40% faster here (weight_arena.h). Without the mapping (an address
  // space limit) the weights stay where libtorch put them: slower decoding, same results.
  if (device.is_cpu()) {
    try {
      move_parameters_to_weight_arena(*this, ArenaValues::kZeros);
    } catch (const std::runtime_error& e) {
      spdlog::warn("{}; model weights stay on libtorch's allocator", e.what());
    }
  }
}

std::vector<std::string> Qwen2ForCausalLMImpl::projection_paths(const std::string& short_name) const {
  std::vector<std::string> out;
  const std::string suffix = "." + short_name;
  for (const auto& [path, module] : projections_) {
    if (short_name.empty() ||
        (path.size() > suffix.size() &&
         path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0)) {
      out.push_back(path);
    }
  }
  return out;
}

const Qwen2LinearImpl* Qwen2ForCausalLMImpl::projection(const std::string& path) const {
  for (const auto& [p, module] : projections_) {
    if (p == path) return module;
  }
  return nullptr;
}

torch::Tensor Qwen2ForCausalLMImpl::lm_head_weight() const {
  return config_.tie_word_embeddings ? model_->embed_tokens->weight : lm_head_->weight;
}

KVCache Qwen2ForCausalLMImpl::make_cache(int64_t batch, int64_t capacity) const {
  TORCH_CHECK(batch > 0 && capacity > 0, "make_cache: batch and capacity must be > 0");
  KVCache cache;
  cache.capacity = capacity;
  const auto options = torch::TensorOptions().dtype(dtype_).device(device_);
  const std::vector<int64_t> shape = {batch, config_.num_key_value_heads, capacity,
                                      config_.head_dim()};
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    cache.k.push_back(torch::zeros(shape, options));  // [B, KV, capacity, D]
    cache.v.push_back(torch::zeros(shape, options));  // [B, KV, capacity, D]
  }
  return cache;
}

torch::Tensor Qwen2ForCausalLMImpl::forward_hidden(const torch::Tensor& input_ids,
                                                   const ForwardOptions& options) {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be [B, T], got ", input_ids.sizes());
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  TORCH_CHECK(T > 0, "input_ids must hold at least one position");
  KVCache* cache = options.cache;
  const int64_t past = cache != nullptr ? cache->length : 0;
  if (cache != nullptr) {
    TORCH_CHECK(static_cast<int64_t>(cache->k.size()) == config_.num_hidden_layers,
                "KV cache has ", cache->k.size(), " layers, model has ", config_.num_hidden_layers);
    TORCH_CHECK(cache->k[0].size(0) == B, "KV cache batch ", cache->k[0].size(0), " != ", B);
    TORCH_CHECK(past + T <= cache->capacity, "KV cache overflow: ", past, " + ", T, " > capacity ",
                cache->capacity);
  }
  torch::Tensor ids = input_ids.to(device_, torch::kInt64);  // [B, T]
  torch::Tensor mask;
  if (options.attention_mask.defined()) mask = options.attention_mask.to(device_);  // [B, past+T]

  torch::Tensor position_ids;
  if (options.position_ids.defined()) {
    position_ids = options.position_ids.to(device_, torch::kInt64);  // [B, T]
  } else if (mask.defined()) {
    // HF generate: cumsum(mask) - 1 over the whole (cache + new) mask, last T columns.
    torch::Tensor pos = mask.to(torch::kInt64).cumsum(-1).sub_(1).clamp_min_(0);  // [B, past+T]
    position_ids = pos.narrow(1, past, T);                                       // [B, T]
  } else {
    position_ids = torch::arange(past, past + T, ids.options()).unsqueeze(0).expand({B, T});  // [B, T]
  }

  Qwen2LayerInputs in;
  auto [cos, sin] = detail::rope_cos_sin(position_ids, config_.head_dim(), config_.rope_theta);
  in.cos = cos.to(dtype_);  // [B, T, D]
  in.sin = sin.to(dtype_);  // [B, T, D]
  // A single decode step with no padding sees every key: no bias needed.
  if (mask.defined() || T > 1) in.bias = detail::attention_bias(mask, B, past, T, device_);
  in.adapter = options.adapter;
  in.cache = cache;
  in.past = past;

  torch::Tensor h = model_->embed_tokens->forward(ids);  // [B, T, hidden]
  for (auto& layer : model_->layer_list) h = layer->forward(h, in);  // [B, T, hidden]
  if (cache != nullptr) cache->length = past + T;
  return model_->norm->forward(h);  // [B, T, hidden]
}

torch::Tensor Qwen2ForCausalLMImpl::logits(const torch::Tensor& hidden) {
  return torch::linear(hidden, lm_head_weight()).to(torch::kFloat32);  // [B, T, vocab] fp32
}

torch::Tensor Qwen2ForCausalLMImpl::forward(const torch::Tensor& input_ids,
                                            const ForwardOptions& options) {
  return logits(forward_hidden(input_ids, options));  // [B, T, vocab]
}

}  // namespace eztinker::model
