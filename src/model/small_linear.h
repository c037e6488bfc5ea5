// Matrix-vector linear for decode steps: y = x W^T (+ bias) for a few rows of x (M <= 8) and a
// bf16 or fp32 weight W [N, K], as a bandwidth-bound AVX-512 kernel (bf16: vdpbf16ps; fp32:
// FMAs; fp32 accumulate), parallel over output rows. libtorch 1.13's bf16 linear sends M = 1
// through oneDNN, which re-lays-out the whole weight on every call (measured: M = 1 costs about
// as much as M = 64), so a decode step read the weights several times over; fp32 went through
// OpenBLAS gemv at ~20 GB/s. This reads each weight byte once, in address order.
// Falls back to torch::linear when the CPU lacks avx512_bf16 (the CPUs the AVX-512 kernels
// target), for other dtypes, or on devices other than CPU. Inference only (no autograd).
#pragma once

#include <torch/torch.h>

namespace eztinker::kernels {

// The most rows of x that small_linear computes itself (more go to torch::linear).
constexpr int64_t kSmallLinearMaxRows = 8;

// True when small_linear would take the AVX-512 path for this weight (bf16 or fp32, 2-D,
// contiguous, CPU, a CPU with avx512_bf16).
bool small_linear_supported(const torch::Tensor& weight);

// x: [..., K] (bf16 or fp32), weight: [N, K] bf16 or fp32, bias: [N] or undefined.
// Returns [..., N] in `out_dtype` (fp32 for logits, the base dtype inside the model). Rows of x
// are cast to the weight's dtype first (what a matmul in that dtype does).
torch::Tensor small_linear(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias, torch::Dtype out_dtype);

// An fp32 LoRA pair to fold into small_linear's fp32 accumulator: y += scaling * B (A x).
struct SmallLinearLora {
  torch::Tensor a;       // [r, K] fp32, contiguous
  torch::Tensor b;       // [N, r] fp32, contiguous
  double scaling = 1.0;
};

// True when small_linear can fold this pair (fp32, contiguous, CPU, shapes matching weight).
bool small_linear_lora_supported(const torch::Tensor& weight, const SmallLinearLora& lora);

// small_linear plus the LoRA term, in one pass and one rounding to `out_dtype`:
// y = x W^T + bias + scaling * (x_fp32 A^T) B^T. The LoRA term uses x at its own precision (a
// bf16 x is exact in fp32), as the training path does. Requires small_linear_lora_supported.
torch::Tensor small_linear(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias, const SmallLinearLora& lora,
                           torch::Dtype out_dtype);

}  // namespace eztinker::kernels
