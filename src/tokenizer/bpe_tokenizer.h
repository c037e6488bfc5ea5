// Byte-level BPE tokenizer as HF `tokenizers` runs Qwen2's tokenizer.json: added tokens split
// out first, NFC, the Split pre-tokenizer regex (PCRE2, JIT, UTF+UCP), GPT-2 byte-level
// alphabet, merges applied lowest rank first. Loaded from tokenizer.json or vocab.json +
// merges.txt.
#pragma once

#include <filesystem>
#include <memory>

#include "eztinker/tokenizer.h"

namespace eztinker::tokenizer::detail {

std::unique_ptr<Tokenizer> load_bpe_tokenizer_json(const std::filesystem::path& dir);
std::unique_ptr<Tokenizer> load_bpe_vocab_merges(const std::filesystem::path& dir);

// The Qwen2 pre-tokenizer regex (tokenizer.json Split pattern) and GPT-2's.
extern const char* const kQwen2SplitRegex;
extern const char* const kGpt2SplitRegex;

// Splits NFC text into pre-tokenizer words with a PCRE2 pattern (for the BPE trainer too).
class RegexSplitter {
 public:
  explicit RegexSplitter(const std::string& pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;
  // Calls fn(begin, end) for every piece of valid UTF-8 `text`, in order (Isolated behaviour:
  // matches and the gaps between them are both pieces). Thread-safe.
  template <typename Fn>
  void split(std::string_view text, Fn&& fn) const {
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
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace eztinker::tokenizer::detail
