// attention_kernels (the masked softmax over attention scores and its backward) against the
// formulas evaluated in fp64 on the same scores: causal masks with and without a cached prefix,
// a padding bias with a query that sees no key, row lengths that are not multiples of 16 lanes,
// fp32 and bf16 scores.
#include "model/attention_kernels.h"

#include "model/qwen2.h"
#include "tensor_testing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace eztinker::model {
namespace {

using eztinker::testing::max_abs_diff;

constexpr int64_t B = 2, KV = 2, G = 3, T = 5;

// softmax(scores * scale + mask) in fp64, mask = bias or (undefined) causal: query t of T sees
// keys j <= S - T + t. scores: [B, KV, G*T, S] -> the same shape, fp64.
torch::Tensor reference_probs(const torch::Tensor& scores, const torch::Tensor& bias, double scale) {
  const int64_t S = scores.size(3);
  torch::Tensor x = (scores.to(torch::kFloat64) * scale).view({B, KV, G, T, S});  // [B, KV, G, T, S]
  if (bias.defined()) {
    x = x + bias.to(torch::kFloat64).unsqueeze(1);
  } else {
    torch::Tensor hidden = torch::ones({T, S}, torch::kBool).triu(S - T + 1);  // key j > S - T + t
    x = x.masked_fill(hidden, -std::numeric_limits<double>::infinity());
  }
  return torch::softmax(x, -1).view(scores.sizes());
}

// A bias from detail::attention_bias with row 1's first key padded out: its first query (t = 0
// with no cached prefix) sees no key at all.
torch::Tensor padded_bias(int64_t past) {
  const int64_t S = past + T;
  torch::Tensor mask = torch::ones({B, S}, torch::kInt64);
  mask[1][0] = 0;
  return detail::attention_bias(mask, B, past, T, torch::kCPU);  // [B, 1, T, S]
}

TEST(AttentionKernels, SoftmaxEqualsTheFormulaForCausalAndPaddedMasks) {
  torch::manual_seed(11);
  const double scale = 1.0 / std::sqrt(8.0);
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (int64_t past : {0, 14}) {  // S = 5 (one partial vector) and 19 (a full one + 3)
      const int64_t S = past + T;
      torch::Tensor scores = (torch::randn({B, KV, G * T, S}) * 4.0).to(dtype);
      for (bool padded : {false, true}) {
        torch::Tensor bias = padded ? padded_bias(past) : torch::Tensor();
        torch::Tensor want = reference_probs(scores, bias, scale);
        torch::Tensor got = attention_kernels::softmax(scores, bias, T, scale, torch::kFloat32);
        ASSERT_EQ(got.sizes(), scores.sizes());
        ASSERT_EQ(got.scalar_type(), torch::kFloat32);
        EXPECT_LT(max_abs_diff(got, want), 1e-6) << dtype << " past " << past << " padded " << padded;
        // Rounded to bf16 for the product with v: within half a bf16 ulp of values <= 1.
        torch::Tensor got16 = attention_kernels::softmax(scores, bias, T, scale, torch::kBFloat16);
        ASSERT_EQ(got16.scalar_type(), torch::kBFloat16);
        EXPECT_LT(max_abs_diff(got16, want), 1.0 / 512 + 1e-6) << dtype << " past " << past;
        if (!padded) {
          // Keys after a query's position get exactly 0, also in the first (past = 0) row.
          torch::Tensor hidden = torch::ones({T, S}, torch::kBool).triu(S - T + 1);
          EXPECT_EQ(got.view({B, KV, G, T, S}).masked_select(hidden).abs().max().item<float>(), 0.0f);
        } else if (past == 0) {
          // Row 1's first query sees nothing: uniform over all keys (as the op chain), not NaN.
          torch::Tensor row = got.view({B, KV, G, T, S})[1][0][0][0];
          EXPECT_LT(max_abs_diff(row, torch::full({S}, 1.0 / static_cast<double>(S))), 1e-7);
        }
      }
    }
  }
}

TEST(AttentionKernels, SoftmaxBackwardEqualsTheSoftmaxJacobianTimesTheGradient) {
  torch::manual_seed(12);
  const double scale = 0.125;
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (int64_t past : {0, 14}) {
      const int64_t S = past + T;
      torch::Tensor scores = (torch::randn({B, KV, G * T, S}) * 4.0).to(dtype);
      torch::Tensor grad = torch::randn({B, KV, G * T, S}).to(dtype);
      for (bool padded : {false, true}) {
        torch::Tensor bias = padded ? padded_bias(past) : torch::Tensor();
        // d/d scores of sum(grad * softmax(scores * scale + mask)), by autograd in fp64.
        torch::Tensor s64 = scores.to(torch::kFloat64).requires_grad_(true);
        (reference_probs(s64, bias, scale) * grad.to(torch::kFloat64)).sum().backward();
        torch::Tensor want = s64.grad();
        torch::Tensor got = attention_kernels::softmax_backward(grad, scores, bias, T, scale);
        ASSERT_EQ(got.scalar_type(), dtype);
        // fp32: rounding only; bf16: the result is rounded to bf16 (8 bits) once.
        const double tol = (dtype == torch::kFloat32 ? 1e-6 : 1.0 / 128) * want.abs().max().item<double>();
        EXPECT_LT(max_abs_diff(got, want), tol) << dtype << " past " << past << " padded " << padded;
      }
    }
  }
}

TEST(AttentionKernels, RejectsABiasOfTheWrongShape) {
  torch::Tensor scores = torch::randn({B, KV, G * T, T});
  torch::Tensor bias = torch::zeros({B, 1, T + 1, T});
  EXPECT_THROW(attention_kernels::softmax(scores, bias, T, 1.0, torch::kFloat32), c10::Error);
}

}  // namespace
}  // namespace eztinker::model
