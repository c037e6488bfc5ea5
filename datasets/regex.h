// A minimal RAII wrapper over PCRE2 (8-bit, byte mode) for the dataset code: compile once,
// iterate matches, read capture groups. Private to eztinker_datasets.
// note: patterns run WITHOUT PCRE2_UTF on purpose. Model output may be invalid UTF-8 (a random
// model emits arbitrary bytes) and every pattern here is ASCII, so byte mode never fails.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eztinker::datasets::detail {

// One match: the whole span and each capture group (std::nullopt when a group did not take part).
struct RegexMatch {
  size_t begin = 0;
  size_t end = 0;
  std::vector<std::optional<std::string_view>> groups;  // groups[0] is the whole match
  std::string_view group(size_t i) const {
    return i < groups.size() && groups[i] ? *groups[i] : std::string_view{};
  }
  bool has(size_t i) const { return i < groups.size() && groups[i].has_value(); }
};

// A compiled pattern. Thread-safe for concurrent matching (each call allocates its own match
// data). Throws std::invalid_argument naming the pattern and offset when it does not compile.
class Regex {
 public:
  explicit Regex(std::string_view pattern, bool caseless = false);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // First match starting at or after `start`, or nullopt.
  std::optional<RegexMatch> search(std::string_view subject, size_t start = 0) const;
  // Every non-overlapping match, left to right.
  std::vector<RegexMatch> find_all(std::string_view subject) const;
  // True when the whole subject matches.
  bool full_match(std::string_view subject) const;

 private:
  std::optional<RegexMatch> match_at(std::string_view subject, size_t start,
                                     uint32_t options) const;
  void* code_ = nullptr;  // pcre2_code_8*, kept opaque so pcre2.h stays out of this header
  std::string pattern_;
};

}  // namespace eztinker::datasets::detail
