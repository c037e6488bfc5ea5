// Target log-probabilities from bf16 lm_head logits computed one vocabulary slice at a time,
// as AVX-512 passes over the bf16 values themselves (CPUs with avx512_bf16). The lm_head GEMM
// runs per slice of a few thousand vocabulary rows (measured at 256 x 896 x 151936: ~170 ms in
// 4096-8192-row slices against ~197 ms as one call, whose weight re-layout streams all 272 MB),
// and each slice's logits are folded into a running log-sum-exp while they are still in cache.
// For training, softmax - onehot is then written back over the full logits in one pass (the
// operand the gradient GEMM takes). The op-by-op version widened logits to an fp32 copy and
// made five fp32 passes over it plus a narrowing copy (~40 MB each at 128 x 151936 logits).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace eztinker::train::lm_head_kernels {

// True for CPU bf16 logits on a CPU with avx512_bf16 (the layout is checked per call).
bool supported(const torch::Tensor& logits);

// Per row: the target, the largest logit seen so far, the sum of exp(logit - max) over the
// slices seen so far, and the target's logit once its slice has been seen.
struct RunningLogSumExp {
  // targets: [r] int64 in [0, vocab), checked here once for all slices.
  RunningLogSumExp(const torch::Tensor& targets, int64_t vocab);
  torch::Tensor targets;  // [r] int64, contiguous
  int64_t vocab = 0;
  std::vector<float> max;
  std::vector<float> sum;
  std::vector<float> target_logit;
  // log sum_v exp(logit_v) of one row, over the slices accumulated so far.
  float logsumexp(int64_t row) const;
};

// slice: [r, S] bf16 with unit column stride (its row stride may be larger: a column slice of
// [r, V] logits), the logits of vocabulary entries [slice_start, slice_start + S). Folds it
// into `running`.
void accumulate(const torch::Tensor& slice, int64_t slice_start, RunningLogSumExp& running);

// logits: [r, V] bf16 contiguous, all slices folded into `running`. Overwrites each row with
// bf16(softmax(row) - onehot(target)); the target entry from the unrounded probability.
void write_softmax_minus_onehot(torch::Tensor& logits, const RunningLogSumExp& running);

}  // namespace eztinker::train::lm_head_kernels
