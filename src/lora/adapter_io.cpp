// PEFT adapter directory reader/writer (see adapter_io.h). Mirrors peft/utils/save_and_load.py:
// the state dict keys are the module paths under "base_model.model." with the adapter name
// ("default") removed, and adapter_config.json is LoraConfig.to_dict().
#include "lora/adapter_io.h"

#include "model/safetensors.h"

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

namespace eztinker::lora {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPeftPrefix = "base_model.model.";

[[noreturn]] void fail(const std::string& source, const std::string& message) {
  throw std::runtime_error(source + ": " + message);
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    out << (i ? ", " : "") << shape[i];
  }
  out << "]";
  return out.str();
}

bool is_known_target(const std::string& name) {
  return std::find(kAllLinearTargets.begin(), kAllLinearTargets.end(), name) !=
         kAllLinearTargets.end();
}

}  // namespace

std::string peft_key(const std::string& module_path, bool lora_a) {
  return std::string(kPeftPrefix) + module_path + (lora_a ? ".lora_A.weight" : ".lora_B.weight");
}

nlohmann::json adapter_config_to_json(const LoraConfig& config,
                                      const std::string& base_model_name_or_path) {
  // Field set of PEFT 0.x LoraConfig.to_dict() that PeftModel.from_pretrained needs; the
  // defaults of the fields we do not use are written so PEFT sees an explicit plain LoRA.
  nlohmann::json j;
  j["peft_type"] = "LORA";
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] = base_model_name_or_path;
  j["r"] = config.r;
  j["lora_alpha"] = config.lora_alpha;
  j["lora_dropout"] = config.lora_dropout;
  j["target_modules"] = config.target_modules;
  j["use_rslora"] = config.use_rslora;
  j["use_dora"] = false;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["modules_to_save"] = nullptr;
  j["layers_to_transform"] = nullptr;
  j["layers_pattern"] = nullptr;
  j["rank_pattern"] = nlohmann::json::object();
  j["alpha_pattern"] = nlohmann::json::object();
  j["revision"] = nullptr;
  return j;
}

LoraConfig adapter_config_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) {
    fail(source, "adapter_config.json is not a JSON object");
  }
  LoraConfig config;
  if (j.contains("peft_type") && j["peft_type"] != "LORA") {
    fail(source, "peft_type is " + j["peft_type"].dump() + ", only \"LORA\" is supported");
  }
  if (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<int64_t>() < 1) {
    fail(source, "field \"r\" must be an integer >= 1");
  }
  config.r = j["r"].get<int64_t>();
  config.lora_alpha = j.value("lora_alpha", static_cast<double>(config.r));
  config.lora_dropout = j.value("lora_dropout", 0.0);
  config.use_rslora = j.value("use_rslora", false);
  if (j.value("use_dora", false)) {
    fail(source, "use_dora is true; DoRA adapters are not supported");
  }
  if (j.value("fan_in_fan_out", false)) {
    fail(source, "fan_in_fan_out is true; Qwen2 projections are plain Linear layers");
  }
  if (j.contains("bias") && j["bias"].is_string() && j["bias"] != "none") {
    fail(source, "bias is " + j["bias"].dump() + "; only \"none\" is supported");
  }
  for (const char* pattern : {"rank_pattern", "alpha_pattern"}) {
    if (j.contains(pattern) && j[pattern].is_object() && !j[pattern].empty()) {
      fail(source, std::string(pattern) + " is not empty; per-module ranks are not supported");
    }
  }
  if (j.contains("modules_to_save") && !j["modules_to_save"].is_null() &&
      !j["modules_to_save"].empty()) {
    fail(source, "modules_to_save is set; only LoRA matrices can be loaded");
  }
  const auto tm = j.value("target_modules", nlohmann::json("all-linear"));
  config.target_modules.clear();
  if (tm.is_string()) {
    const auto s = tm.get<std::string>();
    if (s == "all-linear") {
      config.target_modules = kAllLinearTargets;
    } else {
      // PEFT's regex form: keep the projections whose name the pattern mentions; the file's
      // keys decide which modules exist.
      for (const auto& name : kAllLinearTargets) {
        if (s.find(name) != std::string::npos) {
          config.target_modules.push_back(name);
        }
      }
    }
  } else if (tm.is_array()) {
    for (const auto& entry : tm) {
      auto name = entry.get<std::string>();
      name = name.substr(name.rfind('.') == std::string::npos ? 0 : name.rfind('.') + 1);
      if (!is_known_target(name)) {
        fail(source, "target_modules entry \"" + entry.get<std::string>() +
                         "\" is not a Qwen2 projection (expected one of q_proj, k_proj, v_proj, "
                         "o_proj, gate_proj, up_proj, down_proj)");
      }
      if (std::find(config.target_modules.begin(), config.target_modules.end(), name) ==
          config.target_modules.end()) {
        config.target_modules.push_back(name);
      }
    }
  }
  if (config.target_modules.empty()) {
    fail(source, "target_modules names no Qwen2 projection");
  }
  return config;
}

void save_adapter(const fs::path& dir, const LoraAdapter& adapter,
                  const std::string& base_model_name_or_path) {
  fs::create_directories(dir);
  model::NamedTensors tensors;
  for (const auto& [path, pair] : adapter.modules) {
    tensors.emplace_back(peft_key(path, true), pair.a.detach());   // [r, in]
    tensors.emplace_back(peft_key(path, false), pair.b.detach());  // [out, r]
  }
  model::save_safetensors(dir / kAdapterWeightsFile, tensors, {{"format", "pt"}});
  std::ofstream out(dir / kAdapterConfigFile);
  out << adapter_config_to_json(adapter.config, base_model_name_or_path).dump(2) << "\n";
  out.close();
  if (!out) {
    throw std::runtime_error("cannot write " + (dir / kAdapterConfigFile).string());
  }
}

std::pair<int64_t, int64_t> qwen2_projection_shape(const model::Qwen2Config& config,
                                                   const std::string& short_name) {
  const int64_t h = config.hidden_size;
  const int64_t kv = config.num_key_value_heads * config.head_dim();
  const int64_t inter = config.intermediate_size;
  if (short_name == "q_proj" || short_name == "o_proj") return {h, h};
  if (short_name == "k_proj" || short_name == "v_proj") return {kv, h};
  if (short_name == "gate_proj" || short_name == "up_proj") return {inter, h};
  if (short_name == "down_proj") return {h, inter};
  throw std::runtime_error("not a Qwen2 projection: " + short_name);
}

bool is_adapter_dir(const fs::path& dir) { return fs::is_regular_file(dir / kAdapterConfigFile); }

LoraAdapter load_adapter(const fs::path& dir, const model::Qwen2Config& config,
                         torch::Device device) {
  const std::string source = dir.string();
  if (!fs::is_regular_file(dir / kAdapterConfigFile)) {
    fail(source, "no adapter_config.json (not a PEFT adapter directory)");
  }
  if (!fs::is_regular_file(dir / kAdapterWeightsFile)) {
    if (fs::exists(dir / "adapter_model.bin")) {
      fail(source, "adapter_model.bin (pickle) is not supported; convert it with "
                   "PeftModel.save_pretrained(..., safe_serialization=True)");
    }
    fail(source, "no adapter_model.safetensors");
  }
  nlohmann::json j;
  {
    std::ifstream in(dir / kAdapterConfigFile);
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail(source + "/adapter_config.json", std::string("invalid JSON: ") + e.what());
    }
  }
  LoraAdapter adapter;
  adapter.config = adapter_config_from_json(j, source + "/adapter_config.json");
  auto file = model::SafetensorsFile::open(dir / kAdapterWeightsFile);
  // key -> (module path, is A). Accepts ".lora_A.weight" and ".lora_A.<adapter>.weight".
  static const std::regex kKey(
      R"(^base_model\.model\.(model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+))\.lora_([AB])(\.[A-Za-z0-9_\-]+)?\.weight$)");
  std::map<std::string, LoraPair> pairs;
  std::set<std::string> short_names;
  for (const auto& key : file->names()) {
    std::smatch m;
    if (!std::regex_match(key, m, kKey)) {
      fail(source, "unexpected tensor \"" + key + "\" (expected base_model.model.model.layers.N."
                   "<self_attn|mlp>.<proj>.lora_A.weight / lora_B.weight)");
    }
    const std::string path = m[1];
    const int64_t layer = std::stoll(m[2]);
    const std::string group = m[3];
    const std::string name = m[4];
    const bool is_a = m[5] == "A";
    const bool attn = name == "q_proj" || name == "k_proj" || name == "v_proj" || name == "o_proj";
    if (!is_known_target(name) || (group == "self_attn") != attn) {
      fail(source, "tensor \"" + key + "\" does not name a Qwen2 projection");
    }
    if (layer >= config.num_hidden_layers) {
      fail(source, "tensor \"" + key + "\" names layer " + std::to_string(layer) +
                       " but the model has " + std::to_string(config.num_hidden_layers));
    }
    const auto [out_dim, in_dim] = qwen2_projection_shape(config, name);
    const std::vector<int64_t> expected =
        is_a ? std::vector<int64_t>{adapter.config.r, in_dim}
             : std::vector<int64_t>{out_dim, adapter.config.r};
    const auto& info = file->info(key);
    if (info.shape != expected) {
      fail(source, "tensor \"" + key + "\" has shape " + shape_string(info.shape) +
                       ", expected " + shape_string(expected) + " (r=" +
                       std::to_string(adapter.config.r) + ")");
    }
    torch::NoGradGuard no_grad;
    auto t = file->get(key).to(device, torch::kFloat32).clone().requires_grad_(true);  // [r,in]|[out,r]
    (is_a ? pairs[path].a : pairs[path].b) = t;
    short_names.insert(name);
  }
  for (const auto& [path, pair] : pairs) {
    if (!pair.a.defined() || !pair.b.defined()) {
      fail(source, "module " + path + " has only one of lora_A / lora_B");
    }
  }
  if (pairs.empty()) {
    fail(source, "adapter_model.safetensors holds no LoRA tensors");
  }
  // The file decides which projections exist; keep the config's order for the names found.
  std::vector<std::string> targets;
  for (const auto& name : kAllLinearTargets) {
    if (short_names.count(name)) {
      targets.push_back(name);
    }
  }
  adapter.config.target_modules = targets;
  adapter.modules = std::move(pairs);
  return adapter;
}

}  // namespace eztinker::lora
