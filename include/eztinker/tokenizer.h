// Tokenizer API: Hugging Face byte-level BPE (tokenizer.json, or vocab.json + merges.txt) as
// Qwen2 uses it, SentencePiece (tokenizer.model) behind the same interface, and the Qwen
// ChatML chat renderer with per-token loss weights. Mirrors HF `tokenizers` encode/decode and
// the Qwen2 / Qwen2.5 Instruct jinja chat templates. No libtorch here.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eztinker::tokenizer {

// One chat turn. role is "system", "user" or "assistant".
struct ChatMessage {
  std::string role;
  std::string content;
};

// Which Qwen chat template a tokenizer directory ships. Both are ChatML; they differ only in
// the default system prompt inserted when the first message is not a system message:
//   kQwen2  "You are a helpful assistant."
//   kQwen25 "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
enum class ChatTemplate { kQwen2, kQwen25 };

// Which tokens of a rendered conversation carry loss weight 1.
//   kAssistant      every assistant turn's content tokens and its closing <|im_end|>
//   kLastAssistant  only the last assistant turn's content tokens and its closing <|im_end|>
//   kAll            every token of the conversation (prompt included)
enum class TrainOn { kAssistant, kLastAssistant, kAll };

// ids and a weight per id (weights.size() == ids.size()); weights[t] == 1 when ids[t] is trained.
struct ChatEncoding {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

// A loaded tokenizer. Immutable after load(); every const method is thread-safe (the BPE word
// cache is internally synchronised). Owned by the caller through the unique_ptr from load().
class Tokenizer {
 public:
  // Loads the tokenizer in `dir`, trying in order:
  //   tokenizer.json                      HF fast tokenizer (BPE model, byte-level)
  //   vocab.json + merges.txt             HF slow layout; added tokens from tokenizer_config.json
  //                                       `added_tokens_decoder` and/or added_tokens.json
  //   tokenizer.model                     SentencePiece
  // tokenizer_config.json (optional, all layouts) supplies eos/pad tokens and the chat template;
  // special_tokens_map.json is consulted when the config lacks them.
  // Throws std::runtime_error naming the file and the problem (missing, corrupt JSON, an
  // unsupported normalizer/pre-tokenizer/model type, a merge whose parts are not in the vocab).
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& dir);

  virtual ~Tokenizer();

  // Text -> ids. No BOS/EOS is added. With parse_special, added tokens written in the text
  // (e.g. "<|im_start|>") become their ids (HF split_special_tokens=false); without it, only
  // added tokens flagged special=false are still matched and special ones are tokenized as
  // plain text. Invalid UTF-8 in `text` is replaced by U+FFFD before tokenizing.
  virtual std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const = 0;

  // ids -> UTF-8 text. Invalid or partial UTF-8 byte sequences become U+FFFD (one per maximal
  // invalid subpart, as Python's errors="replace"). skip_special_tokens drops special=true
  // added tokens. Throws std::out_of_range naming the id for an id outside [0, vocab_size()).
  virtual std::string decode(const std::vector<int32_t>& ids,
                             bool skip_special_tokens = false) const = 0;

  // The raw bytes one token stands for (may be partial UTF-8); for streaming and stop strings.
  // Throws std::out_of_range naming the id when it is unknown.
  virtual std::string token_bytes(int32_t id) const = 0;

  // Max id + 1, added tokens included (the model's embedding may be larger).
  virtual int32_t vocab_size() const = 0;

  // Token string as it appears in the vocabulary (byte-level form, e.g. "ĠHello", or a
  // SentencePiece piece such as "▁Hello") or an added token's content -> id.
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  // Inverse of token_to_id. Throws std::out_of_range naming the id when it is unknown.
  virtual std::string id_to_token(int32_t id) const = 0;

  // True for added tokens flagged special (and SentencePiece control symbols).
  virtual bool is_special(int32_t id) const = 0;

  // tokenizer_config eos_token, plus <|endoftext|> and <|im_end|> when the vocabulary has them;
  // no duplicates, config eos first.
  virtual std::vector<int32_t> eos_token_ids() const = 0;
  // tokenizer_config (or special_tokens_map) pad_token, when set and known.
  virtual std::optional<int32_t> pad_token_id() const = 0;

  // Detected from the chat template text in tokenizer_config.json (or chat_template.jinja):
  // kQwen25 when it contains "You are Qwen, created by Alibaba Cloud", else kQwen2.
  ChatTemplate chat_template() const { return chat_template_; }

  // Renders ChatML exactly as this tokenizer's jinja template does for system/user/assistant
  // messages. Throws std::invalid_argument for another role.
  std::string apply_chat_template(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt) const;

  // encode(apply_chat_template(...)) plus loss weights: 1 on the tokens of trained assistant
  // content (a token overlapping the content counts) and on the turn's closing <|im_end|>; 0
  // elsewhere (role headers, the "\n" after <|im_end|>, the generation prompt). See TrainOn.
  ChatEncoding encode_chat(const std::vector<ChatMessage>& messages,
                           bool add_generation_prompt,
                           TrainOn train_on) const;

 protected:
  Tokenizer() = default;
  ChatTemplate chat_template_ = ChatTemplate::kQwen2;
};

// Renders ChatML for a given template without a tokenizer (same text as apply_chat_template).
std::string render_chat_template(ChatTemplate chat_template,
                                 const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt);

// Incremental UTF-8 assembler for streaming decode: feed token_bytes() of each new token and
// get back only complete characters; bytes of a split character wait for the next push.
// Invalid bytes come out as U+FFFD. Not thread-safe (one per stream).
class Utf8StreamDecoder {
 public:
  std::string push(std::string_view bytes);
  // Emits whatever is pending (an incomplete tail becomes U+FFFD) and resets.
  std::string flush();

 private:
  std::string pending_;
};

// Writes a complete small byte-level BPE tokenizer into dir: tokenizer.json (NFC, the Qwen2
// split regex, byte-level, 256 byte tokens then one token per merge) and tokenizer_config.json
// with the Qwen2-Instruct chat template, eos <|im_end|>, pad <|endoftext|>, and the specials
// <|endoftext|>, <|im_start|>, <|im_end|> after the merges. Merges are learned by a plain
// greedy BPE trainer on training_text (most frequent adjacent pair; ties broken by the
// smaller pair of ids), stopping early only when no adjacent pair is left. Deterministic.
// vocab_size = 256 + num_merges + 3 unless the text runs out of pairs (or a merge re-creates an
// existing string). Throws std::runtime_error when dir cannot be written.
void write_trained_bpe_tokenizer(const std::filesystem::path& dir,
                                 std::string_view training_text,
                                 int num_merges);

// Copies the tokenizer files present in src_dir (tokenizer.json, tokenizer_config.json,
// vocab.json, merges.txt, added_tokens.json, special_tokens_map.json, tokenizer.model,
// chat_template.jinja) into dst_dir, creating it. Throws std::runtime_error when src_dir holds
// no loadable tokenizer (none of tokenizer.json, vocab.json+merges.txt, tokenizer.model).
void copy_tokenizer_files(const std::filesystem::path& src_dir,
                          const std::filesystem::path& dst_dir);

}  // namespace eztinker::tokenizer
