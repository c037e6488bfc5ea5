// A procedurally generated, seeded set of one-step arithmetic word problems in GSM8K's format
// ({question, solution ending "#### N", answer}). The demo falls back to it when the GSM8K files
// are absent, and uses it with the built-in tiny model: answers are short (one digit by
// default), so a small model trained for a minute can measurably move its reward. Pure
// function of (count, seed, options); identical on every platform.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "eztinker/datasets/gsm8k.h"

namespace eztinker::datasets {

struct ArithmeticOptions {
  int max_answer = 9;             // answers lie in [0, max_answer]
  bool allow_subtraction = true;  // "had a, gave away b" problems
};

// count problems from a 64-bit seed (SplitMix64, not std distributions, so the set is the same
// with every standard library).
std::vector<GSM8KExample> make_arithmetic_problems(size_t count, uint64_t seed,
                                                   const ArithmeticOptions& options = {});

// The same as an in-memory GSM8KDataset (source "arithmetic(seed=S)").
GSM8KDataset make_arithmetic_dataset(size_t count, uint64_t seed,
                                     const ArithmeticOptions& options = {});

// Text in the demo's format (prompts plus "The answer is N." lines) for training a small BPE
// tokenizer whose merges cover the prompt template and the problem vocabulary.
std::string arithmetic_tokenizer_corpus(size_t count = 200, uint64_t seed = 1234);

}  // namespace eztinker::datasets
