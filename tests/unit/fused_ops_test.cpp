// The fused RMSNorm and SiLU-mul nodes against the op-by-op reference: same values, and the
// same gradients as autograd computes through the reference chain (fp32 and bf16).
#include "model/fused_ops.h"

#include "model/qwen2.h"
#include "tensor_testing.h"

#include <gtest/gtest.h>

#include <cmath>

namespace eztinker::model {
namespace {

using eztinker::testing::max_abs_diff;

// Value and input gradient of f at x for the upstream gradient g.
std::pair<torch::Tensor, torch::Tensor> value_and_grad(
    const std::function<torch::Tensor(const torch::Tensor&)>& f, const torch::Tensor& x,
    const torch::Tensor& g) {
  torch::Tensor leaf = x.detach().clone().set_requires_grad(true);
  torch::Tensor y = f(leaf);
  y.backward(g);
  return {y.detach(), leaf.grad()};
}

TEST(FusedOps, RmsNormEqualsReferenceAndItsGradient) {
  torch::manual_seed(3);
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    torch::Tensor x = (torch::randn({2, 5, 48}) * 3.0).to(dtype);  // [B, T, H]
    torch::Tensor w = (torch::rand({48}) + 0.5).to(dtype);         // [H], frozen
    torch::Tensor g = torch::randn({2, 5, 48}).to(dtype);          // upstream gradient
    auto [ref_y, ref_dx] = value_and_grad(
        [&](const torch::Tensor& t) { return detail::rms_norm(t, w, 1e-6); }, x, g);
    auto [got_y, got_dx] = value_and_grad(
        [&](const torch::Tensor& t) { return fused::rms_norm(t, w, 1e-6); }, x, g);
    EXPECT_EQ(got_y.scalar_type(), dtype);
    // The same roundings; inv_rms summed in another order (the AVX-512 kernel where the CPU has
    // one), which can move a bf16 value across one rounding boundary.
    const double ulp = dtype == torch::kFloat32 ? 1e-6 : std::ldexp(1.0, -7);
    EXPECT_LE(((got_y.to(torch::kFloat64) - ref_y.to(torch::kFloat64)).abs() /
               ref_y.to(torch::kFloat64).abs().clamp_min(1e-30))
                  .max()
                  .item<double>(),
              ulp)
        << dtype;
    ASSERT_EQ(got_dx.scalar_type(), dtype);
    // fp32: the same math in another order; bf16: autograd's chain rounds its intermediate
    // gradients to bf16, the fused node only its result.
    const double scale = ref_dx.to(torch::kFloat32).abs().max().item<double>();
    const double tol = dtype == torch::kFloat32 ? 1e-5 * scale : 0.02 * scale;
    EXPECT_LT(max_abs_diff(got_dx, ref_dx), tol) << dtype;
    EXPECT_TRUE(torch::equal(x, x.clone()));
  }
}

TEST(FusedOps, RmsNormLeavesItsInputUntouched) {
  // fp32 input: to(kFloat32) would alias it; the node must not normalise it in place.
  torch::Tensor x = torch::randn({3, 16});
  torch::Tensor before = x.clone();
  torch::Tensor w = torch::ones({16});
  fused::rms_norm(x, w, 1e-6);
  EXPECT_TRUE(torch::equal(x, before));
}

TEST(FusedOps, SiluMulEqualsReferenceAndItsGradients) {
  torch::manual_seed(4);
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    torch::Tensor gate = (torch::randn({4, 40}) * 3.0).to(dtype);
    torch::Tensor up = torch::randn({4, 40}).to(dtype);
    torch::Tensor g = torch::randn({4, 40}).to(dtype);
    const torch::Tensor gate_before = gate.clone(), up_before = up.clone(), g_before = g.clone();
    auto run = [&](bool fused_path) {
      torch::Tensor a = gate.detach().clone().set_requires_grad(true);
      torch::Tensor b = up.detach().clone().set_requires_grad(true);
      torch::Tensor y = fused_path ? fused::silu_mul(a, b) : torch::silu(a) * b;
      y.backward(g);
      return std::make_tuple(y.detach(), a.grad(), b.grad());
    };
    auto [ref_y, ref_dg, ref_du] = run(false);
    auto [got_y, got_dg, got_du] = run(true);
    // The AVX-512 pass (silu_kernels.h) has its own exp: within an fp32 rounding before the
    // product, so at most one bf16 step apart after it.
    const double y_scale = ref_y.to(torch::kFloat32).abs().max().item<double>();
    EXPECT_LE(max_abs_diff(got_y, ref_y),
              dtype == torch::kFloat32 ? 1e-6 * y_scale : std::ldexp(y_scale, -7)) << dtype;
    const double tol = dtype == torch::kFloat32 ? 1e-5 : 0.02;
    EXPECT_LT(max_abs_diff(got_dg, ref_dg), tol * ref_dg.to(torch::kFloat32).abs().max().item<double>())
        << dtype;
    EXPECT_LT(max_abs_diff(got_du, ref_du), tol * ref_du.to(torch::kFloat32).abs().max().item<double>())
        << dtype;
    EXPECT_TRUE(torch::equal(g, g_before));  // the upstream gradient is not modified
    EXPECT_TRUE(torch::equal(gate, gate_before));
    EXPECT_TRUE(torch::equal(up, up_before));
  }
  EXPECT_THROW(fused::silu_mul(torch::randn({2, 3}), torch::randn({2, 4})), c10::Error);
}

TEST(FusedOps, SiluMulOverExtremeAndTailInputs) {
  // Gates far in both tails (exp overflow/underflow inside sigmoid), zero, and a length that is
  // not a multiple of the 16 lanes: finite values equal to fp64 math.
  torch::Tensor gate = torch::tensor({-200.0f, -90.0f, -20.0f, -1.0f, 0.0f, 0.5f, 3.0f, 20.0f,
                                      90.0f, 200.0f, 1e-3f, -1e-3f, 7.0f, -7.0f, 1.0f, 2.0f, -2.0f});
  torch::Tensor up = torch::linspace(-2.0, 2.0, gate.numel());
  torch::Tensor want = gate.to(torch::kFloat64) * torch::sigmoid(gate.to(torch::kFloat64)) *
                       up.to(torch::kFloat64);
  torch::NoGradGuard no_grad;
  torch::Tensor got = fused::silu_mul(gate, up);
  EXPECT_TRUE(torch::isfinite(got).all().item<bool>());
  EXPECT_LE(max_abs_diff(got, want), 1e-5 * want.abs().max().item<double>());
  // The backward at the same points, against autograd in fp64.
  torch::Tensor g64 = gate.to(torch::kFloat64).set_requires_grad(true);
  torch::Tensor u64 = up.to(torch::kFloat64).set_requires_grad(true);
  {
    torch::AutoGradMode on(true);
    (torch::silu(g64) * u64).sum().backward();
    torch::Tensor a = gate.clone().set_requires_grad(true);
    torch::Tensor b = up.clone().set_requires_grad(true);
    fused::silu_mul(a, b).sum().backward();
    EXPECT_TRUE(torch::isfinite(a.grad()).all().item<bool>());
    EXPECT_LE(max_abs_diff(a.grad(), g64.grad()), 1e-5 * g64.grad().abs().max().item<double>());
    EXPECT_LE(max_abs_diff(b.grad(), u64.grad()), 1e-5 * u64.grad().abs().max().item<double>());
  }
}

TEST(FusedOps, AttentionEqualsReferenceAndItsGradients) {
  torch::manual_seed(5);
  const int64_t B = 2, H = 6, KV = 2, T = 5, D = 8;
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (bool padded : {false, true}) {
      torch::Tensor q = torch::randn({B, H, T, D}).to(dtype);
      torch::Tensor k = torch::randn({B, KV, T, D}).to(dtype);
      torch::Tensor v = torch::randn({B, KV, T, D}).to(dtype);
      torch::Tensor g = torch::randn({B, H, T, D}).to(dtype);
      torch::Tensor bias;  // undefined = causal
      if (padded) {
        torch::Tensor mask = torch::ones({B, T}, torch::kInt64);
        mask[1][0] = 0;  // a left pad in row 1
        bias = detail::attention_bias(mask, B, 0, T, torch::kCPU);
      }
      auto run = [&](bool fused_path) {
        torch::Tensor a = q.clone().set_requires_grad(true);
        torch::Tensor b = k.clone().set_requires_grad(true);
        torch::Tensor c = v.clone().set_requires_grad(true);
        torch::Tensor y = fused_path ? fused::attention(a, b, c, bias)
                                     : detail::causal_attention(a, b, c, bias);
        y.backward(g);
        return std::make_tuple(y.detach(), a.grad(), b.grad(), c.grad());
      };
      auto [ref_y, ref_dq, ref_dk, ref_dv] = run(false);
      auto [got_y, got_dq, got_dk, got_dv] = run(true);
      // The softmax runs as attention_kernels (its own exp), the reference as ATen ops: equal
      // to fp32 rounding, and in bf16 to the rounding of the probabilities and the output.
      const double rel = dtype == torch::kFloat32 ? 1e-5 : 0.02;
      EXPECT_LT(max_abs_diff(got_y, ref_y), rel * ref_y.to(torch::kFloat32).abs().max().item<double>())
          << dtype << " padded " << padded;
      {
        torch::NoGradGuard no_grad;  // the forward alone: the same values as the node's forward
        EXPECT_TRUE(torch::equal(fused::attention(q, k, v, bias), got_y)) << dtype;
      }
      for (auto [got, ref, name] : {std::make_tuple(got_dq, ref_dq, "dq"),
                                    std::make_tuple(got_dk, ref_dk, "dk"),
                                    std::make_tuple(got_dv, ref_dv, "dv")}) {
        ASSERT_EQ(got.scalar_type(), dtype) << name;
        const double scale = ref.to(torch::kFloat32).abs().max().item<double>();
        EXPECT_LT(max_abs_diff(got, ref), rel * scale) << name << " " << dtype << " padded " << padded;
      }
    }
  }
}

}  // namespace
}  // namespace eztinker::model
