// Qwen2Config parsing: a real Qwen2-1.5B-Instruct config.json, HF defaults for absent fields,
// eos as int or list, and clear errors for configs the model cannot run.
#include "model/qwen2_config.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <fstream>

namespace eztinker::model {
namespace {

std::string error_of(const nlohmann::json& j) {
  try {
    qwen2_config_from_json(j, "cfg.json");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Qwen2Config, ParsesRealQwen2Config) {
  EZTINKER_REQUIRE_SHARED_DATA("qwen2-model-config/qwen2-1.5b-instruct-finetune.config.json");
  const auto path = eztinker::testing::shared_data_dir() / "qwen2-model-config" /
                    "qwen2-1.5b-instruct-finetune.config.json";
  const Qwen2Config c = load_qwen2_config(path);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.hidden_size, 1536);
  EXPECT_EQ(c.intermediate_size, 8960);
  EXPECT_EQ(c.num_hidden_layers, 28);
  EXPECT_EQ(c.num_attention_heads, 12);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim(), 128);
  EXPECT_EQ(c.num_kv_groups(), 6);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1000000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  ASSERT_TRUE(c.bos_token_id.has_value());
  EXPECT_EQ(*c.bos_token_id, 151643);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>({151645}));
}

TEST(Qwen2Config, DefaultsFollowTransformers) {
  const Qwen2Config c = qwen2_config_from_json({{"hidden_size", 64}, {"num_attention_heads", 4}});
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.intermediate_size, 22016);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_key_value_heads, 4);  // absent = num_attention_heads
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.bos_token_id.has_value());
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_TRUE(c.torch_dtype.empty());
}

TEST(Qwen2Config, EosListAndRoundTrip) {
  nlohmann::json j = {{"hidden_size", 64},          {"num_attention_heads", 4},
                      {"num_key_value_heads", 2},   {"intermediate_size", 128},
                      {"num_hidden_layers", 2},     {"vocab_size", 300},
                      {"eos_token_id", {5, 6}},     {"bos_token_id", 4},
                      {"tie_word_embeddings", true}, {"rope_theta", 1e6},
                      {"torch_dtype", "float32"},   {"some_unknown_field", "ignored"}};
  const Qwen2Config c = qwen2_config_from_json(j);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>({5, 6}));
  const Qwen2Config back = qwen2_config_from_json(to_json(c));
  EXPECT_EQ(to_json(back), to_json(c));
  EXPECT_EQ(to_json(c)["model_type"], "qwen2");
  EXPECT_EQ(to_json(c)["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(back.vocab_size, 300);
  EXPECT_EQ(back.eos_token_ids, c.eos_token_ids);

  eztinker::testing::TempDir dir;
  std::ofstream(dir / "config.json") << to_json(c).dump();
  EXPECT_EQ(load_qwen2_config(dir.path()).num_key_value_heads, 2);  // a directory works too
}

TEST(Qwen2Config, ClearErrors) {
  const nlohmann::json base = {{"hidden_size", 64}, {"num_attention_heads", 4}};
  auto with = [&](const char* k, nlohmann::json v) {
    nlohmann::json j = base;
    j[k] = std::move(v);
    return j;
  };
  EXPECT_NE(error_of(with("hidden_act", "gelu")).find("hidden_act"), std::string::npos);
  EXPECT_NE(error_of(with("num_attention_heads", 5)).find("divisible"), std::string::npos);
  EXPECT_NE(error_of(with("num_key_value_heads", 3)).find("num_key_value_heads"), std::string::npos);
  EXPECT_NE(error_of(with("hidden_size", "64")).find("`hidden_size` must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of(with("model_type", "llama")).find("model_type"), std::string::npos);
  EXPECT_NE(error_of(with("rope_scaling", {{"type", "yarn"}})).find("rope_scaling"),
            std::string::npos);
  EXPECT_NE(error_of(with("vocab_size", 0)).find("vocab_size"), std::string::npos);
  EXPECT_NE(error_of(with("eos_token_id", "x")).find("eos_token_id"), std::string::npos);
  EXPECT_NE(error_of(with("use_sliding_window", true)).find("sliding"), std::string::npos);
  EXPECT_NE(error_of(with("rope_scaling", nullptr)), error_of(with("hidden_act", "gelu")));
  EXPECT_EQ(error_of(with("rope_scaling", nullptr)), "");
  EXPECT_NE(error_of(with("hidden_act", "gelu")).find("cfg.json"), std::string::npos);

  try {
    load_qwen2_config("/nonexistent/dir/config.json");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/config.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace eztinker::model
