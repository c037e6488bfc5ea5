// Fused forward/backward for the element-wise blocks of a Qwen2 layer that autograd would
// otherwise record as chains of small ops (RMSNorm, RoPE, the SiLU gate, attention's softmax). Each
// is one autograd node that saves only its inputs (at their own precision) and recomputes the
// cheap intermediates in backward, which removes the fp32 copies the op-by-op graph keeps
// alive per layer and most of its backward kernels. Values follow the op-by-op references
// (detail::rms_norm, silu(gate) * up, detail::causal_attention); tests compare both and their
// gradients.
#pragma once

#include <torch/torch.h>

namespace eztinker::model::fused {

// HF Qwen2RMSNorm: weight * to_x_dtype(x32 * rsqrt(mean(x32^2) + eps)). x: [..., H], weight: [H]
// (frozen: no gradient is produced for it) -> [..., H] in x's dtype. Saves x and the [...]
// fp32 inverse RMS.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// silu(gate) * up for the SiLU-gated MLP. gate, up: [..., I], same dtype -> [..., I]. Saves
// gate and up; sigmoid is recomputed in fp32 in backward.
torch::Tensor silu_mul(const torch::Tensor& gate, const torch::Tensor& up);

// detail::causal_attention (GQA, fp32 softmax, probabilities rounded to v's dtype for the
// product) with the softmax and its backward as attention_kernels passes. With gradients it is
// one node that saves q, k, v, the bias and the scores q k^T (in q's dtype) and recomputes the
// probabilities from the scores in backward, instead of keeping the fp32 and bf16 [B, H, T, S]
// probabilities of every layer alive until backward (5.5 MB per layer at T = S = 256, against
// 1.8 MB of bf16 scores); without gradients, it is the forward alone.
// q: [B, H, T, D]; k, v: [B, KV, S, D]; bias: [B or 1, 1, T, S] fp32, or undefined for the
// causal mask over the last T of S positions -> [B, H, T, D].
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias);

// detail::rope (x * cos + rotate_half(x) * sin, cos and sin rounded to x's dtype) as
// rope_kernels passes where they run: with gradients one node that saves only cos and sin (the
// map is linear in x); without, the forward alone. Elsewhere detail::rope's op chain.
// x: [B, T, heads, D]; cos, sin: [B, T, D] (fp32 or x's dtype) -> [B, T, heads, D] in x's dtype.
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace eztinker::model::fused
