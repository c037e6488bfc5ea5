// Qwen2Config: the fields of a Hugging Face Qwen2 `config.json` that the model needs, with the
// defaults of HF transformers `configuration_qwen2.py` (Qwen2Config) where a field is absent.
// Parsing is strict about what would change the numerics: hidden_act must be "silu", no
// rope_scaling, no sliding window, consistent head counts; violations throw std::runtime_error
// naming the file and the field.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace eztinker::model {

struct Qwen2Config {
  int64_t vocab_size = 151936;               // rows of embed_tokens / lm_head
  int64_t hidden_size = 4096;                // model width
  int64_t intermediate_size = 22016;         // MLP width (gate/up out, down in)
  int64_t num_hidden_layers = 32;            // decoder layers
  int64_t num_attention_heads = 32;          // query heads; hidden_size % heads == 0
  int64_t num_key_value_heads = 32;          // GQA kv heads; absent = num_attention_heads
  int64_t max_position_embeddings = 32768;   // longest sequence the positions are meant for
  double rope_theta = 10000.0;               // RoPE base
  double rms_norm_eps = 1e-6;                // RMSNorm epsilon
  double initializer_range = 0.02;           // std of the normal init (random models only)
  bool tie_word_embeddings = false;          // lm_head shares embed_tokens.weight when true
  std::string hidden_act = "silu";           // only "silu" is supported
  std::string torch_dtype;                   // checkpoint dtype as written ("bfloat16"), "" = absent
  std::optional<int64_t> bos_token_id;       // absent = nullopt
  std::vector<int64_t> eos_token_ids;        // "eos_token_id": int or list; absent = empty

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  // Query heads per kv head (the GQA group size).
  int64_t num_kv_groups() const { return num_attention_heads / num_key_value_heads; }
  // Throws std::runtime_error (prefixed by `source`) when the numbers are inconsistent.
  void validate(const std::string& source = "config") const;
};

// Parses a config.json object. `source` (usually the file path) prefixes every error message.
// Unknown fields are ignored; model_type, when present, must be "qwen2".
Qwen2Config qwen2_config_from_json(const nlohmann::json& j, const std::string& source = "config");
// Reads `path`, or `path`/config.json when `path` is a directory.
Qwen2Config load_qwen2_config(const std::filesystem::path& path);
// HF-compatible config.json (architectures, model_type and every field above).
nlohmann::json to_json(const Qwen2Config& config);

}  // namespace eztinker::model
