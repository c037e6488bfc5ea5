// Rotary position embedding (Qwen2 / HF rotate_half layout) and its backward as AVX-512 passes
// over each head vector, for CPUs with avx512_bf16 (fp32 or bf16; elsewhere detail::rope's op
// chain). The chain (cos and sin cast to x's dtype, two narrows, a negation, a cat, two
// products and a sum) recorded five autograd nodes per call, whose backward added slice-
// backward zero fills and a cat; for q and k of 24 layers ~20 ms of a LoRA training step at
// 1 x 256 (issue 7).
// Roundings follow detail::rope: cos and sin are rounded to x's dtype, each product and the
// sum are rounded to it.
#pragma once

#include <torch/torch.h>

namespace eztinker::model::rope_kernels {

// True when the kernels take these tensors: CPU with avx512_bf16, x fp32 or bf16 of shape
// [B, T, heads, D] with D even, cos and sin fp32 [B, T, D].
bool supported(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2]).
// x: [B, T, heads, D] -> [B, T, heads, D] in x's dtype.
torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// d x = grad * cos + rotate_half^T(grad * sin), rotate_half^T(y) = cat(y[..., D/2:],
// -y[..., :D/2]), in fp32 and rounded once (cos and sin rounded to x's dtype as in forward).
// grad: [B, T, heads, D] (any floating dtype) -> [B, T, heads, D] in `dtype`.
torch::Tensor backward(const torch::Tensor& grad, const torch::Tensor& cos, const torch::Tensor& sin,
                       torch::Dtype dtype);

}  // namespace eztinker::model::rope_kernels
