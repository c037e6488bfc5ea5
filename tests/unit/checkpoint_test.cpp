// Checkpoints: PEFT file layout, bit-exact round trips (with and without optimizer state),
// import of a hand-written PEFT directory, name validation, listing across an engine restart,
// merged export reproducing the adapter's logits, and crash safety: a child process killed at
// each stage of a save leaves the previous checkpoint loadable and bit-identical.
#include "engine_fixture.h"

#include "engine/test_hooks.h"
#include "lora/adapter_io.h"
#include "model/safetensors.h"
#include "model/weights.h"

#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace eztinker::engine {
namespace {

using test::engine_options;
using test::error_type_of;
using test::example;
using test::flat_logprobs;
using test::run_spec;
using test::tokens;

namespace fs = std::filesystem;

void train_steps(Engine& engine, const std::string& run_id, int steps, double lr, int salt) {
  AdamParams adam;
  adam.learning_rate = lr;
  adam.weight_decay = 0.01;
  for (int i = 0; i < steps; ++i) {
    engine.forward(run_id, {example(tokens(18, salt + i))}, LossSpec{}, true);
    engine.optim_step(run_id, adam);
  }
}

std::vector<float> probe(Engine& engine, const std::string& run_id) {
  return flat_logprobs(engine.forward(run_id, {example(tokens(20, 99))}, LossSpec{}, false));
}

class CheckpointTest : public ::testing::Test {
 protected:
  eztinker::testing::TempDir dir_{"eztinker-ck"};
  Engine engine_{engine_options(dir_.path())};
};

TEST_F(CheckpointTest, WritesPeftLayout) {
  auto run = engine_.create_run(run_spec(1, "run_peft"));
  train_steps(engine_, run.run_id, 1, 1e-2, 0);
  auto info = engine_.save_checkpoint(run.run_id, "step1");
  const fs::path ck = dir_.path() / "run_peft" / "step1";
  EXPECT_EQ(fs::path(info.adapter_path), ck);
  ASSERT_TRUE(info.optimizer_path.has_value());
  EXPECT_TRUE(fs::exists(*info.optimizer_path));
  EXPECT_GT(info.size_bytes, 0);
  EXPECT_FALSE(info.created_at.empty());

  auto cfg = nlohmann::json::parse(std::ifstream(ck / "adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["task_type"], "CAUSAL_LM");
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 8.0);
  EXPECT_EQ(cfg["target_modules"].size(), 7U);
  auto file = model::SafetensorsFile::open(ck / "adapter_model.safetensors");
  EXPECT_EQ(file->names().size(), 2U * 7U * 2U);  // 2 layers x 7 projections x (A, B)
  const auto& a = file->info("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{4, 128}));  // [r, in]
  const auto& b = file->info("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight");
  EXPECT_EQ(b.shape, (std::vector<int64_t>{32, 4}));  // [out, r]
  EXPECT_EQ(a.dtype, "F32");
}

TEST_F(CheckpointTest, KeepsTheCallersAttributesAndRefusesNonObjects) {
  engine_.create_run(run_spec(1, "run_attr"));
  const nlohmann::json attributes = {{"loss_config", {{"loss_type", "focal_loss"}, {"focal_gamma", 1.5}}}};
  engine_.save_checkpoint("run_attr", "ck", attributes);
  const fs::path ck = dir_.path() / "run_attr" / "ck";
  auto meta = nlohmann::json::parse(std::ifstream(ck / "checkpoint.json"));
  EXPECT_EQ(meta["attributes"], attributes);
  EXPECT_EQ(meta["run_id"], "run_attr");  // the engine's own fields stay
  // Without attributes: an empty object.
  engine_.save_checkpoint("run_attr", "plain");
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(dir_.path() / "run_attr" / "plain" / "checkpoint.json"))["attributes"],
            nlohmann::json::object());
  // Not an object: 400 before anything is written.
  EXPECT_EQ(error_type_of([&] { engine_.save_checkpoint("run_attr", "bad", nlohmann::json::array()); }),
            ErrorType::kBadRequest);
  EXPECT_FALSE(fs::exists(dir_.path() / "run_attr" / "bad"));
}

TEST_F(CheckpointTest, RoundTripWithOptimizerIsBitExact) {
  auto a = engine_.create_run(run_spec(2, "run_a"));
  train_steps(engine_, "run_a", 3, 1e-2, 10);
  engine_.save_checkpoint("run_a", "ck");
  auto b = engine_.create_run(run_spec(3, "run_b"));
  engine_.load_checkpoint("run_b", (dir_.path() / "run_a" / "ck").string(), true);
  EXPECT_EQ(probe(engine_, "run_b"), probe(engine_, "run_a"));
  EXPECT_EQ(engine_.get_run("run_b").step, 3);
  // Same moments and step: one more identical step keeps them bit-identical.
  train_steps(engine_, "run_a", 1, 2e-2, 50);
  train_steps(engine_, "run_b", 1, 2e-2, 50);
  EXPECT_EQ(probe(engine_, "run_b"), probe(engine_, "run_a"));
  EXPECT_EQ(engine_.get_run("run_b").step, 4);
}

TEST_F(CheckpointTest, RoundTripWithoutOptimizerKeepsWeightsResetsMoments) {
  engine_.create_run(run_spec(4, "run_a"));
  train_steps(engine_, "run_a", 2, 1e-2, 20);
  engine_.save_checkpoint("run_a", "ck");
  const auto saved = probe(engine_, "run_a");
  train_steps(engine_, "run_a", 2, 1e-2, 30);  // move on
  EXPECT_NE(probe(engine_, "run_a"), saved);
  engine_.load_checkpoint("run_a", "ck", /*load_optimizer=*/false);
  EXPECT_EQ(probe(engine_, "run_a"), saved);
  EXPECT_EQ(engine_.get_run("run_a").step, 0);
  // With optimizer: the step counter comes back too.
  engine_.load_checkpoint("run_a", "ck", true);
  EXPECT_EQ(engine_.get_run("run_a").step, 2);
}

TEST_F(CheckpointTest, ImportsHandWrittenPeftAdapter) {
  // A PEFT directory as another tool writes it: only q_proj/v_proj, bf16 tensors, the
  // ".default" adapter-name infix, list target_modules with dotted names.
  const fs::path peft = dir_.path() / "external";
  fs::create_directories(peft);
  torch::manual_seed(5);
  model::NamedTensors tensors;
  std::map<std::string, std::pair<torch::Tensor, torch::Tensor>> expected;
  for (int layer = 0; layer < 2; ++layer) {
    for (const auto& [name, out] : std::vector<std::pair<std::string, int64_t>>{{"q_proj", 64},
                                                                                 {"v_proj", 32}}) {
      const std::string path = "model.layers." + std::to_string(layer) + ".self_attn." + name;
      auto a = (torch::randn({2, 64}) * 0.1).to(torch::kBFloat16);   // [r, in]
      auto b = (torch::randn({out, 2}) * 0.1).to(torch::kBFloat16);  // [out, r]
      tensors.emplace_back("base_model.model." + path + ".lora_A.default.weight", a);
      tensors.emplace_back("base_model.model." + path + ".lora_B.default.weight", b);
      expected[path] = {a.to(torch::kFloat32), b.to(torch::kFloat32)};
    }
  }
  model::save_safetensors(peft / "adapter_model.safetensors", tensors);
  std::ofstream(peft / "adapter_config.json")
      << R"({"peft_type":"LORA","r":2,"lora_alpha":4,"lora_dropout":0.1,"bias":"none",
            "target_modules":["self_attn.q_proj","v_proj"],"task_type":"CAUSAL_LM"})";

  engine_.create_run(run_spec(6, "run_imp"));
  engine_.load_checkpoint("run_imp", peft.string(), true);
  auto info = engine_.get_run("run_imp");
  EXPECT_EQ(info.lora_config.r, 2);
  EXPECT_EQ(info.lora_config.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(info.trainable_parameters, 2 * (2 * 64 + 64 * 2 + 2 * 64 + 32 * 2));

  // Reference: the model with an adapter built from the same tensors.
  auto model = model::load_model(test::tiny_model_dir(), torch::kFloat32, torch::kCPU);
  lora::LoraAdapter adapter;
  adapter.config.r = 2;
  adapter.config.lora_alpha = 4;
  adapter.config.target_modules = {"q_proj", "v_proj"};
  for (const auto& [path, ab] : expected) {
    adapter.modules[path] = lora::LoraPair{ab.first, ab.second};
  }
  auto ids = tokens(20, 99);
  torch::NoGradGuard no_grad;
  model::ForwardOptions options;
  options.adapter = &adapter;
  auto logp = model->forward(torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0),
                             options)
                  .log_softmax(-1)[0];  // [T, V]
  auto got = probe(engine_, "run_imp");
  for (size_t t = 0; t + 1 < ids.size(); ++t) {
    EXPECT_NEAR(got[t], logp[t][ids[t + 1]].item<float>(), 1e-5);
  }
}

TEST_F(CheckpointTest, RejectsUnsupportedOrMismatchedAdapters) {
  engine_.create_run(run_spec(7, "run_x"));
  const auto before = probe(engine_, "run_x");
  const fs::path bad = dir_.path() / "bad";
  fs::create_directories(bad);
  model::save_safetensors(bad / "adapter_model.safetensors",
                          {{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
                            torch::zeros({2, 63})},
                           {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
                            torch::zeros({64, 2})}});
  std::ofstream(bad / "adapter_config.json") << R"({"peft_type":"LORA","r":2,"lora_alpha":4})";
  try {
    engine_.load_checkpoint("run_x", bad.string(), true);
    ADD_FAILURE() << "expected an error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kBadRequest);
    EXPECT_NE(e.message().find("[2, 63]"), std::string::npos) << e.message();
  }
  std::ofstream(bad / "adapter_config.json")
      << R"({"peft_type":"LORA","r":2,"lora_alpha":4,"use_dora":true})";
  EXPECT_EQ(error_type_of([&] { engine_.load_checkpoint("run_x", bad.string(), true); }),
            ErrorType::kBadRequest);
  EXPECT_EQ(probe(engine_, "run_x"), before);  // nothing changed
}

TEST_F(CheckpointTest, NamesAreValidatedAndUnknownsNotFound) {
  engine_.create_run(run_spec(8, "run_n"));
  const std::vector<std::string> bad_names = {"a/b", "..", "x..y", "", ".hidden",
                                              std::string(200, 'n'), std::string("nul\0x", 5)};
  for (const std::string& name : bad_names) {
    EXPECT_EQ(error_type_of([&] { engine_.save_checkpoint("run_n", name); }),
              ErrorType::kValidation)
        << name;
  }
  EXPECT_EQ(error_type_of([&] { engine_.save_checkpoint("run_none", "ok"); }),
            ErrorType::kNotFound);
  EXPECT_EQ(error_type_of([&] { engine_.load_checkpoint("run_n", "missing", true); }),
            ErrorType::kNotFound);
  EXPECT_EQ(error_type_of([&] { engine_.load_checkpoint("run_n", "/no/such/dir", true); }),
            ErrorType::kNotFound);
  EXPECT_EQ(error_type_of([&] { engine_.delete_checkpoint("run_n", "missing"); }),
            ErrorType::kNotFound);
  EXPECT_TRUE(engine_.list_checkpoints(std::string("run_n")).empty());
}

TEST_F(CheckpointTest, ListNewestFirstDeleteAndSurviveRestart) {
  engine_.create_run(run_spec(9, "run_l"));
  engine_.save_checkpoint("run_l", "first");
  train_steps(engine_, "run_l", 1, 1e-2, 40);
  engine_.save_checkpoint("run_l", "second");
  const auto trained = probe(engine_, "run_l");
  auto list = engine_.list_checkpoints(std::string("run_l"));
  ASSERT_EQ(list.size(), 2U);
  EXPECT_EQ(list[0].name, "second");
  EXPECT_EQ(list[1].name, "first");
  EXPECT_EQ(list[0].run_id, "run_l");

  {
    Engine restarted(engine_options(dir_.path()));
    auto all = restarted.list_checkpoints(std::nullopt);
    ASSERT_EQ(all.size(), 2U);
    CreateRunSpec spec = run_spec(10, "run_again");
    spec.from_checkpoint = list[0].adapter_path;
    restarted.create_run(spec);
    EXPECT_EQ(probe(restarted, "run_again"), trained);
    EXPECT_EQ(restarted.get_run("run_again").step, 1);
  }
  engine_.delete_checkpoint("run_l", "first");
  list = engine_.list_checkpoints(std::string("run_l"));
  ASSERT_EQ(list.size(), 1U);
  EXPECT_EQ(list[0].name, "second");
  // Overwriting a name replaces it.
  train_steps(engine_, "run_l", 1, 1e-2, 41);
  engine_.save_checkpoint("run_l", "second");
  const auto newer = probe(engine_, "run_l");
  train_steps(engine_, "run_l", 1, 1e-2, 42);
  engine_.load_checkpoint("run_l", "second", true);
  EXPECT_EQ(probe(engine_, "run_l"), newer);
}

TEST_F(CheckpointTest, MergedExportReproducesAdapterLogits) {
  engine_.create_run(run_spec(11, "run_m"));
  train_steps(engine_, "run_m", 3, 2e-2, 60);
  const fs::path out = dir_.path() / "merged";
  engine_.export_merged("run_m", out);
  EXPECT_TRUE(fs::exists(out / "config.json"));
  EXPECT_TRUE(fs::exists(out / "tokenizer.json") || fs::exists(out / "vocab.json"));
  const auto with_adapter = probe(engine_, "run_m");
  // Load the export as a base model and sample it through a fresh (B = 0) adapter.
  EngineOptions o = engine_options(dir_.path());
  o.aliases["merged"] = out;
  Engine merged_engine(o);
  CreateRunSpec spec = run_spec(12);
  spec.base_model = "merged";
  auto r = merged_engine.create_run(spec);
  const auto merged = probe(merged_engine, r.run_id);
  ASSERT_EQ(merged.size(), with_adapter.size());
  double max_diff = 0.0;
  for (size_t i = 0; i < merged.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(static_cast<double>(merged[i] - with_adapter[i])));
  }
  EXPECT_LT(max_diff, 1e-4);
  // The adapter moved the model: the export differs from the original base.
  const auto base = probe(engine_, engine_.create_run(run_spec(13)).run_id);
  EXPECT_NE(base, merged);
}

// ---------------------------------------------------------------------------------------------
// Crash safety. The child is this test binary re-executed on CheckpointCrashChild.SaveAndDie
// with the stage to die at in the environment; it SIGKILLs itself from the save hook.

constexpr const char* kCrashDirEnv = "EZTINKER_TEST_CRASH_DIR";
constexpr const char* kCrashModelEnv = "EZTINKER_TEST_CRASH_MODEL";
constexpr const char* kCrashStageEnv = "EZTINKER_TEST_CRASH_STAGE";

TEST(CheckpointCrashChild, SaveAndDie) {
  const char* dir = std::getenv(kCrashDirEnv);
  const char* model_dir = std::getenv(kCrashModelEnv);
  const char* stage = std::getenv(kCrashStageEnv);
  if (dir == nullptr || model_dir == nullptr || stage == nullptr) {
    GTEST_SKIP() << "helper process for CheckpointCrash (runs only when re-executed)";
  }
  EngineOptions o;
  o.checkpoints_dir = dir;
  o.dtype = "fp32";
  o.aliases["tiny"] = model_dir;
  Engine engine(o);
  engine.create_run(run_spec(99, "run_crash"));
  train_steps(engine, "run_crash", 2, 5e-2, 70);  // different weights from the parent's
  const std::string target = stage;
  testing::set_checkpoint_save_hook([target](const std::string& s) {
    if (s == target) {
      ::kill(::getpid(), SIGKILL);
    }
  });
  engine.save_checkpoint("run_crash", "ck");
  std::_Exit(0);  // only reached when the stage never fired
}

int run_crashing_child(const fs::path& dir, const std::string& stage) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv(kCrashDirEnv, dir.c_str(), 1);
    ::setenv(kCrashModelEnv, test::tiny_model_dir().c_str(), 1);
    ::setenv(kCrashStageEnv, stage.c_str(), 1);
    ::execl("/proc/self/exe", "core_tests", "--gtest_filter=CheckpointCrashChild.SaveAndDie",
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST_F(CheckpointTest, KillDuringSaveLeavesPreviousCheckpointLoadable) {
  engine_.create_run(run_spec(14, "run_crash"));
  train_steps(engine_, "run_crash", 1, 1e-2, 80);
  engine_.save_checkpoint("run_crash", "ck");
  const auto saved = probe(engine_, "run_crash");
  train_steps(engine_, "run_crash", 1, 1e-2, 81);
  for (const std::string stage :
       {"tmp_dir_created", "adapter_written", "optimizer_written", "before_rename"}) {
    const int status = run_crashing_child(dir_.path(), stage);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << stage << ": child did not die at the hook (status " << status << ")";
    auto list = engine_.list_checkpoints(std::string("run_crash"));
    ASSERT_EQ(list.size(), 1U) << stage;
    engine_.load_checkpoint("run_crash", "ck", true);
    EXPECT_EQ(probe(engine_, "run_crash"), saved) << stage;
    EXPECT_EQ(engine_.get_run("run_crash").step, 1);
  }
  // Killed right after the swap: the NEW checkpoint is complete and loads.
  const int status = run_crashing_child(dir_.path(), "renamed");
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(engine_.list_checkpoints(std::string("run_crash")).size(), 1U);
  engine_.load_checkpoint("run_crash", "ck", true);
  EXPECT_NE(probe(engine_, "run_crash"), saved);
  EXPECT_EQ(engine_.get_run("run_crash").step, 2);
}

}  // namespace
}  // namespace eztinker::engine
