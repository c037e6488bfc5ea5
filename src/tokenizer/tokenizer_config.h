// The parts of a HF tokenizer directory shared by every tokenizer kind: tokenizer_config.json
// (eos/pad tokens, added_tokens_decoder, chat template), special_tokens_map.json,
// added_tokens.json, plus small file/JSON helpers whose errors name the file.
#pragma once

#include "eztinker/tokenizer.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace eztinker::tokenizer::detail {

// An added (usually special) token with HF's flags.
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = true;
  bool single_word = false;
};

struct TokenizerConfig {
  std::optional<std::string> eos_token;
  std::optional<std::string> pad_token;
  std::vector<AddedToken> added_tokens;  // added_tokens_decoder, then added_tokens.json extras
  ChatTemplate chat_template = ChatTemplate::kQwen2;
  std::optional<std::string> tokenizer_class;
};

std::string read_text_file(const std::filesystem::path& path);
// Parses a JSON file; throws std::runtime_error "<path>: invalid JSON: ..." on error.
nlohmann::json read_json_file(const std::filesystem::path& path);

// Reads tokenizer_config.json / special_tokens_map.json / added_tokens.json /
// chat_template.jinja in dir when present (all optional).
TokenizerConfig read_tokenizer_config(const std::filesystem::path& dir);

// A token field that is a string or {"content": ...}; nullopt for null/absent.
std::optional<std::string> token_field(const nlohmann::json& j, const char* key);

AddedToken parse_added_token(const nlohmann::json& j, int32_t id, bool default_special);

}  // namespace eztinker::tokenizer::detail
