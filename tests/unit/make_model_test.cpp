// write_random_model (the engine of `eztinker make-model`): a complete HF directory that
// loads back strictly, is deterministic for a seed, tokenizes with its own tokenizer, and
// honours dtype and --tokenizer-from.
#include "model/random_model.h"

#include "model/cpu_runtime.h"
#include "model/qwen2_config.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "test_support.h"

#include <eztinker/tokenizer.h>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace eztinker::model {
namespace {

namespace fs = std::filesystem;
using eztinker::testing::TempDir;

TEST(MakeModel, TinyPresetWritesALoadableDirectory) {
  TempDir dir;
  RandomModelOptions opt;
  opt.out_dir = dir.path();
  opt.seed = 42;
  const Qwen2Config written = write_random_model(opt);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors",
                        "tokenizer.json", "tokenizer_config.json"}) {
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  }
  const Qwen2Config c = load_qwen2_config(dir.path());
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.torch_dtype, "float32");
  EXPECT_EQ(c.vocab_size, written.vocab_size);
  EXPECT_EQ(c.vocab_size % 64, 0);

  auto tok = tokenizer::Tokenizer::load(dir.path());
  EXPECT_LE(tok->vocab_size(), c.vocab_size);
  EXPECT_GT(tok->vocab_size(), 256 + 3);  // merges were learned
  ASSERT_FALSE(c.eos_token_ids.empty());
  EXPECT_EQ(c.eos_token_ids[0], *tok->token_to_id("<|im_end|>"));

  auto m = load_model(dir.path(), torch::kFloat32, torch::kCPU);
  const auto ids = tok->encode("Question: Tom has 3 apples.");
  torch::Tensor t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
  torch::Tensor logits = m->forward(t);
  EXPECT_EQ(logits.size(2), c.vocab_size);
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  // Init statistics: projections ~ N(0, 0.02), norms 1.
  auto params = m->named_parameters();
  EXPECT_NEAR(params["model.layers.0.mlp.up_proj.weight"].std().item<double>(), 0.02, 0.002);
  EXPECT_TRUE(torch::all(params["model.norm.weight"] == 1).item<bool>());

  std::ifstream gen(dir / "generation_config.json");
  const auto g = nlohmann::json::parse(gen);
  EXPECT_EQ(g.at("eos_token_id")[0], c.eos_token_ids[0]);
}

TEST(MakeModel, DeterministicPerSeedAndDtype) {
  TempDir a, b, c, d;
  RandomModelOptions opt;
  opt.seed = 7;
  opt.out_dir = a.path();
  write_random_model(opt);
  opt.out_dir = b.path();
  write_random_model(opt);
  EXPECT_EQ(eztinker::testing::read_file(a / "model.safetensors"),
            eztinker::testing::read_file(b / "model.safetensors"));
  opt.seed = 8;
  opt.out_dir = c.path();
  write_random_model(opt);
  EXPECT_NE(eztinker::testing::read_file(a / "model.safetensors"),
            eztinker::testing::read_file(c / "model.safetensors"));
  opt.seed = 7;
  opt.dtype = "bf16";
  opt.out_dir = d.path();
  write_random_model(opt);
  EXPECT_EQ(load_qwen2_config(d.path()).torch_dtype, "bfloat16");
  auto f32 = SafetensorsFile::open(a / "model.safetensors");
  auto f16 = SafetensorsFile::open(d / "model.safetensors");
  const std::string key = "model.layers.1.self_attn.q_proj.weight";
  EXPECT_EQ(f16->info(key).dtype, "BF16");
  EXPECT_TRUE(torch::equal(f16->get(key), f32->get(key).to(torch::kBFloat16)));
}

TEST(MakeModel, TokenizerFromAndErrors) {
  const fs::path qwen_tok = eztinker::testing::shared_data_dir() / "qwen2-tokenizer";
  if (!fs::exists(qwen_tok / "vocab.json")) GTEST_SKIP() << "no shared Qwen2 tokenizer";
  TempDir dir;
  RandomModelOptions opt;
  opt.out_dir = dir.path();
  opt.tokenizer_from = qwen_tok;
  const Qwen2Config c = write_random_model(opt);
  auto tok = tokenizer::Tokenizer::load(dir.path());
  EXPECT_EQ(c.vocab_size, (tok->vocab_size() + 63) / 64 * 64);
  EXPECT_EQ(c.eos_token_ids[0], *tok->token_to_id("<|im_end|>"));

  opt.preset = "qwen2-7b";
  EXPECT_THROW(write_random_model(opt), std::invalid_argument);
  opt.preset = "tiny";
  opt.dtype = "int4";
  EXPECT_THROW(write_random_model(opt), std::invalid_argument);
}

// Loading must not hold the checkpoint file in RSS: the parameters are filled with pread (file
// pages stay in the page cache, outside this process), and the mapping is gone afterwards.
// Before that fix, copying through the mapping peaked at parameters + file size (Qwen2-0.5B,
// fp32 file into bf16: 3.1 GB instead of 1.2 GB).
TEST(MakeModel, LoadModelHoldsNoCheckpointPagesInRss) {
  TempDir dir;
  {
    Qwen2Config c = random_model_preset("tiny");
    c.vocab_size = 65536;  // embed_tokens [65536, 256]: a 64 MB fp32 file, 32 MB of bf16 weights
    c.hidden_size = 256;
    Qwen2ForCausalLM m(c, torch::kFloat32, torch::kCPU);
    init_random_weights(*m, 3);
    save_model(*m, dir.path());
  }
  const int64_t file_bytes = static_cast<int64_t>(fs::file_size(dir / "model.safetensors"));
  reset_peak_resident_memory();
  const ResidentMemory before = resident_memory();
  if (before.peak_bytes > before.rss_bytes + (int64_t{4} << 20)) {
    GTEST_SKIP() << "cannot reset VmHWM here (/proc/self/clear_refs)";
  }
  auto m = load_model(dir.path(), torch::kBFloat16, torch::kCPU);
  const ResidentMemory after = resident_memory();
  int64_t param_bytes = 0;
  for (const auto& p : m->parameters()) param_bytes += p.numel() * p.element_size();
  ASSERT_GT(file_bytes, param_bytes);  // fp32 file, bf16 model
  // Parameters + one conversion chunk + slack; through the mapping it would be + file_bytes.
  const int64_t growth = after.peak_bytes - before.rss_bytes;
  RecordProperty("peak_rss_growth_mb", static_cast<int>(growth >> 20));
  EXPECT_LT(growth, param_bytes + SafetensorsFile::kReadChunkBytes + (int64_t{16} << 20))
      << "peak RSS grew " << (growth >> 20) << " MB loading " << (param_bytes >> 20)
      << " MB of parameters from a " << (file_bytes >> 20) << " MB file";

  std::ifstream maps("/proc/self/maps");
  std::stringstream text;
  text << maps.rdbuf();
  EXPECT_EQ(text.str().find((dir / "model.safetensors").string()), std::string::npos)
      << "the checkpoint is still mapped after load_model";
  EXPECT_TRUE(torch::equal(m->named_parameters()["model.embed_tokens.weight"],
                           SafetensorsFile::open(dir / "model.safetensors")
                               ->get("model.embed_tokens.weight")
                               .to(torch::kBFloat16)));
}

TEST(MakeModel, Qwen2HalfBillionPresetShapes) {
  const Qwen2Config c = random_model_preset("qwen2-0.5b");
  Qwen2ForCausalLM m(c, torch::kBFloat16, torch::kCPU);  // allocation only: no init, no write
  int64_t n = 0;
  for (const auto& p : m->parameters()) n += p.numel();
  EXPECT_EQ(n, 494032768);  // Qwen2-0.5B
  EXPECT_EQ(m->named_parameters()["model.layers.23.mlp.down_proj.weight"].sizes(),
            torch::IntArrayRef({896, 4864}));
}

}  // namespace
}  // namespace eztinker::model
