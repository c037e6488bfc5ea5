// GSM8K loader tests: the real shared files (row counts, every final answer numeric), the
// EZTinker prompt, file lookup order (explicit path, data dir, EZTINKER_DATA_DIR, cache, no
// silent download) and file:line:field errors on malformed fixtures (tests/data/gsm8k/).
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <set>
#include <string>

#include "eztinker/datasets/answer_verifier.h"
#include "eztinker/datasets/gsm8k.h"
#include "test_support.h"

namespace ezd = eztinker::datasets;
using eztinker::testing::shared_data_dir;
using eztinker::testing::TempDir;
using eztinker::testing::test_data_dir;

namespace {

// Sets (or unsets) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::string gsm8k_error(const ezd::GSM8KOptions& options) {
  try {
    ezd::GSM8KDataset ds(options);
  } catch (const ezd::DatasetError& e) {
    return e.what();
  }
  return "";
}

std::string fixture_error(const std::string& name) {
  ezd::GSM8KOptions o;
  o.path = test_data_dir() / "gsm8k" / name;
  return gsm8k_error(o);
}

}  // namespace

TEST(Gsm8kTest, LoadsSharedTrainAndTestSplitsCompletely) {
  ScopedEnv no_download("EZTINKER_ALLOW_DOWNLOAD", std::nullopt);
  ezd::GSM8KOptions o;
  EZTINKER_REQUIRE_SHARED_DATA("gsm8k");
  o.data_dir = shared_data_dir();  // finds <dir>/gsm8k/<split>.jsonl
  o.split = "train";
  ezd::GSM8KDataset train(o);
  o.split = "test";
  ezd::GSM8KDataset test(o);
  EXPECT_EQ(train.size(), 7473u);  // PROVENANCE.md §1
  EXPECT_EQ(test.size(), 1319u);
  for (const auto* ds : {&train, &test}) {
    for (const auto& ex : ds->examples()) {
      ASSERT_FALSE(ex.answer.empty());
      EXPECT_EQ(ex.answer.find(','), std::string::npos) << ex.answer;
      EXPECT_TRUE(ezd::parse_numeric_answer(ex.answer).has_value()) << ex.answer;
    }
  }
  EXPECT_EQ(test.example(0).answer, "18");
  EXPECT_NE(test.example(0).question.find("Janet\u2019s ducks"), std::string::npos);
}

TEST(Gsm8kTest, CommasStrippedAndNegativesKeptInSharedData) {
  EZTINKER_REQUIRE_SHARED_DATA("gsm8k/test.jsonl");
  ezd::GSM8KDataset test((shared_data_dir() / "gsm8k" / "test.jsonl").string());
  int negatives = 0;
  int thousands = 0;
  for (const auto& ex : test.examples()) {
    if (ex.answer.front() == '-') ++negatives;
    if (ex.solution.find("#### ") != std::string::npos &&
        ex.solution.substr(ex.solution.rfind("####")).find(',') != std::string::npos) {
      ++thousands;
    }
  }
  EXPECT_EQ(negatives, 2);   // PROVENANCE.md: e.g. -10
  EXPECT_EQ(thousands, 14);  // e.g. 2,125
}

TEST(Gsm8kTest, MaxSamplesKeepsTheFirstRows) {
  EZTINKER_REQUIRE_SHARED_DATA("gsm8k/test.jsonl");
  ezd::GSM8KDataset ds((shared_data_dir() / "gsm8k" / "test.jsonl").string(), 5);
  ASSERT_EQ(ds.size(), 5u);
  EXPECT_EQ(ds.example(0).answer, "18");
  EXPECT_THROW(ds.example(5), std::out_of_range);
}

TEST(Gsm8kTest, PromptIsTheEZTinkerPromptExactly) {
  ezd::GSM8KDataset ds((test_data_dir() / "gsm8k" / "small.jsonl").string());
  ASSERT_EQ(ds.size(), 3u);  // the blank line is skipped
  ezd::GSM8KQuestion q = ds.get_example_question(0);
  EXPECT_EQ(q.question, "Tom has 3 apples and buys 4 more. How many apples does he have?");
  EXPECT_EQ(q.answer, "7");
  EXPECT_EQ(q.prompt,
            "Please solve the following math problem step by step. Provide your final answer as "
            "a single number.\n\nQuestion: Tom has 3 apples and buys 4 more. How many apples "
            "does he have?\n\nLet's think step by step.");
  EXPECT_EQ(ds.get_example_question(1).answer, "1100");
  EXPECT_EQ(ds.get_example_question(2).answer, "-10");

  auto messages = ds.get_example_messages(0);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].role, "user");
  EXPECT_EQ(messages[0].content, q.prompt);
  auto with_system = ds.get_example_messages(0, "You are a helpful assistant.");
  ASSERT_EQ(with_system.size(), 2u);
  EXPECT_EQ(with_system[0].role, "system");
  EXPECT_EQ(with_system[1].content, q.prompt);
}

TEST(Gsm8kTest, EvaluateAnswerDelegatesToTheVerifier) {
  ezd::GSM8KDataset ds((test_data_dir() / "gsm8k" / "small.jsonl").string());
  auto q = ds.get_example_question(1);
  EXPECT_TRUE(ds.evaluate_answer("So the total is $1,100.", q.answer, q.question).is_correct);
  EXPECT_FALSE(ds.evaluate_answer("So the total is $1,080.", q.answer, q.question).is_correct);
}

TEST(Gsm8kTest, ErrorsNameFileLineAndField) {
  std::string e = fixture_error("missing_answer.jsonl");
  EXPECT_NE(e.find("missing_answer.jsonl:2: missing `answer`"), std::string::npos) << e;
  e = fixture_error("no_final_answer.jsonl");
  EXPECT_NE(e.find("no_final_answer.jsonl:3: `answer` has no `####`"), std::string::npos) << e;
  e = fixture_error("bad_json.jsonl");
  EXPECT_NE(e.find("bad_json.jsonl:2: invalid JSON"), std::string::npos) << e;
  e = fixture_error("wrong_type.jsonl");
  EXPECT_NE(e.find("wrong_type.jsonl:1: `question` must be a string"), std::string::npos) << e;
  e = fixture_error("does_not_exist.jsonl");
  EXPECT_NE(e.find("does_not_exist.jsonl does not exist"), std::string::npos) << e;
}

TEST(Gsm8kTest, FinalAnswerRules) {
  EXPECT_EQ(ezd::extract_gsm8k_final_answer("a\n#### 1,234,567"), "1234567");
  EXPECT_EQ(ezd::extract_gsm8k_final_answer("#### 1\nmore\n#### 2 "), "2");  // the last `####`
  EXPECT_THROW(ezd::extract_gsm8k_final_answer("no marker"), ezd::DatasetError);
  EXPECT_THROW(ezd::extract_gsm8k_final_answer("#### "), ezd::DatasetError);
}

TEST(Gsm8kTest, SplitLookupOrder) {
  EZTINKER_REQUIRE_SHARED_DATA("gsm8k/test.jsonl");
  ScopedEnv no_download("EZTINKER_ALLOW_DOWNLOAD", std::nullopt);
  TempDir env_dir("gsm8k-env");
  TempDir cache_dir("gsm8k-cache");
  const std::string one_row = "{\"question\": \"env q\", \"answer\": \"#### 5\"}\n";
  const std::string cache_row = "{\"question\": \"cache q\", \"answer\": \"#### 6\"}\n";
  eztinker::testing::write_file(env_dir / "test.jsonl", one_row);
  eztinker::testing::write_file(cache_dir / "test.jsonl", cache_row);

  ezd::GSM8KOptions o;
  o.split = "test";
  o.cache_dir = cache_dir.path();
  {
    ScopedEnv env("EZTINKER_DATA_DIR", env_dir.path().string());
    EXPECT_EQ(ezd::GSM8KDataset(o).example(0).question, "env q");  // env before cache
    o.data_dir = shared_data_dir();
    EXPECT_EQ(ezd::GSM8KDataset(o).size(), 1319u);  // explicit dir before env
    o.data_dir.clear();
  }
  {
    ScopedEnv env("EZTINKER_DATA_DIR", std::nullopt);
    EXPECT_EQ(ezd::GSM8KDataset(o).example(0).question, "cache q");
  }
}

TEST(Gsm8kTest, NothingFoundListsPlacesAndNeverDownloadsUnasked) {
  ScopedEnv no_download("EZTINKER_ALLOW_DOWNLOAD", std::nullopt);
  ScopedEnv env("EZTINKER_DATA_DIR", std::nullopt);
  TempDir empty("gsm8k-empty");
  ezd::GSM8KOptions o;
  o.split = "train";
  o.cache_dir = empty.path();
  std::string e = gsm8k_error(o);
  EXPECT_NE(e.find("no train.jsonl found"), std::string::npos) << e;
  EXPECT_NE(e.find(empty.path().string()), std::string::npos) << e;
  EXPECT_NE(e.find("EZTINKER_ALLOW_DOWNLOAD"), std::string::npos) << e;
  EXPECT_TRUE(std::filesystem::is_empty(empty.path()));  // nothing was fetched

  o.split = "validation";
  e = gsm8k_error(o);
  EXPECT_NE(e.find("unknown split `validation`"), std::string::npos) << e;
}

TEST(Gsm8kTest, InMemoryDataset) {
  ezd::GSM8KDataset ds({{"What is 2 + 2?", "#### 4", "4"}}, "inline");
  EXPECT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds.source(), "inline");
  EXPECT_EQ(ds.get_example_question(0).prompt, ezd::format_gsm8k_prompt("What is 2 + 2?"));
}

// --- The built-in arithmetic problems (GSM8K format). ---

#include "eztinker/datasets/arithmetic.h"

TEST(ArithmeticTest, DeterministicWellFormedProblems) {
  auto a = ezd::make_arithmetic_problems(200, 7);
  auto b = ezd::make_arithmetic_problems(200, 7);
  auto c = ezd::make_arithmetic_problems(200, 8);
  ASSERT_EQ(a.size(), 200u);
  bool differs = false;
  std::set<std::string> answers;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].question, b[i].question);
    differs |= a[i].question != c[i].question;
    int v = std::stoi(a[i].answer);
    EXPECT_GE(v, 0);
    EXPECT_LE(v, 9);
    answers.insert(a[i].answer);
    // The solution is consistent with GSM8K's rules and with the verifier.
    EXPECT_EQ(ezd::extract_gsm8k_final_answer(a[i].solution), a[i].answer);
    EXPECT_TRUE(ezd::evaluate_answer(a[i].solution, a[i].answer).is_correct);
  }
  EXPECT_TRUE(differs);
  EXPECT_EQ(answers.size(), 10u);  // every answer 0..9 occurs
  auto ds = ezd::make_arithmetic_dataset(5, 7);
  EXPECT_EQ(ds.size(), 5u);
  EXPECT_EQ(ds.example(0).question, a[0].question);
  EXPECT_NE(ezd::arithmetic_tokenizer_corpus(10).find("The answer is"), std::string::npos);
}
