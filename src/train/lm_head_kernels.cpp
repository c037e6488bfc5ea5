// See lm_head_kernels.h.
#include "train/lm_head_kernels.h"

#include "model/avx512_util.h"
#include "model/dtype.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>

namespace eztinker::train::lm_head_kernels {

namespace {

using avx512::exp16;
using avx512::lanes;
using avx512::load16;
using avx512::store16;

EZTINKER_AVX512 float row_max(const c10::BFloat16* row, int64_t n) {
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    vmax = _mm512_mask_max_ps(vmax, m, vmax, load16(row + i, m));
  }
  return _mm512_reduce_max_ps(vmax);
}

// sum_i exp(row[i] - shift)
EZTINKER_AVX512 float row_sum_exp(const c10::BFloat16* row, int64_t n, float shift) {
  const __m512 vshift = _mm512_set1_ps(shift);
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    vsum = _mm512_mask_add_ps(vsum, m, vsum, exp16(_mm512_sub_ps(load16(row + i, m), vshift)));
  }
  return _mm512_reduce_add_ps(vsum);
}

// row[i] = exp(row[i] - shift), rounded to bf16.
EZTINKER_AVX512 void row_exp_in_place(c10::BFloat16* row, int64_t n, float shift) {
  const __m512 vshift = _mm512_set1_ps(shift);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    store16(row + i, exp16(_mm512_sub_ps(load16(row + i, m), vshift)), m);
  }
}

}  // namespace

bool supported(const torch::Tensor& logits) {
  static const bool cpu_ok = model::cpu_has_fast_bf16();
  return cpu_ok && logits.device().is_cpu() && logits.dim() == 2 &&
         logits.scalar_type() == torch::kBFloat16;
}

RunningLogSumExp::RunningLogSumExp(const torch::Tensor& targets_in, int64_t vocab_size)
    : targets(targets_in.contiguous()), vocab(vocab_size) {
  TORCH_CHECK(targets.dim() == 1 && targets.scalar_type() == torch::kLong,
              "lm_head_kernels: targets must be [r] int64");
  const int64_t rows = targets.size(0);
  const int64_t* tp = targets.data_ptr<int64_t>();
  for (int64_t i = 0; i < rows; ++i) {
    TORCH_CHECK(tp[i] >= 0 && tp[i] < vocab, "target ", tp[i], " outside the vocabulary of ", vocab);
  }
  max.assign(static_cast<size_t>(rows), -std::numeric_limits<float>::infinity());
  sum.assign(static_cast<size_t>(rows), 0.0f);
  target_logit.assign(static_cast<size_t>(rows), std::numeric_limits<float>::quiet_NaN());
}

float RunningLogSumExp::logsumexp(int64_t row) const {
  return max[static_cast<size_t>(row)] + std::log(sum[static_cast<size_t>(row)]);
}

void accumulate(const torch::Tensor& slice, int64_t slice_start, RunningLogSumExp& running) {
  const int64_t rows = slice.size(0), width = slice.size(1);
  TORCH_CHECK(supported(slice) && slice.stride(1) == 1 && slice.stride(0) >= width &&
                  static_cast<int64_t>(running.max.size()) == rows &&
                  slice_start + width <= running.vocab,
              "lm_head_kernels::accumulate: expected [r, S] bf16 with unit column stride inside "
              "the vocabulary");
  const int64_t* tp = running.targets.data_ptr<int64_t>();
  const int64_t row_stride = slice.stride(0);
  const c10::BFloat16* base = slice.data_ptr<c10::BFloat16>();
  at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const c10::BFloat16* row = base + r * row_stride;
      const size_t i = static_cast<size_t>(r);
      // Two passes over the slice's row (in L1): its max, then exp against the new running max;
      // the earlier sum is rescaled to that max once per slice.
      const float new_max = std::max(running.max[i], row_max(row, width));
      const float rescale = running.sum[i] > 0.0f ? std::exp(running.max[i] - new_max) : 0.0f;
      running.sum[i] = running.sum[i] * rescale + row_sum_exp(row, width, new_max);
      running.max[i] = new_max;
      const int64_t t = tp[r] - slice_start;
      if (t >= 0 && t < width) running.target_logit[i] = static_cast<float>(row[t]);
    }
  });
}

void write_softmax_minus_onehot(torch::Tensor& logits, const RunningLogSumExp& running) {
  TORCH_CHECK(supported(logits) && logits.is_contiguous() &&
                  static_cast<int64_t>(running.max.size()) == logits.size(0) &&
                  logits.size(1) == running.vocab,
              "lm_head_kernels::write_softmax_minus_onehot: expected [r, V] contiguous bf16");
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  const int64_t* tp = running.targets.data_ptr<int64_t>();
  c10::BFloat16* base = logits.data_ptr<c10::BFloat16>();
  at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float lse = running.logsumexp(r);
      row_exp_in_place(base + r * vocab, vocab, lse);  // softmax
      // softmax - onehot at the target, from the unrounded probability (as the fp32 path).
      base[r * vocab + tp[r]] =
          static_cast<c10::BFloat16>(std::exp(running.target_logit[static_cast<size_t>(r)] - lse) - 1.0f);
    }
  });
}

}  // namespace eztinker::train::lm_head_kernels
