// See attention_kernels.h. exp is avx512::exp16 (a polynomial, ~2 ulp on fp32).
#include "model/attention_kernels.h"

#include "model/avx512_util.h"
#include "model/dtype.h"
#include "model/qwen2.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace eztinker::model::attention_kernels {

namespace {

using avx512::exp16;
using avx512::lanes;
using avx512::load16;
using avx512::store16;

// Where row r of the [rows, S] scores finds its mask: rows run over (b, kv, g, t) with t fastest.
struct RowMask {
  int64_t S = 0;
  int64_t T = 0;
  int64_t rows_per_batch = 0;     // KV * G * T
  const float* bias = nullptr;    // [B or 1, 1, T, S]; null = causal
  int64_t bias_batch_stride = 0;  // T * S, or 0 for a bias shared by the batch

  // Keys [0, visible) can carry probability; the causal mask hides the rest.
  int64_t visible(int64_t r) const { return bias != nullptr ? S : std::min(S, S - T + r % T + 1); }
  const float* bias_row(int64_t r) const {
    return bias == nullptr ? nullptr : bias + (r / rows_per_batch) * bias_batch_stride + (r % T) * S;
  }
};

// p[0, n) = softmax(s * scale + bias) in fp32 (bias may be null).
template <typename in_t>
EZTINKER_AVX512 void softmax_row(const in_t* s, const float* bias, int64_t n, float scale, float* p) {
  const __m512 vscale = _mm512_set1_ps(scale);
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = lanes(n - j);
    __m512 x = _mm512_mul_ps(load16(s + j, m), vscale);
    if (bias != nullptr) x = _mm512_add_ps(x, load16(bias + j, m));
    store16(p + j, x, m);
    vmax = _mm512_mask_max_ps(vmax, m, vmax, x);
  }
  const __m512 shift = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = lanes(n - j);
    const __m512 e = exp16(_mm512_sub_ps(load16(p + j, m), shift));
    store16(p + j, e, m);
    vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = lanes(n - j);
    store16(p + j, _mm512_mul_ps(load16(p + j, m), inv), m);
  }
}

// out[0, S) = p[0, n) rounded to out_t, then zeros.
template <typename out_t>
EZTINKER_AVX512 void store_row(const float* p, int64_t n, int64_t S, out_t* out) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = lanes(n - j);
    store16(out + j, load16(p + j, m), m);
  }
  std::fill(out + n, out + S, out_t(0));
}

template <typename in_t, typename out_t>
EZTINKER_AVX512 void softmax_rows(const in_t* scores, const RowMask& mask, float scale, out_t* out,
                                  int64_t r0, int64_t r1) {
  std::vector<float> p(static_cast<size_t>(mask.S));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = mask.visible(r);
    softmax_row(scores + r * mask.S, mask.bias_row(r), n, scale, p.data());
    store_row(p.data(), n, mask.S, out + r * mask.S);
  }
}

template <typename scalar_t>
EZTINKER_AVX512 void softmax_backward_rows(const scalar_t* grad_probs, const scalar_t* scores,
                                           const RowMask& mask, float scale, scalar_t* out,
                                           int64_t r0, int64_t r1) {
  std::vector<float> p(static_cast<size_t>(mask.S));
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = mask.visible(r);
    const scalar_t* gp = grad_probs + r * mask.S;
    softmax_row(scores + r * mask.S, mask.bias_row(r), n, scale, p.data());
    __m512 vdot = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = lanes(n - j);
      vdot = _mm512_fmadd_ps(load16(gp + j, m), load16(p.data() + j, m), vdot);  // masked lanes: 0
    }
    const __m512 row_dot = _mm512_set1_ps(_mm512_reduce_add_ps(vdot));
    scalar_t* o = out + r * mask.S;
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = lanes(n - j);
      const __m512 d = _mm512_mul_ps(_mm512_sub_ps(load16(gp + j, m), row_dot), load16(p.data() + j, m));
      store16(o + j, _mm512_mul_ps(d, vscale), m);
    }
    std::fill(o + n, o + mask.S, scalar_t(0));  // p = 0 there
  }
}

bool kernels_take(const torch::Tensor& scores, const torch::Tensor& bias) {
  static const bool cpu_ok = cpu_has_fast_bf16();
  const auto dtype = scores.scalar_type();
  return cpu_ok && scores.device().is_cpu() && scores.dim() == 4 &&
         (dtype == torch::kFloat32 || dtype == torch::kBFloat16) &&
         (!bias.defined() || (bias.scalar_type() == torch::kFloat32 && bias.dim() == 4 &&
                              bias.device().is_cpu()));
}

RowMask row_mask(const torch::Tensor& scores, const torch::Tensor& bias, int64_t T) {
  const int64_t B = scores.size(0), S = scores.size(3);
  TORCH_CHECK(T > 0 && scores.size(2) % T == 0 && S >= T,
              "attention_kernels: scores ", scores.sizes(), " do not hold T = ", T, " queries per head");
  RowMask mask;
  mask.S = S;
  mask.T = T;
  mask.rows_per_batch = scores.size(1) * scores.size(2);
  if (bias.defined()) {
    TORCH_CHECK((bias.size(0) == 1 || bias.size(0) == B) && bias.size(1) == 1 && bias.size(2) == T &&
                    bias.size(3) == S && bias.is_contiguous(),
                "attention_kernels: bias ", bias.sizes(), " is not a contiguous [B or 1, 1, ", T,
                ", ", S, "]");
    mask.bias = bias.data_ptr<float>();
    mask.bias_batch_stride = bias.size(0) == 1 ? 0 : T * S;
  }
  return mask;
}

// The op chain (the kernels' reference, and the path on other CPUs and devices): fp32 probs.
torch::Tensor reference_probs(const torch::Tensor& scores, const torch::Tensor& bias, int64_t T,
                              double scale) {
  const int64_t B = scores.size(0), KV = scores.size(1), S = scores.size(3);
  const int64_t G = scores.size(2) / T;
  torch::Tensor x = (scores.to(torch::kFloat32) * scale).view({B, KV, G, T, S});  // [B, KV, G, T, S]
  if (bias.defined()) {
    x.add_(bias.unsqueeze(1));
  } else if (T > 1) {
    x.add_(detail::attention_bias({}, B, S - T, T, scores.device()).unsqueeze(1));
  }
  return torch::softmax(x, -1).view(scores.sizes());  // [B, KV, G*T, S] fp32
}

constexpr int64_t kRowGrain = 32;

}  // namespace

torch::Tensor softmax(const torch::Tensor& scores, const torch::Tensor& bias, int64_t T,
                      double scale, torch::Dtype out_dtype) {
  if (!kernels_take(scores, bias) || (out_dtype != torch::kFloat32 && out_dtype != torch::kBFloat16)) {
    return reference_probs(scores, bias, T, scale).to(out_dtype);
  }
  const torch::Tensor s = scores.contiguous();  // [B, KV, G*T, S]
  const torch::Tensor b = bias.defined() ? bias.contiguous() : bias;
  const RowMask mask = row_mask(s, b, T);
  torch::Tensor out = torch::empty(s.sizes(), s.options().dtype(out_dtype));  // [B, KV, G*T, S]
  const int64_t rows = s.numel() / mask.S;
  const float sc = static_cast<float>(scale);
  auto run = [&](auto* in) {
    at::parallel_for(0, rows, kRowGrain, [&](int64_t r0, int64_t r1) {
      if (out_dtype == torch::kFloat32) {
        softmax_rows(in, mask, sc, out.data_ptr<float>(), r0, r1);
      } else {
        softmax_rows(in, mask, sc, out.data_ptr<at::BFloat16>(), r0, r1);
      }
    });
  };
  if (s.scalar_type() == torch::kFloat32) {
    run(s.data_ptr<float>());
  } else {
    run(s.data_ptr<at::BFloat16>());
  }
  return out;
}

torch::Tensor softmax_backward(const torch::Tensor& grad_probs, const torch::Tensor& scores,
                               const torch::Tensor& bias, int64_t T, double scale) {
  TORCH_CHECK(grad_probs.sizes() == scores.sizes(), "attention_kernels::softmax_backward: grad ",
              grad_probs.sizes(), " and scores ", scores.sizes(), " differ");
  if (!kernels_take(scores, bias) || grad_probs.scalar_type() != scores.scalar_type()) {
    torch::Tensor p = reference_probs(scores, bias, T, scale);                    // fp32
    torch::Tensor gp = grad_probs.to(torch::kFloat32);                            // fp32
    torch::Tensor row_dot = (gp * p).sum(-1, /*keepdim=*/true);                   // [..., 1]
    return ((gp - row_dot) * p * scale).to(scores.scalar_type());                 // [B, KV, G*T, S]
  }
  const torch::Tensor s = scores.contiguous();     // [B, KV, G*T, S]
  const torch::Tensor g = grad_probs.contiguous();  // [B, KV, G*T, S]
  const torch::Tensor b = bias.defined() ? bias.contiguous() : bias;
  const RowMask mask = row_mask(s, b, T);
  torch::Tensor out = torch::empty_like(s);  // [B, KV, G*T, S]
  const int64_t rows = s.numel() / mask.S;
  const float sc = static_cast<float>(scale);
  auto run = [&](auto tag) {
    using scalar_t = decltype(tag);
    at::parallel_for(0, rows, kRowGrain, [&](int64_t r0, int64_t r1) {
      softmax_backward_rows(g.data_ptr<scalar_t>(), s.data_ptr<scalar_t>(), mask, sc,
                            out.data_ptr<scalar_t>(), r0, r1);
    });
  };
  if (s.scalar_type() == torch::kFloat32) {
    run(float{});
  } else {
    run(at::BFloat16{});
  }
  return out;
}

}  // namespace eztinker::model::attention_kernels
