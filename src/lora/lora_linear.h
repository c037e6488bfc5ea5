// A frozen projection with its LoRA pair as one autograd node (PEFT LoraLayer.forward):
//   y = x W^T + bias + scaling * (x_lora A^T) B^T,   x_lora = x, or dropout(x) while training.
// The base GEMM stays libtorch's (oneDNN for bf16); the LoRA products run through
// lora::kernels and land in the base output / base input gradient in place, so no fp32
// [N, out] delta is materialised, no bf16 -> fp32 copies of activations or gradients are made,
// and the node saves x (at its own precision), the [N, r] fp32 x_lora A^T and nothing else.
// Gradients: d x = g W + scaling (g B) A (added into the same buffer when x_lora is x),
// d A = scaling (g B)^T x_lora, d B = g^T (scaling x_lora A^T); none for W and bias (frozen).
#pragma once

#include <torch/torch.h>

namespace eztinker::lora {

// x: [..., in] base dtype; weight: [out, in], bias: [out] or undefined (frozen);
// x_lora: x itself, or a tensor of x's shape in the LoRA dtype (dropout(x));
// a: [r, in], b: [out, r] (LoRA dtype, fp32) -> [..., out] in the base dtype.
torch::Tensor lora_linear(const torch::Tensor& x, const torch::Tensor& weight,
                          const torch::Tensor& bias, const torch::Tensor& x_lora,
                          const torch::Tensor& a, const torch::Tensor& b, double scaling);

}  // namespace eztinker::lora
