// Comparison helpers shared by the libtorch unit tests.
#pragma once

#include <torch/torch.h>

namespace eztinker::testing {

// Largest absolute element difference, both sides widened to fp32 first (so bf16 and fp32
// results compare directly).
inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat32) - b.to(torch::kFloat32)).abs().max().item<double>();
}

}  // namespace eztinker::testing
