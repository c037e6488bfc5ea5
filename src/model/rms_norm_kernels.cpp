// See rms_norm_kernels.h. Each row is read twice (its sum, then the output pass); a row of
// Qwen2-0.5B is 1.8 KB in bf16, so the second read comes from L1.
#include "model/rms_norm_kernels.h"

#include "model/avx512_util.h"
#include "model/dtype.h"

#include <ATen/Parallel.h>

#include <cmath>

namespace eztinker::model::rms_norm_kernels {

namespace {

using avx512::lanes;
using avx512::load16;
using avx512::round_as;
using avx512::store16;

template <typename scalar_t>
EZTINKER_AVX512 void forward_rows(const scalar_t* x, const scalar_t* weight, scalar_t* out,
                                  float* inv_rms, int64_t hidden, float eps, int64_t r0,
                                  int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const scalar_t* xr = x + r * hidden;
    scalar_t* yr = out + r * hidden;
    __m512 sum_sq = _mm512_setzero_ps();
    for (int64_t i = 0; i < hidden; i += 16) {
      const __m512 v = load16(xr + i, lanes(hidden - i));
      sum_sq = _mm512_fmadd_ps(v, v, sum_sq);
    }
    const float inv = 1.0f / std::sqrt(_mm512_reduce_add_ps(sum_sq) / static_cast<float>(hidden) + eps);
    inv_rms[r] = inv;
    const __m512 inv16 = _mm512_set1_ps(inv);
    for (int64_t i = 0; i < hidden; i += 16) {
      const __mmask16 m = lanes(hidden - i);
      const __m512 normed = round_as(_mm512_mul_ps(load16(xr + i, m), inv16), xr);
      store16(yr + i, _mm512_mul_ps(load16(weight + i, m), normed), m);
    }
  }
}

template <typename scalar_t, typename grad_t>
EZTINKER_AVX512 void backward_rows(const grad_t* grad, const scalar_t* x, const scalar_t* weight,
                                   const float* inv_rms, scalar_t* dx, int64_t hidden, int64_t r0,
                                   int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const grad_t* gr = grad + r * hidden;
    const scalar_t* xr = x + r * hidden;
    scalar_t* dr = dx + r * hidden;
    const __m512 inv16 = _mm512_set1_ps(inv_rms[r]);
    // mean(dn * xhat) with dn = g * w, xhat = x * inv_rms
    __m512 dot = _mm512_setzero_ps();
    for (int64_t i = 0; i < hidden; i += 16) {
      const __mmask16 m = lanes(hidden - i);
      const __m512 dn = _mm512_mul_ps(load16(gr + i, m), load16(weight + i, m));
      dot = _mm512_fmadd_ps(dn, _mm512_mul_ps(load16(xr + i, m), inv16), dot);
    }
    const __m512 proj = _mm512_set1_ps(_mm512_reduce_add_ps(dot) / static_cast<float>(hidden));
    for (int64_t i = 0; i < hidden; i += 16) {
      const __mmask16 m = lanes(hidden - i);
      const __m512 dn = _mm512_mul_ps(load16(gr + i, m), load16(weight + i, m));
      const __m512 xhat = _mm512_mul_ps(load16(xr + i, m), inv16);
      store16(dr + i, _mm512_mul_ps(_mm512_fnmadd_ps(xhat, proj, dn), inv16), m);
    }
  }
}

// Rows per task: 16 rows of 896 are ~30 KB of bf16, enough to amortise a task.
constexpr int64_t kGrainRows = 16;

}  // namespace

bool supported(const torch::Tensor& x, const torch::Tensor& weight) {
  static const bool cpu_ok = cpu_has_fast_bf16();
  return cpu_ok && x.device().is_cpu() && weight.device().is_cpu() && x.dim() >= 1 &&
         x.scalar_type() == weight.scalar_type() &&
         (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16) &&
         weight.dim() == 1 && weight.size(0) == x.size(-1);
}

std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& weight,
                                                double eps) {
  TORCH_CHECK(supported(x, weight), "rms_norm_kernels::forward: unsupported tensors x ",
              x.sizes(), " ", x.scalar_type(), ", weight ", weight.sizes(), " ",
              weight.scalar_type());
  const int64_t hidden = x.size(-1);
  torch::Tensor xc = x.contiguous(), wc = weight.contiguous();  // [..., H], [H]
  torch::Tensor out = torch::empty_like(xc);                    // [..., H]
  std::vector<int64_t> row_shape = x.sizes().vec();
  row_shape.pop_back();
  torch::Tensor inv_rms = torch::empty(row_shape, x.options().dtype(torch::kFloat32));  // [...]
  const int64_t rows = hidden == 0 ? 0 : xc.numel() / hidden;
  const bool bf16 = xc.scalar_type() == torch::kBFloat16;
  at::parallel_for(0, rows, kGrainRows, [&](int64_t r0, int64_t r1) {
    if (bf16) {
      forward_rows(xc.data_ptr<c10::BFloat16>(), wc.data_ptr<c10::BFloat16>(),
                   out.data_ptr<c10::BFloat16>(), inv_rms.data_ptr<float>(), hidden,
                   static_cast<float>(eps), r0, r1);
    } else {
      forward_rows(xc.data_ptr<float>(), wc.data_ptr<float>(), out.data_ptr<float>(),
                   inv_rms.data_ptr<float>(), hidden, static_cast<float>(eps), r0, r1);
    }
  });
  return {out, inv_rms};
}

torch::Tensor backward(const torch::Tensor& grad, const torch::Tensor& x,
                       const torch::Tensor& weight, const torch::Tensor& inv_rms) {
  TORCH_CHECK(supported(x, weight) && grad.sizes() == x.sizes() &&
                  inv_rms.scalar_type() == torch::kFloat32 &&
                  inv_rms.numel() * x.size(-1) == x.numel(),
              "rms_norm_kernels::backward: grad ", grad.sizes(), ", x ", x.sizes(), ", inv_rms ",
              inv_rms.sizes(), " do not fit together");
  const int64_t hidden = x.size(-1);
  torch::Tensor xc = x.contiguous(), wc = weight.contiguous();  // [..., H], [H]
  torch::Tensor rc = inv_rms.contiguous();                      // [...]
  // The upstream gradient in x's dtype or fp32, read as it is (no widened copy).
  const bool grad_f32 = grad.scalar_type() == torch::kFloat32;
  torch::Tensor gc = (grad_f32 ? grad : grad.to(x.scalar_type())).contiguous();  // [..., H]
  torch::Tensor dx = torch::empty_like(xc);                                       // [..., H]
  const int64_t rows = hidden == 0 ? 0 : xc.numel() / hidden;
  const bool bf16 = xc.scalar_type() == torch::kBFloat16;
  at::parallel_for(0, rows, kGrainRows, [&](int64_t r0, int64_t r1) {
    if (bf16 && grad_f32) {
      backward_rows(gc.data_ptr<float>(), xc.data_ptr<c10::BFloat16>(),
                    wc.data_ptr<c10::BFloat16>(), rc.data_ptr<float>(),
                    dx.data_ptr<c10::BFloat16>(), hidden, r0, r1);
    } else if (bf16) {
      backward_rows(gc.data_ptr<c10::BFloat16>(), xc.data_ptr<c10::BFloat16>(),
                    wc.data_ptr<c10::BFloat16>(), rc.data_ptr<float>(),
                    dx.data_ptr<c10::BFloat16>(), hidden, r0, r1);
    } else {
      backward_rows(gc.data_ptr<float>(), xc.data_ptr<float>(), wc.data_ptr<float>(),
                    rc.data_ptr<float>(), dx.data_ptr<float>(), hidden, r0, r1);
    }
  });
  return dx;
}

}  // namespace eztinker::model::rms_norm_kernels
