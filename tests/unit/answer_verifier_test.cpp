// Answer verifier tests: every GSM8K test answer against itself reformatted many ways (must score
// 1) and against different numbers, including ones that contain the gold as a substring (must
// score 0); then a hand-written table of tricky cases.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "eztinker/datasets/answer_verifier.h"
#include "eztinker/datasets/gsm8k.h"
#include "test_support.h"

namespace ezd = eztinker::datasets;

namespace {

// "1234567" → "1,234,567", "-1234" → "-1,234" (integers only; others unchanged).
std::string with_commas(const std::string& s) {
  size_t start = (!s.empty() && s[0] == '-') ? 1 : 0;
  if (s.find('.') != std::string::npos) return s;
  std::string digits = s.substr(start);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return s.substr(0, start) + out;
}

std::string number_text(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

}  // namespace

TEST(AnswerVerifierTest, EveryGsm8kTestAnswerMatchesItselfReformatted) {
  EZTINKER_REQUIRE_SHARED_DATA("gsm8k/test.jsonl");
  ezd::GSM8KDataset ds((eztinker::testing::shared_data_dir() / "gsm8k" / "test.jsonl").string());
  ASSERT_EQ(ds.size(), 1319u);
  for (size_t i = 0; i < ds.size(); ++i) {
    const auto& ex = ds.example(i);
    const std::string g = ex.answer;
    const std::string gc = with_commas(g);
    const std::string prompt = ezd::format_gsm8k_prompt(ex.question);
    const std::vector<std::string> right = {
        g,
        "The answer is " + g + ".",
        "The answer is " + gc + ".",
        "Some work: 1 + 2 = 3.\nThe final answer is: **" + g + "**",
        "\\boxed{" + g + "}",
        "So we get $\\boxed{\\$" + gc + "}$.",
        "#### " + gc,
        "She ends up with $" + gc + " in total.",
        g + ".0",
        "Answer: " + g + ".00 dollars",
        ex.solution,  // the gold solution itself (its `####` line)
        prompt + "\nAfter the computation the result is " + g + ".",  // sample output echo
    };
    for (const auto& text : right) {
      auto r = ezd::evaluate_answer(text, ex.answer, ex.question);
      ASSERT_TRUE(r.is_correct) << "row " << i << " gold " << g << " text: " << text
                                << " strategy " << r.strategy << " pred " << r.prediction;
      ASSERT_DOUBLE_EQ(r.score, 1.0);
    }
    // The gold as written in the file ("2,125") is also accepted as ground truth.
    ASSERT_TRUE(ezd::evaluate_answer("#### " + g, ex.solution).is_correct) << i;

    const double v = *ezd::parse_numeric_answer(g);
    const std::vector<std::string> wrong = {
        "The answer is " + number_text(v + 1) + ".",
        "\\boxed{" + number_text(v - 1) + "}",
        "#### " + g + "0",                 // longer number containing the gold
        "The answer is 1" + g.substr(g[0] == '-' ? 1 : 0) + ".",  // gold as a suffix
        "The answer is " + g + ".5",       // gold as the integer part
        "The answer is " + number_text(v * 10) + ".",
        "no number here",
        prompt,  // only the echoed question: nothing the model wrote
    };
    for (const auto& text : wrong) {
      auto r = ezd::evaluate_answer(text, ex.answer, ex.question);
      ASSERT_FALSE(r.is_correct) << "row " << i << " gold " << g << " text: " << text
                                 << " pred " << r.prediction;
      ASSERT_DOUBLE_EQ(r.score, 0.0);
    }
  }
}

struct TrickyCase {
  const char* generated;
  const char* gold;
  bool correct;
  const char* strategy;    // expected strategy ("" = don't check)
  const char* prediction;  // expected extracted text ("" = don't check)
};

TEST(AnswerVerifierTest, TrickyCases) {
  const std::vector<TrickyCase> cases = {
      // Thousands separators, currency, trailing zeros.
      {"The answer is $1,080.", "1080", true, "answer_is", "$1,080"},
      {"The answer is 1,080,000", "1080000", true, "answer_is", ""},
      {"Total: 1{,}080", "1080", true, "last_number", ""},
      {"\\boxed{1\\,080}", "1080", true, "boxed", ""},
      {"It costs \\$18.00", "18", true, "last_number", ""},
      {"18.0", "18", true, "last_number", ""},
      {"0.50", "0.5", true, "", ""},
      {".5 of them", "0.5", true, "", ""},
      // Percentages and units.
      {"The answer is 25%", "25", true, "answer_is", "25%"},
      {"The answer is 50 percent", "0.5", true, "", ""},
      {"\\boxed{25\\%}", "25", true, "boxed", ""},
      {"She walks 12km in total", "12", true, "last_number", ""},
      {"\\boxed{18 \\text{ apples}}", "18", true, "boxed", ""},
      {"The answer is 5 hours.", "5", true, "answer_is", ""},
      // Negatives, and subtraction that is not a negative.
      {"The temperature is -10 degrees.", "-10", true, "last_number", "-10"},
      {"The answer is \xE2\x88\x92" "10", "-10", true, "answer_is", ""},  // U+2212 minus
      {"So 15-3 gives the result", "3", true, "last_number", "3"},
      {"So 15-3 gives the result", "-3", false, "last_number", "3"},
      {"The answer is 10", "-10", false, "", ""},
      // Fractions.
      {"\\boxed{\\frac{3}{4}}", "0.75", true, "boxed", ""},
      {"\\boxed{\\dfrac{1}{2}}", "1/2", true, "boxed", ""},
      {"The answer is 3/4", "0.75", true, "answer_is", "3/4"},
      {"\\boxed{-\\frac{1}{2}}", "-0.5", true, "boxed", ""},
      {"The answer is 1/3", "0.33", false, "", ""},  // rounded gold is not 1/3
      {"0.30000000000000004", "0.3", true, "", ""},  // float round-off is fine
      {"The answer is 0.333333", "1/3", true, "", ""},  // six decimals, like math-verify
      {"The answer is 1450001", "1450000", false, "", ""},  // large integers: exact
      // Numbers inside longer numbers never match.
      {"The answer is 123", "12", false, "answer_is", "123"},
      {"The answer is 123", "23", false, "", ""},
      {"#### 1080", "108", false, "hash", ""},
      {"The answer is 5.5", "5", false, "", ""},
      {"Room A12 holds the rest", "12", false, "none", ""},  // "A12" is not a number
      {"x2 = 12", "2", false, "", ""},
      // Strategy priority: boxed > #### > answer is > last number.
      {"The answer is 7. Check: 7 + 1 = 8", "7", true, "answer_is", "7"},
      {"\\boxed{9}. The answer is 8.", "9", true, "boxed", ""},
      {"#### 4\nso 5 apples", "4", true, "hash", ""},
      {"The answer is 3.\n#### 4", "4", true, "hash", ""},
      {"first \\boxed{1} then \\boxed{2}", "2", true, "boxed", "2"},
      {"The answer is x = 2 + 3 = 5", "5", true, "answer_is", "5"},
      {"Final Answer: 42", "42", true, "answer_is", ""},
      {"the answer is **42**", "42", true, "answer_is", ""},
      {"The answer is unknown. Later we find 6 of them", "6", true, "last_number", ""},
      // Garbage and empty input never crash and never score.
      {"", "5", false, "none", ""},
      {"\xff\xfe\x80 5", "5", true, "last_number", ""},  // invalid UTF-8 around a number
      {"\\boxed{", "5", false, "none", ""},
      {"The answer is 5", "not a number", false, "answer_is", ""},
  };
  for (const auto& c : cases) {
    auto r = ezd::evaluate_answer(c.generated, c.gold);
    EXPECT_EQ(r.is_correct, c.correct) << "generated: " << c.generated << " gold: " << c.gold
                                       << " pred: " << r.prediction << " via " << r.strategy;
    EXPECT_DOUBLE_EQ(r.score, c.correct ? 1.0 : 0.0);
    if (*c.strategy) {
      EXPECT_EQ(r.strategy, c.strategy) << c.generated;
    }
    if (*c.prediction) {
      EXPECT_EQ(r.prediction, c.prediction) << c.generated;
    }
  }
}

TEST(AnswerVerifierTest, QuestionEchoIsIgnored) {
  const std::string question = "Tom has 3 apples and gets 4 more. How many?";
  const std::string prompt = ezd::format_gsm8k_prompt(question);
  // Without the question the last number of the echoed prompt could be read as the answer.
  auto r = ezd::evaluate_answer(prompt + " 4 more", "4", question);
  EXPECT_TRUE(r.is_correct);
  r = ezd::evaluate_answer(prompt + " I do not know", "4", question);
  EXPECT_FALSE(r.is_correct);
  EXPECT_EQ(r.strategy, "none");
}

TEST(AnswerVerifierTest, ParseNumericAnswer) {
  EXPECT_DOUBLE_EQ(*ezd::parse_numeric_answer("$1,080.00"), 1080);
  EXPECT_DOUBLE_EQ(*ezd::parse_numeric_answer("-7"), -7);
  EXPECT_DOUBLE_EQ(*ezd::parse_numeric_answer("12.5%"), 12.5);
  EXPECT_DOUBLE_EQ(*ezd::parse_numeric_answer("\\frac{3}{4}"), 0.75);
  EXPECT_DOUBLE_EQ(*ezd::parse_numeric_answer("18 apples"), 18);
  EXPECT_FALSE(ezd::parse_numeric_answer("apples").has_value());
  EXPECT_FALSE(ezd::parse_numeric_answer("1/0").has_value());
}

TEST(AnswerVerifierTest, ExtractAnswerReportsStrategy) {
  auto e = ezd::extract_answer("Thus \\boxed{12}");
  EXPECT_EQ(e.text, "12");
  EXPECT_EQ(e.strategy, "boxed");
  e = ezd::extract_answer("nothing");
  EXPECT_EQ(e.strategy, "none");
  EXPECT_TRUE(e.text.empty());
}
