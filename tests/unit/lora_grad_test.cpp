// LoRA gradients on the tiny model: backward reaches only the LoRA tensors (every frozen base
// parameter keeps an undefined grad), and autograd's LoRA gradients (through the chunked
// lm_head log-prob function and the weighted loss) match central finite differences.
// fp32 throughout (the model supports fp32/bf16 only); tolerance stated at the check.
#include "engine_fixture.h"

#include "model/weights.h"
#include "train/losses.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace eztinker::lora {
namespace {

struct Fixture {
  model::Qwen2ForCausalLM model{nullptr};
  LoraAdapter adapter;
  torch::Tensor input;    // [2, T]
  torch::Tensor rows;     // [N]
  torch::Tensor targets;  // [N]
  train::LossInputs loss;
};

Fixture make_fixture() {
  Fixture f;
  f.model = model::load_model(engine::test::tiny_model_dir(), torch::kFloat32, torch::kCPU);
  LoraConfig config;
  config.r = 3;
  config.lora_alpha = 6;
  config.lora_dropout = 0.0;
  f.adapter = create_lora_adapter(config, *f.model, 17);
  {
    // B = 0 would make every A gradient exactly zero; give B values so both are exercised.
    torch::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    for (auto& [path, pair] : f.adapter.modules) {
      pair.b.normal_(0.0, 0.1, gen);
    }
  }
  const int64_t T = 9;
  auto a = engine::test::tokens(T, 1);
  auto b = engine::test::tokens(T, 2);
  std::vector<int64_t> ids(a.begin(), a.end());
  ids.insert(ids.end(), b.begin(), b.end());
  f.input = torch::tensor(ids).view({2, T});  // [2, T]
  std::vector<int64_t> rows;
  std::vector<int64_t> targets;
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t t = 0; t + 1 < T; ++t) {
      rows.push_back(i * T + t);
      targets.push_back(ids[static_cast<size_t>(i * T + t + 1)]);
    }
  }
  f.rows = torch::tensor(rows);       // [N]
  f.targets = torch::tensor(targets);  // [N]
  const int64_t n = f.rows.size(0);
  f.loss.weights = torch::linspace(0.5, 2.0, n);          // [N] non-uniform weights
  f.loss.mask = torch::ones({n}, torch::kBool);           // [N]
  return f;
}

torch::Tensor loss_of(Fixture& f) {
  model::ForwardOptions options;
  options.adapter = &f.adapter;
  auto hidden = f.model->forward_hidden(f.input, options);                      // [2, T, H]
  auto flat = hidden.reshape({-1, hidden.size(-1)}).index_select(0, f.rows);   // [N, H]
  auto inputs = f.loss;
  inputs.logprobs = train::target_logprobs(flat, f.model->lm_head_weight(), f.targets, 5);  // [N]
  return train::reduce_loss(inputs, train::LossOptions{});
}

TEST(LoraGrad, BackwardReachesOnlyLoraParameters) {
  auto f = make_fixture();
  loss_of(f).backward();
  for (const auto& p : f.model->named_parameters()) {
    EXPECT_FALSE(p.value().requires_grad()) << p.key();
    EXPECT_FALSE(p.value().grad().defined()) << p.key();
  }
  ASSERT_EQ(f.adapter.modules.size(), 14U);  // 2 layers x 7 projections
  for (const auto& [path, pair] : f.adapter.modules) {
    ASSERT_TRUE(pair.a.grad().defined()) << path;
    ASSERT_TRUE(pair.b.grad().defined()) << path;
    EXPECT_GT(pair.a.grad().abs().sum().item<double>(), 0.0) << path;
    EXPECT_GT(pair.b.grad().abs().sum().item<double>(), 0.0) << path;
  }
}

TEST(LoraGrad, GradientsMatchCentralFiniteDifferences) {
  auto f = make_fixture();
  loss_of(f).backward();
  torch::NoGradGuard no_grad;
  // fp32 central differences with h = 1e-2: truncation O(h^2) ~1e-4 relative, rounding
  // ~1e-7 * |L| / h ~ 1e-5. Tolerance: 2e-3 absolute + 3% relative.
  const double h = 1e-2;
  int checked = 0;
  for (const std::string path : {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                                 "model.layers.1.mlp.down_proj", "model.layers.1.mlp.gate_proj",
                                 "model.layers.1.self_attn.o_proj"}) {
    auto& pair = f.adapter.modules.at(path);
    for (torch::Tensor* tensor : {&pair.a, &pair.b}) {
      auto flat = tensor->view({-1});
      auto grad = tensor->grad().view({-1});
      for (int64_t idx : {int64_t{0}, flat.size(0) / 2, flat.size(0) - 1}) {
        const float orig = flat[idx].item<float>();
        flat[idx] = orig + h;
        const double plus = loss_of(f).item<double>();
        flat[idx] = orig - h;
        const double minus = loss_of(f).item<double>();
        flat[idx] = orig;
        const double numeric = (plus - minus) / (2.0 * h);
        const double analytic = grad[idx].item<double>();
        EXPECT_NEAR(analytic, numeric, 2e-3 + 0.03 * std::abs(numeric))
            << path << (tensor == &pair.a ? ".A" : ".B") << "[" << idx << "]";
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 30);
}

TEST(LoraGrad, FreshAdapterLeavesLogitsBitIdentical) {
  auto model = model::load_model(engine::test::tiny_model_dir(), torch::kFloat32, torch::kCPU);
  LoraConfig config;
  auto adapter = create_lora_adapter(config, *model, 1);
  torch::NoGradGuard no_grad;
  auto ids = engine::test::tokens(12, 5);
  auto input = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);  // [1, T]
  model::ForwardOptions with;
  with.adapter = &adapter;
  EXPECT_TRUE(torch::equal(model->forward(input, with), model->forward(input)));
}

}  // namespace
}  // namespace eztinker::lora
