// Procedural arithmetic word problems (see include/eztinker/datasets/arithmetic.h).
#include "eztinker/datasets/arithmetic.h"

#include <array>
#include <string_view>

namespace eztinker::datasets {
namespace {

// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and fully specified.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform-enough in [0, n) for n far below 2^64.
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
};

constexpr std::array<std::string_view, 8> kNames = {"Tom", "Sara", "Ben", "Mia",
                                                    "Leo", "Ana",  "Sam", "Eva"};
constexpr std::array<std::string_view, 8> kItems = {"apples", "books", "pens",  "cards",
                                                    "coins",  "eggs",  "shells", "stamps"};

}  // namespace

std::vector<GSM8KExample> make_arithmetic_problems(size_t count, uint64_t seed,
                                                   const ArithmeticOptions& options) {
  SplitMix64 rng{seed};
  const int max_answer = options.max_answer < 1 ? 1 : options.max_answer;
  std::vector<GSM8KExample> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    std::string name(kNames[static_cast<size_t>(rng.below(kNames.size()))]);
    std::string item(kItems[static_cast<size_t>(rng.below(kItems.size()))]);
    int kind = rng.below(options.allow_subtraction ? 3 : 2);
    int answer = rng.below(max_answer + 1);
    std::string question;
    std::string work;
    if (kind == 2) {
      // a - b = answer with b in [1, max_answer]: a = answer + b.
      int b = 1 + rng.below(max_answer);
      int a = answer + b;
      question = name + " had " + std::to_string(a) + " " + item + " and gave away " +
                 std::to_string(b) + ". How many " + item + " are left?";
      work = std::to_string(a) + " - " + std::to_string(b) + " = " + std::to_string(answer);
    } else {
      // a + b = answer with a in [0, answer].
      int a = rng.below(answer + 1);
      int b = answer - a;
      if (kind == 0) {
        question = name + " has " + std::to_string(a) + " " + item + " and gets " +
                   std::to_string(b) + " more. How many " + item + " does " + name + " have now?";
      } else {
        question = "There are " + std::to_string(a) + " " + item + " in a box and " +
                   std::to_string(b) + " in a bag. How many " + item + " are there in total?";
      }
      work = std::to_string(a) + " + " + std::to_string(b) + " = " + std::to_string(answer);
    }
    GSM8KExample ex;
    ex.question = std::move(question);
    ex.solution = work + "\n#### " + std::to_string(answer);
    ex.answer = std::to_string(answer);
    out.push_back(std::move(ex));
  }
  return out;
}

GSM8KDataset make_arithmetic_dataset(size_t count, uint64_t seed,
                                     const ArithmeticOptions& options) {
  return GSM8KDataset(make_arithmetic_problems(count, seed, options),
                      "arithmetic(seed=" + std::to_string(seed) + ")");
}

std::string arithmetic_tokenizer_corpus(size_t count, uint64_t seed) {
  std::string text;
  for (const auto& ex : make_arithmetic_problems(count, seed)) {
    text += format_gsm8k_prompt(ex.question);
    text += " " + ex.solution.substr(0, ex.solution.find('\n'));
    text += ". The answer is " + ex.answer + ".\n";
  }
  return text;
}

}  // namespace eztinker::datasets
