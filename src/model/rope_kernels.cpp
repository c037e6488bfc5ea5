// See rope_kernels.h. One task covers whole (b, t) positions: their cos and sin rows are
// rounded once and reused for every head.
#include "model/rope_kernels.h"

#include "model/avx512_util.h"
#include "model/dtype.h"

#include <ATen/Parallel.h>

#include <vector>

namespace eztinker::model::rope_kernels {

namespace {

using avx512::lanes;
using avx512::load16;
using avx512::round_as;
using avx512::store16;

// a * b rounded to fp32 (round to nearest even), never fused with a following add.
EZTINKER_AVX512 inline __m512 mul_rounded(__m512 a, __m512 b) {
  return _mm512_mul_round_ps(a, b, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// cos and sin at lanes [i, i + 16) of both halves of a head, as `like`'s dtype holds them
// (detail::rope casts the tables to x's dtype first).
struct HalfTables {
  __m512 c1, c2, s1, s2;
};

template <typename scalar_t>
EZTINKER_AVX512 inline HalfTables load_tables(const float* c, const float* sn, int64_t half,
                                              int64_t i, __mmask16 m, const scalar_t* like) {
  return {round_as(load16(c + i, m), like), round_as(load16(c + half + i, m), like),
          round_as(load16(sn + i, m), like), round_as(load16(sn + half + i, m), like)};
}

struct Shape {
  int64_t positions, heads, head_dim;
};

// x, out: [positions, heads, D]; cos, sin: [positions, D] fp32.
template <typename scalar_t>
EZTINKER_AVX512 void forward_positions(const Shape& s, const scalar_t* x, const float* cos,
                                       const float* sin, scalar_t* out, int64_t p0, int64_t p1) {
  const int64_t D = s.head_dim, half = D / 2;
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t p = p0; p < p1; ++p) {
    const float* c = cos + p * D;
    const float* sn = sin + p * D;
    for (int64_t h = 0; h < s.heads; ++h) {
      const scalar_t* xh = x + (p * s.heads + h) * D;
      scalar_t* oh = out + (p * s.heads + h) * D;
      for (int64_t i = 0; i < half; i += 16) {
        const __mmask16 m = lanes(half - i);
        const auto [c1, c2, s1, s2] = load_tables(c, sn, half, i, m, xh);
        const __m512 x1 = load16(xh + i, m), x2 = load16(xh + half + i, m);
        // first half: x1 c1 + (-x2) s1; second half: x2 c2 + x1 s2; each term rounded. The
        // products use the explicit-rounding form, which GCC does not contract with the sum
        // into an FMA (that would skip the fp32 rounding the reference chain applies).
        const __m512 a1 = round_as(mul_rounded(x1, c1), xh);
        const __m512 b1 = round_as(mul_rounded(_mm512_sub_ps(zero, x2), s1), xh);
        const __m512 a2 = round_as(mul_rounded(x2, c2), xh);
        const __m512 b2 = round_as(mul_rounded(x1, s2), xh);
        store16(oh + i, _mm512_add_ps(a1, b1), m);
        store16(oh + half + i, _mm512_add_ps(a2, b2), m);
      }
    }
  }
}

template <typename grad_t, typename out_t>
EZTINKER_AVX512 void backward_positions(const Shape& s, const grad_t* grad, const float* cos,
                                        const float* sin, out_t* dx, int64_t p0, int64_t p1) {
  const int64_t D = s.head_dim, half = D / 2;
  for (int64_t p = p0; p < p1; ++p) {
    const float* c = cos + p * D;
    const float* sn = sin + p * D;
    for (int64_t h = 0; h < s.heads; ++h) {
      const grad_t* gh = grad + (p * s.heads + h) * D;
      out_t* dh = dx + (p * s.heads + h) * D;
      for (int64_t i = 0; i < half; i += 16) {
        const __mmask16 m = lanes(half - i);
        const auto [c1, c2, s1, s2] = load_tables(c, sn, half, i, m, dh);
        const __m512 g1 = load16(gh + i, m), g2 = load16(gh + half + i, m);
        // x1 feeds out1 via c1 and out2 via s2; x2 feeds out2 via c2 and out1 via -s1.
        store16(dh + i, _mm512_fmadd_ps(g2, s2, _mm512_mul_ps(g1, c1)), m);
        store16(dh + half + i, _mm512_fnmadd_ps(g1, s1, _mm512_mul_ps(g2, c2)), m);
      }
    }
  }
}

Shape shape_of(const torch::Tensor& x) {
  return Shape{x.size(0) * x.size(1), x.size(2), x.size(3)};
}

// Positions per task: one position of Qwen2-0.5B's q is 14 heads x 64 values.
constexpr int64_t kGrainPositions = 8;

}  // namespace

namespace {

bool is_kernel_dtype(torch::Dtype dtype) {
  return dtype == torch::kFloat32 || dtype == torch::kBFloat16;
}

// x (or a gradient of x's shape) [B, T, heads, D] against cos and sin [B, T, D] fp32.
bool fits(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  static const bool cpu_ok = cpu_has_fast_bf16();
  return cpu_ok && x.device().is_cpu() && cos.device().is_cpu() && sin.device().is_cpu() &&
         cos.scalar_type() == torch::kFloat32 && sin.scalar_type() == torch::kFloat32 &&
         x.dim() == 4 && x.size(3) % 2 == 0 && cos.dim() == 3 && cos.sizes() == sin.sizes() &&
         cos.size(0) == x.size(0) && cos.size(1) == x.size(1) && cos.size(2) == x.size(3);
}

}  // namespace

bool supported(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  return is_kernel_dtype(x.scalar_type()) && fits(x, cos, sin);
}

torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  TORCH_CHECK(supported(x, cos, sin), "rope_kernels::forward: unsupported tensors x ", x.sizes(),
              " ", x.scalar_type(), ", cos ", cos.sizes(), " ", cos.scalar_type());
  torch::Tensor xc = x.contiguous();                        // [B, T, H, D]
  torch::Tensor cc = cos.contiguous(), sc = sin.contiguous();  // [B, T, D]
  torch::Tensor out = torch::empty_like(xc);                // [B, T, H, D]
  const Shape s = shape_of(xc);
  const bool bf16 = xc.scalar_type() == torch::kBFloat16;
  at::parallel_for(0, s.positions, kGrainPositions, [&](int64_t p0, int64_t p1) {
    if (bf16) {
      forward_positions(s, xc.data_ptr<c10::BFloat16>(), cc.data_ptr<float>(), sc.data_ptr<float>(),
                        out.data_ptr<c10::BFloat16>(), p0, p1);
    } else {
      forward_positions(s, xc.data_ptr<float>(), cc.data_ptr<float>(), sc.data_ptr<float>(),
                        out.data_ptr<float>(), p0, p1);
    }
  });
  return out;
}

torch::Tensor backward(const torch::Tensor& grad, const torch::Tensor& cos, const torch::Tensor& sin,
                       torch::Dtype dtype) {
  TORCH_CHECK(is_kernel_dtype(dtype) && grad.is_floating_point() && fits(grad, cos, sin),
              "rope_kernels::backward: unsupported tensors grad ", grad.sizes(), ", cos ",
              cos.sizes(), " for ", dtype);
  const bool grad_f32 = grad.scalar_type() == torch::kFloat32;
  torch::Tensor gc = (grad_f32 ? grad : grad.to(dtype)).contiguous();  // [B, T, H, D]
  torch::Tensor cc = cos.contiguous(), sc = sin.contiguous();          // [B, T, D]
  torch::Tensor dx = torch::empty(gc.sizes(), gc.options().dtype(dtype));  // [B, T, H, D]
  const Shape s = shape_of(gc);
  const bool bf16 = dtype == torch::kBFloat16;
  at::parallel_for(0, s.positions, kGrainPositions, [&](int64_t p0, int64_t p1) {
    if (bf16 && grad_f32) {
      backward_positions(s, gc.data_ptr<float>(), cc.data_ptr<float>(), sc.data_ptr<float>(),
                         dx.data_ptr<c10::BFloat16>(), p0, p1);
    } else if (bf16) {
      backward_positions(s, gc.data_ptr<c10::BFloat16>(), cc.data_ptr<float>(), sc.data_ptr<float>(),
                         dx.data_ptr<c10::BFloat16>(), p0, p1);
    } else {
      backward_positions(s, gc.data_ptr<float>(), cc.data_ptr<float>(), sc.data_ptr<float>(),
                         dx.data_ptr<float>(), p0, p1);
    }
  });
  return dx;
}

}  // namespace eztinker::model::rope_kernels
