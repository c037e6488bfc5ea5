// Byte-level BPE tokenizer as HF `tokenizers` runs Qwen2's tokenizer.json: added tokens split
// out first, NFC, the Split pre-tokenizer regex (PCRE2, JIT, UTF+UCP), GPT-2 byte-level
// alphabet, merges applied lowest rank first. Loaded from tokenizer.json or vocab.json +
// merges.txt.
#pragma once

#include "eztinker/tokenizer.h"

#include <filesystem>
#include <memory>

namespace eztinker::tokenizer::detail {

std::unique_ptr<Tokenizer> load_bpe_tokenizer_json(const std::filesystem::path& dir);
std::unique_ptr<Tokenizer> load_bpe_vocab_merges(const std::filesystem::path& dir);

// The Qwen2 pre-tokenizer regex (tokenizer.json Split pattern) and GPT-2's.
extern const char* const kQwen2SplitRegex;
extern const char* const kGpt2SplitRegex;

// Splits NFC text into pre-tokenizer words with a PCRE2 pattern (for the BPE trainer too).
class RegexSplitter {
 public:
  // With allow_fast_path and the Qwen2 pattern, pure-ASCII texts are split by a hand-written
  // equivalent of the regex (3-5x faster; tests compare it with PCRE2 on GSM8K and fuzz).
  explicit RegexSplitter(const std::string& pattern, bool allow_fast_path = true);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;
  // Calls fn(begin, end) for every piece of valid UTF-8 `text`, in order (Isolated behaviour:
  // matches and the gaps between them are both pieces). Thread-safe.
  template <typename Fn>
  void split(std::string_view text, Fn&& fn) const {
    if (qwen2_fast_ && is_ascii(text)) {
      for (size_t pos = 0; pos < text.size();) {
        const size_t end = qwen2_ascii_match(text, pos);
        fn(pos, end);
        pos = end;
      }
      return;
    }
    size_t pos = 0;
    while (pos < text.size()) {
      size_t s = 0, e = 0;
      if (!next_match(text, pos, s, e)) break;
      if (s > pos) fn(pos, s);
      fn(s, e);
      pos = e;
    }
    if (pos < text.size()) fn(pos, text.size());
  }

 private:
  // Finds the next non-empty match at or after pos; false when none.
  bool next_match(std::string_view text, size_t pos, size_t& s, size_t& e) const;
  static bool is_ascii(std::string_view text);
  // End of the Qwen2-regex match starting at pos in ASCII text (always > pos).
  static size_t qwen2_ascii_match(std::string_view text, size_t pos);
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
  bool qwen2_fast_ = false;
};

}  // namespace eztinker::tokenizer::detail
