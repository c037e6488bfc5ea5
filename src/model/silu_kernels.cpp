// See silu_kernels.h. exp is avx512::exp16 (a polynomial, ~2 ulp on fp32).
#include "model/silu_kernels.h"

#include "model/avx512_util.h"
#include "model/dtype.h"

#include <ATen/Parallel.h>

namespace eztinker::model::silu_kernels {

namespace {

using avx512::exp16;
using avx512::lanes;
using avx512::load16;
using avx512::round_as;
using avx512::store16;

EZTINKER_AVX512 inline __m512 sigmoid16(__m512 g) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
}

template <typename scalar_t>
EZTINKER_AVX512 void forward_range(const scalar_t* gate, const scalar_t* up, scalar_t* out,
                                   int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; i += 16) {
    const __mmask16 m = lanes(i1 - i);
    const __m512 g = load16(gate + i, m);
    const __m512 silu = round_as(_mm512_mul_ps(g, sigmoid16(g)), gate);
    store16(out + i, _mm512_mul_ps(silu, load16(up + i, m)), m);
  }
}

template <typename scalar_t>
EZTINKER_AVX512 void backward_range(const scalar_t* grad, const scalar_t* gate, const scalar_t* up,
                                    scalar_t* d_gate, scalar_t* d_up, int64_t i0, int64_t i1) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = i0; i < i1; i += 16) {
    const __mmask16 m = lanes(i1 - i);
    const __m512 gr = load16(grad + i, m);
    const __m512 g = load16(gate + i, m);
    const __m512 s = sigmoid16(g);
    store16(d_up + i, _mm512_mul_ps(_mm512_mul_ps(gr, g), s), m);
    // s * (1 + g * (1 - s))
    const __m512 dsilu = _mm512_mul_ps(s, _mm512_fmadd_ps(g, _mm512_sub_ps(one, s), one));
    store16(d_gate + i, _mm512_mul_ps(_mm512_mul_ps(gr, load16(up + i, m)), dsilu), m);
  }
}

constexpr int64_t kGrain = 1 << 14;  // elements per task

}  // namespace

bool supported(const torch::Tensor& gate, const torch::Tensor& up) {
  static const bool cpu_ok = cpu_has_fast_bf16();
  return cpu_ok && gate.device().is_cpu() && up.device().is_cpu() &&
         gate.scalar_type() == up.scalar_type() && gate.sizes() == up.sizes() &&
         (gate.scalar_type() == torch::kFloat32 || gate.scalar_type() == torch::kBFloat16);
}

torch::Tensor forward(const torch::Tensor& gate, const torch::Tensor& up) {
  TORCH_CHECK(supported(gate, up), "silu_kernels::forward: unsupported tensors");
  torch::Tensor g = gate.contiguous(), u = up.contiguous();  // [..., I]
  torch::Tensor out = torch::empty_like(g);                  // [..., I]
  const bool bf16 = g.scalar_type() == torch::kBFloat16;
  at::parallel_for(0, g.numel(), kGrain, [&](int64_t i0, int64_t i1) {
    if (bf16) {
      forward_range(g.data_ptr<c10::BFloat16>(), u.data_ptr<c10::BFloat16>(),
                    out.data_ptr<c10::BFloat16>(), i0, i1);
    } else {
      forward_range(g.data_ptr<float>(), u.data_ptr<float>(), out.data_ptr<float>(), i0, i1);
    }
  });
  return out;
}

std::pair<torch::Tensor, torch::Tensor> backward(const torch::Tensor& grad,
                                                 const torch::Tensor& gate,
                                                 const torch::Tensor& up) {
  TORCH_CHECK(supported(gate, up) && grad.sizes() == gate.sizes(),
              "silu_kernels::backward: unsupported tensors");
  torch::Tensor gr = grad.to(gate.scalar_type()).contiguous();  // [..., I]
  torch::Tensor g = gate.contiguous(), u = up.contiguous();    // [..., I]
  torch::Tensor d_gate = torch::empty_like(g), d_up = torch::empty_like(u);  // [..., I]
  const bool bf16 = g.scalar_type() == torch::kBFloat16;
  at::parallel_for(0, g.numel(), kGrain, [&](int64_t i0, int64_t i1) {
    if (bf16) {
      backward_range(gr.data_ptr<c10::BFloat16>(), g.data_ptr<c10::BFloat16>(),
                     u.data_ptr<c10::BFloat16>(), d_gate.data_ptr<c10::BFloat16>(),
                     d_up.data_ptr<c10::BFloat16>(), i0, i1);
    } else {
      backward_range(gr.data_ptr<float>(), g.data_ptr<float>(), u.data_ptr<float>(),
                     d_gate.data_ptr<float>(), d_up.data_ptr<float>(), i0, i1);
    }
  });
  return {d_gate, d_up};
}

}  // namespace eztinker::model::silu_kernels
