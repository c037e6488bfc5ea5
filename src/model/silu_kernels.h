// The SiLU-gated MLP's element-wise math as single AVX-512 passes over bf16/fp32 rows, for
// CPUs with avx512_bf16: forward silu(gate) * up and its backward. The op-by-op versions
// (torch::silu, mul, and in backward sigmoid plus five products over fp32 copies of gate, up and
// the gradient) made three to six passes and three widened copies of [T, 4864] per layer:
// ~5% of a LoRA training step (issue 7). Roundings follow the op chains: silu(gate) is rounded
// to the dtype before the product, as torch::silu(gate).mul_(up) does.
#pragma once

#include <torch/torch.h>

namespace eztinker::model::silu_kernels {

// True when the kernels take these tensors: CPU with avx512_bf16, fp32 or bf16, one dtype.
bool supported(const torch::Tensor& gate, const torch::Tensor& up);

// silu(gate) * up. gate, up: [..., I] -> [..., I] in their dtype.
torch::Tensor forward(const torch::Tensor& gate, const torch::Tensor& up);

// {d gate, d up} for the upstream gradient `grad` [..., I] (in gate's dtype):
// d up = grad * silu(gate), d gate = grad * up * s * (1 + gate * (1 - s)), s = sigmoid(gate),
// computed in fp32 and rounded once.
std::pair<torch::Tensor, torch::Tensor> backward(const torch::Tensor& grad,
                                                 const torch::Tensor& gate,
                                                 const torch::Tensor& up);

}  // namespace eztinker::model::silu_kernels
