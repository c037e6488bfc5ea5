// ShareGPT loader tests: the shared real files (FastChat from/value, its role/content jsonl
// twin, torchtune's system-inside variant, LLaMA-Factory role/content), small fixtures for
// every dialect and malformed input (tests/data/sharegpt/), strict vs non-strict, stats,
// shuffle/max_samples, Qwen2 template text, assistant-only training weights cross-checked
// against the reference chat vectors, and the jsonl export round trip.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "eztinker/datasets/sharegpt.h"
#include "eztinker/tokenizer.h"
#include "test_support.h"

namespace ezd = eztinker::datasets;
namespace tok = eztinker::tokenizer;
using eztinker::testing::shared_data_dir;
using eztinker::testing::TempDir;
using eztinker::testing::test_data_dir;

namespace {

std::filesystem::path shared(const std::string& name) {
  return shared_data_dir() / "sharegpt" / name;
}
std::filesystem::path fixture(const std::string& name) {
  return test_data_dir() / "sharegpt" / name;
}

std::string strict_error(const std::filesystem::path& path) {
  try {
    ezd::ShareGPTDataset ds(path, nullptr, 0, /*strict=*/true);
  } catch (const ezd::DatasetError& e) {
    return e.what();
  }
  return "";
}

// The Qwen2 tokenizer from the shared files, loaded once for the whole suite.
const tok::Tokenizer& qwen2_tokenizer() {
  static std::unique_ptr<tok::Tokenizer> t = tok::Tokenizer::load(shared_data_dir() / "qwen2-tokenizer");
  return *t;
}

}  // namespace

TEST(ShareGPTTest, FastChatFromValueFile) {
  EZTINKER_REQUIRE_SHARED_DATA("sharegpt");
  ezd::ShareGPTDataset ds(shared("fastchat_dummy_conversation.json"), nullptr, 0, true);
  const auto& s = ds.stats();
  EXPECT_EQ(ds.size(), 500u);
  EXPECT_EQ(s.total_loaded, 500u);
  EXPECT_EQ(s.valid_conversations, 500u);
  EXPECT_EQ(s.invalid_conversations, 0u);
  EXPECT_EQ(s.total_turns, 2000u);  // 1000 human + 1000 gpt (PROVENANCE.md §4)
  EXPECT_EQ(s.total_tokens, 0u);    // no tokenizer: never estimated
  EXPECT_EQ(s.dialect_counts.from_value, 500u);
  EXPECT_EQ(s.dialect_counts.role_content, 0u);
  EXPECT_EQ(s.dialect_counts.mixed, 0u);
  size_t two = 0, four = 0, six = 0;
  for (const auto& c : ds.conversations()) {
    two += c.num_turns() == 2;
    four += c.num_turns() == 4;
    six += c.num_turns() == 6;
  }
  EXPECT_EQ(two, 167u);
  EXPECT_EQ(four, 166u);
  EXPECT_EQ(six, 167u);
  EXPECT_EQ(ds.conversation(0).id, "identity_0");
  EXPECT_EQ(ds.conversation(0).messages[0].role, "user");
  EXPECT_EQ(ds.conversation(0).messages[0].content, "Who are you?");
  EXPECT_EQ(ds.conversation(0).messages[1].role, "assistant");
}

TEST(ShareGPTTest, OpenAIMessagesJsonlIsTheSameData) {
  EZTINKER_REQUIRE_SHARED_DATA("sharegpt");
  ezd::ShareGPTDataset a(shared("fastchat_dummy_conversation.json"));
  ezd::ShareGPTDataset b(shared("fastchat_dummy_conversation.openai_messages.jsonl"), nullptr, 0,
                         true);
  ASSERT_EQ(b.size(), 500u);
  EXPECT_EQ(b.stats().dialect_counts.role_content, 500u);
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a.conversation(i).id, b.conversation(i).id);
    ASSERT_EQ(a.conversation(i).messages.size(), b.conversation(i).messages.size());
    for (size_t t = 0; t < a.conversation(i).messages.size(); ++t) {
      ASSERT_EQ(a.conversation(i).messages[t].role, b.conversation(i).messages[t].role);
      ASSERT_EQ(a.conversation(i).messages[t].content, b.conversation(i).messages[t].content);
    }
    ASSERT_EQ(a.get_conversation_turns(i).text, b.get_conversation_turns(i).text);
  }
}

TEST(ShareGPTTest, SystemTurnInsideConversations) {
  EZTINKER_REQUIRE_SHARED_DATA("sharegpt");
  ezd::ShareGPTDataset ds(shared("torchtune_chat_tiny.json"), nullptr, 0, true);
  ASSERT_EQ(ds.size(), 1u);
  auto turns = ds.get_conversation_turns(0);
  EXPECT_EQ(turns.id, "conversation_0");
  EXPECT_EQ(turns.num_turns, 4u);
  EXPECT_EQ(turns.text,
            "<|im_start|>system\nYou are an AI assistant.<|im_end|>\n"
            "<|im_start|>user\nWhat is the meaning of life?<|im_end|>\n"
            "<|im_start|>assistant\nThe meaning of life is 42.<|im_end|>\n"
            "<|im_start|>user\nThat's ridiculous.<|im_end|>\n"
            "<|im_start|>assistant\nI agree.<|im_end|>\n");
}

TEST(ShareGPTTest, LlamaFactoryRoleContentIgnoresImages) {
  EZTINKER_REQUIRE_SHARED_DATA("sharegpt");
  ezd::ShareGPTDataset ds(shared("llamafactory_mllm_demo.openai_roles.json"), nullptr, 0, true);
  EXPECT_EQ(ds.size(), 6u);
  EXPECT_EQ(ds.stats().dialect_counts.role_content, 6u);
  EXPECT_EQ(ds.conversation(0).messages[0].content, "<image>Who are they?");
}

TEST(ShareGPTTest, DefaultAndCustomSystemPrompt) {
  ezd::ShareGPTDataset plain(fixture("dialect_a.json"));
  auto t0 = plain.get_conversation_turns(0);
  EXPECT_EQ(t0.text,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
            "<|im_start|>assistant\n2 + 3 = 5.<|im_end|>\n");
  EXPECT_EQ(plain.get_conversation_turns(1).num_turns, 4u);

  ezd::ShareGPTDataset custom(fixture("dialect_a.json"), nullptr, 0, true, "Answer in French.");
  EXPECT_EQ(custom.conversation(0).messages[0].role, "system");
  EXPECT_EQ(custom.conversation(0).messages[0].content, "Answer in French.");
  // A conversation's own system turn wins over the option.
  EXPECT_EQ(custom.conversation(1).messages[0].content, "You are terse.");
  EXPECT_EQ(custom.stats().total_turns, plain.stats().total_turns);
}

TEST(ShareGPTTest, JsonlIdsAndSingleObject) {
  ezd::ShareGPTDataset ds(fixture("dialect_b.jsonl"), nullptr, 0, true);
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds.conversation(0).id, "b0");
  EXPECT_EQ(ds.conversation(1).id, "17");
  EXPECT_EQ(ds.conversation(2).id, "conversation_2");
  EXPECT_EQ(ds.stats().dialect_counts.role_content, 3u);

  ezd::ShareGPTDataset one(fixture("single_object.json"), nullptr, 0, true);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one.conversation(0).id, "only");
}

TEST(ShareGPTTest, MixedDialectCounts) {
  ezd::ShareGPTDataset ds(fixture("mixed.json"), nullptr, 0, true);
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds.stats().dialect_counts.mixed, 1u);
  EXPECT_EQ(ds.stats().dialect_counts.role_content, 1u);
  EXPECT_EQ(ds.stats().dialect_counts.from_value, 1u);
  EXPECT_EQ(ds.conversation(0).dialect, ezd::ShareGPTDialect::kMixed);
  EXPECT_EQ(ezd::to_string(ds.conversation(0).dialect), "mixed");
}

TEST(ShareGPTTest, NonStrictSkipsAndCountsEveryInvalidRecord) {
  ezd::ShareGPTDataset ds(fixture("malformed.json"));
  const auto& s = ds.stats();
  EXPECT_EQ(s.total_loaded, 12u);
  EXPECT_EQ(s.valid_conversations, 2u);
  EXPECT_EQ(s.invalid_conversations, 10u);
  ASSERT_EQ(ds.size(), 2u);
  EXPECT_EQ(ds.conversation(0).id, "ok");
  EXPECT_EQ(ds.conversation(1).id, "ok2");
  ASSERT_EQ(ds.rejections().size(), 10u);
  const std::vector<std::string> expected = {
      "conversation 1 (id \"bad_role\"): turn 1: unknown role `function_call`",
      "conversation 2 (id \"no_value\"): turn 0: missing `value`",
      "conversation 3 (id \"gpt_first\"): turn 0: expected a user turn, got assistant",
      "conversation 4 (id \"ends_with_user\"): turn 2: ends with a user turn",
      "conversation 5 (id \"late_system\"): turn 1: a system turn must come first",
      "conversation 6 (id \"empty_value\"): turn 0: empty `value`",
      "conversation 7 (id \"no_turns\"): missing `conversations` or `messages`",
      "conversation 8 (id \"not_a_list\"): `conversations` must be a list",
      "conversation 9 (id \"number_content\"): turn 0: `content` must be a string",
      "conversation 10 (id \"conversation_10\"): expected an object",
  };
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NE(ds.rejections()[i].reason.find(expected[i]), std::string::npos)
        << ds.rejections()[i].reason;
    EXPECT_NE(ds.rejections()[i].reason.find("malformed.json"), std::string::npos);
    EXPECT_EQ(ds.rejections()[i].source_index, i + 1);
  }
}

TEST(ShareGPTTest, StrictThrowsNamingConversationAndTurn) {
  std::string e = strict_error(fixture("malformed.json"));
  EXPECT_NE(e.find("malformed.json: conversation 1 (id \"bad_role\"): turn 1: unknown role "
                   "`function_call`"),
            std::string::npos)
      << e;
  e = strict_error(fixture("malformed_lines.jsonl"));
  EXPECT_NE(e.find("malformed_lines.jsonl:2: conversation 1"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
  // Whole-file problems throw in either mode.
  e = strict_error(fixture("not_conversations.json"));
  EXPECT_NE(e.find("expected a list of conversations"), std::string::npos) << e;
  EXPECT_THROW(ezd::ShareGPTDataset(fixture("truncated.json")), ezd::DatasetError);
  EXPECT_THROW(ezd::ShareGPTDataset(fixture("missing.json")), ezd::DatasetError);

  ezd::ShareGPTDataset lenient(fixture("malformed_lines.jsonl"));
  EXPECT_EQ(lenient.size(), 2u);
  EXPECT_EQ(lenient.stats().invalid_conversations, 1u);
}

TEST(ShareGPTTest, MaxSamplesAndSeededShuffle) {
  EZTINKER_REQUIRE_SHARED_DATA("sharegpt");
  const auto path = shared("fastchat_dummy_conversation.json");
  ezd::ShareGPTDataset first(path, nullptr, 10);
  EXPECT_EQ(first.size(), 10u);
  EXPECT_EQ(first.stats().total_loaded, 10u);
  EXPECT_EQ(first.conversation(9).id, "identity_9");

  ezd::ShareGPTDataset s1(path, nullptr, 50, false, "", /*shuffle=*/true, 7);
  ezd::ShareGPTDataset s2(path, nullptr, 50, false, "", true, 7);
  ezd::ShareGPTDataset s3(path, nullptr, 50, false, "", true, 8);
  ASSERT_EQ(s1.size(), 50u);
  std::set<std::string> ids;
  bool differs_from_file_order = false;
  bool differs_across_seeds = false;
  for (size_t i = 0; i < s1.size(); ++i) {
    EXPECT_EQ(s1.conversation(i).id, s2.conversation(i).id);  // same seed, same order
    differs_from_file_order |= s1.conversation(i).id != "identity_" + std::to_string(i);
    differs_across_seeds |= s1.conversation(i).id != s3.conversation(i).id;
    ids.insert(s1.conversation(i).id);
    EXPECT_EQ(s1.conversation(i).id,
              "identity_" + std::to_string(s1.conversation(i).source_index));
  }
  EXPECT_EQ(ids.size(), 50u);
  EXPECT_TRUE(differs_from_file_order);
  EXPECT_TRUE(differs_across_seeds);
}

TEST(ShareGPTTest, FromStringSniffsFormat) {
  auto ds = ezd::ShareGPTDataset::from_string(
      R"({"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]})"
      "\n"
      R"({"messages":[{"role":"user","content":"c"},{"role":"assistant","content":"d"}]})",
      "inline");
  EXPECT_EQ(ds.size(), 2u);
  EXPECT_EQ(ds.last_assistant_reply(1), "d");
  auto prompt = ds.prompt_messages(1);
  ASSERT_EQ(prompt.size(), 1u);
  EXPECT_EQ(prompt[0].content, "c");
}

TEST(ShareGPTTest, TrainingExamplesNeedATokenizer) {
  ezd::ShareGPTDataset ds(fixture("dialect_a.json"));
  EXPECT_THROW(ds.get_training_example(0), std::logic_error);
  TempDir dir("sharegpt-export");
  EXPECT_THROW(ds.export_jsonl(dir / "x.jsonl", ezd::ShareGPTExportFormat::kTokens),
               std::logic_error);
}

TEST(ShareGPTTest, TokensAndWeightsMatchReferenceChatVectors) {
  EZTINKER_REQUIRE_SHARED_DATA("sharegpt");
  EZTINKER_REQUIRE_SHARED_DATA("qwen2-tokenizer");
  EZTINKER_REQUIRE_SHARED_DATA("tokenizer-tests");
  const tok::Tokenizer& t = qwen2_tokenizer();
  ezd::ShareGPTDataset ds(shared("fastchat_dummy_conversation.json"), &t, 0, true);
  // total_tokens is really counted: the sum of every conversation's encoding length.
  size_t sum = 0;
  for (size_t i = 0; i < ds.size(); ++i) sum += ds.get_training_example(i).input_ids.size();
  EXPECT_EQ(ds.stats().total_tokens, sum);
  EXPECT_GT(sum, 0u);

  auto text = eztinker::testing::read_file(shared_data_dir() / "tokenizer-tests" /
                                           "qwen2_chat_vectors.jsonl");
  size_t checked = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    auto row = nlohmann::json::parse(text.substr(start, nl - start));
    start = nl == std::string::npos ? text.size() : nl + 1;
    std::string source = row["source"];
    if (row["template"] != "qwen2-instruct" || source.rfind("sharegpt/", 0) != 0) continue;
    size_t index = std::stoul(source.substr(source.find('#') + 1));
    auto full_ids = row["full_ids"].get<std::vector<int32_t>>();
    size_t prompt_len = row["prompt_ids"].size();

    EXPECT_EQ(ds.get_conversation_turns(index).text, row["full_text"].get<std::string>());
    auto all = ds.get_training_example(index, tok::TrainOn::kAssistant);
    ASSERT_EQ(all.input_ids, full_ids) << source;
    ASSERT_EQ(all.weights->size(), full_ids.size());
    auto last = ds.get_training_example(index, tok::TrainOn::kLastAssistant);
    // Last-assistant weights lie inside the final reply only: after the prompt, up to and
    // including its closing <|im_end|>, never the trailing "\n".
    for (size_t p = 0; p < full_ids.size(); ++p) {
      if ((*last.weights)[p] > 0) {
        EXPECT_GE(p, prompt_len) << source;
        EXPECT_LE((*last.weights)[p], (*all.weights)[p]);
      }
    }
    EXPECT_EQ(full_ids[full_ids.size() - 2], 151645);  // <|im_end|>
    EXPECT_EQ((*last.weights)[full_ids.size() - 2], 1.0f);
    EXPECT_EQ((*last.weights).back(), 0.0f);
    // Only assistant text is trained: every user/system token weighs 0, so the weighted
    // count is well below the total.
    float weighted = 0;
    for (float w : *all.weights) weighted += w;
    EXPECT_GT(weighted, 0.0f);
    EXPECT_LT(weighted, static_cast<float>(full_ids.size()) * 0.8f);
    ++checked;
  }
  EXPECT_EQ(checked, 6u);
}

TEST(ShareGPTTest, ExportRoundTrips) {
  EZTINKER_REQUIRE_SHARED_DATA("qwen2-tokenizer");
  TempDir dir("sharegpt-export");
  ezd::ShareGPTDataset ds(fixture("mixed.json"), nullptr, 0, true, "Sys.");
  ds.export_jsonl(dir / "rc.jsonl");
  ds.export_jsonl(dir / "fv.jsonl", ezd::ShareGPTExportFormat::kFromValue);
  for (const char* name : {"rc.jsonl", "fv.jsonl"}) {
    ezd::ShareGPTDataset back(dir / name, nullptr, 0, true);
    ASSERT_EQ(back.size(), ds.size()) << name;
    for (size_t i = 0; i < ds.size(); ++i) {
      EXPECT_EQ(back.conversation(i).id, ds.conversation(i).id);
      EXPECT_EQ(back.get_conversation_turns(i).text, ds.get_conversation_turns(i).text);
    }
  }
  ezd::ShareGPTDataset rc(dir / "rc.jsonl");
  EXPECT_EQ(rc.stats().dialect_counts.role_content, 3u);

  const tok::Tokenizer& t = qwen2_tokenizer();
  ezd::ShareGPTDataset with_tok(fixture("dialect_a.json"), &t);
  with_tok.export_jsonl(dir / "tokens.jsonl", ezd::ShareGPTExportFormat::kTokens);
  auto line = eztinker::testing::read_file(dir / "tokens.jsonl");
  auto row = nlohmann::json::parse(line.substr(0, line.find('\n')));
  EXPECT_EQ(row["id"], "a0");
  EXPECT_EQ(row["input_ids"].get<std::vector<int32_t>>(), with_tok.get_training_example(0).input_ids);
  EXPECT_EQ(row["weights"].size(), row["input_ids"].size());
}
