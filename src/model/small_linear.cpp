// AVX-512 matrix-vector kernels (see small_linear.h): bf16 weights with 32 bf16 pairs per
// vdpbf16ps, fp32 weights with FMAs; one weight row at a time for one row of x, blocks of weight
// rows sharing the loads of x for several; fp32 epilogue (bias, LoRA), one rounding to the output.
#include "model/small_linear.h"

#include "model/avx512_util.h"
#include "model/dtype.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace eztinker::kernels {

namespace {

// y[m, r..r+R) = w[r..r+R) . x[m] for M rows of x and one block of R weight rows; w, x bf16
// (raw uint16), y fp32 with row stride n. Each weight load serves all M rows of x and each x
// load all R weight rows; a masked load handles K % 32 != 0.
template <int R, int M>
__attribute__((target("avx512f,avx512bw,avx512bf16"))) inline void gemv_block(
    const uint16_t* w, const uint16_t* x, float* y, int64_t k, int64_t n, int64_t r) {
  const int64_t full = k / 32 * 32;
  const __mmask32 tail_mask = static_cast<__mmask32>((uint64_t{1} << (k - full)) - 1);
  const uint16_t* block = w + r * k;
  // Software prefetch of the next block into L2, one cache line per weight row per step: the
  // hardware prefetcher alone streamed 17 GB/s on two cores of the target CPU (rows are only
  // 1.75 KB long, too short for it to ramp up); with this, 30 GB/s at M = 1 and 28 at M = 4
  // (measured over a 272 MB bf16 weight; L1 prefetch reached 24, two blocks ahead 29.6).
  const char* next_block = r + 2 * R <= n ? reinterpret_cast<const char*>(block + R * k) : nullptr;
  __m512 acc[M][R];
  EZTINKER_UNROLL
  for (int m = 0; m < M; ++m) {
    EZTINKER_UNROLL
    for (int j = 0; j < R; ++j) acc[m][j] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  for (; i < full; i += 32) {
    if (next_block != nullptr) {
      EZTINKER_UNROLL
      for (int j = 0; j < R; ++j) _mm_prefetch(next_block + (j * k + i) * 2, _MM_HINT_T1);
    }
    __m512bh wv[R];
    EZTINKER_UNROLL
    for (int j = 0; j < R; ++j) wv[j] = (__m512bh)_mm512_loadu_si512(block + j * k + i);
    EZTINKER_UNROLL
    for (int m = 0; m < M; ++m) {
      const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + m * k + i);
      EZTINKER_UNROLL
      for (int j = 0; j < R; ++j) acc[m][j] = _mm512_dpbf16_ps(acc[m][j], wv[j], xv);
    }
  }
  if (i < k) {
    __m512bh wv[R];
    EZTINKER_UNROLL
    for (int j = 0; j < R; ++j) {
      wv[j] = (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, block + j * k + i);
    }
    EZTINKER_UNROLL
    for (int m = 0; m < M; ++m) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, x + m * k + i);
      EZTINKER_UNROLL
      for (int j = 0; j < R; ++j) acc[m][j] = _mm512_dpbf16_ps(acc[m][j], wv[j], xv);
    }
  }
  EZTINKER_UNROLL
  for (int m = 0; m < M; ++m) {
    EZTINKER_UNROLL
    for (int j = 0; j < R; ++j) y[m * n + r + j] = _mm512_reduce_add_ps(acc[m][j]);
  }
}

// y[r] = w[r] . x for one row of x (a batch-1 decode step), one weight row at a time with four
// vectors (128 bf16) per step on their own accumulators. The weight is read strictly in address
// order, which the hardware prefetcher streams better than the eight interleaved rows of
// gemv_block: on huge pages (weight_arena.h), 2 threads, over the 272 MB lm_head, 35 GB/s
// against 32 in the machine's slow phases, and up to 50 against 42 in its fast ones; decode
// batch 1 went from ~29 to ~37 tok/s. With several rows of x the 4x4 blocks stay faster
// (num_samples=4: 84-91 tok/s against 73-76 read row by row).
template <int U = 4>
__attribute__((target("avx512f,avx512bw,avx512bf16"))) inline void gemv_row(
    const uint16_t* w, const uint16_t* x, float* y, int64_t k, int64_t r) {
  const uint16_t* row = w + r * k;
  __m512 acc[U];
  EZTINKER_UNROLL
  for (int u = 0; u < U; ++u) acc[u] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 * U <= k; i += 32 * U) {
    EZTINKER_UNROLL
    for (int u = 0; u < U; ++u) {
      const __m512bh wv = (__m512bh)_mm512_loadu_si512(row + i + 32 * u);
      const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + i + 32 * u);
      acc[u] = _mm512_dpbf16_ps(acc[u], wv, xv);
    }
  }
  for (; i < k; i += 32) {  // the last < 32 * U elements: whole vectors, then a masked one
    const __mmask32 mask = k - i >= 32 ? static_cast<__mmask32>(0xffffffffu)
                                       : static_cast<__mmask32>((uint64_t{1} << (k - i)) - 1);
    const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(mask, row + i);
    const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(mask, x + i);
    acc[0] = _mm512_dpbf16_ps(acc[0], wv, xv);
  }
  __m512 sum = acc[0];
  EZTINKER_UNROLL
  for (int u = 1; u < U; ++u) sum = _mm512_add_ps(sum, acc[u]);
  y[r] = _mm512_reduce_add_ps(sum);
}

// Rows [n0, n1) for M rows of x: blocks of R weight rows, then single rows.
template <int R, int M>
void gemv_rows_for(const uint16_t* w, const uint16_t* x, float* y, int64_t k, int64_t n,
                   int64_t n0, int64_t n1) {
  int64_t r = n0;
  for (; r + R <= n1; r += R) gemv_block<R, M>(w, x, y, k, n, r);
  for (; r < n1; ++r) gemv_block<1, M>(w, x, y, k, n, r);
}

// y[m, n] = sum_k w[n, k] * x[m, k] for output rows [n0, n1). One row of x: weight rows in
// address order (gemv_row). Several: x rows taken four at a time so a batched decode step
// (num_samples) reads the weights once, not once per sample, in blocks of 4 weight rows x M
// (4 x M accumulators keep within the 32 vector registers).
void gemv_rows(const uint16_t* w, const uint16_t* x, float* y, int64_t m_rows, int64_t k,
               int64_t n, int64_t n0, int64_t n1) {
  if (m_rows == 1) {
    for (int64_t r = n0; r < n1; ++r) gemv_row(w, x, y, k, r);
    return;
  }
  for (int64_t m0 = 0; m0 < m_rows; m0 += 4) {
    const uint16_t* xm = x + m0 * k;
    float* ym = y + m0 * n;
    switch (std::min<int64_t>(4, m_rows - m0)) {
      case 1: gemv_rows_for<8, 1>(w, xm, ym, k, n, n0, n1); break;  // the last of 5, 9, ...
      case 2: gemv_rows_for<4, 2>(w, xm, ym, k, n, n0, n1); break;
      case 3: gemv_rows_for<4, 3>(w, xm, ym, k, n, n0, n1); break;
      default: gemv_rows_for<4, 4>(w, xm, ym, k, n, n0, n1); break;
    }
  }
}

// fp32 weights (an fp32 base): y[m, r] = w[r] . x[m] for M <= 4 rows of x, one weight row at a
// time in address order, four vectors (64 floats) per step on their own accumulators per row
// of x; the row tail is one masked vector at a time. fp32 FMAs throughout (no rounding of x).
template <int M>
EZTINKER_AVX512 inline void gemv_row_f32(const float* w, const float* x, float* y, int64_t k,
                                         int64_t n, int64_t r) {
  constexpr int U = 4;
  const float* row = w + r * k;
  __m512 acc[M][U];
  EZTINKER_UNROLL
  for (int m = 0; m < M; ++m) {
    EZTINKER_UNROLL
    for (int u = 0; u < U; ++u) acc[m][u] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 16 * U <= k; i += 16 * U) {
    __m512 wv[U];
    EZTINKER_UNROLL
    for (int u = 0; u < U; ++u) wv[u] = _mm512_loadu_ps(row + i + 16 * u);
    EZTINKER_UNROLL
    for (int m = 0; m < M; ++m) {
      EZTINKER_UNROLL
      for (int u = 0; u < U; ++u) {
        acc[m][u] = _mm512_fmadd_ps(wv[u], _mm512_loadu_ps(x + m * k + i + 16 * u), acc[m][u]);
      }
    }
  }
  for (; i < k; i += 16) {
    const __mmask16 mask = avx512::lanes(k - i);
    const __m512 wv = _mm512_maskz_loadu_ps(mask, row + i);
    EZTINKER_UNROLL
    for (int m = 0; m < M; ++m) {
      acc[m][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mask, x + m * k + i), acc[m][0]);
    }
  }
  EZTINKER_UNROLL
  for (int m = 0; m < M; ++m) {
    __m512 sum = acc[m][0];
    EZTINKER_UNROLL
    for (int u = 1; u < U; ++u) sum = _mm512_add_ps(sum, acc[m][u]);
    y[m * n + r] = _mm512_reduce_add_ps(sum);
  }
}

void gemv_rows_f32(const float* w, const float* x, float* y, int64_t m_rows, int64_t k,
                   int64_t n, int64_t n0, int64_t n1) {
  for (int64_t m0 = 0; m0 < m_rows; m0 += 4) {
    const float* xm = x + m0 * k;
    float* ym = y + m0 * n;
    for (int64_t r = n0; r < n1; ++r) {
      switch (std::min<int64_t>(4, m_rows - m0)) {
        case 1: gemv_row_f32<1>(w, xm, ym, k, n, r); break;
        case 2: gemv_row_f32<2>(w, xm, ym, k, n, r); break;
        case 3: gemv_row_f32<3>(w, xm, ym, k, n, r); break;
        default: gemv_row_f32<4>(w, xm, ym, k, n, r); break;
      }
    }
  }
}

// The LoRA pair's first half, xa[m] = scaling * A x[m] ([M, r]), before the parallel region so
// each task can add B xa to its slice of outputs. x is read at its own precision (exact for bf16).
template <typename scalar_t>
__attribute__((target("avx512f"))) std::vector<float> lora_down(const scalar_t* x, const float* a,
                                                                 int64_t m_rows, int64_t k,
                                                                 int64_t r, float scaling) {
  std::vector<float> xa(static_cast<size_t>(m_rows * r));
  std::vector<float> x32(static_cast<size_t>(k));
  for (int64_t m = 0; m < m_rows; ++m) {
    for (int64_t i = 0; i < k; ++i) x32[i] = static_cast<float>(x[m * k + i]);
    for (int64_t j = 0; j < r; ++j) {
      const float* aj = a + j * k;
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < k; ++i) acc += aj[i] * x32[i];
      xa[static_cast<size_t>(m * r + j)] = acc * scaling;
    }
  }
  return xa;
}

// One output element's epilogue: + bias + B[n] . xa[m] (xa already scaled).
struct Epilogue {
  const at::BFloat16* bias_bf16 = nullptr;
  const float* bias_f32 = nullptr;
  const float* b = nullptr;   // [N, r]
  const float* xa = nullptr;  // [M, r]
  int64_t r = 0;

  __attribute__((target("avx512f"), always_inline)) inline float apply(float v, int64_t m, int64_t i) const {
    if (bias_bf16 != nullptr) v += static_cast<float>(bias_bf16[i]);
    if (bias_f32 != nullptr) v += bias_f32[i];
    if (b != nullptr) {
      const float* bi = b + i * r;
      const float* xm = xa + m * r;
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < r; ++j) acc += bi[j] * xm[j];
      v += acc;
    }
    return v;
  }

  // Applies the epilogue to outputs [n0, n1) of every row: in place in y (fp32 output) or
  // rounded into out (bf16 output). One function with apply() inlined: a per-element call
  // across the target-attribute boundary cost ~2 ms per decoded token.
  __attribute__((target("avx512f"))) void finish(float* y, at::BFloat16* out, int64_t m_rows,
                                                 int64_t n, int64_t n0, int64_t n1) const {
    for (int64_t m = 0; m < m_rows; ++m) {
      for (int64_t i = n0; i < n1; ++i) {
        const float v = apply(y[m * n + i], m, i);
        if (out != nullptr) {
          out[m * n + i] = static_cast<at::BFloat16>(v);
        } else {
          y[m * n + i] = v;
        }
      }
    }
  }
};

torch::Tensor small_linear_impl(const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias, const SmallLinearLora* lora,
                                torch::Dtype out_dtype) {
  const int64_t k = weight.size(1);
  const int64_t n = weight.size(0);
  const int64_t m_rows = x.numel() / k;
  torch::Tensor x_rows = x.reshape({m_rows, k}).contiguous();         // [M, K]
  // x at the weight's precision: bf16 for the dpbf16 kernel, fp32 for the fp32 one.
  torch::Tensor xw = x_rows.to(weight.scalar_type()).contiguous();    // [M, K]

  Epilogue epi;
  torch::Tensor bias_c;
  if (bias.defined()) {
    bias_c = bias.contiguous();  // [N]
    if (bias_c.scalar_type() == torch::kBFloat16) {
      epi.bias_bf16 = bias_c.data_ptr<at::BFloat16>();
    } else {
      bias_c = bias_c.to(torch::kFloat32);
      epi.bias_f32 = bias_c.data_ptr<float>();
    }
  }
  std::vector<float> xa;
  if (lora != nullptr) {
    const int64_t r = lora->a.size(0);
    const float scaling = static_cast<float>(lora->scaling);
    const float* a = lora->a.data_ptr<float>();
    xa = x_rows.scalar_type() == torch::kBFloat16
             ? lora_down(x_rows.data_ptr<at::BFloat16>(), a, m_rows, k, r, scaling)
             : lora_down(x_rows.to(torch::kFloat32).data_ptr<float>(), a, m_rows, k, r, scaling);
    epi.b = lora->b.data_ptr<float>();
    epi.xa = xa.data();
    epi.r = r;
  }

  // fp32 accumulators: the output itself for fp32, else a scratch buffer rounded into `out`.
  const bool write_bf16 = out_dtype == torch::kBFloat16;
  torch::Tensor out = torch::empty({m_rows, n}, x.options().dtype(write_bf16 ? torch::kBFloat16
                                                                             : torch::kFloat32));  // [M, N]
  std::vector<float> scratch(write_bf16 ? static_cast<size_t>(m_rows * n) : 0);
  float* yp = write_bf16 ? scratch.data() : out.data_ptr<float>();
  at::BFloat16* op = write_bf16 ? out.data_ptr<at::BFloat16>() : nullptr;
  const bool fp32_weight = weight.scalar_type() == torch::kFloat32;
  // Grain: 256 rows x K bf16 is >= 229 KB for K = 896, enough to amortise a task.
  at::parallel_for(0, n, 256, [&](int64_t n0, int64_t n1) {
    if (fp32_weight) {
      gemv_rows_f32(weight.data_ptr<float>(), xw.data_ptr<float>(), yp, m_rows, k, n, n0, n1);
    } else {
      gemv_rows(reinterpret_cast<const uint16_t*>(weight.data_ptr<at::BFloat16>()),
                reinterpret_cast<const uint16_t*>(xw.data_ptr<at::BFloat16>()), yp, m_rows, k,
                n, n0, n1);
    }
    epi.finish(yp, op, m_rows, n, n0, n1);
  });
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = n;
  out = out.view(shape);                                      // [..., N]
  return out.scalar_type() == out_dtype ? out : out.to(out_dtype);
}

}  // namespace

bool small_linear_supported(const torch::Tensor& weight) {
  static const bool cpu_ok = model::cpu_has_fast_bf16();
  return cpu_ok && weight.device().is_cpu() &&
         (weight.scalar_type() == torch::kBFloat16 || weight.scalar_type() == torch::kFloat32) &&
         weight.dim() == 2 && weight.is_contiguous();
}

bool small_linear_lora_supported(const torch::Tensor& weight, const SmallLinearLora& lora) {
  const auto ok = [](const torch::Tensor& t) {
    return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat32 &&
           t.dim() == 2 && t.is_contiguous();
  };
  return small_linear_supported(weight) && ok(lora.a) && ok(lora.b) &&
         lora.a.size(1) == weight.size(1) && lora.b.size(0) == weight.size(0) &&
         lora.b.size(1) == lora.a.size(0);
}

torch::Tensor small_linear(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias, torch::Dtype out_dtype) {
  const int64_t k = weight.size(1);
  const int64_t m_rows = x.numel() / k;
  if (!small_linear_supported(weight) || m_rows > kSmallLinearMaxRows || x.size(-1) != k ||
      !x.device().is_cpu()) {
    auto b = bias.defined() ? bias.to(weight.scalar_type()) : bias;                // [N]
    return torch::linear(x.to(weight.scalar_type()), weight, b).to(out_dtype);  // [..., N]
  }
  return small_linear_impl(x, weight, bias, nullptr, out_dtype);  // [..., N]
}

torch::Tensor small_linear(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias, const SmallLinearLora& lora,
                           torch::Dtype out_dtype) {
  const int64_t k = weight.size(1);
  TORCH_CHECK(small_linear_lora_supported(weight, lora) && x.size(-1) == k &&
                  x.numel() / k <= kSmallLinearMaxRows && x.device().is_cpu(),
              "small_linear with LoRA: unsupported shapes/dtypes (check "
              "small_linear_lora_supported first)");
  return small_linear_impl(x, weight, bias, &lora, out_dtype);  // [..., N]
}

}  // namespace eztinker::kernels
