// End-to-end test of the rejection-sampling demo: a real server in-process on 127.0.0.1 (free
// port) serving the built-in tiny model (random Qwen2 + the demo tokenizer, written to a temp
// dir; nothing downloaded), a shortened run_gsm8k_demo through EZTinkerClient, and checks that
// the measured summary shows improvement and that checkpoints, summary.json and plot.svg exist.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "eztinker/client.h"
#include "eztinker/recipes/demo.h"
#include "model/random_model.h"
#include "server.h"
#include "test_support.h"

namespace ezr = eztinker::recipes;
using eztinker::testing::TempDir;

namespace {

// The built-in demo model exactly as `eztinker demo` writes it: the demo tokenizer, then
// model::write_demo_model (tiny random Qwen2 with an untied lm_head, see random_model.h).
void write_builtin_model(const std::filesystem::path& dir, const std::filesystem::path& tok_dir) {
  namespace model = eztinker::model;
  ezr::write_demo_tokenizer(tok_dir);
  model::write_demo_model(dir, tok_dir, 0);
}

}  // namespace

TEST(DemoE2ETest, RejectionSamplingOnBuiltinModelImproves) {
  TempDir dir("eztinker-demo-e2e");
  write_builtin_model(dir / "model", dir / "tokenizer");

  eztinker::server::ServerConfig config;
  config.host = "127.0.0.1";
  config.port = 0;
  config.workers = 1;
  config.log_level = "warn";
  config.checkpoints_dir = dir / "checkpoints";
  config.aliases["tiny-demo"] = dir / "model";
  eztinker::server::Server server(config);
  server.start();

  eztinker::ClientOptions co;
  co.base_url = server.url();
  co.connect_timeout_s = 5;
  co.read_timeout_s = 60;
  co.job_timeout_s = 60;
  eztinker::EZTinkerClient client(co);

  // The CLI's built-in settings (cli/demo.cpp builtin_defaults) with fewer problems and
  // epochs so the test stays short.
  ezr::DemoOptions o = ezr::builtin_demo_options();
  o.model = "tiny-demo";
  o.max_samples = 32;
  o.eval_size = 24;
  o.epochs = 2;
  o.seed = 0;
  o.output_dir = dir / "out";
  o.checkpoint_prefix = "e2e";
  ezr::DemoSummary s = ezr::run_gsm8k_demo(client, o);

  ASSERT_EQ(s.evaluations.size(), 4u);  // base, after warm-up, 2 epochs
  EXPECT_EQ(s.evaluations[1].phase, "sft");
  EXPECT_EQ(s.dataset, "arithmetic");
  EXPECT_EQ(s.train_size, 32u);
  EXPECT_EQ(s.eval_size, 24u);
  size_t trained = 0;
  for (size_t i = 2; i < s.evaluations.size(); ++i) {
    trained += s.evaluations[i].trained_examples;
    EXPECT_TRUE(s.evaluations[i].train_reward.has_value());
    EXPECT_FALSE(s.evaluations[i].checkpoint.empty());
  }
  EXPECT_GT(trained, 0u);  // sampling found correct candidates to learn from
  // Measured improvement over the untrained model: the gold-answer loss falls and the reward
  // rises (the random model's reward is ~0.002).
  EXPECT_TRUE(s.improved);
  EXPECT_GT(s.answer_loss_drop, 0.0) << ezr::demo_summary_json(s);
  EXPECT_GT(s.reward_gain, 0.0) << ezr::demo_summary_json(s);

  auto summary = nlohmann::json::parse(eztinker::testing::read_file(s.summary_path));
  EXPECT_EQ(summary["run_id"], s.run_id);
  EXPECT_EQ(summary["evaluations"].size(), 4u);
  EXPECT_NE(eztinker::testing::read_file(s.plot_path).find("<svg"), std::string::npos);
  auto checkpoints = client.list_checkpoints(s.run_id);
  EXPECT_EQ(checkpoints.size(), 3u);  // 2 epochs + final
  server.stop();
}
