// Tokenizer exactness and robustness: every vector in shared/data/tokenizer-tests (llama.cpp's
// HF-generated qwen2 .inp/.out and the transformers.js text vectors) through both the
// vocab.json+merges.txt layout and a tokenizer.json assembled from the Qwen2.5 skeleton, round
// trips against utf8proc's NFC, bad-input errors, streaming decode and the BPE trainer.
#include "eztinker/tokenizer.h"

#include "test_support.h"
#include "tokenizer/bpe_tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace {

namespace fs = std::filesystem;
using eztinker::testing::read_file;
using eztinker::testing::shared_data_dir;
using eztinker::testing::TempDir;
using eztinker::testing::write_file;
using eztinker::tokenizer::Tokenizer;

fs::path qwen2_dir() {
  return shared_data_dir() / "qwen2-tokenizer";
}
fs::path vectors_dir() {
  return shared_data_dir() / "tokenizer-tests";
}

// Independent NFC (utf8proc directly, not through the library).
std::string nfc(const std::string& s) {
  utf8proc_uint8_t* out = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
  if (out == nullptr) throw std::runtime_error("utf8proc_NFC failed");
  std::string r(reinterpret_cast<char*>(out));
  std::free(out);
  return r;
}

struct Case {
  std::string name;
  std::string text;
  std::vector<int32_t> ids;
};

// llama.cpp test-tokenizer-0 format: every string is followed by the separator.
std::vector<Case> llama_cases() {
  const std::string inp = read_file(vectors_dir() / "ggml-vocab-qwen2.gguf.inp");
  const std::string out = read_file(vectors_dir() / "ggml-vocab-qwen2.gguf.out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Case> cases;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) break;
    cases.push_back(
        {"llama.cpp #" + std::to_string(cases.size()), inp.substr(pos, next - pos), {}});
    pos = next + sep.size();
  }
  std::istringstream lines(out);
  std::string line;
  for (auto& c : cases) {
    if (!std::getline(lines, line)) throw std::runtime_error(".out has fewer lines than .inp");
    std::istringstream ids(line);
    int32_t id;
    while (ids >> id) c.ids.push_back(id);
  }
  return cases;
}

std::vector<Case> text_cases() {
  std::ifstream in(vectors_dir() / "qwen2_text_vectors.jsonl");
  std::vector<Case> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    cases.push_back(
        {"text #" + std::to_string(cases.size()) + " (" + j["source"].get<std::string>() + ")",
         j["text"].get<std::string>(),
         j["ids"].get<std::vector<int32_t>>()});
  }
  return cases;
}

// tokenizer.json = the Qwen2.5 skeleton with vocab.json and merges.txt put back in.
void write_assembled_tokenizer_json(const fs::path& dir) {
  auto j = nlohmann::json::parse(read_file(qwen2_dir() / "tokenizer.skeleton.qwen2.5.json"));
  j["model"]["vocab"] = nlohmann::json::parse(read_file(qwen2_dir() / "vocab.json"));
  nlohmann::json merges = nlohmann::json::array();
  std::istringstream in(read_file(qwen2_dir() / "merges.txt"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    merges.push_back(line);
  }
  j["model"]["merges"] = merges;
  write_file(dir / "tokenizer.json", j.dump());
}

void expect_all_vectors(const Tokenizer& tok,
                        const std::vector<Case>& cases,
                        size_t expected_count) {
  ASSERT_EQ(cases.size(), expected_count);
  size_t matched = 0;
  for (const auto& c : cases) {
    const auto ids = tok.encode(c.text);
    EXPECT_EQ(ids, c.ids) << c.name << ": \"" << c.text << "\"";
    EXPECT_EQ(tok.decode(ids), nfc(c.text)) << c.name;
    matched += ids == c.ids ? 1 : 0;
  }
  EXPECT_EQ(matched, cases.size());
}

// Tokenizers are loaded lazily, once per process: ctest runs every test in its own process, so
// a test pays only for the tokenizers it uses.
class QwenTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EZTINKER_REQUIRE_SHARED_DATA("qwen2-tokenizer");
    EZTINKER_REQUIRE_SHARED_DATA("tokenizer-tests");
  }
  // vocab.json + merges.txt + tokenizer_config.json (Qwen2, 3 specials)
  static const Tokenizer& slow() {
    static const auto tok = Tokenizer::load(qwen2_dir());
    return *tok;
  }
  // The same with Qwen2.5's tokenizer_config.json (22 added tokens).
  static const Tokenizer& slow25() {
    static const TempDir dir("eztinker-tok25");
    static const auto tok = [] {
      fs::copy_file(qwen2_dir() / "vocab.json", dir.path() / "vocab.json");
      fs::copy_file(qwen2_dir() / "merges.txt", dir.path() / "merges.txt");
      fs::copy_file(qwen2_dir() / "tokenizer_config.qwen2.5-instruct.json",
                    dir.path() / "tokenizer_config.json");
      return Tokenizer::load(dir.path());
    }();
    return *tok;
  }
  // tokenizer.json assembled from the Qwen2.5 skeleton (Qwen2.5 added tokens, no config).
  static const Tokenizer& fast() {
    static const TempDir dir("eztinker-tokjson");
    static const auto tok = [] {
      write_assembled_tokenizer_json(dir.path());
      return Tokenizer::load(dir.path());
    }();
    return *tok;
  }
};

TEST_F(QwenTokenizerTest, LlamaCppVectorsVocabMerges) {
  expect_all_vectors(slow(), llama_cases(), 46);
}
TEST_F(QwenTokenizerTest, LlamaCppVectorsTokenizerJson) {
  expect_all_vectors(fast(), llama_cases(), 46);
}
TEST_F(QwenTokenizerTest, LlamaCppVectorsVocabMergesQwen25Config) {
  expect_all_vectors(slow25(), llama_cases(), 46);
}
// The text vectors were generated with Qwen2.5's 22 added tokens.
TEST_F(QwenTokenizerTest, TextVectorsVocabMergesQwen25Config) {
  expect_all_vectors(slow25(), text_cases(), 101);
}
// With Qwen2's config (3 specials) every vector applies except those that spell a
// Qwen2.5-only added token (<tool_call>, <|fim_*|>, ...), which Qwen2 tokenizes as text.
TEST_F(QwenTokenizerTest, TextVectorsVocabMergesQwen2Config) {
  const auto skeleton =
      nlohmann::json::parse(read_file(qwen2_dir() / "tokenizer.skeleton.qwen2.5.json"));
  std::vector<std::string> qwen25_only;
  for (const auto& t : skeleton["added_tokens"]) {
    if (t["id"].get<int>() > 151645) qwen25_only.push_back(t["content"]);
  }
  ASSERT_EQ(qwen25_only.size(), 19u);
  std::vector<Case> applicable;
  for (const auto& c : text_cases()) {
    bool uses_qwen25 = false;
    for (const auto& s : qwen25_only)
      uses_qwen25 = uses_qwen25 || c.text.find(s) != std::string::npos;
    if (!uses_qwen25) applicable.push_back(c);
  }
  expect_all_vectors(slow(), applicable, 99);
}
TEST_F(QwenTokenizerTest, TextVectorsTokenizerJson) {
  expect_all_vectors(fast(), text_cases(), 101);
}

TEST_F(QwenTokenizerTest, VocabularyFacts) {
  // PROVENANCE §2: 151643 regular tokens, 3 Qwen2 specials, 22 Qwen2.5 added tokens.
  EXPECT_EQ(slow().vocab_size(), 151646);
  EXPECT_EQ(fast().vocab_size(), 151665);
  for (const Tokenizer* t : {&slow(), &fast()}) {
    EXPECT_EQ(t->token_to_id("!"), 0);
    EXPECT_EQ(t->token_to_id("\xC4\xA0Hello"), 21927);  // "ĠHello"
    EXPECT_EQ(t->token_to_id("<|im_start|>"), 151644);
    EXPECT_EQ(t->id_to_token(9707), "Hello");
    EXPECT_EQ(t->token_bytes(220), " ");
    EXPECT_EQ(t->token_bytes(151645), "<|im_end|>");
    EXPECT_FALSE(t->token_to_id("definitely not a token").has_value());
    EXPECT_TRUE(t->is_special(151643));
    EXPECT_FALSE(t->is_special(9707));
  }
  // Qwen2.5's tool/fim tokens are added but not special.
  EXPECT_EQ(fast().token_to_id("<|fim_prefix|>"), 151659);
  EXPECT_FALSE(fast().is_special(151659));
  EXPECT_TRUE(fast().is_special(151655));
}

TEST_F(QwenTokenizerTest, EosAndPadFromConfig) {
  // tokenizer_config.json: eos <|im_end|>, pad <|endoftext|>.
  EXPECT_EQ(slow().eos_token_ids(), (std::vector<int32_t>{151645, 151643}));
  EXPECT_EQ(slow().pad_token_id(), 151643);
  // No tokenizer_config.json next to the assembled tokenizer.json: no pad, eos by name only.
  EXPECT_EQ(fast().eos_token_ids(), (std::vector<int32_t>{151643, 151645}));
  EXPECT_FALSE(fast().pad_token_id().has_value());
}

TEST_F(QwenTokenizerTest, SpecialTokensParsedOnlyWhenAsked) {
  const std::string text = "<|im_start|>user\nhi<|im_end|>";
  const auto parsed = slow().encode(text, true);
  ASSERT_FALSE(parsed.empty());
  EXPECT_EQ(parsed.front(), 151644);
  EXPECT_EQ(parsed.back(), 151645);
  const auto plain = slow().encode(text, false);
  for (int32_t id : plain) EXPECT_FALSE(slow().is_special(id)) << id;
  EXPECT_EQ(slow().decode(plain), text);
}

TEST_F(QwenTokenizerTest, DecodeSkipsSpecialTokens) {
  const auto ids = slow().encode("<|im_start|>assistant\nHello<|im_end|>");
  EXPECT_EQ(slow().decode(ids, true), "assistant\nHello");
  EXPECT_EQ(slow().decode(ids, false), "<|im_start|>assistant\nHello<|im_end|>");
}

TEST_F(QwenTokenizerTest, NfcNormalizesInput) {
  // "e" + COMBINING ACUTE is tokenized like the precomposed "é".
  EXPECT_EQ(slow().encode("e\xCC\x81"
                          "cole"),
            slow().encode("\xC3\xA9"
                          "cole"));
}

TEST_F(QwenTokenizerTest, InvalidUtf8InputBecomesReplacementChar) {
  EXPECT_EQ(slow().encode("a\xFF"
                          "b"),
            slow().encode("a\xEF\xBF\xBD"
                          "b"));
  EXPECT_EQ(slow().encode("\xE2\x82"), slow().encode("\xEF\xBF\xBD"));  // truncated sequence
}

TEST_F(QwenTokenizerTest, PartialUtf8DecodesToReplacementChar) {
  // A rare character that byte-level BPE splits inside its UTF-8 sequence.
  std::string rare;
  std::vector<int32_t> ids;
  for (const char* c :
       {"\xF0\x9D\x94\x98", "\xF0\x93\x80\x80", "\xEA\xA6\x84", "\xF0\x9F\xA7\xAC"}) {
    ids = slow().encode(c);
    if (ids.size() > 1) {
      rare = c;
      break;
    }
  }
  ASSERT_FALSE(rare.empty());
  EXPECT_EQ(slow().decode({ids[0]}).find("\xEF\xBF\xBD"), 0u);
  EXPECT_EQ(slow().decode(ids), rare);
}

TEST_F(QwenTokenizerTest, StreamDecoderEmitsWholeCharacters) {
  const std::string text = "Cửa Việt 🦙 ½ ok";
  const auto ids = slow().encode(text);
  eztinker::tokenizer::Utf8StreamDecoder stream;
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = stream.push(slow().token_bytes(id));
    EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos);
    out += piece;
  }
  out += stream.flush();
  EXPECT_EQ(out, text);
  EXPECT_EQ(stream.push("\xF0\x9F"), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");
}

TEST_F(QwenTokenizerTest, UnknownIdsThrowOutOfRangeNamingTheId) {
  try {
    slow().decode({9707, 999999});
    FAIL() << "expected std::out_of_range";
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("999999"), std::string::npos) << e.what();
  }
  EXPECT_THROW(slow().decode({-1}), std::out_of_range);
  EXPECT_THROW(slow().token_bytes(151646), std::out_of_range);
  EXPECT_THROW(slow().id_to_token(-5), std::out_of_range);
}

TEST_F(QwenTokenizerTest, ConcurrentEncodesAgree) {
  const auto cases = text_cases();
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 3; ++rep) {
        for (const auto& c : cases) failures[t] += slow25().encode(c.text) == c.ids ? 0 : 1;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

TEST_F(QwenTokenizerTest, LongInputsRoundTrip) {
  // Long runs exercise the uncached BPE path (words over the cache limit).
  const std::string spaces(3000, ' ');
  const std::string letters(5000, 'a');
  const std::string huge(300000, ' ');
  for (const std::string& s :
       {spaces, letters, spaces + letters + "\n\n" + spaces, huge + "x" + huge}) {
    EXPECT_EQ(slow().decode(slow().encode(s)), s);
  }
}

// ---------------------------------------------------------------------------------------------
// Bad inputs

std::string load_error(const fs::path& dir) {
  try {
    Tokenizer::load(dir);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(TokenizerLoadErrors, MissingDirectoryAndFiles) {
  TempDir dir("eztinker-tokerr");
  EXPECT_NE(load_error(dir / "nope").find("nope"), std::string::npos);
  const std::string empty = load_error(dir.path());
  EXPECT_NE(empty.find("tokenizer.json"), std::string::npos) << empty;
  EZTINKER_REQUIRE_SHARED_DATA("qwen2-tokenizer/vocab.json");
  write_file(dir / "vocab.json", read_file(qwen2_dir() / "vocab.json"));
  const std::string no_merges = load_error(dir.path());
  EXPECT_NE(no_merges.find("merges.txt"), std::string::npos) << no_merges;
}

TEST(TokenizerLoadErrors, CorruptJsonNamesTheFile) {
  TempDir dir("eztinker-tokerr");
  write_file(dir / "tokenizer.json", "{\"model\": {\"vocab\": ");
  const std::string msg = load_error(dir.path());
  EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid JSON"), std::string::npos) << msg;

  TempDir dir2("eztinker-tokerr");
  write_file(dir2 / "vocab.json", "[1, 2");
  write_file(dir2 / "merges.txt", "#version: 0.2\n");
  const std::string msg2 = load_error(dir2.path());
  EXPECT_NE(msg2.find("vocab.json"), std::string::npos) << msg2;

  TempDir dir3("eztinker-tokerr");
  write_file(dir3 / "tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
  const std::string msg3 = load_error(dir3.path());
  EXPECT_NE(msg3.find("WordPiece"), std::string::npos) << msg3;
}

TEST(TokenizerLoadErrors, MergeWithUnknownTokenNamesFileAndMerge) {
  TempDir dir("eztinker-tokerr");
  write_file(dir / "vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  write_file(dir / "merges.txt", "#version: 0.2\na b\nab zz\n");
  const std::string msg = load_error(dir.path());
  EXPECT_NE(msg.find("merges.txt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ab zz"), std::string::npos) << msg;
}

TEST(TokenizerLoadErrors, CorruptConfigNamesTheFile) {
  TempDir dir("eztinker-tokerr");
  write_file(dir / "vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  write_file(dir / "merges.txt", "a b\n");
  write_file(dir / "tokenizer_config.json", "{oops");
  const std::string msg = load_error(dir.path());
  EXPECT_NE(msg.find("tokenizer_config.json"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------------
// The hand-written ASCII pre-tokenizer must split exactly like PCRE2 running the Qwen2 regex.

TEST(RegexSplitter, AsciiFastPathMatchesPcre2) {
  using eztinker::tokenizer::detail::kQwen2SplitRegex;
  using eztinker::tokenizer::detail::RegexSplitter;
  const RegexSplitter fast(kQwen2SplitRegex, true);
  const RegexSplitter pcre2(kQwen2SplitRegex, false);
  using Pieces = std::vector<std::pair<size_t, size_t>>;
  auto split = [](const RegexSplitter& sp, std::string_view text) {
    Pieces out;
    sp.split(text, [&](size_t b, size_t e) { out.emplace_back(b, e); });
    return out;
  };
  auto is_ascii = [](const std::string& t) {
    return std::all_of(
        t.begin(), t.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  };
  std::vector<std::string> texts;
  EZTINKER_REQUIRE_SHARED_DATA("gsm8k/train.jsonl");
  EZTINKER_REQUIRE_SHARED_DATA("tokenizer-tests");
  std::ifstream in(shared_data_dir() / "gsm8k" / "train.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    texts.push_back(j["question"]);
    texts.push_back(j["answer"]);
  }
  for (const auto& c : llama_cases()) texts.push_back(c.text);
  for (const auto& c : text_cases()) texts.push_back(c.text);
  // Random strings over the characters the regex treats specially (seeded, reproducible).
  const std::string alphabet = "aZq'sStTrReEvVlLmMdD09 \t\n\r\v\f.,!?-#<|>\x01\x1c\x1f\x7f";
  std::mt19937 rng(1234);
  for (int k = 0; k < 30000; ++k) {
    std::string t(rng() % 24, ' ');
    for (char& ch : t) ch = alphabet[rng() % alphabet.size()];
    texts.push_back(t);
  }
  size_t checked = 0;
  for (const auto& t : texts) {
    if (!is_ascii(t)) continue;
    ASSERT_EQ(split(fast, t), split(pcre2, t)) << "\"" << t << "\"";
    ++checked;
  }
  EXPECT_GT(checked, 40000u);
}

// ---------------------------------------------------------------------------------------------
// Trainer and file copying

std::string gsm8k_text(size_t first, size_t count) {
  std::ifstream in(shared_data_dir() / "gsm8k" / "train.jsonl");
  std::string line, text;
  for (size_t i = 0; std::getline(in, line) && i < first + count; ++i) {
    if (i < first) continue;
    const auto j = nlohmann::json::parse(line);
    text += j["question"].get<std::string>() + "\n" + j["answer"].get<std::string>() + "\n";
  }
  return text;
}

TEST(BpeTrainer, WritesALoadableQwenStyleTokenizer) {
  TempDir dir("eztinker-toktrain");
  EZTINKER_REQUIRE_SHARED_DATA("gsm8k/train.jsonl");
  const std::string train = gsm8k_text(0, 300);
  eztinker::tokenizer::write_trained_bpe_tokenizer(dir.path(), train, 400);
  ASSERT_TRUE(fs::exists(dir / "tokenizer.json"));
  ASSERT_TRUE(fs::exists(dir / "tokenizer_config.json"));
  const auto tok = Tokenizer::load(dir.path());
  EXPECT_EQ(tok->vocab_size(), 256 + 400 + 3);
  EXPECT_EQ(tok->token_to_id("<|endoftext|>"), 656);
  EXPECT_EQ(tok->token_to_id("<|im_start|>"), 657);
  EXPECT_EQ(tok->token_to_id("<|im_end|>"), 658);
  EXPECT_EQ(tok->eos_token_ids(), (std::vector<int32_t>{658, 656}));
  EXPECT_EQ(tok->pad_token_id(), 656);
  EXPECT_EQ(tok->chat_template(), eztinker::tokenizer::ChatTemplate::kQwen2);
  EXPECT_EQ(tok->token_to_id("!"), 0);  // GPT-2 byte order, like Qwen2's vocab

  // Unseen text round-trips and the merges actually compress it.
  const std::string held_out = gsm8k_text(1000, 50) + "Ünïcödé ✓ 🦙";
  const auto ids = tok->encode(held_out);
  EXPECT_EQ(tok->decode(ids), nfc(held_out));
  EXPECT_LT(ids.size() * 2, held_out.size());
  std::vector<int32_t> header = {657};
  for (int32_t id : tok->encode("user")) header.push_back(id);
  EXPECT_EQ(tok->encode("<|im_start|>user"), header);

  // Same input, same files.
  TempDir again("eztinker-toktrain");
  eztinker::tokenizer::write_trained_bpe_tokenizer(again.path(), train, 400);
  EXPECT_EQ(read_file(dir / "tokenizer.json"), read_file(again / "tokenizer.json"));
}

TEST(BpeTrainer, StopsWhenNoPairsAreLeft) {
  TempDir dir("eztinker-toktrain");
  eztinker::tokenizer::write_trained_bpe_tokenizer(dir.path(), "abab", 50);
  const auto tok = Tokenizer::load(dir.path());
  EXPECT_LT(tok->vocab_size(), 256 + 50 + 3);
  EXPECT_EQ(tok->encode("abab").size(), 1u);
}

TEST(CopyTokenizerFiles, CopiesAndLoadsIdentically) {
  TempDir dir("eztinker-tokcopy");
  const fs::path dst = dir / "nested" / "tok";
  EZTINKER_REQUIRE_SHARED_DATA("qwen2-tokenizer");
  eztinker::tokenizer::copy_tokenizer_files(qwen2_dir(), dst);
  EXPECT_TRUE(fs::exists(dst / "vocab.json"));
  EXPECT_TRUE(fs::exists(dst / "merges.txt"));
  EXPECT_TRUE(fs::exists(dst / "tokenizer_config.json"));
  const auto a = Tokenizer::load(qwen2_dir());
  const auto b = Tokenizer::load(dst);
  const std::string s = "<|im_start|>Copy me: 1,234 cafés";
  EXPECT_EQ(a->encode(s), b->encode(s));
  EXPECT_EQ(b->pad_token_id(), a->pad_token_id());
  EXPECT_THROW(eztinker::tokenizer::copy_tokenizer_files(dir / "missing", dir / "out"),
               std::runtime_error);
}

}  // namespace
