// rms_norm_kernels (RMSNorm forward and backward as AVX-512 row passes) against the formulas in
// fp64: row lengths that are and are not multiples of 16 lanes, fp32 and bf16 rows, upstream
// gradients in fp32 and bf16, a row of zeros.
#include "model/rms_norm_kernels.h"

#include "model/dtype.h"
#include "tensor_testing.h"

#include <gtest/gtest.h>

#include <cmath>

namespace eztinker::model {
namespace {

using eztinker::testing::max_abs_diff;

constexpr double kEps = 1e-6;

// Qwen2RMSNorm in fp64 on the same (already rounded) inputs: {y, inv_rms}.
std::pair<torch::Tensor, torch::Tensor> reference_forward(const torch::Tensor& x,
                                                          const torch::Tensor& w) {
  torch::Tensor x64 = x.to(torch::kFloat64);
  torch::Tensor inv_rms = (x64.square().mean(-1) + kEps).rsqrt();          // [...]
  return {x64 * inv_rms.unsqueeze(-1) * w.to(torch::kFloat64), inv_rms};  // [..., H], [...]
}

// d x of sum(y * g) through the fp64 formula, by fp64 autograd.
torch::Tensor reference_grad(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& g) {
  torch::Tensor x64 = x.to(torch::kFloat64).detach().requires_grad_(true);
  torch::Tensor y = x64 * (x64.square().mean(-1, true) + kEps).rsqrt() * w.to(torch::kFloat64);
  y.backward(g.to(torch::kFloat64));
  return x64.grad();
}

class RmsNormKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu_has_fast_bf16()) GTEST_SKIP() << "the kernels need a CPU with avx512_bf16";
  }
};

TEST_F(RmsNormKernels, ForwardEqualsTheFormula) {
  torch::manual_seed(21);
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (int64_t hidden : {5, 16, 19, 48, 896}) {
      torch::Tensor x = (torch::randn({3, 4, hidden}) * 3.0).to(dtype);  // [B, T, H]
      torch::Tensor w = (torch::rand({hidden}) + 0.5).to(dtype);         // [H]
      auto [want, want_inv] = reference_forward(x, w);
      auto [got, got_inv] = rms_norm_kernels::forward(x, w, kEps);
      ASSERT_EQ(got.sizes(), x.sizes());
      ASSERT_EQ(got.scalar_type(), dtype);
      ASSERT_EQ(got_inv.sizes(), torch::IntArrayRef({3, 4}));
      EXPECT_LT(max_abs_diff(got_inv, want_inv), 1e-6 * want_inv.abs().max().item<double>());
      // fp32: sums in another order; bf16: two roundings (x * inv_rms, then the product with
      // w), each at most half a bf16 ulp (2^-8 relative).
      const double rel = dtype == torch::kFloat32 ? 1e-6 : 2.0 * std::ldexp(1.0, -8);
      const double err =
          ((got.to(torch::kFloat64) - want).abs() / want.abs().clamp_min(1e-30)).max().item<double>();
      EXPECT_LT(err, rel) << dtype << " hidden " << hidden;
    }
  }
}

TEST_F(RmsNormKernels, BackwardEqualsTheFormulasGradient) {
  torch::manual_seed(22);
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (torch::Dtype grad_dtype : {torch::kFloat32, torch::kBFloat16}) {
      for (int64_t hidden : {5, 19, 48, 896}) {
        torch::Tensor x = (torch::randn({2, 7, hidden}) * 2.0).to(dtype);  // [B, T, H]
        torch::Tensor w = (torch::rand({hidden}) + 0.5).to(dtype);         // [H]
        torch::Tensor g = torch::randn({2, 7, hidden}).to(grad_dtype);     // upstream gradient
        torch::Tensor want = reference_grad(x, w, g);
        torch::Tensor inv_rms = rms_norm_kernels::forward(x, w, kEps).second;
        torch::Tensor got = rms_norm_kernels::backward(g, x, w, inv_rms);
        ASSERT_EQ(got.sizes(), x.sizes());
        ASSERT_EQ(got.scalar_type(), dtype);
        // fp32 math rounded once to the dtype: relative to the row's gradient scale.
        const double scale = want.abs().max().item<double>();
        const double tol = dtype == torch::kFloat32 ? 1e-5 * scale : std::ldexp(1.0, -8) * scale;
        EXPECT_LT(max_abs_diff(got, want), tol)
            << dtype << " grad " << grad_dtype << " hidden " << hidden;
      }
    }
  }
}

TEST_F(RmsNormKernels, ARowOfZerosNormalisesToZeroWithTheEpsilonScale) {
  torch::Tensor x = torch::zeros({2, 32});
  x[1] = torch::linspace(-1.0, 1.0, 32);
  torch::Tensor w = torch::ones({32});
  auto [y, inv_rms] = rms_norm_kernels::forward(x, w, kEps);
  EXPECT_TRUE(torch::equal(y[0], torch::zeros({32})));
  EXPECT_NEAR(inv_rms[0].item<double>(), 1.0 / std::sqrt(kEps), 1e-6 / std::sqrt(kEps));
  // The gradient at a zero row is inv_rms * g * w (xhat = 0 there): finite, no NaN.
  torch::Tensor g = torch::ones({2, 32});
  torch::Tensor dx = rms_norm_kernels::backward(g, x, w, inv_rms);
  EXPECT_NEAR(dx[0][3].item<double>(), inv_rms[0].item<double>(), 1e-3);
  EXPECT_FALSE(dx.isnan().any().item<bool>());
}

TEST_F(RmsNormKernels, RejectsTensorsItDoesNotHandle) {
  torch::Tensor x = torch::randn({2, 8});
  EXPECT_FALSE(rms_norm_kernels::supported(x, torch::ones({7})));
  EXPECT_FALSE(rms_norm_kernels::supported(x, torch::ones({8}, torch::kBFloat16)));
  EXPECT_FALSE(rms_norm_kernels::supported(x.to(torch::kFloat64), torch::ones({8}, torch::kFloat64)));
  EXPECT_THROW(rms_norm_kernels::forward(x, torch::ones({7}), kEps), c10::Error);
  torch::Tensor inv_rms = rms_norm_kernels::forward(x, torch::ones({8}), kEps).second;
  EXPECT_THROW(rms_norm_kernels::backward(torch::randn({2, 9}), x, torch::ones({8}), inv_rms),
               c10::Error);
}

}  // namespace
}  // namespace eztinker::model
