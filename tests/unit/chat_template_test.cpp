// Chat rendering and loss weights against shared/data/tokenizer-tests/qwen2_chat_vectors.jsonl
// (19 conversations x the Qwen2-Instruct and Qwen2.5-Instruct jinja templates): prompt text/ids
// with add_generation_prompt=true, full text/ids, and weights that cover exactly the assistant
// part that follows the prompt.
#include "eztinker/tokenizer.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <numeric>

namespace {

namespace fs = std::filesystem;
using eztinker::testing::read_file;
using eztinker::testing::shared_data_dir;
using eztinker::testing::TempDir;
using eztinker::testing::write_file;
using eztinker::tokenizer::ChatEncoding;
using eztinker::tokenizer::ChatMessage;
using eztinker::tokenizer::ChatTemplate;
using eztinker::tokenizer::Tokenizer;
using eztinker::tokenizer::TrainOn;

fs::path qwen2_dir() {
  return shared_data_dir() / "qwen2-tokenizer";
}

struct ChatCase {
  std::string template_name;
  std::string source;
  std::vector<ChatMessage> messages;
  std::string prompt_text, full_text;
  std::vector<int32_t> prompt_ids, full_ids;
};

std::vector<ChatCase> chat_cases() {
  std::ifstream in(shared_data_dir() / "tokenizer-tests" / "qwen2_chat_vectors.jsonl");
  std::vector<ChatCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    ChatCase c;
    c.template_name = j["template"];
    c.source = j["source"];
    for (const auto& m : j["messages"]) c.messages.push_back({m["role"], m["content"]});
    c.prompt_text = j["prompt_text"];
    c.full_text = j["full_text"];
    c.prompt_ids = j["prompt_ids"].get<std::vector<int32_t>>();
    c.full_ids = j["full_ids"].get<std::vector<int32_t>>();
    cases.push_back(std::move(c));
  }
  return cases;
}

// Loaded lazily, once per process (ctest runs each test in its own process).
class ChatTemplateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EZTINKER_REQUIRE_SHARED_DATA("qwen2-tokenizer");
    EZTINKER_REQUIRE_SHARED_DATA("tokenizer-tests/qwen2_chat_vectors.jsonl");
  }
  static const Tokenizer& qwen2() {
    static const auto tok = Tokenizer::load(qwen2_dir());
    return *tok;
  }
  // A Qwen2.5-Instruct directory: same vocab/merges, the Qwen2.5 tokenizer_config.json.
  static const Tokenizer& qwen25() {
    static const TempDir dir("eztinker-chat25");
    static const auto tok = [] {
      fs::copy_file(qwen2_dir() / "vocab.json", dir.path() / "vocab.json");
      fs::copy_file(qwen2_dir() / "merges.txt", dir.path() / "merges.txt");
      fs::copy_file(qwen2_dir() / "tokenizer_config.qwen2.5-instruct.json",
                    dir.path() / "tokenizer_config.json");
      return Tokenizer::load(dir.path());
    }();
    return *tok;
  }
  static const Tokenizer& for_template(const std::string& name) {
    return name == "qwen2.5-instruct" ? qwen25() : qwen2();
  }
};

TEST_F(ChatTemplateTest, DetectsTemplateFromConfig) {
  EXPECT_EQ(qwen2().chat_template(), ChatTemplate::kQwen2);
  EXPECT_EQ(qwen25().chat_template(), ChatTemplate::kQwen25);
}

TEST_F(ChatTemplateTest, AllVectorsMatch) {
  const auto cases = chat_cases();
  ASSERT_EQ(cases.size(), 38u);
  size_t matched = 0;
  for (const auto& c : cases) {
    const Tokenizer& tok = for_template(c.template_name);
    const std::vector<ChatMessage> prompt(c.messages.begin(), c.messages.end() - 1);
    const std::string where = c.template_name + " " + c.source;
    const std::string prompt_text = tok.apply_chat_template(prompt, true);
    const std::string full_text = tok.apply_chat_template(c.messages, false);
    const auto prompt_ids = tok.encode(prompt_text);
    const auto full_ids = tok.encode(full_text);
    EXPECT_EQ(prompt_text, c.prompt_text) << where;
    EXPECT_EQ(full_text, c.full_text) << where;
    EXPECT_EQ(prompt_ids, c.prompt_ids) << where;
    EXPECT_EQ(full_ids, c.full_ids) << where;
    // encode_chat gives the same ids as rendering then encoding.
    EXPECT_EQ(tok.encode_chat(prompt, true, TrainOn::kAssistant).ids, c.prompt_ids) << where;
    matched += (prompt_text == c.prompt_text && full_text == c.full_text &&
                prompt_ids == c.prompt_ids && full_ids == c.full_ids)
                   ? 1
                   : 0;
  }
  EXPECT_EQ(matched, cases.size());
}

TEST_F(ChatTemplateTest, LastAssistantWeightsCoverTheCompletion) {
  // The vectors' prompt is a token prefix of the full ids, so the trained tokens of the last
  // assistant turn are full_ids[len(prompt_ids) : -1]: its content and <|im_end|>, not the "\n".
  for (const auto& c : chat_cases()) {
    const Tokenizer& tok = for_template(c.template_name);
    const ChatEncoding enc = tok.encode_chat(c.messages, false, TrainOn::kLastAssistant);
    ASSERT_EQ(enc.ids, c.full_ids) << c.source;
    ASSERT_EQ(enc.weights.size(), enc.ids.size());
    ASSERT_EQ(c.full_ids.back(), tok.token_to_id("\xC4\x8A"));  // "Ċ" = "\n"
    ASSERT_EQ(c.full_ids[c.full_ids.size() - 2], 151645);
    for (size_t t = 0; t < enc.ids.size(); ++t) {
      const bool trained = t >= c.prompt_ids.size() && t + 1 < enc.ids.size();
      EXPECT_EQ(enc.weights[t], trained ? 1.0f : 0.0f) << c.source << " token " << t;
    }
  }
}

TEST_F(ChatTemplateTest, AssistantWeightsCoverEveryAssistantTurn) {
  for (const auto& c : chat_cases()) {
    const Tokenizer& tok = for_template(c.template_name);
    const ChatEncoding enc = tok.encode_chat(c.messages, false, TrainOn::kAssistant);
    ASSERT_EQ(enc.ids, c.full_ids);
    // Expected: for each assistant turn i, the tokens between the rendered prefix with a
    // generation prompt and the rendered prefix through turn i, minus its trailing "\n".
    std::vector<float> expected(enc.ids.size(), 0.0f);
    for (size_t i = 0; i < c.messages.size(); ++i) {
      if (c.messages[i].role != "assistant") continue;
      const std::vector<ChatMessage> before(c.messages.begin(), c.messages.begin() + i);
      const std::vector<ChatMessage> through(c.messages.begin(), c.messages.begin() + i + 1);
      const size_t begin = tok.encode(tok.apply_chat_template(before, true)).size();
      const size_t end = tok.encode(tok.apply_chat_template(through, false)).size() - 1;
      for (size_t t = begin; t < end; ++t) expected[t] = 1.0f;
    }
    EXPECT_EQ(enc.weights, expected) << c.source;
  }
}

TEST_F(ChatTemplateTest, TrainOnAllAndGenerationPrompt) {
  const auto c = chat_cases().front();
  const ChatEncoding all = qwen2().encode_chat(c.messages, false, TrainOn::kAll);
  EXPECT_EQ(all.ids, c.full_ids);
  EXPECT_EQ(std::accumulate(all.weights.begin(), all.weights.end(), 0.0f),
            static_cast<float>(all.ids.size()));
  const std::vector<ChatMessage> prompt(c.messages.begin(), c.messages.end() - 1);
  const ChatEncoding gen = qwen2().encode_chat(prompt, true, TrainOn::kAssistant);
  EXPECT_EQ(gen.ids, c.prompt_ids);
  EXPECT_EQ(std::accumulate(gen.weights.begin(), gen.weights.end(), 0.0f), 0.0f);
}

TEST_F(ChatTemplateTest, DefaultSystemPromptsAndEdgeCases) {
  const std::vector<ChatMessage> user = {{"user", "Hi"}};
  EXPECT_EQ(qwen2().apply_chat_template(user, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(qwen25().apply_chat_template(user, false),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
  // The Qwen2 template inserts the default inside its loop; Qwen2.5's before it.
  EXPECT_EQ(qwen2().apply_chat_template({}, true), "<|im_start|>assistant\n");
  EXPECT_EQ(qwen25().apply_chat_template({}, false),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n");
  EXPECT_THROW(qwen2().apply_chat_template({{"tool", "x"}}, false), std::invalid_argument);
  // The header ids match PROVENANCE §3b's HF-checked chat header.
  EXPECT_EQ(
      qwen2().encode("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"),
      (std::vector<int32_t>{151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198}));
}

TEST_F(ChatTemplateTest, ContentNeedingNormalizationStillAligns) {
  // Decomposed accents and a leading newline in the assistant content.
  const std::vector<ChatMessage> msgs = {{"user", "e\xCC\x81t\xC3\xA9?"},
                                         {"assistant", "\n\ncafe\xCC\x81 \xF0\x9F\xA6\x99"}};
  const ChatEncoding enc = qwen2().encode_chat(msgs, false, TrainOn::kAssistant);
  EXPECT_EQ(enc.ids, qwen2().encode(qwen2().apply_chat_template(msgs, false)));
  std::vector<int32_t> trained;
  for (size_t t = 0; t < enc.ids.size(); ++t) {
    if (enc.weights[t] == 1.0f) trained.push_back(enc.ids[t]);
  }
  ASSERT_FALSE(trained.empty());
  EXPECT_EQ(trained.back(), 151645);
  trained.pop_back();
  // The trained tokens decode to (at least) the whole normalized content.
  EXPECT_NE(qwen2().decode(trained).find("caf\xC3\xA9 \xF0\x9F\xA6\x99"), std::string::npos);
}

}  // namespace
