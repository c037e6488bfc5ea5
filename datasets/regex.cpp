// PCRE2 wrapper used by the verifier and loaders (see regex.h).
#include "regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <stdexcept>

namespace eztinker::datasets::detail {
namespace {

pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }

struct MatchDataDeleter {
  void operator()(pcre2_match_data* d) const { pcre2_match_data_free(d); }
};

}  // namespace

Regex::Regex(std::string_view pattern, bool caseless) : pattern_(pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  uint32_t options = caseless ? PCRE2_CASELESS : 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern_.data()), pattern_.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(error_code, buffer, sizeof(buffer));
    throw std::invalid_argument("regex `" + pattern_ + "` does not compile at offset " +
                                std::to_string(error_offset) + ": " +
                                reinterpret_cast<const char*>(buffer));
  }
  // JIT is an optimisation only; a failure (e.g. unsupported platform) leaves the interpreter.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(as_code(code_)); }

std::optional<RegexMatch> Regex::search(std::string_view subject, size_t start) const {
  return match_at(subject, start, 0);
}

std::optional<RegexMatch> Regex::match_at(std::string_view subject, size_t start,
                                          uint32_t options) const {
  if (start > subject.size()) return std::nullopt;
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
      pcre2_match_data_create_from_pattern(as_code(code_), nullptr));
  int rc = pcre2_match(as_code(code_), reinterpret_cast<PCRE2_SPTR>(subject.data()),
                       subject.size(), start, options, data.get(), nullptr);
  if (rc == PCRE2_ERROR_NOMATCH) return std::nullopt;
  if (rc < 0) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(rc, buffer, sizeof(buffer));
    throw std::runtime_error("regex `" + pattern_ + "` failed: " +
                             reinterpret_cast<const char*>(buffer));
  }
  uint32_t count = pcre2_get_ovector_count(data.get());
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
  RegexMatch match;
  match.begin = ovector[0];
  match.end = ovector[1];
  match.groups.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    if (ovector[2 * i] == PCRE2_UNSET) continue;
    match.groups[i] = subject.substr(ovector[2 * i], ovector[2 * i + 1] - ovector[2 * i]);
  }
  return match;
}

std::vector<RegexMatch> Regex::find_all(std::string_view subject) const {
  std::vector<RegexMatch> out;
  size_t pos = 0;
  while (pos <= subject.size()) {
    auto m = search(subject, pos);
    if (!m) break;
    // An empty match must still advance, or the loop would never end.
    pos = m->end > m->begin ? m->end : m->end + 1;
    out.push_back(std::move(*m));
  }
  return out;
}

bool Regex::full_match(std::string_view subject) const {
  return match_at(subject, 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED).has_value();
}

}  // namespace eztinker::datasets::detail
