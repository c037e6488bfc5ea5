// ShareGPT loader (see include/eztinker/datasets/sharegpt.h): record reading (.json list or
// object, .jsonl), per-conversation validation with conversation/turn/field errors, dialect
// counting, Qwen2 ChatML rendering and assistant-only training weights via the tokenizer.
// Mirrors FastChat's conversation checks (roles alternate, human first) and the Python
// EZTinker ShareGPTDataset's stats.
#include "eztinker/datasets/sharegpt.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stdexcept>

#include "io_util.h"

namespace eztinker::datasets {
namespace {

using nlohmann::json;
using tokenizer::ChatMessage;

// One record of the file before validation.
struct Record {
  std::optional<json> value;
  std::string parse_error;  // set when the line was not JSON (jsonl only)
  size_t line = 0;          // 1-based line for jsonl, 0 for .json
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// ShareGPT and OpenAI role names → system/user/assistant; nullopt for anything else (tool,
// function_call, observation: not supported by the plain chat template).
std::optional<std::string> normalize_role(std::string_view role) {
  std::string r = lower(role);
  if (r == "human" || r == "user") return "user";
  if (r == "gpt" || r == "assistant" || r == "chatgpt" || r == "bard" || r == "bing" ||
      r == "model") {
    return "assistant";
  }
  if (r == "system") return "system";
  return std::nullopt;
}

bool is_top_level_conversation(const json& j) {
  return j.is_object() && (j.contains("conversations") || j.contains("messages"));
}

std::vector<Record> read_records(std::string_view text, std::string_view source, bool jsonl) {
  std::vector<Record> records;
  if (jsonl) {
    size_t line_no = 0;
    for (std::string_view line : detail::split_lines(text)) {
      ++line_no;
      if (detail::trim(line).empty()) continue;
      Record r;
      r.line = line_no;
      try {
        r.value = json::parse(line);
      } catch (const json::parse_error& e) {
        r.parse_error = std::string("invalid JSON (") + e.what() + ")";
      }
      records.push_back(std::move(r));
    }
    return records;
  }
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    // A broken .json document cannot be split into records, so even non-strict mode stops.
    throw DatasetError(std::string(source) + ": invalid JSON (" + e.what() + ")");
  }
  if (doc.is_array()) {
    for (auto& item : doc) records.push_back({std::move(item), "", 0});
  } else if (is_top_level_conversation(doc)) {
    records.push_back({std::move(doc), "", 0});
  } else {
    throw DatasetError(std::string(source) +
                       ": expected a list of conversations or one object with `conversations` "
                       "or `messages`");
  }
  return records;
}

std::string record_id(const json& j, size_t index) {
  if (j.is_object()) {
    auto it = j.find("id");
    if (it != j.end()) {
      if (it->is_string()) return it->get<std::string>();
      if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
    }
  }
  return "conversation_" + std::to_string(index);
}

// Validates one record into `out`. Returns "" when valid, else the reason ("turn 2: ...").
std::string validate(const json& j, ShareGPTConversation& out) {
  if (!j.is_object()) return "expected an object";
  const char* list_key = j.contains("conversations") ? "conversations" : "messages";
  auto it = j.find(list_key);
  if (it == j.end()) return "missing `conversations` or `messages`";
  if (!it->is_array()) return std::string("`") + list_key + "` must be a list";
  if (it->empty()) return std::string("`") + list_key + "` is empty";

  size_t from_value_turns = 0;
  size_t role_content_turns = 0;
  std::vector<ChatMessage> messages;
  for (size_t t = 0; t < it->size(); ++t) {
    const json& turn = (*it)[t];
    std::string where = "turn " + std::to_string(t) + ": ";
    if (!turn.is_object()) return where + "expected an object";
    // Dialect B wins when a turn carries both spellings.
    bool role_content = turn.contains("role");
    bool from_value = !role_content && turn.contains("from");
    if (!role_content && !from_value) return where + "missing `from`/`value` or `role`/`content`";
    const char* role_key = role_content ? "role" : "from";
    const char* text_key = role_content ? "content" : "value";
    const json& role = turn.at(role_key);
    if (!role.is_string()) return where + "`" + role_key + "` must be a string";
    auto text = turn.find(text_key);
    if (text == turn.end()) return where + "missing `" + text_key + "`";
    if (!text->is_string()) return where + "`" + text_key + "` must be a string";
    auto normalized = normalize_role(role.get<std::string>());
    if (!normalized) {
      return where + "unknown role `" + role.get<std::string>() +
             "` (expected human/user, gpt/assistant or system)";
    }
    std::string content = text->get<std::string>();
    if (detail::trim(content).empty()) return where + "empty `" + text_key + "`";
    (role_content ? role_content_turns : from_value_turns) += 1;

    if (*normalized == "system") {
      if (!messages.empty()) return where + "a system turn must come first";
    } else {
      // After an optional system message: user, assistant, user, ... (FastChat's check).
      size_t pos = messages.size() - (!messages.empty() && messages[0].role == "system" ? 1 : 0);
      const char* expected = pos % 2 == 0 ? "user" : "assistant";
      if (*normalized != expected) {
        return where + "expected a " + expected + " turn, got " + *normalized + " (`" +
               role.get<std::string>() + "`)";
      }
    }
    messages.push_back({*normalized, std::move(content)});
  }
  if (messages.back().role == "system") return "no user/assistant turns after the system turn";
  if (messages.back().role != "assistant") {
    return "turn " + std::to_string(it->size() - 1) +
           ": ends with a user turn (no assistant reply to train on)";
  }
  out.messages = std::move(messages);
  out.dialect = (from_value_turns > 0 && role_content_turns > 0) ? ShareGPTDialect::kMixed
                : role_content_turns > 0                         ? ShareGPTDialect::kRoleContent
                                                                 : ShareGPTDialect::kFromValue;
  return "";
}

// Fisher-Yates over mt19937_64 with modulo draws: unlike std::shuffle (whose use of the
// generator is implementation-defined) this order is the same with every standard library.
template <typename T>
void seeded_shuffle(std::vector<T>& v, uint64_t seed) {
  std::mt19937_64 gen(seed);
  for (size_t i = v.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(gen() % i);
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace

std::string_view to_string(ShareGPTDialect dialect) {
  switch (dialect) {
    case ShareGPTDialect::kFromValue:
      return "from_value";
    case ShareGPTDialect::kRoleContent:
      return "role_content";
    case ShareGPTDialect::kMixed:
      return "mixed";
  }
  return "from_value";
}

size_t ShareGPTConversation::num_turns() const {
  return static_cast<size_t>(std::count_if(messages.begin(), messages.end(),
                                           [](const ChatMessage& m) { return m.role != "system"; }));
}

ShareGPTDataset::ShareGPTDataset(const std::filesystem::path& path,
                                 const tokenizer::Tokenizer* tokenizer, size_t max_samples,
                                 bool strict, std::string system_prompt, bool shuffle,
                                 uint64_t seed)
    : ShareGPTDataset(path, ShareGPTOptions{tokenizer, max_samples, strict,
                                            std::move(system_prompt), shuffle, seed}) {}

ShareGPTDataset::ShareGPTDataset(const std::filesystem::path& path,
                                 const ShareGPTOptions& options)
    : options_(options) {
  if (!std::filesystem::is_regular_file(path)) {
    throw DatasetError("sharegpt: file " + path.string() + " does not exist");
  }
  std::string text = detail::read_text_file(path);
  load(text, path.string(), path.extension() == ".jsonl");
}

ShareGPTDataset ShareGPTDataset::from_string(std::string_view text, std::string_view source,
                                             const ShareGPTOptions& options) {
  ShareGPTDataset ds;
  ds.options_ = options;
  bool jsonl = ends_with(source, ".jsonl");
  if (!jsonl && !ends_with(source, ".json")) {
    // Sniff: a whole document that parses is .json; several lines of objects are .jsonl.
    jsonl = !json::accept(text);
  }
  ds.load(text, source, jsonl);
  return ds;
}

void ShareGPTDataset::load(std::string_view text, std::string_view source, bool jsonl) {
  source_ = std::string(source);
  std::vector<Record> records = read_records(text, source, jsonl);
  // Indices name records by their position in the file, whatever the shuffle.
  std::vector<size_t> order(records.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (options_.shuffle) seeded_shuffle(order, options_.seed);

  for (size_t index : order) {
    if (options_.max_samples != 0 && conversations_.size() >= options_.max_samples) break;
    const Record& rec = records[index];
    ShareGPTConversation conv;
    conv.source_index = index;
    std::string reason;
    if (!rec.value) {
      conv.id = "conversation_" + std::to_string(index);
      reason = rec.parse_error;
    } else {
      conv.id = record_id(*rec.value, index);
      reason = validate(*rec.value, conv);
    }
    ++stats_.total_loaded;
    if (!reason.empty()) {
      std::string where = source_ + (rec.line ? ":" + std::to_string(rec.line) : std::string()) +
                          ": conversation " + std::to_string(index) + " (id \"" + conv.id +
                          "\"): ";
      if (options_.strict) throw DatasetError(where + reason);
      ++stats_.invalid_conversations;
      rejections_.push_back({index, where + reason});
      continue;
    }
    if (!options_.system_prompt.empty() && conv.messages.front().role != "system") {
      conv.messages.insert(conv.messages.begin(), {"system", options_.system_prompt});
    }
    ++stats_.valid_conversations;
    stats_.total_turns += conv.num_turns();
    switch (conv.dialect) {
      case ShareGPTDialect::kFromValue:
        ++stats_.dialect_counts.from_value;
        break;
      case ShareGPTDialect::kRoleContent:
        ++stats_.dialect_counts.role_content;
        break;
      case ShareGPTDialect::kMixed:
        ++stats_.dialect_counts.mixed;
        break;
    }
    if (options_.tokenizer != nullptr) {
      stats_.total_tokens +=
          options_.tokenizer->encode_chat(conv.messages, false, tokenizer::TrainOn::kAssistant)
              .ids.size();
    }
    conversations_.push_back(std::move(conv));
  }
}

const ShareGPTConversation& ShareGPTDataset::conversation(size_t i) const {
  if (i >= conversations_.size()) {
    throw std::out_of_range("sharegpt: index " + std::to_string(i) + " out of range (size " +
                            std::to_string(conversations_.size()) + ")");
  }
  return conversations_[i];
}

ShareGPTTurns ShareGPTDataset::get_conversation_turns(size_t i) const {
  const ShareGPTConversation& conv = conversation(i);
  std::string text =
      options_.tokenizer != nullptr
          ? options_.tokenizer->apply_chat_template(conv.messages, false)
          : tokenizer::render_chat_template(tokenizer::ChatTemplate::kQwen2, conv.messages, false);
  return {conv.id, std::move(text), conv.num_turns()};
}

void ShareGPTDataset::require_tokenizer(const char* what) const {
  if (options_.tokenizer == nullptr) {
    throw std::logic_error(std::string("sharegpt: ") + what +
                           " needs a tokenizer (pass one to ShareGPTDataset)");
  }
}

api::Datum ShareGPTDataset::get_training_example(size_t i, tokenizer::TrainOn train_on) const {
  require_tokenizer("get_training_example");
  tokenizer::ChatEncoding enc =
      options_.tokenizer->encode_chat(conversation(i).messages, false, train_on);
  api::Datum datum;
  datum.input_ids = std::move(enc.ids);
  datum.weights = std::move(enc.weights);
  return datum;
}

std::vector<api::Datum> ShareGPTDataset::training_examples(tokenizer::TrainOn train_on) const {
  std::vector<api::Datum> out;
  out.reserve(size());
  for (size_t i = 0; i < size(); ++i) out.push_back(get_training_example(i, train_on));
  return out;
}

std::vector<ChatMessage> ShareGPTDataset::prompt_messages(size_t i) const {
  const auto& messages = conversation(i).messages;
  return {messages.begin(), messages.end() - 1};  // validated: the last one is the assistant's
}

const std::string& ShareGPTDataset::last_assistant_reply(size_t i) const {
  return conversation(i).messages.back().content;
}

void ShareGPTDataset::export_jsonl(const std::filesystem::path& path,
                                   ShareGPTExportFormat format) const {
  if (format == ShareGPTExportFormat::kTokens) require_tokenizer("export_jsonl(kTokens)");
  std::string out;
  for (size_t i = 0; i < size(); ++i) {
    const ShareGPTConversation& conv = conversations_[i];
    json row;
    row["id"] = conv.id;
    if (format == ShareGPTExportFormat::kRoleContent) {
      row["messages"] = json::array();
      for (const auto& m : conv.messages) {
        row["messages"].push_back({{"role", m.role}, {"content", m.content}});
      }
    } else if (format == ShareGPTExportFormat::kFromValue) {
      row["conversations"] = json::array();
      for (const auto& m : conv.messages) {
        std::string from = m.role == "user" ? "human" : m.role == "assistant" ? "gpt" : "system";
        row["conversations"].push_back({{"from", from}, {"value", m.content}});
      }
    } else {
      api::Datum d = get_training_example(i);
      row["input_ids"] = d.input_ids;
      row["weights"] = *d.weights;
    }
    out += row.dump(-1, ' ', false, json::error_handler_t::replace);
    out += '\n';
  }
  detail::write_text_file_atomic(path, out);
}

}  // namespace eztinker::datasets
