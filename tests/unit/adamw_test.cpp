// AdamW: one step against the update computed by hand in double precision, a learning-rate
// change against libtorch's own torch::optim::AdamW (whose moments survive an lr change), and
// gradient clipping against torch::nn::utils::clip_grad_norm_.
#include "train/adamw.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace eztinker::train {
namespace {

TEST(AdamW, FirstTwoStepsEqualHandComputedWithLrChange) {
  auto p = torch::tensor({0.5F, -1.0F, 2.0F}).requires_grad_(true);
  AdamW opt({p});
  const std::vector<double> g1 = {0.1, -0.2, 0.3};
  const std::vector<double> g2 = {-0.05, 0.4, 0.1};
  AdamWHyper h1{1e-2, 0.1, 0.9, 0.999, 1e-8, 0.0};
  AdamWHyper h2{3e-2, 0.1, 0.9, 0.999, 1e-8, 0.0};  // lr changed; moments must carry over

  std::vector<double> x = {0.5, -1.0, 2.0};
  std::vector<double> m(3, 0.0);
  std::vector<double> v(3, 0.0);
  auto hand_step = [&](const std::vector<double>& g, const AdamWHyper& h, int t) {
    for (int i = 0; i < 3; ++i) {
      x[i] *= 1.0 - h.learning_rate * h.weight_decay;
      m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * g[i];
      v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * g[i] * g[i];
      const double mhat = m[i] / (1.0 - std::pow(h.beta1, t));
      const double vhat = v[i] / (1.0 - std::pow(h.beta2, t));
      x[i] -= h.learning_rate * mhat / (std::sqrt(vhat) + h.eps);
    }
  };

  p.mutable_grad() = torch::tensor({0.1F, -0.2F, 0.3F});
  auto r1 = opt.step(h1);
  hand_step(g1, h1, 1);
  p.mutable_grad() = torch::tensor({-0.05F, 0.4F, 0.1F});
  auto r2 = opt.step(h2);
  hand_step(g2, h2, 2);

  EXPECT_EQ(r1.step, 1);
  EXPECT_EQ(r2.step, 2);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(p[i].item<double>(), x[i], 1e-6) << i;
    EXPECT_NEAR(opt.exp_avg()[0][i].item<double>(), m[i], 1e-7);
    EXPECT_NEAR(opt.exp_avg_sq()[0][i].item<double>(), v[i], 1e-9);
  }
  EXPECT_NEAR(r2.grad_norm, std::sqrt(0.05 * 0.05 + 0.4 * 0.4 + 0.1 * 0.1), 1e-6);
}

TEST(AdamW, MatchesTorchOptimAdamWAcrossLrChanges) {
  torch::manual_seed(7);
  auto a0 = torch::randn({4, 3});
  auto b0 = torch::randn({5});
  auto a = a0.clone().requires_grad_(true);
  auto b = b0.clone().requires_grad_(true);
  auto ra = a0.clone().requires_grad_(true);
  auto rb = b0.clone().requires_grad_(true);
  AdamW ours({a, b});
  torch::optim::AdamW ref({ra, rb}, torch::optim::AdamWOptions(1e-3).weight_decay(0.05));
  const std::vector<double> lrs = {1e-3, 5e-3, 5e-3, 1e-4, 2e-2};
  for (size_t s = 0; s < lrs.size(); ++s) {
    auto ga = torch::randn({4, 3});
    auto gb = torch::randn({5});
    a.mutable_grad() = ga.clone();
    b.mutable_grad() = gb.clone();
    ra.mutable_grad() = ga.clone();
    rb.mutable_grad() = gb.clone();
    AdamWHyper h;
    h.learning_rate = lrs[s];
    h.weight_decay = 0.05;
    h.grad_clip_norm = 0.0;
    ours.step(h);
    for (auto& group : ref.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lrs[s]);
    }
    ref.step();
    ASSERT_TRUE(torch::allclose(a, ra, 1e-6, 1e-7)) << "step " << s;
    ASSERT_TRUE(torch::allclose(b, rb, 1e-6, 1e-7)) << "step " << s;
  }
}

TEST(AdamW, SinglePassUpdateEqualsTheOpChainWithClippingDecayAndAMissingGradient) {
  // Contiguous fp32 CPU tensors take the single-pass loop; transposed (non-contiguous) leaves
  // of the same values take the ATen op chain. Sizes with and without 16-lane tails, one
  // tensor that never gets a gradient, clipping active, weight decay, lr changing per step.
  torch::manual_seed(10);
  const std::vector<std::vector<int64_t>> shapes = {{37, 29}, {8, 128}, {5}, {3, 7}};
  std::vector<torch::Tensor> fused_params, op_params;
  for (const auto& shape : shapes) {
    auto init = torch::randn(shape);
    fused_params.push_back(init.clone().requires_grad_(true));
    // Same values, stored transposed: a non-contiguous leaf (1-D stays contiguous, so the
    // 1-D case compares the loop with itself; the 2-D ones carry the comparison).
    auto stored = init.dim() == 2 ? init.t().contiguous().t() : init.clone();
    op_params.push_back(stored.requires_grad_(true));
  }
  ASSERT_FALSE(op_params[0].is_contiguous());
  const torch::Tensor last_init = fused_params.back().detach().clone();
  AdamW fused(fused_params);
  AdamW ops(op_params);
  const std::vector<double> lrs = {1e-2, 3e-2, 3e-2, 1e-3};
  for (size_t s = 0; s < lrs.size(); ++s) {
    for (size_t i = 0; i + 1 < shapes.size(); ++i) {  // the last tensor gets no gradient
      auto g = torch::randn(shapes[i]) * 3.0;
      fused_params[i].mutable_grad() = g.clone();
      op_params[i].mutable_grad() = g.clone();
    }
    AdamWHyper h;
    h.learning_rate = lrs[s];
    h.weight_decay = 0.05;
    h.grad_clip_norm = 1.0;  // the norm above is ~3 sqrt(1838): clipped every step
    const auto rf = fused.step(h);
    const auto ro = ops.step(h);
    EXPECT_NEAR(rf.grad_norm, ro.grad_norm, 1e-9 * ro.grad_norm) << "step " << s;
    for (size_t i = 0; i < shapes.size(); ++i) {
      ASSERT_TRUE(torch::allclose(fused_params[i], op_params[i], 1e-6, 1e-7)) << "step " << s << " tensor " << i;
      ASSERT_TRUE(torch::allclose(fused.exp_avg()[i], ops.exp_avg()[i], 1e-6, 1e-9)) << s << " " << i;
      ASSERT_TRUE(torch::allclose(fused.exp_avg_sq()[i], ops.exp_avg_sq()[i], 1e-6, 1e-12)) << s << " " << i;
    }
  }
  // The gradient-free tensor only decays: m = v = 0, so its update is 0 / eps = 0.
  double decay = 1.0;
  for (double lr : lrs) decay *= 1.0 - lr * 0.05;
  EXPECT_TRUE(torch::allclose(fused_params.back(), last_init * decay, 1e-6, 1e-8));
}

TEST(AdamW, ClippingMatchesClipGradNormAndReportsPreClipNorm) {
  torch::manual_seed(8);
  auto p0 = torch::randn({6});
  auto g = torch::randn({6}) * 10.0;  // norm well above the clip threshold
  auto p = p0.clone().requires_grad_(true);
  auto rp = p0.clone().requires_grad_(true);
  AdamW ours({p});
  torch::optim::AdamW ref({rp}, torch::optim::AdamWOptions(1e-2).weight_decay(0.0));
  p.mutable_grad() = g.clone();
  rp.mutable_grad() = g.clone();
  AdamWHyper h;
  h.learning_rate = 1e-2;
  h.grad_clip_norm = 1.0;
  auto r = ours.step(h);
  const double ref_norm = torch::nn::utils::clip_grad_norm_(std::vector<torch::Tensor>{rp}, 1.0);
  ref.step();
  EXPECT_NEAR(r.grad_norm, ref_norm, 1e-4);
  EXPECT_NEAR(r.grad_norm, g.norm().item<double>(), 1e-4);
  EXPECT_TRUE(torch::allclose(p, rp, 1e-6, 1e-7));
}

TEST(AdamW, ZeroesGradientsAndTreatsMissingGradAsZero) {
  auto p = torch::ones({3}).requires_grad_(true);
  auto q = torch::ones({2}).requires_grad_(true);  // never gets a gradient
  AdamW opt({p, q});
  p.mutable_grad() = torch::full({3}, 0.5F);
  AdamWHyper h;
  opt.step(h);
  EXPECT_EQ(p.grad().abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(q, torch::ones({2})));  // zero grad, no weight decay: unchanged
  EXPECT_EQ(opt.step_count(), 1);
}

TEST(AdamW, SetStateRestoresMomentsExactly) {
  torch::manual_seed(9);
  auto p = torch::randn({3, 2}).requires_grad_(true);
  auto p2 = p.detach().clone().requires_grad_(true);
  AdamW a({p});
  AdamW b({p2});
  p.mutable_grad() = torch::randn({3, 2});
  AdamWHyper h;
  a.step(h);
  b.set_state(a.step_count(), a.exp_avg(), a.exp_avg_sq());
  {
    torch::NoGradGuard ng;
    p2.copy_(p);
  }
  auto g = torch::randn({3, 2});
  p.mutable_grad() = g.clone();
  p2.mutable_grad() = g.clone();
  a.step(h);
  b.step(h);
  EXPECT_TRUE(torch::equal(p, p2));
  EXPECT_EQ(b.step_count(), 2);
}

}  // namespace
}  // namespace eztinker::train
