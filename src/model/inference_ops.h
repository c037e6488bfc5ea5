// CPU kernels for forwards without autograd (decode steps, no-grad forwards): RMSNorm, SiLU-mul
// and single-query attention with its KV-cache write, each one pass over its data. The reference
// chains they replace are 6-12 small ATen ops each, and at decode sizes (a few rows) the
// dispatch of those ops, not the arithmetic, was the cost (issue 7: ~8 ms of a 41 ms step).
// Values follow the reference chains' roundings: where a bf16 chain rounds an intermediate to
// bf16, so does the kernel; sums run in fp32 in another order. Tests compare both.
#pragma once

#include <torch/torch.h>

namespace eztinker::model::inference {

// True for CPU tensors of a dtype the kernels handle (fp32, bf16).
bool supports(const torch::Tensor& t);

// detail::rms_norm without autograd: weight * to_x_dtype(x32 * rsqrt(mean(x32^2) + eps)).
// x: [..., H], weight: [H] (x's dtype) -> [..., H] in x's dtype.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// silu(gate) * up without autograd, rounded like torch::silu(gate).mul_(up).
// gate, up: [..., I] same dtype -> [..., I].
torch::Tensor silu_mul(const torch::Tensor& gate, const torch::Tensor& up);

// One new position per sequence, attending to the whole cache prefix (no mask): applies RoPE to
// q and k, writes the rotated k and v into the cache at `past`, and returns softmax(q k^T /
// sqrt(D)) v over positions [0, past] with GQA (query head h reads kv head h / (H / KV)), as
// detail::rope + detail::causal_attention compute it.
// q: [B, 1, H*D], k, v: [B, 1, KV*D] (projection outputs); cos, sin: [B, 1, D];
// cache_k, cache_v: [B, KV, capacity, D] contiguous, past < capacity -> [B, 1, H*D].
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& cos,
                               const torch::Tensor& sin, torch::Tensor& cache_k,
                               torch::Tensor& cache_v, int64_t past, int64_t num_heads);

}  // namespace eztinker::model::inference
