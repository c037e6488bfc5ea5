// AVX512-BF16 matrix-vector kernel (see small_linear.h). Four output rows per iteration share
// the loads of x; 32 bf16 pairs per vdpbf16ps; a masked tail handles K % 32 != 0.
#include "model/small_linear.h"

#include "model/dtype.h"

#include <ATen/Parallel.h>
// GCC 12's _mm512_reduce_add_ps trips -Wmaybe-uninitialized inside its own header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <vector>

namespace eztinker::kernels {

namespace {

// y[m, n] = sum_k w[n, k] * x[m, k]; w, x bf16 (raw uint16), y fp32. Rows [n0, n1).
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void gemv_rows(
    const uint16_t* w, const uint16_t* x, float* y, int64_t m_rows, int64_t k, int64_t n,
    int64_t n0, int64_t n1) {
  const int64_t full = k / 32 * 32;
  const __mmask32 tail_mask = static_cast<__mmask32>((uint64_t{1} << (k - full)) - 1);
  int64_t r = n0;
  for (; r + 4 <= n1; r += 4) {
    for (int64_t m = 0; m < m_rows; ++m) {
      const uint16_t* xm = x + m * k;
      __m512 acc0 = _mm512_setzero_ps();
      __m512 acc1 = _mm512_setzero_ps();
      __m512 acc2 = _mm512_setzero_ps();
      __m512 acc3 = _mm512_setzero_ps();
      int64_t i = 0;
      for (; i < full; i += 32) {
        const __m512bh xv = (__m512bh)_mm512_loadu_si512(xm + i);
        acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_loadu_si512(w + (r + 0) * k + i), xv);
        acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_loadu_si512(w + (r + 1) * k + i), xv);
        acc2 = _mm512_dpbf16_ps(acc2, (__m512bh)_mm512_loadu_si512(w + (r + 2) * k + i), xv);
        acc3 = _mm512_dpbf16_ps(acc3, (__m512bh)_mm512_loadu_si512(w + (r + 3) * k + i), xv);
      }
      if (i < k) {
        const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, xm + i);
        acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, w + (r + 0) * k + i), xv);
        acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, w + (r + 1) * k + i), xv);
        acc2 = _mm512_dpbf16_ps(acc2, (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, w + (r + 2) * k + i), xv);
        acc3 = _mm512_dpbf16_ps(acc3, (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, w + (r + 3) * k + i), xv);
      }
      float* ym = y + m * n;
      ym[r + 0] = _mm512_reduce_add_ps(acc0);
      ym[r + 1] = _mm512_reduce_add_ps(acc1);
      ym[r + 2] = _mm512_reduce_add_ps(acc2);
      ym[r + 3] = _mm512_reduce_add_ps(acc3);
    }
  }
  for (; r < n1; ++r) {
    for (int64_t m = 0; m < m_rows; ++m) {
      const uint16_t* xm = x + m * k;
      __m512 acc = _mm512_setzero_ps();
      int64_t i = 0;
      for (; i < full; i += 32) {
        acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(w + r * k + i),
                               (__m512bh)_mm512_loadu_si512(xm + i));
      }
      if (i < k) {
        acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, w + r * k + i),
                               (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, xm + i));
      }
      y[m * n + r] = _mm512_reduce_add_ps(acc);
    }
  }
}

}  // namespace

bool small_linear_supported(const torch::Tensor& weight) {
  static const bool cpu_ok = model::cpu_has_fast_bf16();
  return cpu_ok && weight.device().is_cpu() && weight.scalar_type() == torch::kBFloat16 &&
         weight.dim() == 2 && weight.is_contiguous();
}

torch::Tensor small_linear(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias, torch::Dtype out_dtype) {
  const int64_t k = weight.size(1);
  const int64_t n = weight.size(0);
  const int64_t m_rows = x.numel() / k;
  if (!small_linear_supported(weight) || m_rows > kSmallLinearMaxRows || x.size(-1) != k ||
      !x.device().is_cpu()) {
    auto b = bias.defined() ? bias.to(weight.scalar_type()) : bias;                // [N]
    return torch::linear(x.to(weight.scalar_type()), weight, b).to(out_dtype);  // [..., N]
  }
  auto xb = x.reshape({m_rows, k}).to(torch::kBFloat16).contiguous();  // [M, K] bf16
  auto y = torch::empty({m_rows, n}, x.options().dtype(torch::kFloat32));  // [M, N] fp32
  const auto* wp = reinterpret_cast<const uint16_t*>(weight.data_ptr<at::BFloat16>());
  const auto* xp = reinterpret_cast<const uint16_t*>(xb.data_ptr<at::BFloat16>());
  float* yp = y.data_ptr<float>();
  // Grain: 256 rows x K bf16 is >= 229 KB for K = 896, enough to amortise a task.
  at::parallel_for(0, n, 256, [&](int64_t n0, int64_t n1) {
    gemv_rows(wp, xp, yp, m_rows, k, n, n0, n1);
  });
  if (bias.defined()) {
    y.add_(bias.to(torch::kFloat32));  // [M, N]
  }
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = n;
  return y.view(shape).to(out_dtype);  // [..., N]
}

}  // namespace eztinker::kernels
