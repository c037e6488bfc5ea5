// SentencePiece behind the Tokenizer interface: a tiny model is trained here with
// libsentencepiece's trainer on GSM8K text, then our Tokenizer must agree with the raw
// SentencePieceProcessor on held-out GSM8K text (ids, decode, vocab, specials). Compiled into
// tokenizer_tests and into the libtorch-linked core_tests: our Tokenizer reaches libsentencepiece
// through the dlopened shim, the reference through eztinker_sentencepiece_reference.so (also
// dlopened, see tests/sentencepiece_reference.cpp), so neither meets libtorch's libprotobuf.
#include "eztinker/tokenizer.h"
#include "test_support.h"
#include "tokenizer/sentencepiece_tokenizer.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace {

namespace fs = std::filesystem;
using eztinker::testing::shared_data_dir;
using eztinker::testing::TempDir;
using eztinker::testing::write_file;
using eztinker::tokenizer::Tokenizer;

// libsentencepiece's trainer and processor (the reference), through the test module.
class Reference {
 public:
  Reference() {
    handle_ = dlopen(EZTINKER_SENTENCEPIECE_REFERENCE, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!handle_) throw std::runtime_error(std::string("dlopen: ") + dlerror());
  }
  Reference(const Reference&) = delete;
  Reference& operator=(const Reference&) = delete;
  ~Reference() {
    if (sp_) fn<void (*)(void*)>("ezt_ref_destroy")(sp_);
  }

  void train(const std::string& args) {
    char* error = nullptr;
    if (fn<int (*)(const char*, char**)>("ezt_ref_train")(args.c_str(), &error) != 0)
      throw std::runtime_error(take(error));
  }
  void load(const fs::path& model) {
    char* error = nullptr;
    sp_ = fn<void* (*)(const char*, char**)>("ezt_ref_load")(model.c_str(), &error);
    if (!sp_) throw std::runtime_error(take(error));
  }
  std::vector<int> encode(const std::string& text) const {
    int* ids = nullptr;
    size_t n = 0;
    char* error = nullptr;
    using Encode = int (*)(const void*, const char*, size_t, int**, size_t*, char**);
    if (fn<Encode>("ezt_ref_encode")(sp_, text.data(), text.size(), &ids, &n, &error) != 0)
      throw std::runtime_error(take(error));
    std::vector<int> out(ids, ids + n);
    fn<void (*)(void*)>("ezt_ref_free")(ids);
    return out;
  }
  std::string decode_ids(const std::vector<int>& ids) const {
    using Decode = char* (*)(const void*, const int*, size_t);
    return take(fn<Decode>("ezt_ref_decode_ids")(sp_, ids.data(), ids.size()));
  }
  int piece_size() const { return fn<int (*)(const void*)>("ezt_ref_piece_size")(sp_); }
  int piece_to_id(const std::string& piece) const {
    return fn<int (*)(const void*, const char*)>("ezt_ref_piece_to_id")(sp_, piece.c_str());
  }
  int bos_id() const { return fn<int (*)(const void*)>("ezt_ref_bos_id")(sp_); }
  int eos_id() const { return fn<int (*)(const void*)>("ezt_ref_eos_id")(sp_); }

 private:
  template <typename F>
  F fn(const char* name) const {
    auto f = reinterpret_cast<F>(dlsym(handle_, name));
    if (!f) throw std::runtime_error(std::string("dlsym: ") + name);
    return f;
  }
  // Copies and releases a module-allocated string.
  std::string take(char* s) const {
    std::string out = s ? s : "";
    fn<void (*)(void*)>("ezt_ref_free")(s);
    return out;
  }

  void* handle_ = nullptr;  // note: never dlclosed, like the product's shim
  void* sp_ = nullptr;
};

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
    // Without the shared corpus there is nothing to train on; SetUp skips every test.
    if (!eztinker::testing::missing_shared_data("gsm8k/train.jsonl").empty()) return;
    dir_ = new TempDir("eztinker-spm");
    raw_ = new Reference;
    std::string corpus;
    for (const auto& s : gsm8k_lines(0, 400)) corpus += s + "\n";
    write_file(dir_->path() / "corpus.txt", corpus);
    const std::string args = "--input=" + (dir_->path() / "corpus.txt").string() +
                             " --model_prefix=" + (dir_->path() / "tokenizer").string() +
                             " --vocab_size=500 --model_type=unigram --byte_fallback=true"
                             " --character_coverage=1.0 --num_threads=1 --minloglevel=3";
    raw_->train(args);
    raw_->load(dir_->path() / "tokenizer.model");
  }
  static void TearDownTestSuite() {
    delete raw_;
    delete dir_;
  }
  void SetUp() override { EZTINKER_REQUIRE_SHARED_DATA("gsm8k/train.jsonl"); }
  static TempDir* dir_;
  static Reference* raw_;
};
TempDir* SentencePieceTest::dir_ = nullptr;
Reference* SentencePieceTest::raw_ = nullptr;

TEST_F(SentencePieceTest, MatchesRawProcessorOnHeldOutText) {
  const auto tok = Tokenizer::load(dir_->path());
  EXPECT_EQ(tok->vocab_size(), raw_->piece_size());
  const auto lines = gsm8k_lines(2000, 100);
  ASSERT_EQ(lines.size(), 200u);
  for (const auto& text : lines) {
    const std::vector<int> expected = raw_->encode(text);
    const auto ids = tok->encode(text);
    ASSERT_EQ(std::vector<int>(ids.begin(), ids.end()), expected) << text;
    EXPECT_EQ(tok->decode(ids), raw_->decode_ids(expected)) << text;
  }
  // Unseen characters go through byte fallback and still round-trip (no NFKC-changed ones).
  const std::string exotic = "Ünïcödé 🦙 ✓";
  EXPECT_EQ(tok->decode(tok->encode(exotic)), raw_->decode_ids(raw_->encode(exotic)));
  EXPECT_EQ(tok->decode(tok->encode(exotic)), exotic);
}

TEST_F(SentencePieceTest, SpecialsAndPieces) {
  const auto tok = Tokenizer::load(dir_->path());
  EXPECT_EQ(tok->token_to_id("<s>"), raw_->bos_id());
  EXPECT_EQ(tok->token_to_id("</s>"), raw_->eos_id());
  EXPECT_TRUE(tok->is_special(raw_->bos_id()));
  EXPECT_FALSE(tok->is_special(raw_->piece_to_id("\xE2\x96\x81the")));
  EXPECT_EQ(tok->eos_token_ids(), (std::vector<int32_t>{raw_->eos_id()}));
  EXPECT_EQ(tok->id_to_token(raw_->eos_id()), "</s>");
  EXPECT_FALSE(tok->token_to_id("no-such-piece").has_value());

  // Control symbols written in text are parsed only when asked.
  const auto parsed = tok->encode("</s>", true);
  EXPECT_EQ(parsed, (std::vector<int32_t>{raw_->eos_id()}));
  const std::vector<int> plain_raw = raw_->encode("</s>");
  const auto plain = tok->encode("</s>", false);
  EXPECT_EQ(std::vector<int>(plain.begin(), plain.end()), plain_raw);

  // Decode keeps or skips control symbols.
  const std::vector<int32_t> ids = {
      raw_->bos_id(), raw_->piece_to_id("\xE2\x96\x81the"), raw_->eos_id()};
  EXPECT_EQ(tok->decode(ids, true), "the");
  EXPECT_EQ(tok->decode(ids, false), "<s>the</s>");
  EXPECT_THROW(tok->decode({raw_->piece_size()}), std::out_of_range);

  // token_bytes: "▁" is a space, byte pieces are their byte.
  EXPECT_EQ(tok->token_bytes(raw_->piece_to_id("\xE2\x96\x81the")), " the");
  EXPECT_EQ(tok->token_bytes(raw_->piece_to_id("<0xF0>")), "\xF0");
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

// Sets or unsets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(SentencePieceShim, SearchOrder) {
  namespace detail = eztinker::tokenizer::detail;
  {
    ScopedEnv env("EZTINKER_SENTENCEPIECE_SHIM", nullptr);
    const auto candidates = detail::sentencepiece_shim_candidates();
    ASSERT_GE(candidates.size(), 3u);
    const fs::path exe = fs::read_symlink("/proc/self/exe");
    EXPECT_EQ(candidates.front(), (exe.parent_path() / "eztinker_sentencepiece_shim.so").string());
    EXPECT_EQ(candidates.back(), "eztinker_sentencepiece_shim.so");  // dlopen's own search
    // The build tree's shim is found and is the one this process uses.
    const std::string found = detail::find_sentencepiece_shim(candidates);
    EXPECT_TRUE(fs::exists(found)) << found;
    EXPECT_EQ(fs::path(found).filename(), "eztinker_sentencepiece_shim.so");
  }
  ScopedEnv env("EZTINKER_SENTENCEPIECE_SHIM", "/opt/custom/shim.so");
  EXPECT_EQ(detail::sentencepiece_shim_candidates(),
            std::vector<std::string>{"/opt/custom/shim.so"});
}

TEST(SentencePieceShim, UnusableShimsAreNamedInTheError) {
  namespace detail = eztinker::tokenizer::detail;
  TempDir dir("eztinker-spm-shim");
  write_file(dir / "garbage.so", "not an ELF file");
  const std::vector<std::string> candidates = {(dir / "missing.so").string(),
                                               (dir / "garbage.so").string(),
                                               EZTINKER_SENTENCEPIECE_REFERENCE};
  try {
    detail::find_sentencepiece_shim(candidates);
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("EZTINKER_SENTENCEPIECE_SHIM"), std::string::npos) << what;
    EXPECT_NE(what.find(candidates[0] + " (no such file)"), std::string::npos) << what;
    EXPECT_NE(what.find(candidates[1] + " ("), std::string::npos) << what;
    EXPECT_NE(what.find(candidates[2] + " (does not export ezt_spm_abi_version)"),
              std::string::npos)
        << what;
  }
}

TEST(SentencePieceShim, BundledProtobufStaysPrivate) {
  // After a SentencePiece model is loaded, the process-wide protobuf symbols are still
  // libprotobuf's (libtorch's, when linked) or absent: never libsentencepiece's bundled copy.
  TempDir dir("eztinker-spm-scope");
  write_file(dir / "tokenizer.model", "not a protobuf");
  EXPECT_THROW(Tokenizer::load(dir.path()), std::runtime_error);  // loads the shim
  void* sym = dlsym(RTLD_DEFAULT, "_ZN6google8protobuf8internal13VerifyVersionEiiPKc");
  if (sym) {
    Dl_info info{};
    ASSERT_NE(dladdr(sym, &info), 0);
    EXPECT_EQ(std::string(info.dli_fname).find("sentencepiece"), std::string::npos)
        << info.dli_fname;
  }
}

}  // namespace
