// Shared AVX-512 helpers for the CPU kernels (lora_kernels, silu_kernels, losses): 16-lane loads
// that widen bf16 exactly, stores that round to bf16 nearest-even, lane masks for row tails, exp.
// Only for code compiled with EZTINKER_AVX512 and run where model::cpu_has_fast_bf16() is true.
#pragma once

#include <c10/util/BFloat16.h>
// GCC 12's AVX-512 intrinsics trip -W(maybe-)uninitialized inside its own header (the masked
// forms' `__Y` placeholder) where they are inlined, i.e. in the including file: off for it.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>

#define EZTINKER_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// Before each loop over a compile-time register block (acc[RN][RJ], wv[R] and the like). GCC 12
// keeps such arrays of __m512 in stack memory, a store and a reload around every FMA, unless
// the loops indexing them are unrolled early (this pragma), before scalar replacement of
// aggregates; its own complete unrolling of the constant loops comes too late for it. The LoRA
// kernels ran at 80-85 GFLOP/s with the spills and 155-165 without (issue 7).
#define EZTINKER_UNROLL _Pragma("GCC unroll 16")

namespace eztinker::avx512 {

// The first min(count, 16) lanes; none for count <= 0 (the second half of a 32-wide block
// past the end of a row).
EZTINKER_AVX512 inline __mmask16 lanes(int64_t count) {
  if (count <= 0) return 0;
  return count >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << count) - 1);
}

// 16 lanes from p (fp32, or bf16 widened exactly); lanes outside `mask` read as 0.
EZTINKER_AVX512 inline __m512 load16(const float* p, __mmask16 mask) {
  return _mm512_maskz_loadu_ps(mask, p);
}
EZTINKER_AVX512 inline __m512 load16(const c10::BFloat16* p, __mmask16 mask) {
  const __m256i bits = _mm256_maskz_loadu_epi16(mask, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

// Stores the lanes of v inside `mask` (bf16: rounded to nearest-even).
EZTINKER_AVX512 inline void store16(float* p, __m512 v, __mmask16 mask) {
  _mm512_mask_storeu_ps(p, mask, v);
}
EZTINKER_AVX512 inline void store16(c10::BFloat16* p, __m512 v, __mmask16 mask) {
  _mm256_mask_storeu_epi16(p, mask, (__m256i)_mm512_cvtneps_pbh(v));
}

// v as it reads after a store to scalar_t and a load back (the rounding a reference op chain
// applies between two ops).
EZTINKER_AVX512 inline __m512 round_as(__m512 v, const float*) { return v; }
EZTINKER_AVX512 inline __m512 round_as(__m512 v, const c10::BFloat16*) {
  const __m256i bits = (__m256i)_mm512_cvtneps_pbh(v);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

// e^x per lane, a Cephes-style polynomial: max error ~2 ulp on fp32 (far below the bf16
// rounding that usually follows); vscalefps applies 2^n and yields 0 and inf for large |x|.
// x = n ln2 + r with |r| <= ln2 / 2, e^r by a degree-6 polynomial, times 2^n.
EZTINKER_AVX512 inline __m512 exp16(__m512 x) {
  // Clamped to where 2^n is inf (above) or 0 (below: e^-120 underflows even as a denormal), so
  // a masked score (a huge negative) gives exactly 0, as std::exp does.
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(100.0f)), _mm512_set1_ps(-120.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x - n ln2, with ln2 split in two parts so that n * ln2_hi is exact.
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  // e^r = 1 + r + r^2 * p(r)
  const __m512 er = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(r, r), p, r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(er, n);
}

}  // namespace eztinker::avx512
