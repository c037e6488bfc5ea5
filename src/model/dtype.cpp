// Dtype names and the "auto" rule (see dtype.h).
#include "model/dtype.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace eztinker::model {

bool cpu_has_fast_bf16() {
  static const bool kHas = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream words(line);
      std::string w;
      while (words >> w) {
        if (w == "avx512_bf16" || w == "amx_bf16") return true;
      }
      return false;  // every core lists the same flags
    }
    return false;
  }();
  return kHas;
}

torch::Dtype resolve_dtype(const std::string& name, const torch::Device& device) {
  if (name == "auto") {
    return (device.is_cuda() || (device.is_cpu() && cpu_has_fast_bf16())) ? torch::kBFloat16
                                                                          : torch::kFloat32;
  }
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "fp16" || name == "float16") return torch::kFloat16;
  throw std::invalid_argument("unknown dtype \"" + name + "\"; expected auto, fp32 or bf16");
}

std::string dtype_name(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat32: return "fp32";
    case torch::kBFloat16: return "bf16";
    case torch::kFloat16: return "fp16";
    default: return c10::toString(dtype);
  }
}

std::string hf_dtype_name(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    default: return c10::toString(dtype);
  }
}

}  // namespace eztinker::model
