// Splits text on added tokens before the model sees it, like HF tokenizers' AddedVocabulary:
// leftmost-longest match, honouring the lstrip/rstrip/single_word flags.
#pragma once

#include "tokenizer/tokenizer_config.h"

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

namespace eztinker::tokenizer::detail {

// A piece of the input: either plain text [begin, end) or one added token (id >= 0).
struct Segment {
  size_t begin = 0;
  size_t end = 0;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);
  bool empty() const { return tokens_.empty(); }
  // Appends the segments of text to out (text segments may be empty only when text is).
  void split(std::string_view text, std::vector<Segment>& out) const;

 private:
  std::vector<AddedToken> tokens_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // indices into tokens_, longest first
};

}  // namespace eztinker::tokenizer::detail
