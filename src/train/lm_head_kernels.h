// Target log-probabilities from one chunk of bf16 lm_head logits, as AVX-512 passes over the
// bf16 rows themselves (CPUs with avx512_bf16): row max, sum of exponentials, and for training
// softmax - onehot written back over the logits in bf16 (the operand the gradient GEMM takes).
// The op-by-op version widened the chunk to an fp32 copy and made five fp32 passes over it plus
// a narrowing copy (~40 MB each at 128 x 151936 logits).
#pragma once

#include <torch/torch.h>

namespace eztinker::train::lm_head_kernels {

// True for CPU, contiguous, 2-D bf16 logits on a CPU with avx512_bf16.
bool supported(const torch::Tensor& logits);

// logits: [r, V] bf16 (the lm_head output, rounded as the GEMM returns it), targets: [r] int64
// in [0, V), logprobs: [r] fp32 (written): logprobs[i] = logits[i, t_i] - logsumexp(logits[i])
// in fp32. With write_gradient, logits[i] becomes bf16(softmax(logits[i]) - onehot(t_i)).
void target_logprobs(torch::Tensor& logits, const torch::Tensor& targets, torch::Tensor logprobs,
                     bool write_gradient);

}  // namespace eztinker::train::lm_head_kernels
