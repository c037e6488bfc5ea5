// rope_kernels and the fused::rope node against detail::rope: the same values bit for bit (the
// same roundings in the same order), and the gradient of the rotation evaluated in fp64. Head
// sizes whose half is below, at and above 16 lanes; fp32 and bf16; cos and sin from real
// position tables.
#include "model/rope_kernels.h"

#include "model/dtype.h"
#include "model/fused_ops.h"
#include "model/qwen2.h"
#include "tensor_testing.h"

#include <gtest/gtest.h>

namespace eztinker::model {
namespace {

using eztinker::testing::max_abs_diff;

constexpr int64_t B = 2, T = 5, H = 3;

// cos, sin [B, T, D] fp32 for positions 3.. and 40.. (rows differ per sequence).
std::pair<torch::Tensor, torch::Tensor> tables(int64_t head_dim) {
  torch::Tensor pos = torch::stack({torch::arange(3, 3 + T), torch::arange(40, 40 + T)});  // [B, T]
  return detail::rope_cos_sin(pos, head_dim, 10000.0);
}

class RopeKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu_has_fast_bf16()) GTEST_SKIP() << "the kernels need a CPU with avx512_bf16";
  }
};

TEST_F(RopeKernels, ForwardEqualsTheReferenceChainBitForBit) {
  torch::manual_seed(31);
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (int64_t D : {8, 32, 40, 64}) {
      auto [cos, sin] = tables(D);
      torch::Tensor x = (torch::randn({B, T, H, D}) * 2.0).to(dtype);
      torch::Tensor got = rope_kernels::forward(x, cos, sin);
      ASSERT_EQ(got.scalar_type(), dtype);
      EXPECT_TRUE(torch::equal(got, detail::rope(x, cos, sin))) << dtype << " D " << D;
      // The node takes tables in x's dtype too (the model keeps them so).
      torch::NoGradGuard no_grad;
      EXPECT_TRUE(torch::equal(fused::rope(x, cos.to(dtype), sin.to(dtype)),
                               detail::rope(x, cos.to(dtype), sin.to(dtype))))
          << dtype << " D " << D;
    }
  }
}

TEST_F(RopeKernels, BackwardIsTheTransposedRotation) {
  torch::manual_seed(32);
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (int64_t D : {8, 40, 64}) {
      auto [cos, sin] = tables(D);
      torch::Tensor x = torch::randn({B, T, H, D}).to(dtype);
      torch::Tensor g = torch::randn({B, T, H, D}).to(dtype);
      // fp64 autograd through the formula, with cos and sin as x's dtype holds them.
      torch::Tensor x64 = x.to(torch::kFloat64).requires_grad_(true);
      detail::rope(x64, cos.to(dtype), sin.to(dtype)).backward(g.to(torch::kFloat64));
      torch::Tensor want = x64.grad();

      torch::Tensor leaf = x.clone().requires_grad_(true);
      torch::Tensor y = fused::rope(leaf, cos.to(dtype), sin.to(dtype));
      EXPECT_TRUE(torch::equal(y.detach(), detail::rope(x, cos, sin)));
      y.backward(g);
      ASSERT_EQ(leaf.grad().scalar_type(), dtype);
      // fp32 math rounded once: half an ulp of each value (bf16 2^-9 relative, and |dx| <= 2 |g|).
      const double tol = dtype == torch::kFloat32 ? 1e-5 : 4.0 * std::ldexp(1.0, -8);
      EXPECT_LT(max_abs_diff(leaf.grad(), want), tol * want.abs().max().item<double>())
          << dtype << " D " << D;
      // The same from an fp32 upstream gradient.
      torch::Tensor from_f32 = rope_kernels::backward(g.to(torch::kFloat32), cos, sin, dtype);
      EXPECT_LT(max_abs_diff(from_f32, want), tol * want.abs().max().item<double>());
    }
  }
}

TEST_F(RopeKernels, RejectsTensorsItDoesNotHandle) {
  auto [cos, sin] = tables(8);
  EXPECT_FALSE(rope_kernels::supported(torch::randn({B, T, H, 6}), cos, sin));  // D != table
  EXPECT_FALSE(rope_kernels::supported(torch::randn({B, T, H, 8}), cos.to(torch::kFloat64), sin));
  EXPECT_FALSE(rope_kernels::supported(torch::randn({B, T, 8}), cos, sin));  // no head dim
  EXPECT_THROW(rope_kernels::forward(torch::randn({B, T + 1, H, 8}), cos, sin), c10::Error);
  EXPECT_THROW(rope_kernels::backward(torch::randn({B, T, H, 8}), cos, sin, torch::kFloat64),
               c10::Error);
}

}  // namespace
}  // namespace eztinker::model
