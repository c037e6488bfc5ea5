// Added-token splitting (see added_tokens.h). HF matches all added tokens with one
// leftmost-longest Aho-Corasick automaton; with a few dozen tokens, bucketing candidates by
// first byte is as exact and simpler.
#include "tokenizer/added_tokens.h"

#include <algorithm>
#include <cctype>

namespace eztinker::tokenizer::detail {

namespace {
bool is_space(unsigned char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}
bool is_word_byte(unsigned char c) {
  return std::isalnum(c) || c == '_' || c >= 0x80;
}
}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  tokens_.erase(
      std::remove_if(
          tokens_.begin(), tokens_.end(), [](const AddedToken& t) { return t.content.empty(); }),
      tokens_.end());
  for (uint32_t i = 0; i < tokens_.size(); ++i) {
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  }
  for (auto& bucket : by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [&](uint32_t a, uint32_t b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
  }
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& out) const {
  size_t text_begin = 0;  // start of the pending plain-text segment
  size_t i = 0;
  while (i < text.size()) {
    const auto& bucket = by_first_byte_[static_cast<unsigned char>(text[i])];
    const AddedToken* hit = nullptr;
    for (uint32_t idx : bucket) {
      const AddedToken& t = tokens_[idx];
      if (text.compare(i, t.content.size(), t.content) != 0) continue;
      if (t.single_word) {
        const size_t e = i + t.content.size();
        const bool left_ok = i == 0 || !is_word_byte(static_cast<unsigned char>(text[i - 1]));
        const bool right_ok =
            e == text.size() || !is_word_byte(static_cast<unsigned char>(text[e]));
        if (!left_ok || !right_ok) continue;
      }
      hit = &t;  // buckets are longest first, so the first hit is the longest
      break;
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    size_t start = i;
    size_t end = i + hit->content.size();
    if (hit->lstrip) {
      while (start > text_begin && is_space(static_cast<unsigned char>(text[start - 1]))) --start;
    }
    if (hit->rstrip) {
      while (end < text.size() && is_space(static_cast<unsigned char>(text[end]))) ++end;
    }
    if (start > text_begin) out.push_back({text_begin, start, -1});
    out.push_back({start, end, hit->id});
    text_begin = end;
    i = end;
  }
  if (text_begin < text.size() || text.empty()) out.push_back({text_begin, text.size(), -1});
}

}  // namespace eztinker::tokenizer::detail
