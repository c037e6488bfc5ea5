// Loading a Hugging Face model directory (config.json + model.safetensors or a sharded index)
// into Qwen2ForCausalLM, and saving one back. Loading is strict (llm.c / ScaleLLM): every
// parameter must be present with its exact shape; a checkpoint key that is no parameter is an
// error unless it is on the allow-list below. Runs under NoGradGuard (never InferenceMode, so the
// weights stay usable in autograd graphs). Dtypes convert on load (e.g. BF16 file -> fp32 model).
#pragma once

#include "model/qwen2.h"
#include "model/safetensors.h"

#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <string>

namespace eztinker::model {

// Checkpoint keys that are accepted and ignored:
//   model.layers.N.self_attn.rotary_emb.inv_freq  (old transformers saved the RoPE buffer;
//                                                  it is recomputed from rope_theta)
//   lm_head.weight when tie_word_embeddings is true (some exporters write the tied copy)
bool is_ignored_checkpoint_key(const std::string& key, const Qwen2Config& config);

// Copies every parameter of `model` from `checkpoint`, converting dtype and device. Throws
// std::runtime_error naming the file, the key and both shapes on any mismatch; a missing key
// lists up to 5 of the missing names and the total.
void load_weights(Qwen2ForCausalLMImpl& model, const SafetensorsCheckpoint& checkpoint);

// Reads dir/config.json, builds the model in `dtype` on `device` and loads its weights. Peak
// memory is the parameters plus at most one read chunk: the files are read with pread (never
// through the mapping, whose touched pages would count in RSS) and closed before returning, and
// the free heap is trimmed. Logs RSS per stage at debug level (logger `model`, else default).
Qwen2ForCausalLM load_model(const std::filesystem::path& dir, torch::Dtype dtype,
                            torch::Device device);

// The model's parameters under their HF names (module order; lm_head absent when tied),
// optionally converted to `dtype`.
NamedTensors model_state(const Qwen2ForCausalLMImpl& model,
                         std::optional<torch::Dtype> dtype = std::nullopt);

// Writes dir/config.json (torch_dtype = the saved dtype) and the weights (model.safetensors, or
// shards + index above max_shard_bytes) as a directory load_model and HF transformers read.
void save_model(const Qwen2ForCausalLMImpl& model,
                const std::filesystem::path& dir,
                std::optional<torch::Dtype> dtype = std::nullopt,
                int64_t max_shard_bytes = int64_t{5} << 30);

// Writes `tensors` + config as a model directory (used by merged export, whose tensors are
// new merged copies rather than the shared base's parameters).
void save_model_tensors(const Qwen2Config& config,
                        const NamedTensors& tensors,
                        const std::filesystem::path& dir,
                        int64_t max_shard_bytes = int64_t{5} << 30);

}  // namespace eztinker::model
