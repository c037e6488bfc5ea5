// The three skinny products of a LoRA branch, one of whose dimensions is the rank r (8-64):
//   rows_dot      x A^T      [N, L] x [r, L]^T -> [N, r]   (LoRA down, and g B in backward)
//   add_rows_times y += u P  [N, r] x [r, L]   -> into [N, L] (LoRA up added into the base
//                                                 output, and into the base input gradient)
//   columns_dot   u^T x      [N, r]^T x [N, L] -> [r, L]   (the gradients of A and B)
// OpenBLAS runs these shapes at 10-20 GFLOP/s on the target CPU (its blocking assumes large
// matrices; measured 0.25 ms for a 256 x 896 x 8 product that needs ~20 us), which made the
// LoRA branches a quarter of a training step (issue 7). These are plain loops the compiler
// vectorises (fp32 accumulation; bf16 inputs are widened on load, exactly), parallel over the
// long dimension. Other devices and dtypes fall back to torch::mm with the same semantics.
#pragma once

#include <torch/torch.h>

namespace eztinker::lora::kernels {

// out[n, j] = scale * sum_l x[n, l] * p[j, l]. x: [N, L] fp32|bf16, p: [R, L] fp32 -> [N, R] fp32.
torch::Tensor rows_dot(const torch::Tensor& x, const torch::Tensor& p, double scale);

// y[n, l] += sum_j u[n, j] * p[j, l], in place, rounded once to y's dtype.
// y: [N, L] fp32|bf16 contiguous, u: [N, R] fp32, p: [R, L] fp32.
void add_rows_times(torch::Tensor& y, const torch::Tensor& u, const torch::Tensor& p);

// out[j, l] = sum_n u[n, j] * x[n, l]. u: [N, R] fp32, x: [N, L] fp32|bf16 -> [R, L] fp32.
torch::Tensor columns_dot(const torch::Tensor& u, const torch::Tensor& x);

}  // namespace eztinker::lora::kernels
