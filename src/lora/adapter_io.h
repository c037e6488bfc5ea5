// PEFT-compatible adapter files: `adapter_config.json` (PEFT LoraConfig field names) and
// `adapter_model.safetensors` with keys `base_model.model.<module path>.lora_A.weight` [r, in]
// and `.lora_B.weight` [out, r], exactly what `PeftModel.save_pretrained` writes for a Qwen2
// CausalLM and what `PeftModel.from_pretrained` reads. Import accepts any PEFT LoRA directory for
// a Qwen2 model (list or "all-linear" target_modules, partial layers, `.default` adapter-name
// infixes, fp16/bf16 tensors) and rejects what would change the numerics (DoRA, rank/alpha
// patterns, fan_in_fan_out, trained biases, modules_to_save) with a message naming the field.
#pragma once

#include "lora/lora_adapter.h"
#include "model/qwen2_config.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <string>

namespace eztinker::lora {

inline constexpr const char* kAdapterConfigFile = "adapter_config.json";
inline constexpr const char* kAdapterWeightsFile = "adapter_model.safetensors";

// The PEFT key of one LoRA matrix: "base_model.model." + module_path + ".lora_A.weight".
std::string peft_key(const std::string& module_path, bool lora_a);

// adapter_config.json content (peft_type LORA, task_type CAUSAL_LM, r, lora_alpha, ...).
nlohmann::json adapter_config_to_json(const LoraConfig& config,
                                      const std::string& base_model_name_or_path);
// Parses PEFT's adapter_config.json; `source` prefixes every error message. "all-linear" and
// lists of short or dotted names are accepted (the last dotted component is kept).
LoraConfig adapter_config_from_json(const nlohmann::json& j, const std::string& source);

// Writes adapter_config.json + adapter_model.safetensors into `dir` (created if needed). Not
// atomic by itself; the engine writes into a temp dir and renames.
void save_adapter(const std::filesystem::path& dir,
                  const LoraAdapter& adapter,
                  const std::string& base_model_name_or_path);

// The [out, in] shape of a Qwen2 projection `model.layers.N.<self_attn|mlp>.<name>`.
std::pair<int64_t, int64_t> qwen2_projection_shape(const model::Qwen2Config& config,
                                                   const std::string& short_name);

// Loads a PEFT LoRA directory for a model with `config`. Tensors become fp32 (requires_grad
// true) on `device`. Every key must name a Qwen2 projection of this config with matching
// shapes; the adapter's modules are exactly the pairs present in the file. Throws
// std::runtime_error naming the directory, key and both shapes on mismatch.
LoraAdapter load_adapter(const std::filesystem::path& dir,
                         const model::Qwen2Config& config,
                         torch::Device device);

// True when `dir` looks like an adapter directory (has adapter_config.json).
bool is_adapter_dir(const std::filesystem::path& dir);

}  // namespace eztinker::lora
