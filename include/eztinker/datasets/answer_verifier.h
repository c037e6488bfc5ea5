// Answer verification for numeric math answers (GSM8K and similar), in the spirit of
// HuggingFace math-verify: extract the model's final answer by a fixed strategy order, then
// compare numerically, tolerant of formatting (thousands separators, `$`, `%`, units, `.0`,
// LaTeX fractions) but never of a different number.
//
// Stateless and thread-safe; never throws on any input bytes (invalid UTF-8 included).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace eztinker::datasets {

// How the prediction was found. Tried in this order; the first that yields a number wins:
//   "boxed"        the last \boxed{...} / \fbox{...} (balanced braces)
//   "hash"         the last `#### ...` line (GSM8K's own format)
//   "answer_is"    after the last "the (final) answer is" / "final answer:" / "answer:"
//   "last_number"  the last number anywhere in the text
//   "none"         nothing numeric found
struct VerificationResult {
  double score = 0.0;          // in [0, 1]: 1 for an equivalent answer, 0 otherwise
  bool is_correct = false;     // score == 1
  std::string prediction;      // the extracted answer text as written ("$1,080", "\frac{3}{4}")
  std::optional<double> predicted_value;     // its numeric value, when it parsed
  std::optional<double> ground_truth_value;  // the gold value, when it parsed
  std::string strategy = "none";
};

// Options for the comparison. Defaults suit GSM8K.
struct VerifierOptions {
  // Equal when |pred - gold| <= max(absolute_tolerance, relative_tolerance * |gold|).
  // The defaults accept float round-off ("0.30000000000000004") and six-decimal answers
  // ("0.333333" for 1/3, like math-verify's 6-digit rounding) but never a different integer,
  // however large (1450001 vs 1450000), nor a coarsely rounded one ("0.33" for 1/3).
  double absolute_tolerance = 1e-6;
  double relative_tolerance = 1e-9;
  // A prediction written with `%` also matches gold == value / 100 ("50%" vs "0.5").
  bool percent_as_fraction = true;
};

// Scores `generated` against `ground_truth`. The gold may be a bare number ("1,080", "-7",
// "3/4", "\frac{1}{2}") or a whole GSM8K solution (its `####` answer is used). When `question`
// is non-empty and the generated text contains it (as /v1/sample's `generated_text` echoes the
// prompt), only the text after the last echo is considered, so numbers from the question can
// never be mistaken for the model's answer.
VerificationResult evaluate_answer(std::string_view generated, std::string_view ground_truth,
                                   std::string_view question = "",
                                   const VerifierOptions& options = {});

// The numeric value of an answer string as a human would read it: "$1,080.00" → 1080,
// "-7" → -7, "12.5%" → 12.5, "\frac{3}{4}" / "3/4" → 0.75, "18 apples" → 18. nullopt when no
// leading number can be read.
std::optional<double> parse_numeric_answer(std::string_view text);

// Only the extraction step: {prediction text, strategy}; strategy "none" when nothing found.
struct ExtractedAnswer {
  std::string text;
  std::string strategy = "none";
};
ExtractedAnswer extract_answer(std::string_view generated);

}  // namespace eztinker::datasets
