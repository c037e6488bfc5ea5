// Base-model dtype selection: "auto" picks bf16 where it is fast (a CPU with avx512_bf16 or
// amx_bf16, read from /proc/cpuinfo, or a CUDA device), else fp32. LoRA state stays fp32.
#pragma once

#include <torch/torch.h>

#include <string>

namespace eztinker::model {

// True when /proc/cpuinfo lists avx512_bf16 or amx_bf16 (false when it cannot be read).
bool cpu_has_fast_bf16();

// "auto" | "fp32" | "float32" | "bf16" | "bfloat16" | "fp16" | "float16" -> dtype for `device`.
// Throws std::invalid_argument naming the accepted values otherwise.
torch::Dtype resolve_dtype(const std::string& name, const torch::Device& device);

// kFloat32 -> "fp32", kBFloat16 -> "bf16", kFloat16 -> "fp16" (the wire/CLI spelling).
std::string dtype_name(torch::Dtype dtype);
// kFloat32 -> "float32", kBFloat16 -> "bfloat16" (HF config.json torch_dtype spelling).
std::string hf_dtype_name(torch::Dtype dtype);

}  // namespace eztinker::model
