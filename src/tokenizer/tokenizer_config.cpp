// tokenizer_config.json and friends (see tokenizer_config.h). Mirrors what transformers'
// PreTrainedTokenizerBase reads: eos_token/pad_token may be strings or AddedToken dicts,
// added_tokens_decoder maps id strings to AddedToken dicts, added_tokens.json maps content to id.
#include "tokenizer/tokenizer_config.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace eztinker::tokenizer::detail {

namespace fs = std::filesystem;

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw std::runtime_error(path.string() + ": read error");
  return ss.str();
}

nlohmann::json read_json_file(const fs::path& path) {
  const std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path.string() + ": invalid JSON: " + e.what());
  }
}

std::optional<std::string> token_field(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return std::nullopt;
  const auto& v = j.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) {
    return v.at("content").get<std::string>();
  }
  return std::nullopt;
}

AddedToken parse_added_token(const nlohmann::json& j, int32_t id, bool default_special) {
  AddedToken t;
  t.id = id;
  t.content = j.at("content").get<std::string>();
  t.lstrip = j.value("lstrip", false);
  t.rstrip = j.value("rstrip", false);
  t.normalized = j.value("normalized", false);
  t.special = j.value("special", default_special);
  t.single_word = j.value("single_word", false);
  return t;
}

namespace {
ChatTemplate detect_template(const std::string& text) {
  return text.find("You are Qwen, created by Alibaba Cloud") != std::string::npos
             ? ChatTemplate::kQwen25
             : ChatTemplate::kQwen2;
}
}  // namespace

TokenizerConfig read_tokenizer_config(const fs::path& dir) {
  TokenizerConfig cfg;
  const fs::path config_path = dir / "tokenizer_config.json";
  std::string template_text;
  if (fs::exists(config_path)) {
    const nlohmann::json j = read_json_file(config_path);
    if (!j.is_object()) throw std::runtime_error(config_path.string() + ": expected a JSON object");
    try {
      cfg.eos_token = token_field(j, "eos_token");
      cfg.pad_token = token_field(j, "pad_token");
      if (j.contains("tokenizer_class") && j["tokenizer_class"].is_string()) {
        cfg.tokenizer_class = j["tokenizer_class"].get<std::string>();
      }
      if (j.contains("added_tokens_decoder") && j["added_tokens_decoder"].is_object()) {
        for (const auto& [key, value] : j["added_tokens_decoder"].items()) {
          cfg.added_tokens.push_back(parse_added_token(value, std::stoi(key), true));
        }
      }
      if (j.contains("chat_template")) {
        const auto& ct = j["chat_template"];
        if (ct.is_string()) {
          template_text = ct.get<std::string>();
        } else if (ct.is_array()) {  // [{"name": "default", "template": "..."}, ...]
          for (const auto& entry : ct) template_text += entry.value("template", "");
        }
      }
    } catch (const std::exception& e) {
      throw std::runtime_error(config_path.string() + ": bad field: " + e.what());
    }
  }
  const fs::path jinja_path = dir / "chat_template.jinja";
  if (template_text.empty() && fs::exists(jinja_path)) template_text = read_text_file(jinja_path);
  cfg.chat_template = detect_template(template_text);

  const fs::path map_path = dir / "special_tokens_map.json";
  if ((!cfg.eos_token || !cfg.pad_token) && fs::exists(map_path)) {
    const nlohmann::json j = read_json_file(map_path);
    if (!cfg.eos_token) cfg.eos_token = token_field(j, "eos_token");
    if (!cfg.pad_token) cfg.pad_token = token_field(j, "pad_token");
  }

  const fs::path added_path = dir / "added_tokens.json";
  if (fs::exists(added_path)) {
    const nlohmann::json j = read_json_file(added_path);
    if (!j.is_object()) throw std::runtime_error(added_path.string() + ": expected {content: id}");
    for (const auto& [content, id] : j.items()) {
      if (!id.is_number_integer()) {
        throw std::runtime_error(added_path.string() + ": id of \"" + content +
                                 "\" is not an integer");
      }
      bool known = false;
      for (const auto& t : cfg.added_tokens) known = known || t.content == content;
      if (known) continue;
      AddedToken t;
      t.id = id.get<int32_t>();
      t.content = content;
      // note: added_tokens.json carries no flags; transformers treats these as special when
      // they are listed as special tokens, which is the case for every Qwen entry.
      t.special = true;
      cfg.added_tokens.push_back(t);
    }
  }
  return cfg;
}

}  // namespace eztinker::tokenizer::detail
