// Qwen2's RMSNorm and its backward as AVX-512 passes over each row, for CPUs with avx512_bf16
// (fp32 or bf16 rows; elsewhere fused_ops and inference_ops keep the op chain). The training
// node's op chain (a widened copy, square, mean, rsqrt, two products; in backward two widened
// copies, four products, a mean and a subtraction) made ~12 passes over fp32 [T, H] copies:
// ~0.45 ms backward and ~0.3 ms forward per norm at 256 x 896, ~45 ms of a LoRA training step
// over the 49 norms of Qwen2-0.5B (issue 7).
// Roundings follow detail::rms_norm: x * inv_rms is rounded to x's dtype before the weight
// multiplies it; sums run in fp32 (16 lanes, then across them).
#pragma once

#include <torch/torch.h>

#include <utility>

namespace eztinker::model::rms_norm_kernels {

// True when the kernels take these tensors: CPU with avx512_bf16, x and weight of one dtype
// (fp32 or bf16), weight [H] for x [..., H].
bool supported(const torch::Tensor& x, const torch::Tensor& weight);

// {weight * to_x_dtype(x32 * inv_rms), inv_rms} with inv_rms = rsqrt(mean(x32^2) + eps) per
// row. x: [..., H], weight: [H] -> {[..., H] in x's dtype, [...] fp32}.
std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& weight,
                                                double eps);

// d x = inv_rms * (dn - xhat * mean(dn * xhat)), dn = grad * weight, xhat = x32 * inv_rms, in
// fp32 and rounded once to x's dtype (the rounding of xhat in the forward is treated as the
// identity, as autograd does). grad: [..., H] (any floating dtype), inv_rms: [...] fp32 from
// forward() -> [..., H] in x's dtype.
torch::Tensor backward(const torch::Tensor& grad, const torch::Tensor& x,
                       const torch::Tensor& weight, const torch::Tensor& inv_rms);

}  // namespace eztinker::model::rms_norm_kernels
