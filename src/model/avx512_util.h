// Shared AVX-512 helpers for the CPU kernels (lora_kernels, silu_kernels): 16-lane loads that
// widen bf16 exactly, stores that round to bf16 nearest-even, and lane masks for row tails.
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

}  // namespace eztinker::avx512
