// One run's LoRA adapter: PEFT semantics (lora_A [r,in] Kaiming-uniform a=sqrt(5), lora_B [out,r]
// zeros, scaling alpha/r or alpha/sqrt(r) with rsLoRA), kept OUTSIDE the frozen base model so
// that many runs share one base. The model's forward takes `const LoraAdapter*` and adds
// `B(A(dropout(x))) * scaling` to every targeted projection. Mirrors PEFT's LoraLayer.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace eztinker::model {
class Qwen2ForCausalLMImpl;
}

namespace eztinker::lora {

// Short names of the Qwen2 projections LoRA may target ("all-linear" = all seven; never lm_head).
inline const std::vector<std::string> kAllLinearTargets = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

struct LoraConfig {
  int64_t r = 8;                     // rank; >= 1
  double lora_alpha = 16.0;          // scaling numerator; >= 1 on the wire
  double lora_dropout = 0.05;        // dropout on the LoRA input during training only; [0, 1)
  std::vector<std::string> target_modules = kAllLinearTargets;  // short names, expanded
  bool use_rslora = false;           // scaling = alpha / sqrt(r) instead of alpha / r
  double scaling() const;
};

// The trainable pair for one projection. a: [r, in], b: [out, r], both fp32 (or the LoRA dtype),
// requires_grad = true, on the base model's device.
struct LoraPair {
  torch::Tensor a;
  torch::Tensor b;
};

// Holds the adapter's tensors keyed by the HF module path of the projection, e.g.
// "model.layers.3.self_attn.q_proj". The PEFT key is "base_model.model." + path + ".lora_A.weight".
// Not thread-safe: a run's jobs execute one at a time.
class LoraAdapter {
 public:
  LoraConfig config;
  std::map<std::string, LoraPair> modules;
  bool training = false;  // dropout active only while training (forward_backward)

  // Returns nullptr when `module_path` is not targeted.
  const LoraPair* find(const std::string& module_path) const;
  // All trainable tensors in a fixed order (module path order, A then B).
  std::vector<torch::Tensor> parameters() const;
  int64_t num_parameters() const;
};

// A fresh adapter for `model` with PEFT's init: lora_A [r, in] Kaiming-uniform with a = sqrt(5)
// (U(-1/sqrt(in), 1/sqrt(in))), lora_B [out, r] zeros; fp32, requires_grad, on the model's
// device. Draws from a CPU generator seeded with `seed` in layer then kAllLinearTargets order, so
// the init is the same on every device. target_modules holds short names ("q_proj", ...) or
// "all-linear"; an unknown name throws std::invalid_argument listing the valid ones.
LoraAdapter create_lora_adapter(const LoraConfig& config,
                                const model::Qwen2ForCausalLMImpl& model,
                                uint64_t seed);

// Expands "all-linear" and checks names; returns short names in kAllLinearTargets order.
std::vector<std::string> expand_target_modules(const std::vector<std::string>& target_modules);

namespace detail {
// x: [..., in] (any float dtype; widened to the LoRA dtype), a: [r, in], b: [out, r] ->
// (x a^T) b^T * scaling: [..., out] in the LoRA dtype (fp32). One autograd node that saves x
// as given (no fp32 copy of a bf16 activation) and computes d x, d a, d b.
torch::Tensor lora_delta(const torch::Tensor& x,
                         const torch::Tensor& a,
                         const torch::Tensor& b,
                         double scaling);

// Inverted dropout on the LoRA input: x * mask / (1 - p), mask ~ Bernoulli(1 - p) per element,
// as torch.nn.Dropout in training. On CPU the mask comes from a counter-based splitmix64 stream
// (parallel, ~1 ns/element) seeded by one draw from the default CPU generator, because libtorch
// 1.13's bernoulli_ is a serial mt19937 loop without MKL: it took 20% of a LoRA training step
// on Qwen2-0.5B shapes. Deterministic under torch::manual_seed. Other devices use
// torch::dropout. p == 0 returns x.
torch::Tensor dropout(const torch::Tensor& x, double p);
}  // namespace detail

}  // namespace eztinker::lora
