// Training objectives over target-token log-probabilities, and the chunked lm_head that produces
// those log-probabilities without materialising [positions, vocab] fp32 logits all at once.
// Semantics follow shared/docs/wire-protocol.md: per-token weights multiply the per-token loss,
// "mean" = sum(w * loss) / sum(w over non-ignored positions), "sum" = sum(w * loss). The RL
// losses mirror Tinker's `importance_sampling` and `ppo` (ratio = exp(logp - sampler_logp)).
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace eztinker::train {

enum class LossKind { kCrossEntropy, kFocal, kImportanceSampling, kPpo };

struct LossOptions {
  LossKind kind = LossKind::kCrossEntropy;
  bool reduction_sum = false;  // false = mean over the (weighted) non-ignored positions
  double focal_alpha = 0.25;   // focal: alpha * (1 - p)^gamma * (-log p)
  double focal_gamma = 2.0;
  double clip_low = 0.8;  // ppo: ratio clipped to [clip_low, clip_high]
  double clip_high = 1.2;
};

// Per-position inputs of a loss, flattened over the batch (N = number of predicted positions).
struct LossInputs {
  torch::Tensor logprobs;          // [N] fp32, log p(target) under the model (differentiable)
  torch::Tensor weights;           // [N] fp32, 0 where the position is ignored
  torch::Tensor mask;              // [N] bool, true where the position carries loss
  torch::Tensor advantages;        // [N] fp32; RL losses only
  torch::Tensor sampler_logprobs;  // [N] fp32; RL losses only (log q(target) of the sampler)
};

// Default row count of one lm_head chunk: keeps one chunk's fp32 logits near 128 MB.
int64_t default_chunk_rows(int64_t vocab_size);

// Default vocabulary rows per lm_head GEMM call on the bf16 kernel path: ~8 MiB of weight.
int64_t default_vocab_slice_rows(const torch::Tensor& lm_head_weight);

// log p(targets[i] | hidden[i]) for every row, computing the lm_head in row chunks (and on the
// bf16 kernel path in vocabulary slices of `vocab_slice_rows` within a chunk; 0 = default).
//   hidden: [N, H] (model dtype), lm_head_weight: [V, H] (model dtype, frozen),
//   targets: [N] int64 in [0, V). Returns [N] fp32.
// Differentiable with respect to `hidden` only (the lm_head is frozen). When `hidden` requires
// grad, the forward pass also stores d logp_i / d hidden_i = W[t_i] - softmax_i @ W ([N, H]),
// so backward is one broadcast multiply and no chunk is recomputed.
torch::Tensor target_logprobs(const torch::Tensor& hidden,
                              const torch::Tensor& lm_head_weight,
                              const torch::Tensor& targets,
                              int64_t chunk_rows = 0,
                              int64_t vocab_slice_rows = 0);

// Per-position loss before weighting: [N] fp32 (differentiable through inputs.logprobs).
torch::Tensor per_token_loss(const LossInputs& inputs, const LossOptions& options);

// The reduced scalar loss (fp32). A batch whose weights sum to zero gives 0 (not NaN) under
// "mean", so a fully masked batch is a no-op for the gradients.
torch::Tensor reduce_loss(const LossInputs& inputs, const LossOptions& options);

}  // namespace eztinker::train
