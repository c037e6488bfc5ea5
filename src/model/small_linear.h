// Matrix-vector linear for decode steps: y = x W^T (+ bias) for a few rows of x (M <= 8) and a
// bf16 weight W [N, K], as a bandwidth-bound AVX512-BF16 kernel (vdpbf16ps, fp32 accumulate),
// parallel over output rows. libtorch 1.13's bf16 linear sends M = 1 through oneDNN, which
// re-lays-out the whole weight on every call (measured: M = 1 costs about as much as M = 64),
// so a decode step read the weights several times over. This reads each weight byte once.
// Falls back to torch::linear when the CPU lacks avx512_bf16, for other dtypes, or on devices
// other than CPU. Inference only (no autograd).
#pragma once

#include <torch/torch.h>

namespace eztinker::kernels {

// The most rows of x that small_linear computes itself (more go to torch::linear).
constexpr int64_t kSmallLinearMaxRows = 8;

// True when small_linear would take the AVX512-BF16 path for this weight.
bool small_linear_supported(const torch::Tensor& weight);

// x: [..., K] (bf16 or fp32), weight: [N, K] bf16, bias: [N] or undefined.
// Returns [..., N] in `out_dtype` (fp32 for logits, bf16 inside the model). Rows of x are
// rounded to bf16 first (what a bf16 matmul does).
torch::Tensor small_linear(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias, torch::Dtype out_dtype);

}  // namespace eztinker::kernels
