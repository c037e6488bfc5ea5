// SentencePiece behind the Tokenizer interface: a tiny model is trained here with
// libsentencepiece's trainer on GSM8K text, then our Tokenizer must agree with the raw
// sentencepiece::SentencePieceProcessor on held-out GSM8K text (ids, decode, vocab, specials).
#include "eztinker/tokenizer.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>

namespace {

namespace fs = std::filesystem;
using eztinker::testing::shared_data_dir;
using eztinker::testing::TempDir;
using eztinker::testing::write_file;
using eztinker::tokenizer::Tokenizer;

std::vector<std::string> gsm8k_lines(size_t first, size_t count) {
  std::ifstream in(shared_data_dir() / "gsm8k" / "train.jsonl");
  std::vector<std::string> out;
  std::string line;
  for (size_t i = 0; std::getline(in, line) && i < first + count; ++i) {
    if (i < first) continue;
    const auto j = nlohmann::json::parse(line);
    out.push_back(j["question"].get<std::string>());
    out.push_back(j["answer"].get<std::string>());
  }
  return out;
}

class SentencePieceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("eztinker-spm");
    std::string corpus;
    for (const auto& s : gsm8k_lines(0, 400)) corpus += s + "\n";
    write_file(dir_->path() / "corpus.txt", corpus);
    const std::string args = "--input=" + (dir_->path() / "corpus.txt").string() +
                             " --model_prefix=" + (dir_->path() / "tokenizer").string() +
                             " --vocab_size=500 --model_type=unigram --byte_fallback=true"
                             " --character_coverage=1.0 --num_threads=1 --minloglevel=2";
    const auto status = sentencepiece::SentencePieceTrainer::Train(args);
    ASSERT_TRUE(status.ok()) << status.ToString();
    const auto load = raw_.Load((dir_->path() / "tokenizer.model").string());
    ASSERT_TRUE(load.ok()) << load.ToString();
  }
  static void TearDownTestSuite() { delete dir_; }
  static TempDir* dir_;
  static sentencepiece::SentencePieceProcessor raw_;
};
TempDir* SentencePieceTest::dir_ = nullptr;
sentencepiece::SentencePieceProcessor SentencePieceTest::raw_;

TEST_F(SentencePieceTest, MatchesRawProcessorOnHeldOutText) {
  const auto tok = Tokenizer::load(dir_->path());
  EXPECT_EQ(tok->vocab_size(), raw_.GetPieceSize());
  const auto lines = gsm8k_lines(2000, 100);
  ASSERT_EQ(lines.size(), 200u);
  for (const auto& text : lines) {
    std::vector<int> expected;
    ASSERT_TRUE(raw_.Encode(text, &expected).ok());
    const auto ids = tok->encode(text);
    ASSERT_EQ(std::vector<int>(ids.begin(), ids.end()), expected) << text;
    EXPECT_EQ(tok->decode(ids), raw_.DecodeIds(expected)) << text;
  }
  // Unseen characters go through byte fallback and still round-trip (no NFKC-changed ones).
  const std::string exotic = "Ünïcödé 🦙 ✓";
  EXPECT_EQ(tok->decode(tok->encode(exotic)), raw_.DecodeIds(raw_.EncodeAsIds(exotic)));
  EXPECT_EQ(tok->decode(tok->encode(exotic)), exotic);
}

TEST_F(SentencePieceTest, SpecialsAndPieces) {
  const auto tok = Tokenizer::load(dir_->path());
  EXPECT_EQ(tok->token_to_id("<s>"), raw_.bos_id());
  EXPECT_EQ(tok->token_to_id("</s>"), raw_.eos_id());
  EXPECT_TRUE(tok->is_special(raw_.bos_id()));
  EXPECT_FALSE(tok->is_special(raw_.PieceToId("\xE2\x96\x81the")));
  EXPECT_EQ(tok->eos_token_ids(), (std::vector<int32_t>{raw_.eos_id()}));
  EXPECT_EQ(tok->id_to_token(raw_.eos_id()), "</s>");
  EXPECT_FALSE(tok->token_to_id("no-such-piece").has_value());

  // Control symbols written in text are parsed only when asked.
  const auto parsed = tok->encode("</s>", true);
  EXPECT_EQ(parsed, (std::vector<int32_t>{raw_.eos_id()}));
  std::vector<int> plain_raw;
  ASSERT_TRUE(raw_.Encode("</s>", &plain_raw).ok());
  const auto plain = tok->encode("</s>", false);
  EXPECT_EQ(std::vector<int>(plain.begin(), plain.end()), plain_raw);

  // Decode keeps or skips control symbols.
  const std::vector<int32_t> ids = {
      raw_.bos_id(), raw_.PieceToId("\xE2\x96\x81the"), raw_.eos_id()};
  EXPECT_EQ(tok->decode(ids, true), "the");
  EXPECT_EQ(tok->decode(ids, false), "<s>the</s>");
  EXPECT_THROW(tok->decode({raw_.GetPieceSize()}), std::out_of_range);

  // token_bytes: "▁" is a space, byte pieces are their byte.
  EXPECT_EQ(tok->token_bytes(raw_.PieceToId("\xE2\x96\x81the")), " the");
  EXPECT_EQ(tok->token_bytes(raw_.PieceToId("<0xF0>")), "\xF0");
}

TEST_F(SentencePieceTest, EncodeChatWeightsTheAssistantContent) {
  // SentencePiece's dummy prefix means token bytes do not tile the rendered text, so weights
  // come from tokenizing each part on its own; the trained part must still be the answer.
  const auto tok = Tokenizer::load(dir_->path());
  const std::vector<eztinker::tokenizer::ChatMessage> msgs = {
      {"user", "How many eggs are left?"}, {"assistant", "There are 9 eggs left."}};
  const auto enc = tok->encode_chat(msgs, false, eztinker::tokenizer::TrainOn::kAssistant);
  ASSERT_EQ(enc.ids.size(), enc.weights.size());
  std::vector<int32_t> trained, untrained;
  for (size_t t = 0; t < enc.ids.size(); ++t) {
    (enc.weights[t] == 1.0f ? trained : untrained).push_back(enc.ids[t]);
  }
  // Each part gets SentencePiece's dummy-prefix space of its own.
  const std::string answer = tok->decode(trained);
  EXPECT_EQ(answer.rfind("There are 9 eggs left.", 0), 0u) << answer;
  EXPECT_EQ(answer.substr(answer.size() - 10), "<|im_end|>") << answer;
  EXPECT_NE(tok->decode(untrained).find("How many eggs are left?"), std::string::npos);
}

TEST_F(SentencePieceTest, CorruptModelNamesTheFile) {
  TempDir dir("eztinker-spm-bad");
  write_file(dir / "tokenizer.model", "not a protobuf");
  try {
    Tokenizer::load(dir.path());
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.model"), std::string::npos) << e.what();
  }
}

}  // namespace
