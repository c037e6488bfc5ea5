// Losses: chunked target log-probs against a full log_softmax, their gradients against
// autograd through the unchunked computation, and each reduction / loss against its formula
// evaluated by hand in double precision.
#include "train/losses.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace eztinker::train {
namespace {

// Reference: full-vocabulary log_softmax then gather. hidden [N,H], w [V,H], t [N] -> [N].
torch::Tensor reference_logprobs(const torch::Tensor& hidden, const torch::Tensor& w,
                                 const torch::Tensor& t) {
  auto logits = torch::matmul(hidden, w.t()).to(torch::kFloat32);             // [N, V]
  return logits.log_softmax(-1).gather(1, t.unsqueeze(1)).squeeze(1);         // [N]
}

TEST(TargetLogprobs, ChunkedEqualsFullLogSoftmax) {
  torch::manual_seed(1);
  auto hidden = torch::randn({11, 8});   // [N, H]
  auto w = torch::randn({37, 8});        // [V, H]
  auto t = torch::randint(0, 37, {11}, torch::kLong);  // [N]
  auto expected = reference_logprobs(hidden, w, t);
  for (int64_t chunk : {1, 3, 4, 11, 64}) {
    auto got = target_logprobs(hidden, w, t, chunk);
    EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-6)) << "chunk_rows=" << chunk;
  }
}

TEST(TargetLogprobs, GradientMatchesAutogradThroughFullSoftmax) {
  torch::manual_seed(2);
  auto w = torch::randn({29, 6});                      // [V, H]
  auto t = torch::randint(0, 29, {9}, torch::kLong);   // [N]
  auto coeff = torch::randn({9});                      // [N] arbitrary upstream gradient
  auto h1 = torch::randn({9, 6}).requires_grad_(true);  // [N, H]
  auto h2 = h1.detach().clone().requires_grad_(true);   // [N, H]
  (target_logprobs(h1, w, t, 4) * coeff).sum().backward();
  (reference_logprobs(h2, w, t) * coeff).sum().backward();
  EXPECT_TRUE(torch::allclose(h1.grad(), h2.grad(), 1e-5, 1e-6));
}

TEST(TargetLogprobs, Bf16WithinToleranceOfFp32) {
  torch::manual_seed(3);
  auto hidden = torch::randn({16, 32}) * 0.5;  // [N, H]
  auto w = torch::randn({100, 32}) * 0.5;       // [V, H]
  auto t = torch::randint(0, 100, {16}, torch::kLong);
  auto fp32 = target_logprobs(hidden, w, t);
  auto bf16 = target_logprobs(hidden.to(torch::kBFloat16), w.to(torch::kBFloat16), t);
  EXPECT_EQ(bf16.scalar_type(), torch::kFloat32);
  // bf16 keeps 8 mantissa bits: logits of magnitude ~10 carry ~0.05 absolute error.
  EXPECT_LT((bf16 - fp32).abs().max().item<double>(), 0.15);
}

// Reference for the bf16 path: the same bf16-rounded logits in fp64. Checks log-probs and the
// gradient d/dh sum_i c_i logp_i = c_i (W[t_i] - softmax_i W) for every chunk / slice split.
void expect_bf16_path_matches_fp64(const torch::Tensor& h_in, const torch::Tensor& w,
                                   const torch::Tensor& t, int64_t chunk, int64_t slice) {
  auto h = h_in.detach().clone().requires_grad_(true);  // [N, H] bf16
  auto coeff = torch::linspace(-1.0, 2.0, h.size(0));   // [N] arbitrary upstream gradient
  auto got = target_logprobs(h, w, t, chunk, slice);    // [N] fp32
  (got * coeff).sum().backward();
  auto logits = torch::linear(h.detach(), w).to(torch::kFloat64);  // [N, V] as the GEMM rounds
  auto want = logits.log_softmax(-1).gather(1, t.unsqueeze(1)).squeeze(1);
  EXPECT_LT((got.to(torch::kFloat64) - want).abs().max().item<double>(), 1e-4)
      << "chunk " << chunk << " slice " << slice;
  auto w64 = w.to(torch::kFloat64);
  auto want_grad =
      (w64.index_select(0, t) - logits.softmax(-1).mm(w64)) * coeff.to(torch::kFloat64).unsqueeze(1);
  const double scale = want_grad.abs().max().item<double>();
  EXPECT_LT((h.grad().to(torch::kFloat64) - want_grad).abs().max().item<double>(), 0.02 * scale)
      << "chunk " << chunk << " slice " << slice;
}

TEST(TargetLogprobs, Bf16KernelPathMatchesFp64OnTheSameLogitsAndItsGradient) {
  // bf16 weights on an avx512_bf16 CPU take lm_head_kernels (elsewhere the fp32 path; the
  // expectations hold for both). V = 1000 is not a multiple of 16 lanes; the chunk size 7
  // splits 20 rows as 7 + 7 + 6; vocabulary slices of 48 leave a last slice of 40, 1000 is one
  // slice, 0 the default.
  torch::manual_seed(4);
  auto w = (torch::randn({1000, 32}) * 0.5).to(torch::kBFloat16);  // [V, H]
  auto t = torch::randint(0, 1000, {20}, torch::kLong);
  t[0] = 0;    // first and last vocabulary entries as targets
  t[1] = 999;
  t[2] = 47;   // the last entry of the first 48-slice and the first of the second
  t[3] = 48;
  auto h = (torch::randn({20, 32}) * 0.5).to(torch::kBFloat16);  // [N, H]
  for (int64_t chunk : {int64_t{7}, int64_t{0}}) {
    for (int64_t slice : {int64_t{48}, int64_t{1000}, int64_t{0}}) {
      expect_bf16_path_matches_fp64(h, w, t, chunk, slice);
    }
  }
}

TEST(TargetLogprobs, Bf16SlicesRescaleTheRunningSumWhenTheMaxMovesLater) {
  // Vocabulary rows scaled up slice after slice (x1 ... x8 over slices of 64): each row's
  // maximum keeps moving to a later slice, so every earlier partial sum must be rescaled; a
  // running sum that kept the old shift would be off by orders of magnitude.
  torch::manual_seed(5);
  auto scale = torch::linspace(1.0, 8.0, 512).unsqueeze(1);                    // [V, 1]
  auto w = (torch::randn({512, 16}) * 0.4 * scale).to(torch::kBFloat16);       // [V, H]
  auto h = (torch::randn({6, 16}) * 0.5).to(torch::kBFloat16);                 // [N, H]
  auto t = torch::tensor({0, 63, 64, 200, 448, 511}, torch::kLong);            // [N]
  expect_bf16_path_matches_fp64(h, w, t, 0, 64);
}

TEST(TargetLogprobs, TargetOutsideTheVocabularyIsRejectedWithAndWithoutGradient) {
  auto w = torch::randn({40, 8}).to(torch::kBFloat16);  // [V, H]
  auto h = torch::randn({3, 8}).to(torch::kBFloat16);   // [N, H]
  for (int64_t bad : {int64_t{40}, int64_t{-1}}) {
    auto t = torch::tensor({int64_t{0}, bad, int64_t{5}}, torch::kLong);
    EXPECT_THROW(target_logprobs(h, w, t, 0, 16), c10::Error) << bad;
    EXPECT_THROW(target_logprobs(h.clone().requires_grad_(true), w, t, 0, 16), c10::Error) << bad;
  }
}

TEST(TargetLogprobs, NoGradientStoredWithoutRequiresGrad) {
  auto hidden = torch::randn({4, 3});
  auto w = torch::randn({5, 3});
  auto t = torch::tensor({0, 1, 2, 3}, torch::kLong);
  auto lp = target_logprobs(hidden, w, t);
  EXPECT_FALSE(lp.requires_grad());
}

// Inputs with explicit log-probabilities, so the expected values are plain arithmetic.
LossInputs make_inputs(const std::vector<double>& p, const std::vector<float>& weights,
                       const std::vector<bool>& mask) {
  LossInputs in;
  std::vector<float> lp;
  for (double v : p) {
    lp.push_back(static_cast<float>(std::log(v)));
  }
  in.logprobs = torch::tensor(lp).requires_grad_(true);  // [N]
  in.weights = torch::tensor(weights);                   // [N]
  std::vector<int> m(mask.begin(), mask.end());
  in.mask = torch::tensor(m).to(torch::kBool);           // [N]
  return in;
}

TEST(Losses, WeightedCrossEntropyMeanEqualsHandComputed) {
  auto in = make_inputs({0.5, 0.25, 0.1, 0.8}, {1.0F, 2.0F, 0.5F, 3.0F}, {true, true, false, true});
  LossOptions opt;
  const double expected =
      (1.0 * -std::log(0.5) + 2.0 * -std::log(0.25) + 3.0 * -std::log(0.8)) / (1.0 + 2.0 + 3.0);
  EXPECT_NEAR(reduce_loss(in, opt).item<double>(), expected, 1e-6);
}

TEST(Losses, WeightedCrossEntropySumEqualsHandComputed) {
  auto in = make_inputs({0.5, 0.25, 0.1}, {1.0F, 2.0F, 0.5F}, {true, true, true});
  LossOptions opt;
  opt.reduction_sum = true;
  const double expected = -std::log(0.5) - 2.0 * std::log(0.25) - 0.5 * std::log(0.1);
  EXPECT_NEAR(reduce_loss(in, opt).item<double>(), expected, 1e-6);
}

TEST(Losses, FocalEqualsFormula) {
  auto in = make_inputs({0.9, 0.3}, {1.0F, 1.0F}, {true, true});
  LossOptions opt;
  opt.kind = LossKind::kFocal;
  opt.focal_alpha = 0.25;
  opt.focal_gamma = 2.0;
  auto focal = [](double p) { return 0.25 * std::pow(1.0 - p, 2.0) * -std::log(p); };
  EXPECT_NEAR(reduce_loss(in, opt).item<double>(), (focal(0.9) + focal(0.3)) / 2.0, 1e-6);
}

TEST(Losses, ImportanceSamplingEqualsFormulaAndGradient) {
  auto in = make_inputs({0.5, 0.2, 0.7}, {1.0F, 1.0F, 2.0F}, {true, true, true});
  in.sampler_logprobs = torch::tensor({std::log(0.4F), std::log(0.25F), std::log(0.7F)});
  in.advantages = torch::tensor({1.5F, -0.5F, 2.0F});
  LossOptions opt;
  opt.kind = LossKind::kImportanceSampling;
  opt.reduction_sum = true;
  const std::vector<double> ratio = {0.5 / 0.4, 0.2 / 0.25, 1.0};
  const std::vector<double> adv = {1.5, -0.5, 2.0};
  const std::vector<double> w = {1.0, 1.0, 2.0};
  double expected = 0.0;
  for (int i = 0; i < 3; ++i) {
    expected += -w[i] * ratio[i] * adv[i];
  }
  auto loss = reduce_loss(in, opt);
  EXPECT_NEAR(loss.item<double>(), expected, 1e-5);
  loss.backward();
  // d/dlogp of -w*exp(logp - q)*A = -w * ratio * A.
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(in.logprobs.grad()[i].item<double>(), -w[i] * ratio[i] * adv[i], 1e-5);
  }
}

TEST(Losses, PpoClipsBothSidesAndZeroesClippedGradient) {
  // ratios 1.5 (A>0: clipped at 1.2), 0.5 (A<0: clipped at 0.8), 1.1 (inside), 0.5 (A>0: the
  // unclipped ratio is smaller, so min keeps it and the gradient flows).
  auto in = make_inputs({0.75, 0.25, 0.55, 0.2}, {1.0F, 1.0F, 1.0F, 1.0F},
                        {true, true, true, true});
  in.sampler_logprobs = torch::tensor({std::log(0.5F), std::log(0.5F), std::log(0.5F),
                                       std::log(0.4F)});
  in.advantages = torch::tensor({2.0F, -1.0F, 1.0F, 3.0F});
  LossOptions opt;
  opt.kind = LossKind::kPpo;
  opt.clip_low = 0.8;
  opt.clip_high = 1.2;
  const std::vector<double> ratio = {1.5, 0.5, 1.1, 0.5};
  const std::vector<double> adv = {2.0, -1.0, 1.0, 3.0};
  double expected = 0.0;
  for (int i = 0; i < 4; ++i) {
    const double clipped = std::min(std::max(ratio[i], 0.8), 1.2);
    expected += -std::min(ratio[i] * adv[i], clipped * adv[i]);
  }
  expected /= 4.0;
  auto loss = reduce_loss(in, opt);
  EXPECT_NEAR(loss.item<double>(), expected, 1e-5);
  loss.backward();
  auto g = in.logprobs.grad();
  EXPECT_EQ(g[0].item<double>(), 0.0);  // clipped above with A > 0
  EXPECT_EQ(g[1].item<double>(), 0.0);  // clipped below with A < 0
  EXPECT_NEAR(g[2].item<double>(), -1.1 * 1.0 / 4.0, 1e-5);
  EXPECT_NEAR(g[3].item<double>(), -0.5 * 3.0 / 4.0, 1e-5);
}

TEST(Losses, AllIgnoredMeanIsZeroWithFiniteGradient) {
  auto in = make_inputs({0.5, 0.5}, {0.0F, 0.0F}, {false, false});
  LossOptions opt;
  auto loss = reduce_loss(in, opt);
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();
  EXPECT_TRUE(torch::isfinite(in.logprobs.grad()).all().item<bool>());
  EXPECT_EQ(in.logprobs.grad().abs().sum().item<double>(), 0.0);
}

TEST(Losses, IgnoredPositionWithNonFiniteLogprobDoesNotLeak) {
  LossInputs in;
  in.logprobs = torch::tensor({std::log(0.5F), -INFINITY}).requires_grad_(true);
  in.weights = torch::tensor({1.0F, 1.0F});
  in.mask = torch::tensor({1, 0}).to(torch::kBool);
  LossOptions opt;
  auto loss = reduce_loss(in, opt);
  EXPECT_NEAR(loss.item<double>(), -std::log(0.5), 1e-6);
  loss.backward();
  EXPECT_TRUE(torch::isfinite(in.logprobs.grad()).all().item<bool>());
}

}  // namespace
}  // namespace eztinker::train
