// LoRA through the model's forward (PEFT semantics): a fresh adapter leaves the logits exactly
// unchanged, base + delta equals a model with merged weights W + scaling * B A (fp32, 1e-4),
// init shapes/bounds/determinism, dropout only in training, gradients only on LoRA tensors.
#include "lora/lora_adapter.h"

#include "model/qwen2.h"
#include "tiny_qwen2.h"

#include <gtest/gtest.h>

#include <cmath>

namespace eztinker::lora {
namespace {

using eztinker::testing::random_ids;
using eztinker::testing::tiny_qwen2;

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

TEST(LoraForward, InitShapesAndBounds) {
  auto m = tiny_qwen2();
  LoraConfig cfg;
  cfg.r = 4;
  LoraAdapter ad = create_lora_adapter(cfg, *m, 11);
  EXPECT_EQ(ad.modules.size(), 14u);  // 7 projections x 2 layers
  const LoraPair* q = ad.find("model.layers.1.self_attn.q_proj");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->a.sizes(), torch::IntArrayRef({4, 64}));
  EXPECT_EQ(q->b.sizes(), torch::IntArrayRef({64, 4}));
  const LoraPair* down = ad.find("model.layers.0.mlp.down_proj");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->a.sizes(), torch::IntArrayRef({4, 128}));
  EXPECT_EQ(down->b.sizes(), torch::IntArrayRef({64, 4}));
  EXPECT_EQ(down->a.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(down->a.requires_grad() && down->b.requires_grad());
  EXPECT_EQ(down->b.abs().max().item<float>(), 0.0f);
  EXPECT_LE(down->a.abs().max().item<double>(), 1.0 / std::sqrt(128.0));
  EXPECT_GT(down->a.abs().max().item<double>(), 0.5 / std::sqrt(128.0));
  EXPECT_EQ(ad.find("lm_head"), nullptr);
  // (64*4 + 4*64) q,o + (64*4 + 4*32) k,v + (64*4 + 4*128) gate,up + (128*4 + 4*64) down, x2.
  EXPECT_EQ(ad.num_parameters(), 2 * (2 * 512 + 2 * 384 + 2 * 768 + 768));
  EXPECT_EQ(ad.parameters().size(), 28u);
  // Same seed, same init; another seed differs.
  LoraAdapter same = create_lora_adapter(cfg, *m, 11);
  LoraAdapter other = create_lora_adapter(cfg, *m, 12);
  EXPECT_TRUE(torch::equal(same.find("model.layers.1.self_attn.q_proj")->a, q->a));
  EXPECT_FALSE(torch::equal(other.find("model.layers.1.self_attn.q_proj")->a, q->a));

  cfg.target_modules = {"v_proj", "q_proj"};
  EXPECT_EQ(create_lora_adapter(cfg, *m, 1).modules.size(), 4u);
  cfg.target_modules = {"lm_head"};
  EXPECT_THROW(create_lora_adapter(cfg, *m, 1), std::invalid_argument);
}

TEST(LoraForward, Scaling) {
  LoraConfig c;
  c.r = 16;
  c.lora_alpha = 32;
  EXPECT_DOUBLE_EQ(c.scaling(), 2.0);
  c.use_rslora = true;
  EXPECT_DOUBLE_EQ(c.scaling(), 8.0);
}

TEST(LoraForward, LoraDeltaMatchesMath) {
  torch::manual_seed(0);
  torch::Tensor x = torch::randn({2, 3, 10});
  torch::Tensor a = torch::randn({4, 10});
  torch::Tensor b = torch::randn({6, 4});
  torch::Tensor expected = torch::matmul(x, torch::matmul(b, a).t()) * 0.5;  // x (BA)^T s
  EXPECT_LT(max_abs_diff(detail::lora_delta(x, a, b, 0.5), expected), 1e-5);
}

TEST(LoraForward, LoraDeltaGradientsMatchHandDerivedFormulas) {
  // delta = s x A^T B^T. With upstream gradient G: dB = s G^T (x A^T), dA = s (G B)^T x,
  // dx = s G B A. Checked for an fp32 x and for a bf16 x (saved as bf16, widened in backward;
  // its gradient comes back in bf16).
  torch::manual_seed(1);
  const double s = 0.75;
  for (torch::Dtype x_dtype : {torch::kFloat32, torch::kBFloat16}) {
    torch::Tensor x = torch::randn({2, 3, 10}).to(x_dtype).set_requires_grad(true);  // [2, 3, in]
    torch::Tensor a = torch::randn({4, 10}).set_requires_grad(true);                 // [r, in]
    torch::Tensor b = torch::randn({6, 4}).set_requires_grad(true);                  // [out, r]
    torch::Tensor g = torch::randn({2, 3, 6});                                       // [2, 3, out]
    torch::Tensor delta = detail::lora_delta(x, a, b, s);
    EXPECT_EQ(delta.scalar_type(), torch::kFloat32);
    delta.backward(g);
    torch::NoGradGuard ng;
    torch::Tensor x2 = x.detach().to(torch::kFloat32).reshape({6, 10});  // [N, in]
    torch::Tensor g2 = g.reshape({6, 6});                                 // [N, out]
    torch::Tensor want_b = s * g2.t().mm(x2.mm(a.t()));                   // [out, r]
    torch::Tensor want_a = s * g2.mm(b).t().mm(x2);                       // [r, in]
    torch::Tensor want_x = (s * g2.mm(b).mm(a)).reshape({2, 3, 10});      // [2, 3, in]
    EXPECT_LT(max_abs_diff(b.grad(), want_b), 1e-4) << x_dtype;
    EXPECT_LT(max_abs_diff(a.grad(), want_a), 1e-4) << x_dtype;
    ASSERT_EQ(x.grad().scalar_type(), x_dtype);
    const double tol_x = x_dtype == torch::kFloat32 ? 1e-4 : 0.02 * want_x.abs().max().item<double>();
    EXPECT_LT(max_abs_diff(x.grad().to(torch::kFloat32), want_x), tol_x) << x_dtype;
  }
}

TEST(LoraForward, DropoutStatisticsAndDeterminism) {
  torch::Tensor x = torch::ones({64, 1000});
  torch::manual_seed(1);
  torch::Tensor a = detail::dropout(x, 0.1);
  torch::manual_seed(1);
  torch::Tensor b = detail::dropout(x, 0.1);
  EXPECT_TRUE(torch::equal(a, b));                       // seeded by the default generator
  EXPECT_FALSE(torch::equal(a, detail::dropout(x, 0.1)));  // fresh mask per call
  const double zeros = (a == 0).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(zeros, 0.1, 0.005);                        // 64000 draws: sd ~ 0.0012
  EXPECT_NEAR(a.max().item<double>(), 1.0 / 0.9, 1e-6);  // inverted scaling
  EXPECT_NEAR(a.mean().item<double>(), 1.0, 0.01);
  EXPECT_TRUE(torch::equal(detail::dropout(x, 0.0), x));
  // Gradient flows through the kept elements only.
  torch::Tensor xg = torch::ones({8, 100}, torch::requires_grad());
  torch::Tensor y = detail::dropout(xg, 0.5);
  y.sum().backward();
  EXPECT_TRUE(torch::equal(xg.grad(), y.detach()));
}

TEST(LoraForward, FreshAdapterEqualsBase) {
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    auto m = tiny_qwen2(2, /*tied=*/true, dtype);
    LoraAdapter ad = create_lora_adapter(LoraConfig{}, *m, 3);
    torch::Tensor ids = random_ids(2, 8);
    model::ForwardOptions opt;
    opt.adapter = &ad;
    EXPECT_TRUE(torch::equal(m->forward(ids, opt), m->forward(ids))) << dtype;
  }
}

TEST(LoraForward, BasePlusDeltaEqualsMergedWeights) {
  auto m = tiny_qwen2(2, /*tied=*/false);
  LoraConfig cfg;
  cfg.r = 4;
  cfg.lora_alpha = 8;
  cfg.lora_dropout = 0.3;  // inactive: training is false
  LoraAdapter ad = create_lora_adapter(cfg, *m, 3);
  torch::manual_seed(5);
  {
    torch::NoGradGuard ng;
    for (auto& [path, pair] : ad.modules) pair.b.normal_(0.0, 0.05);
  }
  // Merged copy: W' = W + scaling * B A (written into a separate model; the base is untouched).
  auto merged = tiny_qwen2(2, /*tied=*/false);
  {
    torch::NoGradGuard ng;
    auto params = merged->named_parameters();
    for (const auto& [path, pair] : ad.modules) {
      params[path + ".weight"].add_(torch::matmul(pair.b, pair.a) * cfg.scaling());
    }
  }
  torch::Tensor ids = random_ids(2, 8);
  model::ForwardOptions opt;
  opt.adapter = &ad;
  torch::Tensor with_lora = m->forward(ids, opt);
  EXPECT_LT(max_abs_diff(with_lora, merged->forward(ids)), 1e-4);
  EXPECT_GT(max_abs_diff(with_lora, m->forward(ids)), 1e-3);  // the delta matters
  EXPECT_TRUE(torch::equal(with_lora, m->forward(ids, opt)));  // no dropout when not training
  ad.training = true;
  EXPECT_FALSE(torch::equal(with_lora, m->forward(ids, opt)));  // dropout while training
}

TEST(LoraForward, Bf16DecodeStepsWithAdapterMatchFullForward) {
  // On a bf16 base, decode steps of <= 8 rows fold the LoRA pair into the matrix-vector kernel
  // (when the CPU has avx512_bf16); the full forward takes linear() + the autograd LoRA path.
  auto m = tiny_qwen2(7, /*tied=*/false, torch::kBFloat16);
  LoraConfig cfg;
  cfg.r = 4;
  cfg.lora_alpha = 8;
  LoraAdapter ad = create_lora_adapter(cfg, *m, 3);
  torch::manual_seed(6);
  {
    torch::NoGradGuard ng;
    for (auto& [path, pair] : ad.modules) pair.b.normal_(0.0, 0.05);
  }
  torch::NoGradGuard ng;
  torch::Tensor ids = random_ids(2, 8);
  model::ForwardOptions full_opt;
  full_opt.adapter = &ad;
  torch::Tensor full = m->forward(ids, full_opt);           // [2, 8, V] fp32
  torch::Tensor bare = m->forward(ids);                     // [2, 8, V]
  model::KVCache cache = m->make_cache(2, 8);
  model::ForwardOptions step_opt;
  step_opt.adapter = &ad;
  step_opt.cache = &cache;
  using torch::indexing::Slice;
  m->forward(ids.index({Slice(), Slice(0, 5)}), step_opt);  // prefill
  const double range = full.abs().max().item<double>();
  for (int64_t t = 5; t < 8; ++t) {
    torch::Tensor step = m->forward(ids.index({Slice(), Slice(t, t + 1)}), step_opt);  // [2, 1, V]
    torch::Tensor want = full.index({Slice(), Slice(t, t + 1)});
    EXPECT_LT(max_abs_diff(step, want), 0.03 * range) << t;
    // The adapter's effect is far above that tolerance, so a step that dropped it would fail.
    EXPECT_GT(max_abs_diff(want, bare.index({Slice(), Slice(t, t + 1)})), 0.1 * range) << t;
  }
}

TEST(LoraForward, GradientsOnlyOnLora) {
  auto m = tiny_qwen2(2, /*tied=*/true, torch::kBFloat16);
  LoraAdapter ad = create_lora_adapter(LoraConfig{}, *m, 3);
  ad.training = true;
  model::ForwardOptions opt;
  opt.adapter = &ad;
  torch::Tensor logits = m->forward(random_ids(1, 6), opt);
  logits.logsumexp(-1).mean().backward();
  for (const auto& p : m->parameters()) EXPECT_FALSE(p.grad().defined());
  int with_grad = 0;
  for (const auto& t : ad.parameters()) {
    ASSERT_TRUE(t.grad().defined());
    EXPECT_EQ(t.grad().scalar_type(), torch::kFloat32);
    with_grad += t.grad().abs().sum().item<double>() > 0;
  }
  EXPECT_GE(with_grad, 14);  // every B gets a gradient (A's are zero-grad while B = 0)
}

}  // namespace
}  // namespace eztinker::lora
