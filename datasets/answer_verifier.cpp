// Numeric answer verification (see include/eztinker/datasets/answer_verifier.h). Mirrors the
// extraction priorities of HuggingFace math-verify (boxed first, then explicit answer markers,
// then the last number) restricted to what GSM8K-style answers need: real numbers, simple
// fractions and percentages. All matching goes through PCRE2 (regex.h).
#include "eztinker/datasets/answer_verifier.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "regex.h"

namespace eztinker::datasets {
namespace {

using detail::Regex;
using detail::RegexMatch;

// One number as written. Groups of kNumberPattern:
//   1 sign  2 \frac numerator  3 \frac denominator  4 plain number  5 a/b denominator  6 percent
// note: the look-behind rejects a digit, letter, `_` or `.` just before the number, so "123"
// never yields "23", "x2" is not a number and "5-3" yields 5 and 3 (not -3). The look-ahead
// rejects a following digit, so a number is always read whole ("1,080" as one, "1080" never as
// "108").
constexpr const char* kNumberPattern =
    R"((?<![\w.])(-)?\$?\s?)"
    R"((?:\\[dt]?frac\{\s*(\d+(?:\.\d+)?)\s*\}\{\s*(\d+(?:\.\d+)?)\s*\})"
    R"(|(\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d])|\d+(?:\.\d+)?(?![\d])|\.\d+(?![\d]))(?:/(\d+(?:\.\d+)?)(?![\d]))?))"
    R"((\s?(?:%|percent\b))?)";

// "The answer is", "the final answer is:", "Final answer:", "Answer =", "answer would be".
constexpr const char* kAnswerIsPattern =
    R"((?:final\s+answer|answer)(?:\s*\*\*)?\s*(?:is|:|=|would\s+be|will\s+be|equals)(?:\s*\*\*)?\s*:?)";

const Regex& number_regex() {
  static const Regex re(kNumberPattern);
  return re;
}
const Regex& answer_is_regex() {
  static const Regex re(kAnswerIsPattern, /*caseless=*/true);
  return re;
}

struct NumberToken {
  std::string text;  // as written, trimmed
  std::optional<double> value;
  bool percent = false;
};

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
}

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Rewrites the spellings that change how a number reads into the plain ones kNumberPattern
// understands: Unicode minus, LaTeX-escaped `$`/`%`, LaTeX thousands separators ("1{,}000",
// "1\,000"), `\!` and `\left`/`\right`.
std::string normalize(std::string_view in) {
  std::string s(in);
  replace_all(s, "\xE2\x88\x92", "-");  // U+2212 MINUS SIGN
  replace_all(s, "\xE2\x80\x93", "-");  // U+2013 EN DASH (used as minus by some models)
  replace_all(s, "\\$", "$");
  replace_all(s, "\\%", "%");
  replace_all(s, "{,}", ",");
  replace_all(s, "\\!", "");
  replace_all(s, "\\left", "");
  replace_all(s, "\\right", "");
  // "1\,000" → "1,000" only between digits; elsewhere `\,` is a thin space.
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == ',' ) {
      bool digits_around = i > 0 && is_digit(s[i - 1]) && i + 2 < s.size() && is_digit(s[i + 2]);
      out += digits_around ? "," : " ";
      ++i;
      continue;
    }
    out += s[i];
  }
  return out;
}

std::optional<double> to_double(std::string_view digits) {
  std::string clean;
  for (char c : digits) {
    if (c != ',') clean += c;
  }
  if (clean.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

NumberToken token_from_match(const RegexMatch& m) {
  NumberToken t;
  t.text = std::string(trim(m.group(0)));
  t.percent = m.has(6) && !trim(m.group(6)).empty();
  std::optional<double> v;
  if (m.has(2)) {  // \frac{a}{b}
    auto a = to_double(m.group(2));
    auto b = to_double(m.group(3));
    if (a && b && *b != 0) v = *a / *b;
  } else if (m.has(4)) {
    v = to_double(m.group(4));
    if (v && m.has(5)) {  // a/b
      auto b = to_double(m.group(5));
      v = (b && *b != 0) ? std::optional<double>(*v / *b) : std::nullopt;
    }
  }
  if (v && m.has(1)) v = -*v;
  t.value = v;
  return t;
}

std::optional<NumberToken> first_number(std::string_view text) {
  auto m = number_regex().search(text);
  if (!m) return std::nullopt;
  return token_from_match(*m);
}

std::optional<NumberToken> last_number(std::string_view text) {
  auto all = number_regex().find_all(text);
  if (all.empty()) return std::nullopt;
  return token_from_match(all.back());
}

// In "x = 3 + 4 = 7" the answer is what follows the last `=`.
std::string_view after_last_equals(std::string_view span) {
  size_t eq = span.rfind('=');
  return eq == std::string_view::npos ? span : span.substr(eq + 1);
}

// Content of the last \boxed{...} or \fbox{...} holding a number (balanced braces).
std::optional<NumberToken> from_boxed(std::string_view text) {
  std::vector<std::string_view> contents;
  for (std::string_view command : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
    size_t pos = 0;
    while ((pos = text.find(command, pos)) != std::string_view::npos) {
      size_t i = pos + command.size();
      while (i < text.size() && text[i] == ' ') ++i;
      pos = i;
      if (i >= text.size()) break;
      if (text[i] != '{') {
        // "\boxed 18": the next whitespace-delimited token.
        size_t e = text.find_first_of(" \n$", i);
        contents.push_back(text.substr(i, e == std::string_view::npos ? text.npos : e - i));
        continue;
      }
      int depth = 0;
      size_t j = i;
      for (; j < text.size(); ++j) {
        if (text[j] == '{') ++depth;
        if (text[j] == '}' && --depth == 0) break;
      }
      if (j >= text.size()) continue;  // unbalanced: not an answer
      contents.push_back(text.substr(i + 1, j - i - 1));
    }
  }
  // The last one in the text wins; positions are comparable because they are views into `text`.
  std::sort(contents.begin(), contents.end(),
            [](std::string_view a, std::string_view b) { return a.data() < b.data(); });
  for (auto it = contents.rbegin(); it != contents.rend(); ++it) {
    std::string inner(*it);
    // \text{ apples} → " apples": units never change the value.
    replace_all(inner, "\\text", "");
    replace_all(inner, "\\mathrm", "");
    if (auto n = first_number(after_last_equals(inner))) return n;
  }
  return std::nullopt;
}

// The line after the last "####".
std::optional<NumberToken> from_hash(std::string_view text) {
  size_t pos = text.rfind("####");
  if (pos == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(pos + 4);
  rest = rest.substr(0, rest.find('\n'));
  return first_number(after_last_equals(rest));
}

// The sentence that starts `text`: up to a newline, or a `.`/`!`/`?` followed by whitespace or
// the end (so "5.5" is not cut), at most 200 bytes. Keeps "The answer is 7. Check: 7 + 1 = 8"
// from reading the 8 of the next sentence.
std::string_view sentence_at(std::string_view text) {
  size_t n = std::min(text.size(), size_t{200});
  for (size_t i = 0; i < n; ++i) {
    char c = text[i];
    if (c == '\n') return text.substr(0, i);
    if ((c == '.' || c == '!' || c == '?') &&
        (i + 1 == text.size() || text[i + 1] == ' ' || text[i + 1] == '\n' ||
         text[i + 1] == '\t' || text[i + 1] == '\r')) {
      return text.substr(0, i);
    }
  }
  return text.substr(0, n);
}

// The first number after the last "answer is" marker that is followed by one (same line).
std::optional<NumberToken> from_answer_is(std::string_view text) {
  auto markers = answer_is_regex().find_all(text);
  for (auto it = markers.rbegin(); it != markers.rend(); ++it) {
    std::string_view rest = sentence_at(text.substr(it->end));
    if (auto n = first_number(after_last_equals(rest))) return n;
  }
  return std::nullopt;
}

struct Extraction {
  std::optional<NumberToken> token;
  std::string strategy = "none";
};

Extraction extract(std::string_view normalized) {
  if (auto n = from_boxed(normalized)) return {n, "boxed"};
  if (auto n = from_hash(normalized)) return {n, "hash"};
  if (auto n = from_answer_is(normalized)) return {n, "answer_is"};
  if (auto n = last_number(normalized)) return {n, "last_number"};
  return {};
}

bool close(double a, double b, const VerifierOptions& o) {
  return std::fabs(a - b) <= std::max(o.absolute_tolerance, o.relative_tolerance * std::fabs(b));
}

}  // namespace

std::optional<double> parse_numeric_answer(std::string_view text) {
  std::string s = normalize(text);
  auto n = first_number(s);
  if (!n) return std::nullopt;
  return n->value;
}

ExtractedAnswer extract_answer(std::string_view generated) {
  std::string s = normalize(generated);
  Extraction e = extract(s);
  ExtractedAnswer out;
  out.strategy = e.strategy;
  if (e.token) out.text = e.token->text;
  return out;
}

VerificationResult evaluate_answer(std::string_view generated, std::string_view ground_truth,
                                   std::string_view question, const VerifierOptions& options) {
  VerificationResult result;

  // Only what the model wrote after echoing the question counts.
  if (!question.empty()) {
    std::string_view q = trim(question);
    size_t pos = q.empty() ? std::string_view::npos : generated.rfind(q);
    if (pos != std::string_view::npos) generated = generated.substr(pos + q.size());
  }

  // Gold: a whole GSM8K solution uses its `####` line; otherwise the first number in it.
  std::string gold = normalize(ground_truth);
  std::optional<NumberToken> gold_token =
      gold.find("####") != std::string::npos ? from_hash(gold) : first_number(gold);
  if (gold_token) result.ground_truth_value = gold_token->value;

  std::string text = normalize(generated);
  Extraction e = extract(text);
  result.strategy = e.strategy;
  if (!e.token) return result;
  result.prediction = e.token->text;
  result.predicted_value = e.token->value;
  if (!e.token->value || !gold_token || !gold_token->value) return result;

  double pred = *e.token->value;
  double truth = *gold_token->value;
  const VerifierOptions& tol = options;
  bool equal = close(pred, truth, tol);
  if (!equal && options.percent_as_fraction) {
    // "50%" for a gold of 0.5, or "0.5" for a gold of "50%".
    if (e.token->percent) equal = close(pred / 100.0, truth, tol);
    if (!equal && gold_token->percent) equal = close(pred, truth / 100.0, tol);
  }
  result.is_correct = equal;
  result.score = equal ? 1.0 : 0.0;
  return result;
}

}  // namespace eztinker::datasets
