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

// One row: returns the log-sum-exp; with write_gradient, overwrites the row with its softmax.
EZTINKER_AVX512 float row_logsumexp(c10::BFloat16* row, int64_t vocab, bool write_gradient) {
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < vocab; i += 16) {
    const __mmask16 m = lanes(vocab - i);
    vmax = _mm512_mask_max_ps(vmax, m, vmax, load16(row + i, m));
  }
  const float row_max = _mm512_reduce_max_ps(vmax);
  const __m512 shift = _mm512_set1_ps(row_max);
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t i = 0; i < vocab; i += 16) {
    const __mmask16 m = lanes(vocab - i);
    const __m512 e = exp16(_mm512_sub_ps(load16(row + i, m), shift));
    vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
  }
  const float sum = _mm512_reduce_add_ps(vsum);
  if (write_gradient) {
    const __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (int64_t i = 0; i < vocab; i += 16) {
      const __mmask16 m = lanes(vocab - i);
      const __m512 e = exp16(_mm512_sub_ps(load16(row + i, m), shift));
      store16(row + i, _mm512_mul_ps(e, inv), m);
    }
  }
  return row_max + std::log(sum);
}

}  // namespace

bool supported(const torch::Tensor& logits) {
  static const bool cpu_ok = model::cpu_has_fast_bf16();
  return cpu_ok && logits.device().is_cpu() && logits.dim() == 2 && logits.is_contiguous() &&
         logits.scalar_type() == torch::kBFloat16;
}

void target_logprobs(torch::Tensor& logits, const torch::Tensor& targets, torch::Tensor logprobs,
                     bool write_gradient) {
  TORCH_CHECK(supported(logits) && targets.dim() == 1 && targets.size(0) == logits.size(0) &&
                  targets.scalar_type() == torch::kLong && logprobs.numel() == logits.size(0) &&
                  logprobs.scalar_type() == torch::kFloat32,
              "lm_head_kernels::target_logprobs: unsupported tensors");
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  torch::Tensor t = targets.contiguous();
  torch::Tensor out = logprobs.is_contiguous() ? logprobs : logprobs.contiguous();
  const int64_t* tp = t.data_ptr<int64_t>();
  float* op = out.data_ptr<float>();
  c10::BFloat16* base = logits.data_ptr<c10::BFloat16>();
  for (int64_t i = 0; i < rows; ++i) {
    TORCH_CHECK(tp[i] >= 0 && tp[i] < vocab, "target ", tp[i], " outside the vocabulary of ", vocab);
  }
  at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      c10::BFloat16* row = base + r * vocab;
      const float target_logit = static_cast<float>(row[tp[r]]);
      const float lse = row_logsumexp(row, vocab, write_gradient);
      op[r] = target_logit - lse;
      if (write_gradient) {
        // softmax - onehot at the target, from the unrounded probability (as the fp32 path).
        row[tp[r]] = static_cast<c10::BFloat16>(std::exp(target_logit - lse) - 1.0f);
      }
    }
  });
  if (!out.is_same(logprobs)) logprobs.copy_(out);
}

}  // namespace eztinker::train::lm_head_kernels
