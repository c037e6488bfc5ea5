// The autograd-free kernels against the reference op chains they replace (detail::rms_norm,
// silu(gate) * up, detail::rope + a cache write + detail::causal_attention), in fp32 and bf16,
// and their input checks. fp32: the same math summed in another order (1e-5 relative); bf16:
// the same roundings, so an element may differ by one bf16 step where an fp32 sum lands near a
// rounding boundary.
#include "model/inference_ops.h"

#include "model/qwen2.h"
#include "tensor_testing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>

namespace eztinker::model {
namespace {

using eztinker::testing::max_abs_diff;

// Largest tolerated difference for values of magnitude up to `scale`: 1e-5 relative in fp32,
// one bf16 step (2^-7 relative) in bf16.
double tolerance(torch::Dtype dtype, const torch::Tensor& reference) {
  const double scale = reference.to(torch::kFloat32).abs().max().item<double>();
  return dtype == torch::kFloat32 ? 1e-5 * scale : std::ldexp(scale, -7);
}

TEST(InferenceOps, RmsNormMatchesReferenceChain) {
  torch::manual_seed(11);
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    torch::Tensor x = (torch::randn({3, 5, 40}) * 2.5).to(dtype);  // [B, T, H]
    torch::Tensor w = (torch::rand({40}) + 0.5).to(dtype);         // [H]
    torch::Tensor want = detail::rms_norm(x, w, 1e-6);             // [B, T, H]
    torch::Tensor got = inference::rms_norm(x, w, 1e-6);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_EQ(got.scalar_type(), dtype);
    EXPECT_LE(max_abs_diff(got, want), tolerance(dtype, want)) << dtype;
    // Hand check of one row in fp64: x * w / sqrt(mean(x^2) + eps).
    torch::Tensor row = x[1][2].to(torch::kFloat64);
    torch::Tensor by_hand = row / (row.pow(2).mean() + 1e-6).sqrt() * w.to(torch::kFloat64);
    EXPECT_LE(max_abs_diff(got[1][2], by_hand), 2 * tolerance(dtype, by_hand)) << dtype;
  }
}

TEST(InferenceOps, RmsNormOfANonContiguousInput) {
  torch::Tensor x = torch::randn({6, 32}).t();  // [32, 6] strided
  torch::Tensor w = torch::rand({6});
  EXPECT_LE(max_abs_diff(inference::rms_norm(x, w, 1e-5), detail::rms_norm(x, w, 1e-5)), 1e-5);
}

TEST(InferenceOps, SiluMulMatchesReferenceChain) {
  torch::manual_seed(12);
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    torch::Tensor gate = (torch::randn({2, 3, 5000}) * 4.0).to(dtype);  // [B, T, I], > one grain
    torch::Tensor up = torch::randn({2, 3, 5000}).to(dtype);
    torch::Tensor want = torch::silu(gate).mul_(up);
    torch::Tensor got = inference::silu_mul(gate, up);
    EXPECT_EQ(got.scalar_type(), dtype);
    EXPECT_LE(max_abs_diff(got, want), tolerance(dtype, want)) << dtype;
  }
  // silu(0) = 0, silu(x) -> x for large x, -> 0 for very negative x.
  torch::Tensor g = torch::tensor({0.0f, 20.0f, -30.0f});
  torch::Tensor u = torch::tensor({3.0f, 2.0f, 5.0f});
  torch::Tensor got = inference::silu_mul(g, u);
  EXPECT_FLOAT_EQ(got[0].item<float>(), 0.0f);
  EXPECT_NEAR(got[1].item<float>(), 40.0f, 1e-5);
  EXPECT_NEAR(got[2].item<float>(), 0.0f, 1e-10);
}

// The reference of one decode step: rope q and k, write k/v into a copy of the cache at
// `past`, attend over the first past + 1 positions, heads back to [B, 1, H*D].
struct ReferenceStep {
  torch::Tensor out, cache_k, cache_v;
};

ReferenceStep reference_step(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& cos, const torch::Tensor& sin,
                             const torch::Tensor& cache_k, const torch::Tensor& cache_v, int64_t past,
                             int64_t H, int64_t KV, int64_t D) {
  const int64_t B = q.size(0);
  torch::Tensor qr = detail::rope(q.view({B, 1, H, D}), cos, sin).transpose(1, 2);   // [B, H, 1, D]
  torch::Tensor kr = detail::rope(k.view({B, 1, KV, D}), cos, sin).transpose(1, 2);  // [B, KV, 1, D]
  ReferenceStep r{{}, cache_k.clone(), cache_v.clone()};
  r.cache_k.narrow(2, past, 1).copy_(kr);
  r.cache_v.narrow(2, past, 1).copy_(v.view({B, 1, KV, D}).transpose(1, 2));
  torch::Tensor attn = detail::causal_attention(qr, r.cache_k.narrow(2, 0, past + 1),
                                                r.cache_v.narrow(2, 0, past + 1), {});  // [B, H, 1, D]
  r.out = attn.transpose(1, 2).reshape({B, 1, H * D});
  return r;
}

TEST(InferenceOps, DecodeAttentionMatchesRopeCacheWriteAndAttention) {
  torch::manual_seed(13);
  const int64_t B = 2, H = 6, KV = 2, D = 16, capacity = 12, past = 7;
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    torch::Tensor q = torch::randn({B, 1, H * D}).to(dtype);
    torch::Tensor k = torch::randn({B, 1, KV * D}).to(dtype);
    torch::Tensor v = torch::randn({B, 1, KV * D}).to(dtype);
    // Each row at its own position (as after left padding): 7 and 4.
    auto [cos, sin] = detail::rope_cos_sin(torch::tensor({{7}, {4}}, torch::kInt64), D, 10000.0);
    cos = cos.to(dtype);  // [B, 1, D]
    sin = sin.to(dtype);
    // Earlier positions hold random keys/values; the slots after `past` must stay untouched.
    torch::Tensor cache_k = torch::randn({B, KV, capacity, D}).to(dtype);
    torch::Tensor cache_v = torch::randn({B, KV, capacity, D}).to(dtype);
    ReferenceStep want = reference_step(q, k, v, cos, sin, cache_k, cache_v, past, H, KV, D);

    torch::Tensor got = inference::decode_attention(q, k, v, cos, sin, cache_k, cache_v, past, H);
    ASSERT_EQ(got.sizes(), torch::IntArrayRef({B, 1, H * D}));
    EXPECT_EQ(got.scalar_type(), dtype);
    // The cache write is the same rounded RoPE: exactly equal.
    EXPECT_TRUE(torch::equal(cache_k, want.cache_k)) << dtype;
    EXPECT_TRUE(torch::equal(cache_v, want.cache_v)) << dtype;
    if (dtype == torch::kFloat32) {
      EXPECT_LE(max_abs_diff(got, want.out), tolerance(dtype, want.out));
      continue;
    }
    // bf16: both round the scores and the probabilities to bf16, so a score that lands on the
    // other side of a rounding boundary moves an output by more than one step. Against the
    // same step in fp64 (on the same bf16 inputs) the kernel must be as accurate as the chain.
    const auto f64 = [](const torch::Tensor& t) { return t.to(torch::kFloat64); };
    ReferenceStep exact = reference_step(f64(q), f64(k), f64(v), f64(cos), f64(sin), f64(cache_k),
                                         f64(cache_v), past, H, KV, D);
    const double chain_error = max_abs_diff(want.out, exact.out);
    const double kernel_error = max_abs_diff(got, exact.out);
    EXPECT_LE(kernel_error, std::max(1.25 * chain_error, tolerance(dtype, want.out)));
    EXPECT_LE(max_abs_diff(got, want.out), 2 * tolerance(dtype, want.out));
  }
}

// One sequence at position 0 with H = 4 query heads over KV = 2, D = 8, and an empty
// 3-position cache.
struct FirstStep {
  static constexpr int64_t H = 4, KV = 2, D = 8;
  torch::Tensor q = torch::randn({1, 1, H * D});
  torch::Tensor k = torch::randn({1, 1, KV * D});
  torch::Tensor v = torch::randn({1, 1, KV * D});
  torch::Tensor cos, sin;
  torch::Tensor ck = torch::zeros({1, KV, 3, D});
  torch::Tensor cv = torch::zeros({1, KV, 3, D});
  FirstStep() {
    std::tie(cos, sin) = detail::rope_cos_sin(torch::zeros({1, 1}, torch::kInt64), D, 10000.0);
  }
};

TEST(InferenceOps, DecodeAttentionAtPositionZeroReturnsItsOwnValue) {
  // One visible key: softmax is 1, the output is v (repeated over the G heads of its group).
  FirstStep s;
  const int64_t H = FirstStep::H, KV = FirstStep::KV, D = FirstStep::D;
  torch::Tensor got =
      inference::decode_attention(s.q, s.k, s.v, s.cos, s.sin, s.ck, s.cv, 0, H).view({H, D});
  torch::Tensor vh = s.v.view({KV, D});
  for (int64_t h = 0; h < H; ++h) {
    EXPECT_LE(max_abs_diff(got[h], vh[h / 2]), 1e-6) << h;
  }
  EXPECT_TRUE(torch::equal(s.ck[0].select(1, 0), s.k.view({KV, D})));  // RoPE at 0 = identity
}

TEST(InferenceOps, BadInputsThrowAndLeaveTheCacheAlone) {
  FirstStep s;
  const int64_t H = FirstStep::H, D = FirstStep::D;
  auto [q, k, v, cos, sin, ck, cv] = std::tie(s.q, s.k, s.v, s.cos, s.sin, s.ck, s.cv);
  EXPECT_THROW(inference::decode_attention(q, k, v, cos, sin, ck, cv, 3, H), c10::Error);  // full
  EXPECT_THROW(inference::decode_attention(q, k, v, cos, sin, ck, cv, 0, 3), c10::Error);  // 3 % 2
  EXPECT_THROW(inference::decode_attention(q.to(torch::kBFloat16), k, v, cos, sin, ck, cv, 0, H),
               c10::Error);  // mixed dtypes
  EXPECT_THROW(inference::decode_attention(q, k.narrow(2, 0, D), v, cos, sin, ck, cv, 0, H),
               c10::Error);  // k of one head for two
  EXPECT_EQ(ck.abs().sum().item<double>(), 0.0);
  EXPECT_THROW(inference::rms_norm(torch::randn({2, 8}), torch::ones({7}), 1e-6), c10::Error);
  EXPECT_THROW(inference::silu_mul(torch::randn({2, 8}), torch::randn({2, 9})), c10::Error);
  EXPECT_THROW(inference::rms_norm(torch::randn({2, 8}).to(torch::kFloat64),
                                   torch::ones({8}, torch::kFloat64), 1e-6),
               c10::Error);
}

}  // namespace
}  // namespace eztinker::model
