// lora::kernels (the LoRA branch's skinny products) against fp64 matrix products, and
// lora::lora_linear (base + LoRA as one autograd node) against the op-by-op formula and its
// autograd gradients. Shapes include tails: row counts, widths and ranks that are not
// multiples of the kernels' blocks (4 rows, 16/32 lanes, 4/8 rank rows).
#include "lora/lora_kernels.h"
#include "lora/lora_linear.h"

#include "lora/lora_adapter.h"

#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

namespace eztinker::lora {
namespace {

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

double max_abs(const torch::Tensor& t) { return t.to(torch::kFloat64).abs().max().item<double>(); }

torch::Tensor f64(const torch::Tensor& t) { return t.to(torch::kFloat64); }

// (N, L, R): block-aligned, tails everywhere, and one row.
const std::vector<std::tuple<int64_t, int64_t, int64_t>> kShapes = {
    {8, 64, 8}, {7, 37, 3}, {9, 100, 9}, {1, 16, 1}, {13, 897, 12}};

TEST(LoraKernels, RowsDotMatchesFp64Product) {
  torch::manual_seed(21);
  for (const auto& [N, L, R] : kShapes) {
    for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
      torch::Tensor x = torch::randn({N, L}).to(dtype);  // [N, L]
      torch::Tensor p = torch::randn({R, L});            // [R, L]
      torch::Tensor got = kernels::rows_dot(x, p, 0.5);  // [N, R]
      ASSERT_EQ(got.sizes(), torch::IntArrayRef({N, R}));
      EXPECT_EQ(got.scalar_type(), torch::kFloat32);
      torch::Tensor want = f64(x).mm(f64(p).t()) * 0.5;  // bf16 x widens exactly
      EXPECT_LE(max_abs_diff(got, want), 1e-5 * std::sqrt(static_cast<double>(L)) * max_abs(want) + 1e-6)
          << N << "x" << L << " r" << R << " " << dtype;
    }
  }
}

TEST(LoraKernels, AddRowsTimesAddsInPlaceAndRoundsOnce) {
  torch::manual_seed(22);
  for (const auto& [N, L, R] : kShapes) {
    for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
      torch::Tensor y = torch::randn({N, L}).to(dtype);  // [N, L]
      torch::Tensor u = torch::randn({N, R});
      torch::Tensor p = torch::randn({R, L});
      torch::Tensor want = f64(y) + f64(u).mm(f64(p));   // [N, L] exact
      void* storage = y.data_ptr();
      kernels::add_rows_times(y, u, p);
      EXPECT_EQ(y.data_ptr(), storage);  // in place
      // fp32: sums in another order; bf16: one rounding of the exact sum (half a bf16 step).
      const double tol = dtype == torch::kFloat32 ? 1e-5 * max_abs(want) + 1e-6
                                                  : std::ldexp(max_abs(want), -8) * 1.01;
      EXPECT_LE(max_abs_diff(y, want), tol) << N << "x" << L << " r" << R << " " << dtype;
    }
  }
}

TEST(LoraKernels, ColumnsDotMatchesFp64Product) {
  torch::manual_seed(23);
  for (const auto& [N, L, R] : kShapes) {
    for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
      torch::Tensor u = torch::randn({N, R});
      torch::Tensor x = torch::randn({N, L}).to(dtype);
      torch::Tensor got = kernels::columns_dot(u, x);  // [R, L]
      ASSERT_EQ(got.sizes(), torch::IntArrayRef({R, L}));
      torch::Tensor want = f64(u).t().mm(f64(x));
      EXPECT_LE(max_abs_diff(got, want), 1e-5 * max_abs(want) + 1e-6)
          << N << "x" << L << " r" << R << " " << dtype;
    }
  }
}

TEST(LoraKernels, StridedInputsAndOtherDtypesGiveTheSameProducts) {
  torch::manual_seed(24);
  torch::Tensor x = torch::randn({40, 6}).t();  // [6, 40] not contiguous
  torch::Tensor p = torch::randn({5, 40});
  EXPECT_LE(max_abs_diff(kernels::rows_dot(x, p, 2.0), f64(x).mm(f64(p).t()) * 2.0), 1e-4);
  torch::Tensor u = torch::randn({6, 5});
  EXPECT_LE(max_abs_diff(kernels::columns_dot(u, x), f64(u).t().mm(f64(x))), 1e-4);
  // fp64 takes the torch::mm fallback with the same meaning.
  torch::Tensor y = torch::zeros({6, 40}, torch::kFloat64);
  kernels::add_rows_times(y, u.to(torch::kFloat64), p.to(torch::kFloat64));
  EXPECT_LE(max_abs_diff(y, f64(u).mm(f64(p))), 1e-10);
  EXPECT_THROW(kernels::rows_dot(torch::randn({3, 4}), torch::randn({2, 5}), 1.0), c10::Error);
  torch::Tensor y2 = torch::zeros({3, 4});
  EXPECT_THROW(kernels::add_rows_times(y2, torch::randn({3, 2}), torch::randn({2, 5})), c10::Error);
  EXPECT_TRUE(torch::equal(y2, torch::zeros({3, 4})));
}

// The op-by-op formula lora_linear replaces, differentiated by autograd:
// linear(x, W, bias) + scaling * (x_lora A^T) B^T, rounded once to the base dtype.
torch::Tensor reference_lora_linear(const torch::Tensor& x, const torch::Tensor& w,
                                    const torch::Tensor& bias, const torch::Tensor& x_lora,
                                    const torch::Tensor& a, const torch::Tensor& b, double s) {
  torch::Tensor base = torch::linear(x, w, bias).to(torch::kFloat32);  // [..., out]
  torch::Tensor delta = torch::matmul(torch::matmul(x_lora.to(torch::kFloat32), a.t()) * s, b.t());
  return (base + delta).to(x.scalar_type());
}

TEST(LoraLinear, ValuesAndGradientsMatchTheOpByOpFormula) {
  torch::manual_seed(25);
  const int64_t in = 40, out = 33, r = 6;
  const double s = 1.5;
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (bool with_bias : {false, true}) {
      torch::Tensor w = (torch::randn({out, in}) * 0.2).to(dtype);
      torch::Tensor bias = with_bias ? torch::randn({out}).to(dtype) : torch::Tensor();
      torch::Tensor x0 = torch::randn({2, 5, in}).to(dtype);
      torch::Tensor a0 = torch::randn({r, in}) * 0.3, b0 = torch::randn({out, r}) * 0.3;
      torch::Tensor g = torch::randn({2, 5, out}).to(dtype);
      auto run = [&](bool fused) {
        torch::Tensor x = x0.clone().set_requires_grad(true);
        torch::Tensor a = a0.clone().set_requires_grad(true);
        torch::Tensor b = b0.clone().set_requires_grad(true);
        torch::Tensor y = fused ? lora_linear(x, w, bias, x, a, b, s)
                                : reference_lora_linear(x, w, bias, x, a, b, s);
        y.backward(g);
        return std::make_tuple(y.detach(), x.grad(), a.grad(), b.grad());
      };
      auto [ry, rx, ra, rb] = run(false);
      auto [gy, gx, ga, gb] = run(true);
      ASSERT_EQ(gy.scalar_type(), dtype);
      ASSERT_EQ(gx.scalar_type(), dtype);
      // fp32: the same sums in another order. bf16: the base GEMM rounds the same way; the
      // reference rounds its x-gradient twice (base and LoRA parts), the node once.
      const double rel = dtype == torch::kFloat32 ? 1e-5 : 1.0 / 64;
      EXPECT_LE(max_abs_diff(gy, ry), rel * max_abs(ry)) << dtype << with_bias;
      EXPECT_LE(max_abs_diff(gx, rx), rel * max_abs(rx)) << dtype << with_bias;
      // A and B gradients are fp32 sums over bf16-exact inputs in both: close in both dtypes.
      EXPECT_LE(max_abs_diff(ga, ra), 1e-4 * max_abs(ra)) << dtype << with_bias;
      EXPECT_LE(max_abs_diff(gb, rb), 1e-4 * max_abs(rb)) << dtype << with_bias;
    }
  }
}

TEST(LoraLinear, DropoutInputGetsItsOwnGradientAndAFrozenInputNone) {
  torch::manual_seed(26);
  const int64_t in = 24, out = 20, r = 4;
  torch::Tensor w = torch::randn({out, in}) * 0.2;
  torch::Tensor a = (torch::randn({r, in}) * 0.3).set_requires_grad(true);
  torch::Tensor b = (torch::randn({out, r}) * 0.3).set_requires_grad(true);
  torch::Tensor x = torch::randn({7, in}).set_requires_grad(true);
  // x_lora = x * mask, as detail::dropout builds it: the gradient reaches x through both paths.
  torch::Tensor mask = (torch::rand({7, in}) > 0.3).to(torch::kFloat32) / 0.7;
  torch::Tensor g = torch::randn({7, out});
  lora_linear(x, w, {}, x * mask, a, b, 2.0).backward(g);
  torch::Tensor gx = x.grad().clone(), ga = a.grad().clone(), gb = b.grad().clone();
  x.mutable_grad().reset();
  a.mutable_grad().reset();
  b.mutable_grad().reset();
  reference_lora_linear(x, w, {}, x * mask, a, b, 2.0).backward(g);
  EXPECT_LE(max_abs_diff(gx, x.grad()), 1e-5 * max_abs(x.grad()));
  EXPECT_LE(max_abs_diff(ga, a.grad()), 1e-5 * max_abs(a.grad()));
  EXPECT_LE(max_abs_diff(gb, b.grad()), 1e-5 * max_abs(b.grad()));
  // An input that needs no gradient (the first layer's normed embeddings): only A and B get one.
  torch::Tensor frozen_x = torch::randn({3, in});
  a.mutable_grad().reset();
  lora_linear(frozen_x, w, {}, frozen_x, a, b, 2.0).sum().backward();
  EXPECT_TRUE(a.grad().defined());
  EXPECT_FALSE(frozen_x.grad().defined());
  EXPECT_THROW(lora_linear(x, w, {}, x, a, torch::randn({out + 1, r}), 2.0), c10::Error);
}

}  // namespace
}  // namespace eztinker::lora
