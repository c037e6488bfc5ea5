// Qwen2Config <-> config.json. Defaults are those of HF transformers Qwen2Config; every error
// names the file and the field so a wrong checkpoint is diagnosed from the message alone.
#include "model/qwen2_config.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace eztinker::model {
namespace {

[[noreturn]] void fail(const std::string& source, const std::string& message) {
  throw std::runtime_error(source + ": " + message);
}

int64_t get_int(const nlohmann::json& j, const char* key, int64_t fallback,
                const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) {
    fail(source, std::string("`") + key + "` must be an integer, got " + it->dump());
  }
  return it->get<int64_t>();
}

double get_double(const nlohmann::json& j, const char* key, double fallback,
                  const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) {
    fail(source, std::string("`") + key + "` must be a number, got " + it->dump());
  }
  return it->get<double>();
}

bool get_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    fail(source, std::string("`") + key + "` must be true or false, got " + it->dump());
  }
  return it->get<bool>();
}

std::string get_string(const nlohmann::json& j, const char* key, const std::string& fallback,
                       const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_string()) {
    fail(source, std::string("`") + key + "` must be a string, got " + it->dump());
  }
  return it->get<std::string>();
}

}  // namespace

void Qwen2Config::validate(const std::string& source) const {
  auto positive = [&](const char* name, int64_t v) {
    if (v <= 0) fail(source, std::string("`") + name + "` must be > 0, got " + std::to_string(v));
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("max_position_embeddings", max_position_embeddings);
  if (hidden_size % num_attention_heads != 0) {
    fail(source, "`hidden_size` " + std::to_string(hidden_size) +
                     " is not divisible by `num_attention_heads` " +
                     std::to_string(num_attention_heads));
  }
  if (head_dim() % 2 != 0) {
    fail(source, "head_dim " + std::to_string(head_dim()) + " must be even for RoPE");
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    fail(source, "`num_attention_heads` " + std::to_string(num_attention_heads) +
                     " is not a multiple of `num_key_value_heads` " +
                     std::to_string(num_key_value_heads));
  }
  if (!(rope_theta > 0.0)) fail(source, "`rope_theta` must be > 0");
  if (!(rms_norm_eps > 0.0)) fail(source, "`rms_norm_eps` must be > 0");
  if (hidden_act != "silu") {
    fail(source, "`hidden_act` is \"" + hidden_act + "\"; only \"silu\" (Qwen2) is supported");
  }
}

Qwen2Config qwen2_config_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail(source, "expected a JSON object");
  const std::string model_type = get_string(j, "model_type", "qwen2", source);
  if (model_type != "qwen2") {
    fail(source, "`model_type` is \"" + model_type + "\"; only \"qwen2\" is supported");
  }
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    fail(source, "`rope_scaling` " + it->dump() + " is not supported (expected null)");
  }
  if (get_bool(j, "use_sliding_window", false, source)) {
    fail(source, "`use_sliding_window` = true is not supported");
  }

  Qwen2Config c;
  c.vocab_size = get_int(j, "vocab_size", c.vocab_size, source);
  c.hidden_size = get_int(j, "hidden_size", c.hidden_size, source);
  c.intermediate_size = get_int(j, "intermediate_size", c.intermediate_size, source);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", c.num_hidden_layers, source);
  c.num_attention_heads = get_int(j, "num_attention_heads", c.num_attention_heads, source);
  c.num_key_value_heads = get_int(j, "num_key_value_heads", c.num_attention_heads, source);
  c.max_position_embeddings =
      get_int(j, "max_position_embeddings", c.max_position_embeddings, source);
  c.rope_theta = get_double(j, "rope_theta", c.rope_theta, source);
  c.rms_norm_eps = get_double(j, "rms_norm_eps", c.rms_norm_eps, source);
  c.initializer_range = get_double(j, "initializer_range", c.initializer_range, source);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", c.tie_word_embeddings, source);
  c.hidden_act = get_string(j, "hidden_act", c.hidden_act, source);
  c.torch_dtype = get_string(j, "torch_dtype", "", source);
  if (auto it = j.find("bos_token_id"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) fail(source, "`bos_token_id` must be an integer");
    c.bos_token_id = it->get<int64_t>();
  }
  if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      c.eos_token_ids.push_back(it->get<int64_t>());
    } else if (it->is_array()) {
      for (const auto& e : *it) {
        if (!e.is_number_integer()) fail(source, "`eos_token_id` entries must be integers");
        c.eos_token_ids.push_back(e.get<int64_t>());
      }
    } else {
      fail(source, "`eos_token_id` must be an integer or a list of integers");
    }
  }
  c.validate(source);
  return c;
}

Qwen2Config load_qwen2_config(const std::filesystem::path& path) {
  const std::filesystem::path file =
      std::filesystem::is_directory(path) ? path / "config.json" : path;
  std::ifstream in(file);
  if (!in) throw std::runtime_error(file.string() + ": cannot open (missing config.json?)");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(file.string() + ": invalid JSON: " + e.what());
  }
  return qwen2_config_from_json(j, file.string());
}

nlohmann::json to_json(const Qwen2Config& c) {
  nlohmann::json j = {
      {"architectures", {"Qwen2ForCausalLM"}},
      {"model_type", "qwen2"},
      {"attention_dropout", 0.0},
      {"hidden_act", c.hidden_act},
      {"hidden_size", c.hidden_size},
      {"initializer_range", c.initializer_range},
      {"intermediate_size", c.intermediate_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"max_window_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_key_value_heads", c.num_key_value_heads},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_scaling", nullptr},
      {"rope_theta", c.rope_theta},
      {"sliding_window", c.max_position_embeddings},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"use_cache", true},
      {"use_sliding_window", false},
      {"vocab_size", c.vocab_size},
  };
  if (!c.torch_dtype.empty()) j["torch_dtype"] = c.torch_dtype;
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_ids.size() == 1) {
    j["eos_token_id"] = c.eos_token_ids[0];
  } else if (!c.eos_token_ids.empty()) {
    j["eos_token_id"] = c.eos_token_ids;
  }
  return j;
}

}  // namespace eztinker::model
