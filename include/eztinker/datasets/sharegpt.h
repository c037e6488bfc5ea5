// ShareGPT chat-data loader: `.json` (a list of conversations, or one conversation object) and
// `.jsonl` (one per line); turns under `conversations` or `messages` in either dialect
//   A  {"from": "human"|"gpt"|"system", "value": ...}   (ShareGPT / FastChat / Vicuna)
//   B  {"role": "user"|"assistant"|"system", "content": ...}   (OpenAI style)
// normalised to system/user/assistant ChatMessages. Mirrors the Python EZTinker
// `ShareGPTDataset` (stats, get_conversation_turns) and adds token-level training examples
// (loss weight only on assistant tokens) and a jsonl export.
//
// Thread safety: immutable after construction; const methods may be called concurrently.
// The tokenizer is borrowed (not owned) and must outlive the dataset.
// Errors: DatasetError naming the file (and line for .jsonl), the 0-based conversation index,
// its id, the 0-based turn and the field: "chat.json: conversation 3 (id \"a\"), turn 2:
// unknown role `tool`".
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "eztinker/api_types.h"
#include "eztinker/datasets/dataset_error.h"
#include "eztinker/tokenizer.h"

namespace eztinker::datasets {

enum class ShareGPTDialect {
  kFromValue,    // every turn from/value
  kRoleContent,  // every turn role/content
  kMixed,        // both kinds of turn in one conversation
};
std::string_view to_string(ShareGPTDialect dialect);  // "from_value" | "role_content" | "mixed"

struct ShareGPTConversation {
  std::string id;  // the record's `id` (string or number), else "conversation_<index>"
  size_t source_index = 0;  // 0-based position of the record in the file
  ShareGPTDialect dialect = ShareGPTDialect::kFromValue;
  // system (optional, first), then user/assistant alternating, ending with assistant.
  std::vector<tokenizer::ChatMessage> messages;
  // user + assistant messages (a system message is not a turn).
  size_t num_turns() const;
};

struct ShareGPTDialectCounts {
  size_t from_value = 0;
  size_t role_content = 0;
  size_t mixed = 0;
};

// Counts over the records examined. total_loaded == valid_conversations +
// invalid_conversations; valid_conversations == size(). total_turns and total_tokens cover the
// kept conversations; total_tokens is 0 without a tokenizer (it is really counted, never
// estimated: the length of encode_chat of each conversation).
struct ShareGPTStats {
  size_t total_loaded = 0;
  size_t valid_conversations = 0;
  size_t invalid_conversations = 0;
  size_t total_turns = 0;
  size_t total_tokens = 0;
  ShareGPTDialectCounts dialect_counts;  // of the kept conversations
};

// A rejected record (non-strict mode), with the same message strict mode would throw.
struct ShareGPTRejection {
  size_t source_index = 0;
  std::string reason;
};

// get_conversation_turns(i): the Python tuple (conv_id, formatted_text, num_turns).
struct ShareGPTTurns {
  std::string id;
  std::string text;  // Qwen2 ChatML of the whole conversation (no generation prompt)
  size_t num_turns = 0;
};

struct ShareGPTOptions {
  // Borrowed; enables total_tokens, training examples and the tokenizer's own template.
  const tokenizer::Tokenizer* tokenizer = nullptr;
  size_t max_samples = 0;  // keep at most N valid conversations; 0 = all
  // true: the first invalid record throws DatasetError. false: it is skipped, counted in
  // stats().invalid_conversations and listed in rejections().
  bool strict = false;
  // Prepended as a system message to conversations that have none. Empty = none (the Qwen2
  // template then inserts its default "You are a helpful assistant.").
  std::string system_prompt;
  bool shuffle = false;  // seeded shuffle of the records before max_samples is applied
  uint64_t seed = 42;
};

// How export_jsonl writes each conversation.
enum class ShareGPTExportFormat {
  kRoleContent,  // {"id","messages":[{"role","content"}]}
  kFromValue,    // {"id","conversations":[{"from","value"}]} (human/gpt/system)
  kTokens,       // {"id","input_ids","weights"} (needs a tokenizer; assistant tokens weight 1)
};

class ShareGPTDataset {
 public:
  // The Python signature: (file_path, tokenizer, max_samples, strict, system_prompt, shuffle, seed).
  explicit ShareGPTDataset(const std::filesystem::path& path,
                           const tokenizer::Tokenizer* tokenizer = nullptr,
                           size_t max_samples = 0, bool strict = false,
                           std::string system_prompt = "", bool shuffle = false,
                           uint64_t seed = 42);
  ShareGPTDataset(const std::filesystem::path& path, const ShareGPTOptions& options);
  // From text already in memory; `source` names it in errors and ending in ".jsonl" selects
  // the jsonl format (otherwise it is sniffed: a document that parses as JSON is .json).
  static ShareGPTDataset from_string(std::string_view text, std::string_view source,
                                     const ShareGPTOptions& options = {});

  size_t size() const { return conversations_.size(); }
  bool empty() const { return conversations_.empty(); }
  const std::vector<ShareGPTConversation>& conversations() const { return conversations_; }
  // Throws std::out_of_range naming the index and size.
  const ShareGPTConversation& conversation(size_t i) const;
  const ShareGPTStats& stats() const { return stats_; }
  const std::vector<ShareGPTRejection>& rejections() const { return rejections_; }
  const std::string& source() const { return source_; }

  ShareGPTTurns get_conversation_turns(size_t i) const;

  // Tokens of conversation i in the chat template with weights 1 on the assistant tokens
  // selected by train_on (and their closing <|im_end|>), 0 elsewhere; target_ids unset (the
  // server uses input_ids). Throws std::logic_error when the dataset has no tokenizer.
  api::Datum get_training_example(size_t i,
                                  tokenizer::TrainOn train_on = tokenizer::TrainOn::kAssistant) const;
  std::vector<api::Datum> training_examples(
      tokenizer::TrainOn train_on = tokenizer::TrainOn::kAssistant) const;

  // The prompt (every message before the last assistant turn) and that last reply, for the
  // server's chat sampling form and rejection sampling on chat data.
  std::vector<tokenizer::ChatMessage> prompt_messages(size_t i) const;
  const std::string& last_assistant_reply(size_t i) const;

  // Writes one conversation per line, atomically. Throws DatasetError (cannot write) or
  // std::logic_error (kTokens without a tokenizer).
  void export_jsonl(const std::filesystem::path& path,
                    ShareGPTExportFormat format = ShareGPTExportFormat::kRoleContent) const;

 private:
  ShareGPTDataset() = default;
  void load(std::string_view text, std::string_view source, bool jsonl);
  void require_tokenizer(const char* what) const;

  ShareGPTOptions options_;
  std::string source_;
  std::vector<ShareGPTConversation> conversations_;
  std::vector<ShareGPTRejection> rejections_;
  ShareGPTStats stats_;
};

}  // namespace eztinker::datasets
