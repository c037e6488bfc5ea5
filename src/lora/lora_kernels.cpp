// See lora_kernels.h. AVX-512 register-blocked loops (fp32 FMAs; bf16 inputs widened exactly on
// load, bf16 outputs rounded to nearest-even once), used on CPUs with avx512_bf16 (the ones the
// bf16 fast path targets); elsewhere torch::mm.
#include "lora/lora_kernels.h"

#include "model/avx512_util.h"
#include "model/dtype.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace eztinker::lora::kernels {

namespace {

using avx512::lanes;
using avx512::load16;
using avx512::store16;

// rows_dot for a block of RN rows of x and RJ rows of p: RN x RJ fp32 sums, one pass over L.
template <int RN, int RJ, typename in_t>
EZTINKER_AVX512 inline void rows_dot_block(const in_t* x, const float* p, float* out, int64_t L,
                                           int64_t R, float scale, int64_t n, int64_t j) {
  __m512 acc[RN][RJ];
  EZTINKER_UNROLL
  for (int a = 0; a < RN; ++a) {
    EZTINKER_UNROLL
    for (int b = 0; b < RJ; ++b) acc[a][b] = _mm512_setzero_ps();
  }
  for (int64_t l = 0; l < L; l += 16) {
    const __mmask16 m = lanes(L - l);
    __m512 pv[RJ];
    EZTINKER_UNROLL
    for (int b = 0; b < RJ; ++b) pv[b] = load16(p + (j + b) * L + l, m);
    EZTINKER_UNROLL
    for (int a = 0; a < RN; ++a) {
      const __m512 xv = load16(x + (n + a) * L + l, m);
      EZTINKER_UNROLL
      for (int b = 0; b < RJ; ++b) acc[a][b] = _mm512_fmadd_ps(xv, pv[b], acc[a][b]);
    }
  }
  EZTINKER_UNROLL
  for (int a = 0; a < RN; ++a) {
    EZTINKER_UNROLL
    for (int b = 0; b < RJ; ++b) out[(n + a) * R + j + b] = _mm512_reduce_add_ps(acc[a][b]) * scale;
  }
}

template <int RN, typename in_t>
EZTINKER_AVX512 inline void rows_dot_rows(const in_t* x, const float* p, float* out, int64_t L,
                                          int64_t R, float scale, int64_t n) {
  int64_t j = 0;
  for (; j + 4 <= R; j += 4) rows_dot_block<RN, 4>(x, p, out, L, R, scale, n, j);
  for (; j < R; ++j) rows_dot_block<RN, 1>(x, p, out, L, R, scale, n, j);
}

template <typename in_t>
EZTINKER_AVX512 void rows_dot_range(const in_t* x, const float* p, float* out, int64_t L,
                                    int64_t R, float scale, int64_t n0, int64_t n1) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) rows_dot_rows<4>(x, p, out, L, R, scale, n);
  for (; n < n1; ++n) rows_dot_rows<1>(x, p, out, L, R, scale, n);
}

// add_rows_times for RN rows of y and 32 columns from l (ranks above 8): the rows share each
// load of p.
template <int RN, typename out_t>
EZTINKER_AVX512 inline void add_rows_times_block(out_t* y, const float* u, const float* p,
                                                 int64_t L, int64_t R, int64_t n, int64_t l) {
  const __mmask16 m0 = lanes(L - l), m1 = lanes(L - l - 16);
  __m512 acc[RN][2];
  EZTINKER_UNROLL
  for (int a = 0; a < RN; ++a) {
    acc[a][0] = load16(y + (n + a) * L + l, m0);
    acc[a][1] = load16(y + (n + a) * L + l + 16, m1);
  }
  for (int64_t j = 0; j < R; ++j) {
    const __m512 p0 = load16(p + j * L + l, m0);
    const __m512 p1 = load16(p + j * L + l + 16, m1);
    EZTINKER_UNROLL
    for (int a = 0; a < RN; ++a) {
      const __m512 uv = _mm512_set1_ps(u[(n + a) * R + j]);
      acc[a][0] = _mm512_fmadd_ps(uv, p0, acc[a][0]);
      acc[a][1] = _mm512_fmadd_ps(uv, p1, acc[a][1]);
    }
  }
  EZTINKER_UNROLL
  for (int a = 0; a < RN; ++a) {
    store16(y + (n + a) * L + l, acc[a][0], m0);
    store16(y + (n + a) * L + l + 16, acc[a][1], m1);
  }
}

// add_rows_times for ranks R <= 8: per block of 32 columns, the R x 32 slice of p stays in
// registers while the rows stream by (2 loads, R broadcasts, 2R FMAs and 2 stores per row).
// The row blocks below reload p from L2 for every 4 rows: 256 x 4864 at r = 8 took 0.265 ms
// that way and 0.120 ms this way (`eztinker bench --rows kernels`, 3 alternated runs).
template <int R, typename out_t>
EZTINKER_AVX512 void add_rows_times_columns(out_t* y, const float* u, const float* p, int64_t L,
                                            int64_t n0, int64_t n1) {
  for (int64_t l = 0; l < L; l += 32) {
    const __mmask16 m0 = lanes(L - l), m1 = lanes(L - l - 16);
    __m512 p0[R], p1[R];
    EZTINKER_UNROLL
    for (int j = 0; j < R; ++j) {
      p0[j] = load16(p + j * L + l, m0);
      p1[j] = load16(p + j * L + l + 16, m1);
    }
    for (int64_t n = n0; n < n1; ++n) {
      __m512 acc0 = load16(y + n * L + l, m0);
      __m512 acc1 = load16(y + n * L + l + 16, m1);
      EZTINKER_UNROLL
      for (int j = 0; j < R; ++j) {
        const __m512 uv = _mm512_set1_ps(u[n * R + j]);
        acc0 = _mm512_fmadd_ps(uv, p0[j], acc0);
        acc1 = _mm512_fmadd_ps(uv, p1[j], acc1);
      }
      store16(y + n * L + l, acc0, m0);
      store16(y + n * L + l + 16, acc1, m1);
    }
  }
}

template <typename out_t>
EZTINKER_AVX512 void add_rows_times_range(out_t* y, const float* u, const float* p, int64_t L,
                                          int64_t R, int64_t n0, int64_t n1) {
  if (R <= 8) {
    switch (R) {
      case 1: add_rows_times_columns<1>(y, u, p, L, n0, n1); return;
      case 2: add_rows_times_columns<2>(y, u, p, L, n0, n1); return;
      case 3: add_rows_times_columns<3>(y, u, p, L, n0, n1); return;
      case 4: add_rows_times_columns<4>(y, u, p, L, n0, n1); return;
      case 5: add_rows_times_columns<5>(y, u, p, L, n0, n1); return;
      case 6: add_rows_times_columns<6>(y, u, p, L, n0, n1); return;
      case 7: add_rows_times_columns<7>(y, u, p, L, n0, n1); return;
      default: add_rows_times_columns<8>(y, u, p, L, n0, n1); return;
    }
  }
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) {
    for (int64_t l = 0; l < L; l += 32) add_rows_times_block<4>(y, u, p, L, R, n, l);
  }
  for (; n < n1; ++n) {
    for (int64_t l = 0; l < L; l += 32) add_rows_times_block<1>(y, u, p, L, R, n, l);
  }
}

// columns_dot for RJ rank columns of u and 32 columns of x from l, summed over all N rows.
template <int RJ, typename in_t>
EZTINKER_AVX512 inline void columns_dot_block(const float* u, const in_t* x, float* out,
                                              int64_t N, int64_t L, int64_t R, int64_t j,
                                              int64_t l) {
  const __mmask16 m0 = lanes(L - l), m1 = lanes(L - l - 16);
  __m512 acc[RJ][2];
  EZTINKER_UNROLL
  for (int b = 0; b < RJ; ++b) acc[b][0] = acc[b][1] = _mm512_setzero_ps();
  for (int64_t n = 0; n < N; ++n) {
    const __m512 x0 = load16(x + n * L + l, m0);
    const __m512 x1 = load16(x + n * L + l + 16, m1);
    EZTINKER_UNROLL
    for (int b = 0; b < RJ; ++b) {
      const __m512 uv = _mm512_set1_ps(u[n * R + j + b]);
      acc[b][0] = _mm512_fmadd_ps(uv, x0, acc[b][0]);
      acc[b][1] = _mm512_fmadd_ps(uv, x1, acc[b][1]);
    }
  }
  EZTINKER_UNROLL
  for (int b = 0; b < RJ; ++b) {
    store16(out + (j + b) * L + l, acc[b][0], m0);
    store16(out + (j + b) * L + l + 16, acc[b][1], m1);
  }
}

template <typename in_t>
EZTINKER_AVX512 void columns_dot_range(const float* u, const in_t* x, float* out, int64_t N,
                                       int64_t L, int64_t R, int64_t c0, int64_t c1) {
  for (int64_t l = c0; l < c1; l += 32) {
    int64_t j = 0;
    for (; j + 8 <= R; j += 8) columns_dot_block<8>(u, x, out, N, L, R, j, l);
    for (; j < R; ++j) columns_dot_block<1>(u, x, out, N, L, R, j, l);
  }
}

// The loops need AVX-512 with bf16 conversions (the CPUs the bf16 fast path targets).
bool cpu_ok() {
  static const bool ok = model::cpu_has_fast_bf16();
  return ok;
}

// CPU, 2-D, contiguous, fp32 or bf16 (what the loops take), on a CPU they run on.
bool loop_input(const torch::Tensor& t) {
  return cpu_ok() && t.device().is_cpu() && t.dim() == 2 && t.is_contiguous() &&
         (t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kBFloat16);
}

bool loop_f32(const torch::Tensor& t) {
  return loop_input(t) && t.scalar_type() == torch::kFloat32;
}

// Grain (items of the parallel dimension) so that a task holds at least ~64 K multiply-adds.
int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, work_per_item));
}

}  // namespace

torch::Tensor rows_dot(const torch::Tensor& x, const torch::Tensor& p, double scale) {
  TORCH_CHECK(x.dim() == 2 && p.dim() == 2 && x.size(1) == p.size(1),
              "lora::kernels::rows_dot: x ", x.sizes(), " and p ", p.sizes(), " do not match");
  const int64_t N = x.size(0), L = x.size(1), R = p.size(0);
  torch::Tensor xc = x.contiguous(), pc = p.contiguous();
  if (!loop_input(xc) || !loop_f32(pc)) {
    return torch::mm(xc.to(pc.scalar_type()), pc.t()).mul_(scale);  // [N, R]
  }
  torch::Tensor out = torch::empty({N, R}, p.options());  // [N, R] fp32
  const float s = static_cast<float>(scale);
  float* op = out.data_ptr<float>();
  const float* pp = pc.data_ptr<float>();
  at::parallel_for(0, N, grain_for(L * R), [&](int64_t n0, int64_t n1) {
    if (xc.scalar_type() == torch::kBFloat16) {
      rows_dot_range(xc.data_ptr<at::BFloat16>(), pp, op, L, R, s, n0, n1);
    } else {
      rows_dot_range(xc.data_ptr<float>(), pp, op, L, R, s, n0, n1);
    }
  });
  return out;
}

void add_rows_times(torch::Tensor& y, const torch::Tensor& u, const torch::Tensor& p) {
  TORCH_CHECK(y.dim() == 2 && u.dim() == 2 && p.dim() == 2 && y.size(0) == u.size(0) &&
                  u.size(1) == p.size(0) && y.size(1) == p.size(1),
              "lora::kernels::add_rows_times: y ", y.sizes(), ", u ", u.sizes(), " and p ",
              p.sizes(), " do not match");
  const int64_t N = y.size(0), L = y.size(1), R = p.size(0);
  torch::Tensor uc = u.contiguous(), pc = p.contiguous();
  if (!loop_input(y) || !loop_f32(uc) || !loop_f32(pc)) {
    y.add_(torch::mm(uc, pc));  // [N, L]
    return;
  }
  const float* up = uc.data_ptr<float>();
  const float* pp = pc.data_ptr<float>();
  at::parallel_for(0, N, grain_for(L * R), [&](int64_t n0, int64_t n1) {
    if (y.scalar_type() == torch::kBFloat16) {
      add_rows_times_range(y.data_ptr<at::BFloat16>(), up, pp, L, R, n0, n1);
    } else {
      add_rows_times_range(y.data_ptr<float>(), up, pp, L, R, n0, n1);
    }
  });
}

torch::Tensor columns_dot(const torch::Tensor& u, const torch::Tensor& x) {
  TORCH_CHECK(u.dim() == 2 && x.dim() == 2 && u.size(0) == x.size(0),
              "lora::kernels::columns_dot: u ", u.sizes(), " and x ", x.sizes(), " do not match");
  const int64_t N = x.size(0), L = x.size(1), R = u.size(1);
  torch::Tensor uc = u.contiguous(), xc = x.contiguous();
  if (!loop_f32(uc) || !loop_input(xc)) return torch::mm(uc.t(), xc.to(uc.scalar_type()));  // [R, L]
  torch::Tensor out = torch::empty({R, L}, u.options());  // [R, L] fp32
  const float* up = uc.data_ptr<float>();
  float* op = out.data_ptr<float>();
  // Parallel over columns in multiples of 32 (each task sums over all N rows of its columns).
  const int64_t blocks = (L + 31) / 32;
  at::parallel_for(0, blocks, grain_for(32 * N * R), [&](int64_t b0, int64_t b1) {
    const int64_t c0 = b0 * 32, c1 = std::min(L, b1 * 32);
    if (xc.scalar_type() == torch::kBFloat16) {
      columns_dot_range(up, xc.data_ptr<at::BFloat16>(), op, N, L, R, c0, c1);
    } else {
      columns_dot_range(up, xc.data_ptr<float>(), op, N, L, R, c0, c1);
    }
  });
  return out;
}

}  // namespace eztinker::lora::kernels
