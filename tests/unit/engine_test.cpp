// Engine behaviour on the tiny random Qwen2: loss values against formulas evaluated on the
// returned log-probs, training progress, gradient accumulation, run isolation on a shared base,
// base refcounting, sampling (determinism, batched == one-by-one, KV cache == recomputation,
// stop strings, logprobs == training-path logprobs) and input validation that changes nothing.
#include "engine_fixture.h"

#include "model/weights.h"
#include "sampling/generate.h"

#include <cmath>
#include <algorithm>
#include <limits>
#include <set>
#include <numeric>

namespace eztinker::engine {
namespace {

using test::engine_options;
using test::error_type_of;
using test::example;
using test::flat_logprobs;
using test::run_spec;
using test::tokens;

class EngineTest : public ::testing::Test {
 protected:
  eztinker::testing::TempDir checkpoints_{"eztinker-engine-ck"};
  Engine engine_{engine_options(checkpoints_.path())};
};

TEST_F(EngineTest, FreshAdapterLogprobsEqualBaseModel) {
  auto run = engine_.create_run(run_spec(1));
  auto ids = tokens(20, 1);
  auto r = engine_.forward(run.run_id, {example(ids)}, LossSpec{}, false);
  // Reference: the bare base model's full logits, log_softmax, gathered at the next token.
  auto model = model::load_model(test::tiny_model_dir(), torch::kFloat32, torch::kCPU);
  torch::NoGradGuard no_grad;
  auto input = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);  // [1, T]
  auto logp = model->forward(input).log_softmax(-1)[0];  // [T, V]
  ASSERT_EQ(r.logprobs.size(), 1U);
  ASSERT_EQ(r.logprobs[0].size(), ids.size() - 1);
  for (size_t t = 0; t + 1 < ids.size(); ++t) {
    ASSERT_TRUE(r.logprobs[0][t].has_value());
    EXPECT_NEAR(*r.logprobs[0][t], logp[t][ids[t + 1]].item<float>(), 1e-5) << t;
  }
}

TEST_F(EngineTest, WeightedMeanLossEqualsHandComputedFromLogprobs) {
  auto run = engine_.create_run(run_spec(2));
  TrainExample ex = example(tokens(12, 2));
  ex.target_ids = ex.input_ids;
  ex.target_ids[3] = -100;  // position 2 carries no loss
  ex.weights = {9.0F, 0.5F, 1.0F, 7.0F, 2.0F, 0.0F, 1.5F, 1.0F, 3.0F, 1.0F, 0.25F, 2.0F};
  auto r = engine_.forward(run.run_id, {ex}, LossSpec{}, false);
  ASSERT_FALSE(r.logprobs[0][2].has_value());
  double num = 0.0;
  double den = 0.0;
  for (size_t t = 0; t + 1 < ex.input_ids.size(); ++t) {
    if (ex.target_ids[t + 1] == -100) {
      continue;
    }
    // weights[t + 1] weighs predicting target_ids[t + 1]; weights[0] is never used.
    num += ex.weights[t + 1] * -static_cast<double>(*r.logprobs[0][t]);
    den += ex.weights[t + 1];
  }
  EXPECT_NEAR(r.loss, num / den, 1e-5);
  EXPECT_EQ(r.num_tokens, 9);  // 11 positions, one ignored, one with weight 0

  LossSpec sum;
  sum.reduction_sum = true;
  EXPECT_NEAR(engine_.forward(run.run_id, {ex}, sum, false).loss, num, 1e-4);
}

TEST_F(EngineTest, PaddedBatchMatchesExamplesAlone) {
  auto run = engine_.create_run(run_spec(3));
  auto a = example(tokens(15, 3));
  auto b = example(tokens(6, 4));
  auto both = engine_.forward(run.run_id, {a, b}, LossSpec{}, false);
  auto ra = engine_.forward(run.run_id, {a}, LossSpec{}, false);
  auto rb = engine_.forward(run.run_id, {b}, LossSpec{}, false);
  ASSERT_EQ(both.logprobs[1].size(), 5U);
  for (size_t t = 0; t < 5; ++t) {
    EXPECT_NEAR(*both.logprobs[1][t], *rb.logprobs[0][t], 1e-5);
  }
  // Batch mean = all tokens' sum over all tokens, not a mean of means.
  const double expected = (ra.loss * 14 + rb.loss * 5) / 19.0;
  EXPECT_NEAR(both.loss, expected, 1e-5);
}

TEST_F(EngineTest, ImportanceSamplingAndPpoEqualTheirFormulas) {
  auto run = engine_.create_run(run_spec(4));
  TrainExample ex = example(tokens(8, 5));
  auto base = engine_.forward(run.run_id, {ex}, LossSpec{}, false);
  const auto lp = flat_logprobs(base);
  ex.advantages = {0.0F, 1.0F, -2.0F, 0.5F, 1.5F, -1.0F, 2.0F, 0.3F};
  // Sampler logprobs offset so that ratios exp(lp - q) straddle both clip bounds.
  const std::vector<float> offsets = {0.0F, 0.5F, -0.5F, 0.05F, -0.1F, 0.3F, -0.4F, 0.0F};
  ex.sampler_logprobs.assign(8, 0.0F);
  for (size_t t = 1; t < 8; ++t) {
    ex.sampler_logprobs[t] = lp[t - 1] - offsets[t];  // ratio = exp(offset)
  }
  LossSpec is;
  is.fn = LossFn::kImportanceSampling;
  is.reduction_sum = true;
  LossSpec ppo;
  ppo.fn = LossFn::kPpo;
  ppo.reduction_sum = true;
  double expected_is = 0.0;
  double expected_ppo = 0.0;
  for (size_t t = 1; t < 8; ++t) {
    const double ratio = std::exp(static_cast<double>(offsets[t]));
    const double a = ex.advantages[t];
    expected_is += -ratio * a;
    const double clipped = std::clamp(ratio, 0.8, 1.2);
    expected_ppo += -std::min(ratio * a, clipped * a);
  }
  EXPECT_NEAR(engine_.forward(run.run_id, {ex}, is, false).loss, expected_is, 1e-4);
  EXPECT_NEAR(engine_.forward(run.run_id, {ex}, ppo, false).loss, expected_ppo, 1e-4);
}

TEST_F(EngineTest, LossStrictlyDecreasesOverfittingOneBatch) {
  auto run = engine_.create_run(run_spec(5));
  std::vector<TrainExample> batch = {example(tokens(24, 6)), example(tokens(16, 7))};
  AdamParams adam;
  // The tiny random model starts near the uniform loss ln(512); an r=4 adapter moves it
  // slowly, so a small learning rate keeps every step a strict decrease.
  adam.learning_rate = 3e-3;
  double previous = std::numeric_limits<double>::infinity();
  double first = 0.0;
  for (int step = 0; step < 30; ++step) {
    auto r = engine_.forward(run.run_id, batch, LossSpec{}, true);
    EXPECT_LT(r.loss, previous) << "step " << step;
    if (step == 0) {
      first = r.loss;
    }
    previous = r.loss;
    auto o = engine_.optim_step(run.run_id, adam);
    EXPECT_EQ(o.step, step + 1);
    EXPECT_GT(o.grad_norm, 0.0);
  }
  EXPECT_LT(previous, first - 0.5);
  auto info = engine_.get_run(run.run_id);
  EXPECT_EQ(info.step, 30);
  EXPECT_EQ(info.tokens_trained, 30 * (23 + 15));
}

TEST_F(EngineTest, GradientsAccumulateUntilOptimStep) {
  auto one = engine_.create_run(run_spec(6));
  auto two = engine_.create_run(run_spec(6));
  auto ex = example(tokens(10, 8));
  AdamParams adam;
  adam.grad_clip_norm = 0.0;
  // Make B non-zero first so both A and B carry gradient.
  for (const auto& id : {one.run_id, two.run_id}) {
    engine_.forward(id, {ex}, LossSpec{}, true);
    engine_.optim_step(id, adam);
  }
  engine_.forward(one.run_id, {ex}, LossSpec{}, true);
  engine_.forward(two.run_id, {ex}, LossSpec{}, true);
  engine_.forward(two.run_id, {ex}, LossSpec{}, true);
  const double g1 = engine_.optim_step(one.run_id, adam).grad_norm;
  const double g2 = engine_.optim_step(two.run_id, adam).grad_norm;
  EXPECT_NEAR(g2, 2.0 * g1, 1e-4 * g1);
  // optim_step zeroed them: a step right after sees no gradient.
  EXPECT_EQ(engine_.optim_step(two.run_id, adam).grad_norm, 0.0);
}

TEST_F(EngineTest, TrainingOneRunLeavesAnotherBitIdentical) {
  auto a = engine_.create_run(run_spec(7));
  auto b = engine_.create_run(run_spec(8));
  auto bases = engine_.base_models();
  ASSERT_EQ(bases.size(), 1U);  // one shared base
  EXPECT_EQ(bases[0].runs, 2);
  auto ex = example(tokens(16, 9));
  SampleSpec greedy;
  greedy.run_id = b.run_id;
  greedy.prompt_ids = tokens(5, 10);
  greedy.temperature = 0.0;
  greedy.max_new_tokens = 12;
  greedy.stop_token_ids = std::vector<int32_t>{};
  auto before = flat_logprobs(engine_.forward(b.run_id, {ex}, LossSpec{}, false));
  auto sample_before = engine_.sample(greedy).samples[0].token_ids;
  AdamParams adam;
  adam.learning_rate = 1e-2;
  for (int i = 0; i < 3; ++i) {
    engine_.forward(a.run_id, {ex}, LossSpec{}, true);
    engine_.optim_step(a.run_id, adam);
  }
  EXPECT_EQ(flat_logprobs(engine_.forward(b.run_id, {ex}, LossSpec{}, false)), before);
  EXPECT_EQ(engine_.sample(greedy).samples[0].token_ids, sample_before);
  EXPECT_NE(flat_logprobs(engine_.forward(a.run_id, {ex}, LossSpec{}, false)), before);
}

TEST_F(EngineTest, BaseIsUnloadedWithItsLastRunUnlessPinned) {
  auto a = engine_.create_run(run_spec(9));
  auto b = engine_.create_run(run_spec(10));
  engine_.delete_run(a.run_id);
  EXPECT_EQ(engine_.base_models().size(), 1U);
  engine_.delete_run(b.run_id);
  EXPECT_TRUE(engine_.base_models().empty());
  engine_.load_base_model("tiny");
  auto c = engine_.create_run(run_spec(11));
  engine_.delete_run(c.run_id);
  EXPECT_EQ(engine_.base_models().size(), 1U);  // pinned by load_base_model
  EXPECT_EQ(error_type_of([&] { engine_.delete_run(c.run_id); }), ErrorType::kNotFound);
}

TEST_F(EngineTest, RunIdsAreGeneratedOrTakenAndConflictsRejected) {
  auto r = engine_.create_run(run_spec(12));
  EXPECT_EQ(r.run_id.rfind("run_", 0), 0U);
  EXPECT_EQ(r.run_id.size(), 12U);
  auto named = engine_.create_run(run_spec(12, "mine"));
  EXPECT_EQ(named.run_id, "mine");
  EXPECT_EQ(error_type_of([&] { engine_.create_run(run_spec(12, "mine")); }),
            ErrorType::kConflict);
  EXPECT_EQ(error_type_of([&] { engine_.create_run(run_spec(12, "../x")); }),
            ErrorType::kValidation);
  auto bad = run_spec(12);
  bad.base_model = "no-such-model";
  EXPECT_EQ(error_type_of([&] { engine_.create_run(bad); }), ErrorType::kBadRequest);
  EXPECT_EQ(engine_.list_runs().size(), 2U);
  EXPECT_EQ(engine_.get_run("mine").trainable_parameters,
            // 2 layers x r=4 x (q 64+64, k 64+32, v 64+32, o 64+64, gate/up 64+128 x2, down 128+64)
            2 * 4 * ((64 + 64) + (64 + 32) + (64 + 32) + (64 + 64) + 3 * (64 + 128)));
}

TEST_F(EngineTest, BadInputsAreRejectedAndChangeNothing) {
  auto run = engine_.create_run(run_spec(13));
  const int64_t vocab = engine_.run_vocab_size(run.run_id);
  const int64_t max_pos = engine_.run_max_positions(run.run_id);
  auto ok = example(tokens(10, 11));
  auto before = flat_logprobs(engine_.forward(run.run_id, {ok}, LossSpec{}, false));
  auto fb = [&](const TrainExample& ex) { engine_.forward(run.run_id, {ex}, LossSpec{}, true); };

  auto big = ok;
  big.input_ids[4] = static_cast<int32_t>(vocab);
  EXPECT_EQ(error_type_of([&] { fb(big); }), ErrorType::kValidation);
  auto negative = ok;
  negative.input_ids[0] = -1;
  EXPECT_EQ(error_type_of([&] { fb(negative); }), ErrorType::kValidation);
  EXPECT_EQ(error_type_of([&] { fb(example({})); }), ErrorType::kValidation);
  EXPECT_EQ(error_type_of([&] { engine_.forward(run.run_id, {}, LossSpec{}, true); }),
            ErrorType::kValidation);
  EXPECT_EQ(error_type_of([&] { fb(example(std::vector<int32_t>(max_pos + 1, 5))); }),
            ErrorType::kValidation);
  auto short_weights = ok;
  short_weights.weights.assign(ok.input_ids.size() - 1, 1.0F);
  EXPECT_EQ(error_type_of([&] { fb(short_weights); }), ErrorType::kValidation);
  auto nan_weights = ok;
  nan_weights.weights.assign(ok.input_ids.size(), std::nanf(""));
  EXPECT_EQ(error_type_of([&] { fb(nan_weights); }), ErrorType::kValidation);
  auto bad_targets = ok;
  bad_targets.target_ids.assign(ok.input_ids.size(), static_cast<int32_t>(vocab + 5));
  EXPECT_EQ(error_type_of([&] { fb(bad_targets); }), ErrorType::kValidation);
  LossSpec ppo;
  ppo.fn = LossFn::kPpo;
  EXPECT_EQ(error_type_of([&] { engine_.forward(run.run_id, {ok}, ppo, true); }),
            ErrorType::kValidation);  // no advantages

  AdamParams nan_lr;
  nan_lr.learning_rate = std::nan("");
  AdamParams neg_lr;
  neg_lr.learning_rate = -1e-3;
  AdamParams bad_beta;
  bad_beta.beta1 = 1.0;
  for (const auto& p : {nan_lr, neg_lr, bad_beta}) {
    EXPECT_EQ(error_type_of([&] { engine_.optim_step(run.run_id, p); }), ErrorType::kValidation);
  }
  EXPECT_EQ(error_type_of([&] { engine_.forward("run_nope", {ok}, LossSpec{}, true); }),
            ErrorType::kNotFound);
  EXPECT_EQ(error_type_of([&] { engine_.optim_step("run_nope", AdamParams{}); }),
            ErrorType::kNotFound);
  SampleSpec bad_prompt;
  bad_prompt.run_id = run.run_id;
  EXPECT_EQ(error_type_of([&] { engine_.sample(bad_prompt); }), ErrorType::kValidation);
  bad_prompt.prompt_ids = {1, static_cast<int32_t>(vocab)};
  EXPECT_EQ(error_type_of([&] { engine_.sample(bad_prompt); }), ErrorType::kValidation);

  // Nothing changed: same outputs, no step taken, no gradient accumulated by failed calls.
  EXPECT_EQ(flat_logprobs(engine_.forward(run.run_id, {ok}, LossSpec{}, false)), before);
  EXPECT_EQ(engine_.get_run(run.run_id).step, 0);
  EXPECT_EQ(engine_.get_run(run.run_id).tokens_trained, 0);
  EXPECT_EQ(engine_.optim_step(run.run_id, AdamParams{}).grad_norm, 0.0);
}

// ---------------------------------------------------------------------------------------------
// Sampling

SampleSpec greedy_spec(const std::string& run_id, int n = 1) {
  SampleSpec s;
  s.run_id = run_id;
  s.prompt_ids = tokens(7, 20);
  s.temperature = 0.0;
  s.max_new_tokens = 16;
  s.num_samples = n;
  s.stop_token_ids = std::vector<int32_t>{};  // run to length
  s.return_logprobs = true;
  return s;
}

TEST_F(EngineTest, GreedyAndSeededSamplingAreDeterministic) {
  auto run = engine_.create_run(run_spec(14));
  auto g = greedy_spec(run.run_id);
  auto first = engine_.sample(g).samples[0];
  EXPECT_EQ(first.token_ids.size(), 16U);
  EXPECT_EQ(first.finish_reason, "length");
  EXPECT_EQ(engine_.sample(g).samples[0].token_ids, first.token_ids);

  SampleSpec s = g;
  s.temperature = 1.0;
  s.top_k = 0;
  s.num_samples = 3;
  s.seed = 77;
  auto x = engine_.sample(s);
  auto y = engine_.sample(s);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(x.samples[i].token_ids, y.samples[i].token_ids);
    EXPECT_EQ(x.samples[i].logprobs, y.samples[i].logprobs);
  }
  s.seed = 78;
  auto z = engine_.sample(s);
  EXPECT_NE(x.samples[0].token_ids, z.samples[0].token_ids);
  EXPECT_NE(x.samples[0].token_ids, x.samples[1].token_ids);  // samples of one batch differ
}

TEST_F(EngineTest, BatchedGreedySamplesEqualOneByOne) {
  auto run = engine_.create_run(run_spec(15));
  // Train a little so the adapter is not the identity.
  AdamParams adam;
  adam.learning_rate = 1e-2;
  engine_.forward(run.run_id, {example(tokens(20, 21))}, LossSpec{}, true);
  engine_.optim_step(run.run_id, adam);
  auto single = engine_.sample(greedy_spec(run.run_id, 1)).samples[0];
  auto batch = engine_.sample(greedy_spec(run.run_id, 4));
  ASSERT_EQ(batch.samples.size(), 4U);
  for (const auto& s : batch.samples) {
    EXPECT_EQ(s.token_ids, single.token_ids);
    ASSERT_EQ(s.logprobs.size(), single.logprobs.size());
    for (size_t t = 0; t < s.logprobs.size(); ++t) {
      EXPECT_NEAR(s.logprobs[t], single.logprobs[t], 1e-4);
    }
  }
}

TEST_F(EngineTest, SampleLogprobsEqualTrainingPathLogprobs) {
  auto run = engine_.create_run(run_spec(16));
  SampleSpec s = greedy_spec(run.run_id);
  s.temperature = 0.7;  // logprobs are still those of the temperature-1 distribution
  s.top_k = 5;
  s.seed = 3;
  auto out = engine_.sample(s).samples[0];
  std::vector<int32_t> full = s.prompt_ids;
  full.insert(full.end(), out.token_ids.begin(), out.token_ids.end());
  auto r = engine_.forward(*s.run_id, {example(full)}, LossSpec{}, false);
  const size_t p = s.prompt_ids.size();
  for (size_t i = 0; i < out.token_ids.size(); ++i) {
    EXPECT_NEAR(out.logprobs[i], *r.logprobs[0][p - 1 + i], 2e-4) << i;
  }
}

TEST_F(EngineTest, KvCacheDecodingEqualsRecomputation) {
  auto model = model::load_model(test::tiny_model_dir(), torch::kFloat32, torch::kCPU);
  lora::LoraConfig lc;
  lc.r = 4;
  auto adapter = lora::create_lora_adapter(lc, *model, 5);
  {
    torch::NoGradGuard no_grad;
    for (auto& [path, pair] : adapter.modules) {
      pair.b.normal_(0.0, 0.05);  // a non-trivial adapter
    }
  }
  sampling::GenerateRequest req;
  req.prompt_ids = tokens(6, 30);
  req.stop.max_new_tokens = 20;
  req.params.temperature = 0.0;
  auto cached = sampling::generate(*model, &adapter, req);
  auto recomputed = sampling::generate_without_cache(*model, &adapter, req);
  EXPECT_EQ(cached[0].token_ids, recomputed[0].token_ids);
  for (size_t t = 0; t < cached[0].logprobs.size(); ++t) {
    EXPECT_NEAR(cached[0].logprobs[t], recomputed[0].logprobs[t], 1e-4);
  }
  // Seeded sampling with a stop set, so rows finish at different steps (cache compaction).
  req.params.temperature = 1.0;
  req.params.top_k = 0;
  req.num_samples = 5;
  req.seed = 11;
  for (int32_t id = 0; id < 256; id += 9) {
    req.stop.stop_token_ids.push_back(id);
  }
  cached = sampling::generate(*model, &adapter, req);
  recomputed = sampling::generate_without_cache(*model, &adapter, req);
  std::set<size_t> lengths;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(cached[i].token_ids, recomputed[i].token_ids) << i;
    EXPECT_EQ(cached[i].finish_reason, recomputed[i].finish_reason);
    lengths.insert(cached[i].token_ids.size());
  }
  EXPECT_GT(lengths.size(), 1U) << "expected samples of different lengths";
}

TEST_F(EngineTest, StopStringsCutTheCompletion) {
  auto run = engine_.create_run(run_spec(17));
  auto g = greedy_spec(run.run_id);
  g.max_new_tokens = 24;
  auto full = engine_.sample(g).samples[0];
  ASSERT_GE(full.text.size(), 6U) << "tiny model produced too little text";
  // A stop string taken from the middle of the uncut completion.
  const std::string stop = full.text.substr(full.text.size() / 2, 2);
  const size_t cut = full.text.find(stop);
  g.stop = {stop, "\x01never"};
  auto stopped = engine_.sample(g).samples[0];
  EXPECT_EQ(stopped.finish_reason, "stop");
  EXPECT_EQ(stopped.text, full.text.substr(0, cut));
  EXPECT_LE(stopped.token_ids.size(), full.token_ids.size());
  EXPECT_EQ(stopped.token_ids,
            std::vector<int32_t>(full.token_ids.begin(),
                                 full.token_ids.begin() + stopped.token_ids.size()));
}

TEST_F(EngineTest, EosStopsByDefaultAndEmptyListDisables) {
  auto run = engine_.create_run(run_spec(18));
  auto g = greedy_spec(run.run_id);
  auto free_run = engine_.sample(g).samples[0];
  // Declare the 4th greedy token a stop id: decoding must end right there with "stop".
  g.stop_token_ids = std::vector<int32_t>{free_run.token_ids[3]};
  auto stopped = engine_.sample(g).samples[0];
  EXPECT_EQ(stopped.finish_reason, "stop");
  const auto first = std::find(free_run.token_ids.begin(), free_run.token_ids.end(),
                               free_run.token_ids[3]);
  EXPECT_EQ(stopped.token_ids,
            std::vector<int32_t>(free_run.token_ids.begin(), first + 1));
}

TEST_F(EngineTest, BaseModelSamplingNeedsNoRun) {
  SampleSpec s;
  s.base_model = "tiny";
  s.prompt_ids = tokens(4, 40);
  s.temperature = 0.0;
  s.max_new_tokens = 5;
  s.stop_token_ids = std::vector<int32_t>{};
  auto out = engine_.sample(s);
  EXPECT_EQ(out.samples.at(0).token_ids.size(), 5U);
  // A fresh adapter (B = 0) samples exactly what the base does.
  auto run = engine_.create_run(run_spec(19));
  s.base_model.reset();
  s.run_id = run.run_id;
  EXPECT_EQ(engine_.sample(s).samples[0].token_ids, out.samples[0].token_ids);
}

class EngineBf16Test : public ::testing::Test {
 protected:
  eztinker::testing::TempDir checkpoints_{"eztinker-engine-bf16"};
};

TEST_F(EngineBf16Test, Bf16LogprobsWithinToleranceOfFp32AndTrainingWorks) {
  Engine fp32(engine_options(checkpoints_.path(), "fp32"));
  Engine bf16(engine_options(checkpoints_.path(), "bf16"));
  auto a = fp32.create_run(run_spec(20));
  auto b = bf16.create_run(run_spec(20));
  EXPECT_EQ(bf16.get_run(b.run_id).dtype, "bf16");
  auto ex = example(tokens(32, 41));
  auto la = flat_logprobs(fp32.forward(a.run_id, {ex}, LossSpec{}, false));
  auto lb = flat_logprobs(bf16.forward(b.run_id, {ex}, LossSpec{}, false));
  double max_diff = 0.0;
  for (size_t i = 0; i < la.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(static_cast<double>(la[i] - lb[i])));
  }
  // Stated tolerance: bf16 base weights/activations (8-bit mantissa) vs fp32 on the tiny model.
  EXPECT_LT(max_diff, 0.05);
  AdamParams adam;
  adam.learning_rate = 1e-2;
  double first = 0.0;
  double last = 0.0;
  for (int i = 0; i < 5; ++i) {
    last = bf16.forward(b.run_id, {ex}, LossSpec{}, true).loss;
    first = i == 0 ? last : first;
    auto o = bf16.optim_step(b.run_id, adam);
    EXPECT_TRUE(std::isfinite(o.grad_norm));
  }
  EXPECT_LT(last, first);
}

}  // namespace
}  // namespace eztinker::engine
