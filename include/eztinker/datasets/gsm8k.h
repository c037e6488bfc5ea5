// GSM8K (Grade School Math 8K) loader: jsonl rows {"question","answer"} with the final answer
// after the last `####`. Mirrors the Python EZTinker `GSM8KDataset` (split or path, max_samples,
// get_example_question, evaluate_answer) with plain structs in and out.
//
// Thread safety: a loaded GSM8KDataset is immutable; const methods may be called concurrently.
// Errors: loading throws DatasetError whose message names the file, the 1-based line and the
// field ("…/train.jsonl:12: missing `answer`").
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "eztinker/datasets/answer_verifier.h"
#include "eztinker/datasets/dataset_error.h"
#include "eztinker/tokenizer.h"

namespace eztinker::datasets {

using ChatMessage = tokenizer::ChatMessage;

// The EZTinker GSM8K prompt; `{question}` is replaced by the question text.
inline constexpr std::string_view kGsm8kPromptTemplate =
    "Please solve the following math problem step by step. Provide your final answer as a "
    "single number.\n\nQuestion: {question}\n\nLet's think step by step.";

// Public raw URL of the original files (openai/grade-school-math, MIT). `{split}` = train|test.
inline constexpr std::string_view kGsm8kDownloadUrl =
    "https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data/"
    "{split}.jsonl";

// One row as stored.
struct GSM8KExample {
  std::string question;
  std::string solution;  // the full `answer` field: reasoning, <<calc>> annotations, `#### N`
  std::string answer;    // final answer: text after the last `####`, trimmed, commas stripped
};

// What get_example_question returns (the Python tuple `question, prompt, answer`).
struct GSM8KQuestion {
  std::string question;
  std::string prompt;  // format_gsm8k_prompt(question)
  std::string answer;  // final answer, commas stripped
};

// Where and how to find the data. The first source that exists wins:
//   1. `path` (an explicit jsonl file);
//   2. `data_dir` / {split}.jsonl or data_dir / gsm8k / {split}.jsonl;
//   3. env EZTINKER_DATA_DIR, same two layouts;
//   4. `cache_dir` / {split}.jsonl (default $XDG_CACHE_HOME or ~/.cache, + eztinker/data/gsm8k);
//   5. a download of kGsm8kDownloadUrl into cache_dir, only when `allow_download` is true or
//      env EZTINKER_ALLOW_DOWNLOAD=1 (needs `curl` on PATH and network access).
struct GSM8KOptions {
  std::string split = "train";      // "train" or "test"
  std::filesystem::path path;       // explicit file; split lookup is skipped when set
  std::filesystem::path data_dir;   // empty = not used
  std::filesystem::path cache_dir;  // empty = default cache location
  size_t max_samples = 0;           // keep the first N rows; 0 = all
  bool allow_download = false;      // off by default: never touch the network unasked
};

// The default cache directory for a dataset name ("gsm8k" → ~/.cache/eztinker/data/gsm8k).
std::filesystem::path default_cache_dir(std::string_view dataset_name);

// Resolves the file for `options` without loading it (same order as above). Throws
// DatasetError listing every place it looked when nothing is found and download is off.
std::filesystem::path locate_gsm8k_file(const GSM8KOptions& options);

// Fills kGsm8kPromptTemplate.
std::string format_gsm8k_prompt(std::string_view question);

// Final answer of a GSM8K `answer` field: after the last `####`, trimmed, commas removed.
// Throws DatasetError (no `####`, or nothing after it); `where` prefixes the message.
std::string extract_gsm8k_final_answer(std::string_view solution, std::string_view where = "");

// Parses jsonl text (one object per line; blank lines skipped). `source` names the file in
// errors. max_samples = 0 keeps every row.
std::vector<GSM8KExample> parse_gsm8k_jsonl(std::string_view text, std::string_view source,
                                            size_t max_samples = 0);

class GSM8KDataset {
 public:
  // `split_or_path`: "train" / "test" (located as in GSM8KOptions) or a path to a jsonl file.
  explicit GSM8KDataset(const std::string& split_or_path = "train", size_t max_samples = 0);
  explicit GSM8KDataset(const GSM8KOptions& options);
  // From rows already in memory (procedural data, tests).
  GSM8KDataset(std::vector<GSM8KExample> examples, std::string source);

  size_t size() const { return examples_.size(); }
  bool empty() const { return examples_.empty(); }
  const std::vector<GSM8KExample>& examples() const { return examples_; }
  // Throws std::out_of_range naming the index and size.
  const GSM8KExample& example(size_t i) const;
  // Where the rows came from (file path, or a description for in-memory data).
  const std::string& source() const { return source_; }

  GSM8KQuestion get_example_question(size_t i) const;
  // The same prompt as chat messages: an optional system message, then one user message.
  std::vector<ChatMessage> get_example_messages(size_t i, std::string_view system_prompt = "") const;

  // Python parity: dataset.evaluate_answer(generated, answer, question).
  VerificationResult evaluate_answer(std::string_view generated, std::string_view ground_truth,
                                     std::string_view question = "") const;

 private:
  std::vector<GSM8KExample> examples_;
  std::string source_;
};

}  // namespace eztinker::datasets
