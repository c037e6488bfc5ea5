// Sampler pieces on synthetic logits: greedy, seeded determinism, top-k / top-p support sets,
// temperature-1 log-probs, and stop handling (stop strings spanning tokens, stop token ids,
// length). The model-driven decode loop (KV cache, batched num_samples) is tested in
// engine_test.cpp on a tiny model.
#include "sampling/sampler.h"
#include "model/small_linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>

namespace eztinker::sampling {
namespace {

torch::Tensor logits_from_probs(const std::vector<double>& p) {
  std::vector<float> l;
  for (double v : p) {
    l.push_back(static_cast<float>(std::log(v)));
  }
  return torch::tensor(l).unsqueeze(0);  // [1, V]
}

TEST(Sampler, GreedyIsArgmax) {
  torch::manual_seed(1);
  auto logits = torch::randn({4, 50});  // [B, V]
  auto gen = make_generator(0);
  SamplingParams p;
  p.temperature = 0.0;
  EXPECT_TRUE(torch::equal(select_tokens(logits, p, gen), logits.argmax(-1)));
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDiffers) {
  auto logits = torch::zeros({3, 1000});  // uniform: maximally random
  SamplingParams p;
  p.top_k = 0;
  auto draw = [&](uint64_t seed) {
    auto gen = make_generator(seed);
    std::vector<int64_t> out;
    for (int i = 0; i < 20; ++i) {
      auto t = select_tokens(logits, p, gen);
      for (int b = 0; b < 3; ++b) {
        out.push_back(t[b].item<int64_t>());
      }
    }
    return out;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(Sampler, TopKOneIsGreedyAtAnyTemperature) {
  torch::manual_seed(2);
  auto logits = torch::randn({5, 30});
  SamplingParams p;
  p.temperature = 5.0;
  p.top_k = 1;
  auto gen = make_generator(3);
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(torch::equal(select_tokens(logits, p, gen), logits.argmax(-1)));
  }
}

TEST(Sampler, TopKAndTopPSupportSets) {
  auto logits = logits_from_probs({0.05, 0.5, 0.15, 0.3});
  auto gen = make_generator(5);
  SamplingParams topk;
  topk.top_k = 2;
  SamplingParams topp;
  topp.top_k = 0;
  topp.top_p = 0.7;  // 0.5 then 0.3 (mass before = 0.5 <= 0.7); 0.15 has 0.8 before: removed
  std::set<int64_t> seen_k;
  std::set<int64_t> seen_p;
  for (int i = 0; i < 300; ++i) {
    seen_k.insert(select_tokens(logits, topk, gen).item<int64_t>());
    seen_p.insert(select_tokens(logits, topp, gen).item<int64_t>());
  }
  EXPECT_EQ(seen_k, (std::set<int64_t>{1, 3}));
  EXPECT_EQ(seen_p, (std::set<int64_t>{1, 3}));
  SamplingParams zero_p;
  zero_p.top_k = 0;
  zero_p.top_p = 0.0;
  EXPECT_EQ(select_tokens(logits, zero_p, gen).item<int64_t>(), 1);
}

TEST(Sampler, EmpiricalFrequenciesFollowTemperatureOneDistribution) {
  const std::vector<double> probs = {0.1, 0.2, 0.3, 0.4};
  auto logits = logits_from_probs(probs).expand({1000, 4}).contiguous();  // [B, V]
  SamplingParams p;
  p.top_k = 0;
  auto gen = make_generator(11);
  auto tokens = select_tokens(logits, p, gen);  // [1000]
  for (int64_t v = 0; v < 4; ++v) {
    const double freq = (tokens == v).sum().item<double>() / 1000.0;
    // Binomial std at n=1000 is <= 0.016; 4 sigma.
    EXPECT_NEAR(freq, probs[v], 0.065) << v;
  }
}

TEST(Sampler, TokenLogprobsAreTemperatureOneLogSoftmax) {
  torch::manual_seed(4);
  auto logits = torch::randn({3, 20});
  auto tokens = torch::tensor({4, 0, 19}, torch::kLong);
  auto expected = logits.log_softmax(-1).gather(1, tokens.unsqueeze(1)).squeeze(1);
  EXPECT_TRUE(torch::allclose(token_logprobs(logits, tokens), expected, 1e-6, 1e-6));
}

// A toy vocabulary: token id -> text piece; id 9 is a special EOS that decodes to nothing.
std::string toy_decode(const std::vector<int32_t>& ids) {
  static const std::map<int32_t, std::string> pieces = {
      {0, "Hel"}, {1, "lo"}, {2, " wor"}, {3, "ld"}, {4, "\n"}, {5, "X"}, {9, ""}};
  std::string out;
  for (auto id : ids) {
    out += pieces.at(id);
  }
  return out;
}

TEST(StopHandling, StopStringSpanningTokensCutsText) {
  StopCriteria stop;
  stop.stop_strings = {"o w"};
  stop.stop_token_ids = {9};
  stop.max_new_tokens = 10;
  stop.decode = toy_decode;
  SequenceState s;
  for (int32_t t : {0, 1, 2, 3}) {
    append_token(s, t, -1.0F, stop);
  }
  finalize_text(s, stop);
  EXPECT_EQ(s.finish_reason, "stop");
  EXPECT_EQ(s.text, "Hell");
  EXPECT_EQ(s.token_ids, (std::vector<int32_t>{0, 1, 2}));  // stops at the completing token
  EXPECT_EQ(s.logprobs.size(), 3U);
}

TEST(StopHandling, EarliestOfSeveralStopStringsWins) {
  EXPECT_EQ(find_stop_string("abc\nxyz END", {"END", "\n"}), 3U);
  EXPECT_EQ(find_stop_string("abc", {"", "zz"}), std::string::npos);
}

TEST(StopHandling, StopTokenIdEndsWithStopAndDropsItsText) {
  StopCriteria stop;
  stop.stop_token_ids = {4};  // "\n" as a stop id
  stop.max_new_tokens = 10;
  stop.decode = toy_decode;
  SequenceState s;
  for (int32_t t : {0, 1, 4, 5}) {
    append_token(s, t, -0.5F, stop);
  }
  finalize_text(s, stop);
  EXPECT_EQ(s.finish_reason, "stop");
  EXPECT_EQ(s.token_ids, (std::vector<int32_t>{0, 1, 4}));
  EXPECT_EQ(s.text, "Hello");
}

TEST(StopHandling, EmptyStopListsRunToLength) {
  StopCriteria stop;
  stop.max_new_tokens = 3;
  stop.decode = toy_decode;
  SequenceState s;
  for (int32_t t : {0, 9, 1, 2}) {
    append_token(s, t, 0.0F, stop);
  }
  finalize_text(s, stop);
  EXPECT_EQ(s.finish_reason, "length");
  EXPECT_EQ(s.token_ids.size(), 3U);
  EXPECT_EQ(s.text, "Hello");
}

TEST(Sampler, DrawTokensNeverPicksFilteredEntriesAndFollowsTheKeptMass) {
  const float inf = std::numeric_limits<float>::infinity();
  // Row 0 keeps tokens 1 and 3 with probabilities 1/4 and 3/4 (logits log 1, log 3); row 1
  // keeps only token 2.
  auto row0 = torch::tensor({-inf, 0.0F, -inf, std::log(3.0F), -inf});
  auto row1 = torch::tensor({-inf, -inf, 5.0F, -inf, -inf});
  auto filtered = torch::stack({row0, row1}).repeat({2000, 1});  // [4000, 5]
  auto gen = make_generator(21);
  auto tokens = draw_tokens(filtered, gen);                       // [4000]
  auto even = tokens.index({torch::indexing::Slice(0, torch::indexing::None, 2)});
  auto odd = tokens.index({torch::indexing::Slice(1, torch::indexing::None, 2)});
  EXPECT_EQ(((even == 1) | (even == 3)).sum().item<int64_t>(), 2000);
  EXPECT_EQ((odd == 2).sum().item<int64_t>(), 2000);
  // Binomial std at n=2000, p=0.75 is 0.0097; 5 sigma.
  EXPECT_NEAR((even == 3).sum().item<double>() / 2000.0, 0.75, 0.05);
  auto again = make_generator(21);
  EXPECT_TRUE(torch::equal(draw_tokens(filtered, again), tokens));  // same seed, same tokens
  EXPECT_THROW(draw_tokens(torch::full({1, 3}, -inf), gen), c10::Error);  // nothing kept
}

TEST(SmallLinear, MatchesFp32ReferenceOnBf16Weights) {
  torch::manual_seed(12);
  // K = 70 exercises the masked tail (70 = 2 * 32 + 6); N = 37 the row remainder of 4.
  auto w = torch::randn({37, 70}).to(torch::kBFloat16);  // [N, K]
  auto bias = torch::randn({37});                         // [N]
  for (int64_t m : {1, 3, 8, 9}) {
    auto x = torch::randn({m, 1, 70});                    // [M, 1, K]
    auto xb = x.to(torch::kBFloat16).to(torch::kFloat32);
    auto expected = torch::linear(xb, w.to(torch::kFloat32), bias);  // [M, 1, N] fp32
    auto got = kernels::small_linear(x, w, bias, torch::kFloat32);
    ASSERT_EQ(got.sizes(), expected.sizes());
    // M = 9 takes torch::linear in bf16 (output rounded to bf16); others accumulate in fp32.
    const double tol = m > 8 || !kernels::small_linear_supported(w) ? 0.1 : 1e-4;
    EXPECT_LT((got - expected).abs().max().item<double>(), tol) << "M=" << m;
  }
}

TEST(SmallLinear, OneRowReadsEveryWidthAndRowSplit) {
  // One row of x takes the row-by-row path (128 bf16 per step, then whole vectors, then a
  // masked one). Widths cover each part alone and together: 7 (masked only), 32 (one vector),
  // 128 (one step), 293 = 2 * 128 + 32 + 5 (all three), 896 (Qwen2-0.5B). 600 output rows are
  // split between the threads (grain 256).
  torch::manual_seed(14);
  for (int64_t k : {7, 32, 128, 293, 896}) {
    auto w = torch::randn({600, k}).to(torch::kBFloat16);  // [N, K]
    auto x = torch::randn({1, k}).to(torch::kBFloat16);    // [1, K]
    // fp64 of the same bf16 values: the kernel's only error is its fp32 summation.
    auto expected = torch::linear(x.to(torch::kFloat64), w.to(torch::kFloat64));  // [1, N]
    auto got = kernels::small_linear(x, w, {}, torch::kFloat32);                   // [1, N]
    ASSERT_EQ(got.sizes(), expected.sizes());
    const double tol = 1e-5 * std::sqrt(static_cast<double>(k)) * 4.0;
    EXPECT_LT((got.to(torch::kFloat64) - expected).abs().max().item<double>(), tol) << "K=" << k;
  }
}

TEST(SmallLinear, Fp32WeightsMatchFp64AcrossWidthsAndRowCounts) {
  // fp32 weights (an fp32 base): one weight row at a time, 64 floats per step, then whole and
  // masked 16-lane vectors. Widths 5 (masked only), 16, 64, 101 = 64 + 2 * 16 + 5, 896; 1 to 8
  // rows of x (groups of 4 and their tails); 600 output rows split between the threads.
  torch::manual_seed(15);
  for (int64_t k : {5, 16, 64, 101, 896}) {
    auto w = torch::randn({600, k});   // [N, K] fp32
    auto bias = torch::randn({600});   // [N]
    for (int64_t m : {1, 3, 4, 6, 8}) {
      auto x = torch::randn({m, 1, k});  // [M, 1, K] fp32
      auto expected = torch::linear(x.to(torch::kFloat64), w.to(torch::kFloat64),
                                    bias.to(torch::kFloat64));          // [M, 1, N]
      auto got = kernels::small_linear(x, w, bias, torch::kFloat32);   // [M, 1, N]
      ASSERT_EQ(got.sizes(), expected.sizes());
      EXPECT_EQ(got.scalar_type(), torch::kFloat32);
      const double tol = 1e-6 * std::sqrt(static_cast<double>(k)) * 8.0;
      EXPECT_LT((got.to(torch::kFloat64) - expected).abs().max().item<double>(), tol)
          << "K=" << k << " M=" << m;
    }
  }
  // With a LoRA pair folded in: the same against fp64 base + bias + scaling * (x A^T) B^T.
  auto w = torch::randn({37, 101});
  kernels::SmallLinearLora lora{torch::randn({4, 101}), torch::randn({37, 4}), 0.5};
  if (!kernels::small_linear_lora_supported(w, lora)) GTEST_SKIP() << "CPU lacks avx512_bf16";
  auto x = torch::randn({3, 101});
  auto x64 = x.to(torch::kFloat64);
  auto expected = torch::linear(x64, w.to(torch::kFloat64)) +
                  torch::linear(torch::linear(x64, lora.a.to(torch::kFloat64)),
                                lora.b.to(torch::kFloat64)) * lora.scaling;  // [3, 37]
  auto got = kernels::small_linear(x, w, {}, lora, torch::kFloat32);        // [3, 37]
  EXPECT_LT((got.to(torch::kFloat64) - expected).abs().max().item<double>(), 1e-4);
}

TEST(SmallLinear, FoldsLoraIntoTheAccumulator) {
  torch::manual_seed(13);
  auto w = torch::randn({37, 70}).to(torch::kBFloat16);           // [N, K]
  auto bias = torch::randn({37}).to(torch::kBFloat16);            // [N] bf16, as Qwen2's q/k/v
  kernels::SmallLinearLora lora{torch::randn({4, 70}), torch::randn({37, 4}), 0.75};  // r = 4
  if (!kernels::small_linear_lora_supported(w, lora)) GTEST_SKIP() << "CPU lacks avx512_bf16";
  for (int64_t m : {1, 5}) {
    auto x = torch::randn({m, 1, 70}).to(torch::kBFloat16);       // [M, 1, K]
    auto x32 = x.to(torch::kFloat32);
    // Independent reference in fp32: base + bias + scaling * (x A^T) B^T.
    auto expected = torch::linear(x32, w.to(torch::kFloat32), bias.to(torch::kFloat32)) +
                    torch::linear(torch::linear(x32, lora.a), lora.b) * lora.scaling;  // [M, 1, N]
    auto got32 = kernels::small_linear(x, w, bias, lora, torch::kFloat32);
    ASSERT_EQ(got32.sizes(), expected.sizes());
    EXPECT_LT((got32 - expected).abs().max().item<double>(), 1e-3) << "M=" << m;
    // bf16 output: the same values rounded once (bf16 keeps 8 bits: relative 2^-8).
    auto got16 = kernels::small_linear(x, w, bias, lora, torch::kBFloat16);
    EXPECT_EQ(got16.scalar_type(), torch::kBFloat16);
    auto rel = ((got16.to(torch::kFloat32) - expected).abs() / (expected.abs() + 1e-3));
    EXPECT_LT(rel.max().item<double>(), 1.0 / 128) << "M=" << m;
  }
  // A pair whose shapes do not match the weight is refused, never read out of bounds.
  kernels::SmallLinearLora wrong{torch::randn({4, 71}), torch::randn({37, 4}), 1.0};
  EXPECT_FALSE(kernels::small_linear_lora_supported(w, wrong));
  EXPECT_THROW(kernels::small_linear(torch::randn({1, 70}), w, bias, wrong, torch::kFloat32),
               c10::Error);
}

}  // namespace
}  // namespace eztinker::sampling
