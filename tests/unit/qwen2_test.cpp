// Qwen2ForCausalLM invariants on a tiny random model (fp32 unless stated): HF parameter names,
// detail:: ops vs straightforward math, causality, padding, KV cache, bf16 vs fp32, and strict
// weight loading. Tolerances: fp32 1e-5 for ops, 1e-4 for full-model logits.
#include "model/qwen2.h"

#include "model/dtype.h"
#include "model/weights.h"
#include "tensor_testing.h"
#include "test_support.h"
#include "tiny_qwen2.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

namespace eztinker::model {
namespace {

using eztinker::testing::random_ids;
using eztinker::testing::tiny_qwen2;
using eztinker::testing::tiny_qwen2_config;

constexpr double kOpTol = 1e-5;
constexpr double kLogitTol = 1e-4;

using eztinker::testing::max_abs_diff;

TEST(Qwen2, ParameterNamesAreHuggingFaceNames) {
  auto tied = tiny_qwen2(1, /*tied=*/true);
  auto untied = tiny_qwen2(1, /*tied=*/false);
  std::set<std::string> names;
  for (const auto& p : tied->named_parameters()) {
    names.insert(p.key());
    EXPECT_FALSE(p.value().requires_grad()) << p.key();
  }
  // Per layer: q/k/v weight+bias (6), o_proj weight (no bias), 3 MLP weights, 2 norms = 12.
  EXPECT_EQ(names.size(), 2u * 12 + 2);
  for (const char* key : {"model.embed_tokens.weight", "model.norm.weight",
                          "model.layers.0.self_attn.q_proj.weight",
                          "model.layers.0.self_attn.q_proj.bias",
                          "model.layers.1.self_attn.k_proj.bias",
                          "model.layers.1.self_attn.v_proj.bias",
                          "model.layers.1.self_attn.o_proj.weight",
                          "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
                          "model.layers.1.mlp.down_proj.weight",
                          "model.layers.1.input_layernorm.weight",
                          "model.layers.1.post_attention_layernorm.weight"}) {
    EXPECT_TRUE(names.count(key)) << key;
  }
  EXPECT_FALSE(names.count("model.layers.0.self_attn.o_proj.bias"));
  EXPECT_FALSE(names.count("lm_head.weight"));
  EXPECT_TRUE(untied->named_parameters().contains("lm_head.weight"));
  EXPECT_TRUE(torch::equal(tied->lm_head_weight(), tied->model()->embed_tokens->weight));
  const auto& q = tied->named_parameters()["model.layers.0.self_attn.k_proj.weight"];
  EXPECT_EQ(q.sizes(), torch::IntArrayRef({2 * 16, 64}));  // kv_heads * head_dim, hidden
  EXPECT_EQ(tied->projection_paths().size(), 14u);
  EXPECT_EQ(tied->projection_paths("q_proj"),
            std::vector<std::string>({"model.layers.0.self_attn.q_proj",
                                      "model.layers.1.self_attn.q_proj"}));
}

TEST(Qwen2Detail, RmsNormMatchesMath) {
  torch::manual_seed(0);
  torch::Tensor x = torch::randn({2, 3, 8});
  torch::Tensor w = torch::randn({8});
  torch::Tensor expected = torch::empty_like(x);
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      double ms = 0;
      for (int64_t k = 0; k < 8; ++k) ms += std::pow(x[i][j][k].item<double>(), 2) / 8;
      for (int64_t k = 0; k < 8; ++k) {
        expected[i][j][k] = x[i][j][k].item<double>() / std::sqrt(ms + 1e-6) * w[k].item<double>();
      }
    }
  }
  EXPECT_LT(max_abs_diff(detail::rms_norm(x, w, 1e-6), expected), kOpTol);
  // bf16 input: computed in fp32 and returned in bf16.
  EXPECT_EQ(detail::rms_norm(x.to(torch::kBFloat16), w.to(torch::kBFloat16), 1e-6).scalar_type(),
            torch::kBFloat16);
}

TEST(Qwen2Detail, RopeMatchesPairwiseRotation) {
  torch::manual_seed(0);
  const int64_t B = 2, T = 5, H = 3, D = 8;
  const double theta = 10000.0;
  torch::Tensor x = torch::randn({B, T, H, D});
  torch::Tensor pos = torch::tensor({0, 1, 2, 3, 4, 7, 3, 0, 11, 2}, torch::kInt64).view({B, T});
  auto [cos, sin] = detail::rope_cos_sin(pos, D, theta);
  torch::Tensor got = detail::rope(x, cos, sin);
  // HF rotate_half pairs element i with i + D/2, rotating by angle pos * theta^(-2i/D).
  torch::Tensor expected = torch::empty_like(x);
  auto xa = x.accessor<float, 4>();
  auto ea = expected.accessor<float, 4>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      const double p = static_cast<double>(pos[b][t].item<int64_t>());
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t i = 0; i < D / 2; ++i) {
          const double angle = p * std::pow(theta, -2.0 * i / D);
          const double x1 = xa[b][t][h][i], x2 = xa[b][t][h][i + D / 2];
          ea[b][t][h][i] = static_cast<float>(x1 * std::cos(angle) - x2 * std::sin(angle));
          ea[b][t][h][i + D / 2] = static_cast<float>(x2 * std::cos(angle) + x1 * std::sin(angle));
        }
      }
    }
  }
  EXPECT_LT(max_abs_diff(got, expected), kOpTol);
  // Position 0 is the identity; norms are preserved.
  EXPECT_LT(max_abs_diff(got[0][0], x[0][0]), kOpTol);
  EXPECT_LT(max_abs_diff(got.norm(2, -1), x.norm(2, -1)), kOpTol);
}

TEST(Qwen2Detail, CausalAttentionMatchesRepeatKvSoftmax) {
  torch::manual_seed(0);
  const int64_t B = 2, H = 6, KV = 2, T = 4, past = 3, S = past + T, D = 8;
  torch::Tensor q = torch::randn({B, H, T, D});
  torch::Tensor k = torch::randn({B, KV, S, D});
  torch::Tensor v = torch::randn({B, KV, S, D});
  // Straightforward: repeat kv heads (HF repeat_kv), causal -inf mask, softmax.
  torch::Tensor kr = k.repeat_interleave(H / KV, 1);                       // [B, H, S, D]
  torch::Tensor vr = v.repeat_interleave(H / KV, 1);                       // [B, H, S, D]
  torch::Tensor scores = torch::matmul(q, kr.transpose(-1, -2)) / std::sqrt(double(D));
  torch::Tensor mask = torch::ones({T, S}, torch::kBool).triu(past + 1);  // key s > past + t
  torch::Tensor expected =
      torch::matmul(torch::softmax(scores.masked_fill(mask, -INFINITY), -1), vr);
  EXPECT_LT(max_abs_diff(detail::causal_attention(q, k, v, {}), expected), kOpTol);
  torch::Tensor bias = detail::attention_bias({}, B, past, T, torch::kCPU);
  EXPECT_LT(max_abs_diff(detail::causal_attention(q, k, v, bias), expected), kOpTol);

  // Padding: key 1 of row 0 masked out.
  torch::Tensor am = torch::ones({B, S}, torch::kInt64);
  am[0][1] = 0;
  torch::Tensor full_mask = mask.unsqueeze(0).repeat({B, 1, 1});
  full_mask.index_put_({0, torch::indexing::Slice(), 1}, true);
  torch::Tensor expected_pad = torch::matmul(
      torch::softmax(scores.masked_fill(full_mask.unsqueeze(1), -INFINITY), -1), vr);
  torch::Tensor pad_bias = detail::attention_bias(am, B, past, T, torch::kCPU);
  EXPECT_EQ(pad_bias.sizes(), torch::IntArrayRef({B, 1, T, S}));
  EXPECT_LT(max_abs_diff(detail::causal_attention(q, k, v, pad_bias), expected_pad), kOpTol);
}

TEST(Qwen2, ForwardShapesAndDeterminism) {
  auto m = tiny_qwen2();
  torch::Tensor ids = random_ids(2, 9);
  torch::Tensor logits = m->forward(ids);
  EXPECT_EQ(logits.sizes(), torch::IntArrayRef({2, 9, 256}));
  EXPECT_EQ(logits.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  EXPECT_TRUE(torch::equal(logits, m->forward(ids)));
  EXPECT_TRUE(torch::equal(tiny_qwen2()->forward(ids), logits));  // same seed, same model
  EXPECT_GT(logits.std().item<double>(), 1e-3);                   // not degenerate
}

TEST(Qwen2, Causality) {
  auto m = tiny_qwen2();
  torch::Tensor ids = random_ids(1, 12);
  torch::Tensor base = m->forward(ids);
  for (int64_t t : {0, 5, 10}) {
    torch::Tensor changed = ids.clone();
    changed[0][t + 1] = (changed[0][t + 1].item<int64_t>() + 17) % 256;
    torch::Tensor out = m->forward(changed);
    using torch::indexing::Slice;
    EXPECT_LT(max_abs_diff(out.index({0, Slice(0, t + 1)}), base.index({0, Slice(0, t + 1)})),
              1e-6)
        << "t=" << t;
    EXPECT_GT(max_abs_diff(out[0][t + 1], base[0][t + 1]), 1e-6) << "t=" << t;
  }
}

// Two sequences of lengths 7 and 4 in one batch, padded on `left` or right, must give the
// same logits at real positions as each sequence alone.
void check_padding(bool left) {
  auto m = tiny_qwen2();
  torch::Tensor a = random_ids(1, 7, 256, 1);
  torch::Tensor b = random_ids(1, 4, 256, 2);
  torch::Tensor la = m->forward(a);
  torch::Tensor lb = m->forward(b);
  const int64_t pad_id = 0;
  torch::Tensor ids = torch::full({2, 7}, pad_id, torch::kInt64);
  torch::Tensor mask = torch::zeros({2, 7}, torch::kInt64);
  using torch::indexing::Slice;
  ids.index_put_({0, Slice()}, a[0]);
  mask.index_put_({0, Slice()}, 1);
  const int64_t off = left ? 3 : 0;
  ids.index_put_({1, Slice(off, off + 4)}, b[0]);
  mask.index_put_({1, Slice(off, off + 4)}, 1);
  ForwardOptions opt;
  opt.attention_mask = mask;
  torch::Tensor out = m->forward(ids, opt);
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  EXPECT_LT(max_abs_diff(out[0], la[0]), kLogitTol);
  EXPECT_LT(max_abs_diff(out.index({1, Slice(off, off + 4)}), lb[0]), kLogitTol);
}

TEST(Qwen2, LeftPaddedBatchEqualsUnpaddedRows) { check_padding(/*left=*/true); }
TEST(Qwen2, RightPaddedBatchEqualsUnpaddedRows) { check_padding(/*left=*/false); }

TEST(Qwen2, KvCacheDecodeEqualsFullForward) {
  auto m = tiny_qwen2(99, /*tied=*/false);
  torch::Tensor ids = random_ids(2, 10);
  torch::Tensor full = m->forward(ids);
  KVCache cache = m->make_cache(2, 16);
  EXPECT_EQ(cache.k.size(), 2u);
  EXPECT_EQ(cache.k[0].sizes(), torch::IntArrayRef({2, 2, 16, 16}));
  ForwardOptions opt;
  opt.cache = &cache;
  using torch::indexing::Slice;
  // Prefill 6 tokens, then one at a time, then the last two together.
  torch::Tensor pre = m->forward(ids.index({Slice(), Slice(0, 6)}), opt);
  EXPECT_EQ(cache.length, 6);
  EXPECT_LT(max_abs_diff(pre, full.index({Slice(), Slice(0, 6)})), kLogitTol);
  for (int64_t t = 6; t < 8; ++t) {
    torch::Tensor step = m->forward(ids.index({Slice(), Slice(t, t + 1)}), opt);
    EXPECT_LT(max_abs_diff(step, full.index({Slice(), Slice(t, t + 1)})), kLogitTol) << t;
  }
  torch::Tensor last = m->forward(ids.index({Slice(), Slice(8, 10)}), opt);
  EXPECT_LT(max_abs_diff(last, full.index({Slice(), Slice(8, 10)})), kLogitTol);
  EXPECT_EQ(cache.length, 10);
  EXPECT_THROW(m->forward(random_ids(2, 7), opt), c10::Error);  // 10 + 7 > capacity 16
}

TEST(Qwen2, KvCacheBatchOneDecode) {
  // Batch-1 fp32 decode takes the gemv path in Qwen2Linear; it must match the full forward.
  auto m = tiny_qwen2(4);
  torch::Tensor ids = random_ids(1, 6);
  torch::Tensor full = m->forward(ids);
  KVCache cache = m->make_cache(1, 6);
  ForwardOptions opt;
  opt.cache = &cache;
  using torch::indexing::Slice;
  for (int64_t t = 0; t < 6; ++t) {
    torch::Tensor step = m->forward(ids.index({Slice(), Slice(t, t + 1)}), opt);
    EXPECT_LT(max_abs_diff(step, full.index({Slice(), Slice(t, t + 1)})), kLogitTol) << t;
  }
}

TEST(Qwen2, KvCacheDecodeBf16MatchesFullForward) {
  // bf16 decode steps of <= 8 rows take the matrix-vector kernel in Qwen2Linear (on CPUs with
  // avx512_bf16; linear() elsewhere); the full forward takes oneDNN's GEMM. Both round to bf16
  // between layers, so they agree to bf16 precision, not bit for bit.
  auto m = tiny_qwen2(6, /*tied=*/false, torch::kBFloat16);
  torch::Tensor ids = random_ids(3, 8);
  torch::Tensor full = m->forward(ids);  // [3, 8, V] fp32
  KVCache cache = m->make_cache(3, 8);
  ForwardOptions opt;
  opt.cache = &cache;
  using torch::indexing::Slice;
  m->forward(ids.index({Slice(), Slice(0, 4)}), opt);
  const double range = full.abs().max().item<double>();
  for (int64_t t = 4; t < 8; ++t) {
    torch::Tensor step = m->forward(ids.index({Slice(), Slice(t, t + 1)}), opt);  // [3, 1, V]
    EXPECT_LT(max_abs_diff(step, full.index({Slice(), Slice(t, t + 1)})), 0.03 * range) << t;
    EXPECT_EQ(step.argmax(-1).ne(full.index({Slice(), Slice(t, t + 1)}).argmax(-1)).sum().item<int64_t>(),
              0) << t;
  }
}

TEST(Qwen2, InferenceModeDecodeMatchesFullForward) {
  // Without grad mode a decode step takes the autograd-free kernels (inference_ops.h: RMSNorm,
  // SiLU-mul, RoPE + cache write + attention in one pass); the full forward with grad mode takes
  // the autograd ops. fp32 agrees to the logit tolerance, bf16 to bf16 precision.
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    auto m = tiny_qwen2(8, /*tied=*/false, dtype);
    torch::Tensor ids = random_ids(2, 9);
    torch::Tensor full = m->forward(ids);  // [2, 9, V] fp32
    const double tol = dtype == torch::kFloat32 ? kLogitTol : 0.03 * full.abs().max().item<double>();
    c10::InferenceMode inference;
    KVCache cache = m->make_cache(2, 9);
    ForwardOptions opt;
    opt.cache = &cache;
    using torch::indexing::Slice;
    m->forward(ids.index({Slice(), Slice(0, 3)}), opt);
    for (int64_t t = 3; t < 9; ++t) {
      torch::Tensor step = m->forward(ids.index({Slice(), Slice(t, t + 1)}), opt);  // [2, 1, V]
      torch::Tensor want = full.index({Slice(), Slice(t, t + 1)});
      EXPECT_LT(max_abs_diff(step, want), tol) << dtype << " " << t;
      EXPECT_TRUE(torch::equal(step.argmax(-1), want.argmax(-1))) << dtype << " " << t;
    }
    EXPECT_EQ(cache.length, 9);
  }
}

TEST(Qwen2, KvCacheDecodeWithLeftPadding) {
  auto m = tiny_qwen2();
  torch::Tensor a = random_ids(1, 6, 256, 3);
  torch::Tensor full = m->forward(a);  // [1, 6, V]
  // Row 0: 2 pads + the first 4 tokens of `a`; row 1: 6 other tokens. Then decode a[4], a[5].
  using torch::indexing::Slice;
  torch::Tensor ids = random_ids(2, 6, 256, 4);
  ids.index_put_({0, Slice(0, 2)}, 0);
  ids.index_put_({0, Slice(2, 6)}, a.index({0, Slice(0, 4)}));
  torch::Tensor mask = torch::ones({2, 6}, torch::kInt64);
  mask.index_put_({0, Slice(0, 2)}, 0);
  KVCache cache = m->make_cache(2, 8);
  ForwardOptions opt;
  opt.cache = &cache;
  opt.attention_mask = mask;
  torch::Tensor pre = m->forward(ids, opt);
  EXPECT_LT(max_abs_diff(pre.index({0, Slice(2, 6)}), full.index({0, Slice(0, 4)})), kLogitTol);
  for (int64_t t = 4; t < 6; ++t) {
    mask = torch::cat({mask, torch::ones({2, 1}, torch::kInt64)}, 1);
    opt.attention_mask = mask;
    torch::Tensor next = torch::stack({a[0][t], torch::tensor(5, torch::kInt64)}).view({2, 1});
    torch::Tensor step = m->forward(next, opt);
    EXPECT_LT(max_abs_diff(step[0][0], full[0][t]), kLogitTol) << t;
  }
}

TEST(Qwen2, ExplicitPositionIdsMatchDerivedOnes) {
  auto m = tiny_qwen2();
  torch::Tensor ids = random_ids(1, 6);
  ForwardOptions opt;
  opt.position_ids = torch::arange(6, torch::kInt64).unsqueeze(0);
  EXPECT_LT(max_abs_diff(m->forward(ids, opt), m->forward(ids)), 1e-6);
  // RoPE is relative: shifting every position leaves the logits unchanged (up to rounding),
  // while stretching the gaps changes them.
  opt.position_ids = torch::arange(6, torch::kInt64).unsqueeze(0) + 5;
  EXPECT_LT(max_abs_diff(m->forward(ids, opt), m->forward(ids)), kLogitTol);
  opt.position_ids = torch::arange(6, torch::kInt64).unsqueeze(0) * 3;
  EXPECT_GT(max_abs_diff(m->forward(ids, opt), m->forward(ids)), 1e-4);
}

TEST(Qwen2, Bf16CloseToFp32) {
  auto m32 = tiny_qwen2(5, /*tied=*/false, torch::kFloat32);
  auto m16 = tiny_qwen2(5, /*tied=*/false, torch::kBFloat16);
  torch::Tensor ids = random_ids(2, 16);
  torch::Tensor l32 = m32->forward(ids);
  torch::Tensor l16 = m16->forward(ids);
  EXPECT_EQ(l16.scalar_type(), torch::kFloat32);
  // bf16 keeps 8 mantissa bits; logits of this model are O(0.1-1), so allow 3% of the range.
  const double range = l32.abs().max().item<double>();
  EXPECT_LT(max_abs_diff(l16, l32), 0.03 * range) << "range " << range;
  auto lp32 = torch::log_softmax(l32, -1);
  auto lp16 = torch::log_softmax(l16, -1);
  EXPECT_LT(max_abs_diff(lp16, lp32), 0.05);
}

TEST(Qwen2, AutoDtype) {
  EXPECT_EQ(resolve_dtype("fp32", torch::kCPU), torch::kFloat32);
  EXPECT_EQ(resolve_dtype("bf16", torch::kCPU), torch::kBFloat16);
  EXPECT_EQ(resolve_dtype("auto", torch::kCPU),
            cpu_has_fast_bf16() ? torch::kBFloat16 : torch::kFloat32);
  EXPECT_THROW(resolve_dtype("int8", torch::kCPU), std::invalid_argument);
  EXPECT_EQ(dtype_name(torch::kBFloat16), "bf16");
}

TEST(Qwen2Weights, SaveLoadRoundTripAndDtypeConversion) {
  eztinker::testing::TempDir dir;
  auto m = tiny_qwen2(3, /*tied=*/false);
  save_model(*m, dir.path());
  EXPECT_TRUE(std::filesystem::exists(dir / "config.json"));
  auto back = load_model(dir.path(), torch::kFloat32, torch::kCPU);
  torch::Tensor ids = random_ids(1, 8);
  EXPECT_TRUE(torch::equal(back->forward(ids), m->forward(ids)));
  for (const auto& p : back->named_parameters()) EXPECT_FALSE(p.value().requires_grad());
  // A bf16 model from the fp32 file; and an fp32 model from a bf16 file.
  auto as16 = load_model(dir.path(), torch::kBFloat16, torch::kCPU);
  EXPECT_EQ(as16->named_parameters()["lm_head.weight"].scalar_type(), torch::kBFloat16);
  eztinker::testing::TempDir dir16;
  save_model(*m, dir16.path(), torch::kBFloat16);
  EXPECT_EQ(load_qwen2_config(dir16.path()).torch_dtype, "bfloat16");
  auto from16 = load_model(dir16.path(), torch::kFloat32, torch::kCPU);
  for (const auto& p : from16->named_parameters()) {  // bf16 -> fp32 is exact
    EXPECT_TRUE(torch::equal(p.value(), as16->named_parameters()[p.key()].to(torch::kFloat32)))
        << p.key();
  }
  // Sharded.
  eztinker::testing::TempDir sharded;
  save_model(*m, sharded.path(), std::nullopt, /*max_shard_bytes=*/40000);
  EXPECT_TRUE(std::filesystem::exists(sharded / "model.safetensors.index.json"));
  EXPECT_TRUE(torch::equal(load_model(sharded.path(), torch::kFloat32, torch::kCPU)->forward(ids),
                           m->forward(ids)));
}

std::string load_error(const std::filesystem::path& dir) {
  try {
    load_model(dir, torch::kFloat32, torch::kCPU);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Qwen2Weights, StrictLoading) {
  eztinker::testing::TempDir dir;
  auto m = tiny_qwen2(3, /*tied=*/true);
  save_model(*m, dir.path());
  const Qwen2Config config = m->config();
  NamedTensors good = model_state(*m);

  // Missing tensor.
  NamedTensors missing(good.begin() + 1, good.end());
  save_safetensors(dir / "model.safetensors", missing);
  std::string msg = load_error(dir.path());
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find(good[0].first), std::string::npos) << msg;

  // Wrong shape names the key and both shapes.
  NamedTensors wrong = good;
  wrong[3].second = torch::zeros({3, 3});
  save_safetensors(dir / "model.safetensors", wrong);
  msg = load_error(dir.path());
  EXPECT_NE(msg.find(good[3].first), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3, 3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;

  // Unexpected key.
  NamedTensors extra = good;
  extra.emplace_back("model.layers.0.mlp.extra.weight", torch::zeros({2}));
  save_safetensors(dir / "model.safetensors", extra);
  msg = load_error(dir.path());
  EXPECT_NE(msg.find("unexpected tensor `model.layers.0.mlp.extra.weight`"), std::string::npos)
      << msg;

  // Allow-listed: rotary inv_freq and a tied lm_head copy.
  NamedTensors allowed = good;
  allowed.emplace_back("model.layers.1.self_attn.rotary_emb.inv_freq", torch::zeros({8}));
  allowed.emplace_back("lm_head.weight", m->lm_head_weight());
  save_safetensors(dir / "model.safetensors", allowed);
  EXPECT_EQ(load_error(dir.path()), "");

  // Untied config over tied weights: lm_head missing, with a hint.
  Qwen2Config untied = config;
  untied.tie_word_embeddings = false;
  save_model_tensors(untied, good, dir.path());
  msg = load_error(dir.path());
  EXPECT_NE(msg.find("tie_word_embeddings"), std::string::npos) << msg;
}

}  // namespace
}  // namespace eztinker::model
