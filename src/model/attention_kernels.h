// The element-wise part of attention for prompts and training (T > 1 queries): the scaled,
// masked softmax over the scores and its backward, as one AVX-512 pass per row over the
// scores in their own dtype (CPUs with avx512_bf16; elsewhere the op chain, same formulas).
// The op chain it replaces (widen to fp32, scale, add a materialised [T, S] bias, softmax,
// narrow; in backward widen, multiply, sum, subtract, two products, narrow) made ~13 passes
// over fp32 [H, T, S] tensors per layer: 0.6 ms forward and 3.6 ms backward per layer at
// T = S = 256, 14 heads (python3-torch 1.13, this VM), ~7% of a LoRA training step.
#pragma once

#include <torch/torch.h>

namespace eztinker::model::attention_kernels {

// probs = softmax(scores * scale + bias) over the last dimension, computed in fp32 and
// returned in `out_dtype`.
//   scores: [B, KV, G*T, S] (q k^T, in q's dtype; G query heads share one kv head, each
//           taking T consecutive rows),
//   bias:   [B or 1, 1, T, S] fp32 (detail::attention_bias), or undefined for the plain causal
//           mask: query t sees keys j <= S - T + t (masked keys get probability 0).
// Returns [B, KV, G*T, S].
torch::Tensor softmax(const torch::Tensor& scores, const torch::Tensor& bias, int64_t T,
                      double scale, torch::Dtype out_dtype);

// d scores = p * (d p - sum_j(d p_j * p_j)) * scale, with p recomputed from `scores` as
// softmax() does; grad_probs: [B, KV, G*T, S] (grad_out v^T). Returns d scores in the scores'
// dtype, [B, KV, G*T, S].
torch::Tensor softmax_backward(const torch::Tensor& grad_probs, const torch::Tensor& scores,
                               const torch::Tensor& bias, int64_t T, double scale);

}  // namespace eztinker::model::attention_kernels
