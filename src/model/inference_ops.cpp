// See inference_ops.h. Each kernel is written once for scalar_t = float or c10::BFloat16;
// `round_as<scalar_t>` is where the reference chain rounds an fp32 intermediate to its dtype.
#include "model/inference_ops.h"

#include "model/rms_norm_kernels.h"
#include "model/silu_kernels.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace eztinker::model::inference {

namespace {

// The value an fp32 intermediate has after the reference chain stores it as scalar_t.
template <typename scalar_t>
inline float round_as(float v) {
  return static_cast<float>(static_cast<scalar_t>(v));
}

void check_same(const torch::Tensor& a, const torch::Tensor& b, const char* what) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type() && supports(a),
              "inference::", what, ": expected CPU fp32/bf16 tensors of one dtype, got ",
              a.scalar_type(), " and ", b.scalar_type());
}

template <typename scalar_t>
void rms_norm_rows(const scalar_t* x, const scalar_t* weight, scalar_t* out, int64_t rows,
                   int64_t hidden, float eps) {
  at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const scalar_t* xr = x + r * hidden;
      scalar_t* yr = out + r * hidden;
      float sum_sq = 0.0f;
#pragma omp simd reduction(+ : sum_sq)
      for (int64_t i = 0; i < hidden; ++i) {
        const float v = static_cast<float>(xr[i]);
        sum_sq += v * v;
      }
      const float inv_rms = 1.0f / std::sqrt(sum_sq / static_cast<float>(hidden) + eps);
#pragma omp simd
      for (int64_t i = 0; i < hidden; ++i) {
        const float normed = round_as<scalar_t>(static_cast<float>(xr[i]) * inv_rms);
        yr[i] = static_cast<scalar_t>(static_cast<float>(weight[i]) * normed);
      }
    }
  });
}

template <typename scalar_t>
void silu_mul_elements(const scalar_t* gate, const scalar_t* up, scalar_t* out, int64_t n) {
  at::parallel_for(0, n, 4096, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
      const float g = static_cast<float>(gate[i]);
      const float silu = round_as<scalar_t>(g / (1.0f + std::exp(-g)));
      out[i] = static_cast<scalar_t>(silu * static_cast<float>(up[i]));
    }
  });
}

// RoPE of one head vector, as detail::rope: x * cos + rotate_half(x) * sin with each product
// and the sum rounded to scalar_t. x, out: [D].
template <typename scalar_t>
void rope_head(const scalar_t* x, const scalar_t* cos, const scalar_t* sin, float* out,
               int64_t head_dim) {
  const int64_t half = head_dim / 2;
  for (int64_t d = 0; d < head_dim; ++d) {
    const float rotated = d < half ? -static_cast<float>(x[d + half]) : static_cast<float>(x[d - half]);
    const float a = round_as<scalar_t>(static_cast<float>(x[d]) * static_cast<float>(cos[d]));
    const float b = round_as<scalar_t>(rotated * static_cast<float>(sin[d]));
    out[d] = round_as<scalar_t>(a + b);
  }
}

struct DecodeShape {
  int64_t batch, heads, kv_heads, head_dim, capacity, past;
};

// One (sequence, kv head) pair: the cache write, then the G = H / KV query heads that read it.
template <typename scalar_t>
void decode_attention_group(const DecodeShape& s, int64_t b, int64_t kv, const scalar_t* q,
                            const scalar_t* k, const scalar_t* v, const scalar_t* cos,
                            const scalar_t* sin, scalar_t* cache_k, scalar_t* cache_v,
                            scalar_t* out) {
  const int64_t D = s.head_dim, G = s.heads / s.kv_heads, S = s.past + 1;
  const scalar_t* cos_b = cos + b * D;
  const scalar_t* sin_b = sin + b * D;
  scalar_t* ck = cache_k + (b * s.kv_heads + kv) * s.capacity * D;  // [capacity, D]
  scalar_t* cv = cache_v + (b * s.kv_heads + kv) * s.capacity * D;  // [capacity, D]
  std::vector<float> rotated(static_cast<size_t>(D));
  rope_head(k + (b * s.kv_heads + kv) * D, cos_b, sin_b, rotated.data(), D);
  for (int64_t d = 0; d < D; ++d) {
    ck[s.past * D + d] = static_cast<scalar_t>(rotated[d]);
    cv[s.past * D + d] = v[(b * s.kv_heads + kv) * D + d];
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  std::vector<float> probs(static_cast<size_t>(S));
  std::vector<float> acc(static_cast<size_t>(D));
  for (int64_t g = 0; g < G; ++g) {
    const int64_t h = kv * G + g;
    rope_head(q + (b * s.heads + h) * D, cos_b, sin_b, rotated.data(), D);
    // scores[j] = q . k_j: the bf16 matmul of the reference rounds each score to scalar_t
    // before the fp32 scale and softmax.
    float max_score = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < S; ++j) {
      const scalar_t* kj = ck + j * D;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t d = 0; d < D; ++d) dot += rotated[d] * static_cast<float>(kj[d]);
      probs[j] = round_as<scalar_t>(dot) * scale;
      max_score = std::max(max_score, probs[j]);
    }
    float total = 0.0f;
    for (int64_t j = 0; j < S; ++j) {
      probs[j] = std::exp(probs[j] - max_score);
      total += probs[j];
    }
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t j = 0; j < S; ++j) {
      const float p = round_as<scalar_t>(probs[j] / total);  // probabilities in v's dtype
      const scalar_t* vj = cv + j * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) acc[d] += p * static_cast<float>(vj[d]);
    }
    scalar_t* out_h = out + (b * s.heads + h) * D;
    for (int64_t d = 0; d < D; ++d) out_h[d] = static_cast<scalar_t>(acc[d]);
  }
}

}  // namespace

bool supports(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() &&
         (t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kBFloat16);
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  check_same(x, weight, "rms_norm");
  const int64_t hidden = x.size(-1);
  TORCH_CHECK(weight.numel() == hidden, "inference::rms_norm: weight has ", weight.numel(),
              " entries for hidden size ", hidden);
  // The AVX-512 pass that the autograd node also runs, so both modes give the same values.
  if (rms_norm_kernels::supported(x, weight)) return rms_norm_kernels::forward(x, weight, eps).first;
  torch::Tensor xc = x.contiguous();        // [..., H]
  torch::Tensor wc = weight.contiguous();   // [H]
  torch::Tensor out = torch::empty_like(xc);  // [..., H]
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "inference_rms_norm", [&] {
    rms_norm_rows(xc.data_ptr<scalar_t>(), wc.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                  xc.numel() / hidden, hidden, static_cast<float>(eps));
  });
  return out;
}

torch::Tensor silu_mul(const torch::Tensor& gate, const torch::Tensor& up) {
  check_same(gate, up, "silu_mul");
  TORCH_CHECK(gate.sizes() == up.sizes(), "inference::silu_mul: gate ", gate.sizes(), " and up ",
              up.sizes(), " differ");
  // The AVX-512 pass that the autograd node also runs, so both modes give the same values.
  if (silu_kernels::supported(gate, up)) return silu_kernels::forward(gate, up);  // [..., I]
  torch::Tensor gc = gate.contiguous();     // [..., I]
  torch::Tensor uc = up.contiguous();       // [..., I]
  torch::Tensor out = torch::empty_like(gc);  // [..., I]
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, gate.scalar_type(), "inference_silu_mul", [&] {
    silu_mul_elements(gc.data_ptr<scalar_t>(), uc.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                      gc.numel());
  });
  return out;
}

torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& cos,
                               const torch::Tensor& sin, torch::Tensor& cache_k,
                               torch::Tensor& cache_v, int64_t past, int64_t num_heads) {
  for (const torch::Tensor* t : {&k, &v, &cos, &sin, static_cast<const torch::Tensor*>(&cache_k),
                                 static_cast<const torch::Tensor*>(&cache_v)}) {
    check_same(q, *t, "decode_attention");
  }
  TORCH_CHECK(cache_k.dim() == 4 && cache_k.is_contiguous() && cache_v.is_contiguous() &&
                  cache_k.sizes() == cache_v.sizes(),
              "inference::decode_attention: cache must be two contiguous [B, KV, capacity, D]");
  DecodeShape s{cache_k.size(0), num_heads, cache_k.size(1), cache_k.size(3), cache_k.size(2), past};
  TORCH_CHECK(s.heads % s.kv_heads == 0 && s.head_dim % 2 == 0, "inference::decode_attention: ",
              s.heads, " query heads over ", s.kv_heads, " kv heads of size ", s.head_dim);
  TORCH_CHECK(past >= 0 && past < s.capacity, "inference::decode_attention: position ", past,
              " outside the cache capacity ", s.capacity);
  TORCH_CHECK(q.numel() == s.batch * s.heads * s.head_dim &&
                  k.numel() == s.batch * s.kv_heads * s.head_dim && v.numel() == k.numel() &&
                  cos.numel() == s.batch * s.head_dim && sin.numel() == cos.numel(),
              "inference::decode_attention: q ", q.sizes(), ", k ", k.sizes(), ", v ", v.sizes(),
              ", cos ", cos.sizes(), " do not match one position of a ", cache_k.sizes(), " cache");
  torch::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  torch::Tensor cosc = cos.contiguous(), sinc = sin.contiguous();
  torch::Tensor out = torch::empty({s.batch, 1, s.heads * s.head_dim}, q.options());  // [B, 1, H*D]
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, q.scalar_type(), "inference_decode_attention", [&] {
    // One task per (sequence, kv head): each writes its own cache row and output heads.
    at::parallel_for(0, s.batch * s.kv_heads, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        decode_attention_group<scalar_t>(
            s, t / s.kv_heads, t % s.kv_heads, qc.data_ptr<scalar_t>(), kc.data_ptr<scalar_t>(),
            vc.data_ptr<scalar_t>(), cosc.data_ptr<scalar_t>(), sinc.data_ptr<scalar_t>(),
            cache_k.data_ptr<scalar_t>(), cache_v.data_ptr<scalar_t>(), out.data_ptr<scalar_t>());
      }
    });
  });
  return out;
}

}  // namespace eztinker::model::inference
