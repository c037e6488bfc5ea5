// LoraAdapter: PEFT LoraLayer semantics kept outside the frozen base (see lora_adapter.h).
// Init follows PEFT `reset_lora_parameters` with init_lora_weights=True: lora_A
// kaiming_uniform_(a=sqrt(5)) and lora_B zeros, so a fresh adapter leaves the model unchanged.
#include "lora/lora_adapter.h"

#include "model/qwen2.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <mutex>
#include <cmath>
#include <stdexcept>

namespace eztinker::lora {

double LoraConfig::scaling() const {
  return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r))
                    : lora_alpha / static_cast<double>(r);
}

const LoraPair* LoraAdapter::find(const std::string& module_path) const {
  auto it = modules.find(module_path);
  return it == modules.end() ? nullptr : &it->second;
}

std::vector<torch::Tensor> LoraAdapter::parameters() const {
  std::vector<torch::Tensor> out;
  out.reserve(modules.size() * 2);
  for (const auto& [path, pair] : modules) {
    out.push_back(pair.a);
    out.push_back(pair.b);
  }
  return out;
}

int64_t LoraAdapter::num_parameters() const {
  int64_t n = 0;
  for (const auto& [path, pair] : modules) n += pair.a.numel() + pair.b.numel();
  return n;
}

std::vector<std::string> expand_target_modules(const std::vector<std::string>& target_modules) {
  std::vector<std::string> out;
  for (const std::string& name : target_modules) {
    if (name == "all-linear") {
      out = kAllLinearTargets;
      break;
    }
    if (std::find(kAllLinearTargets.begin(), kAllLinearTargets.end(), name) ==
        kAllLinearTargets.end()) {
      std::string valid;
      for (const auto& t : kAllLinearTargets) valid += (valid.empty() ? "" : ", ") + t;
      throw std::invalid_argument("unknown LoRA target module \"" + name + "\"; valid: " + valid +
                                  ", all-linear");
    }
  }
  if (out.empty()) {
    // Keep kAllLinearTargets order and drop duplicates.
    for (const auto& t : kAllLinearTargets) {
      if (std::find(target_modules.begin(), target_modules.end(), t) != target_modules.end()) {
        out.push_back(t);
      }
    }
  }
  if (out.empty()) throw std::invalid_argument("LoRA target_modules is empty");
  return out;
}

LoraAdapter create_lora_adapter(const LoraConfig& config,
                                const model::Qwen2ForCausalLMImpl& model,
                                uint64_t seed) {
  if (config.r < 1) throw std::invalid_argument("LoRA r must be >= 1");
  LoraAdapter adapter;
  adapter.config = config;
  adapter.config.target_modules = expand_target_modules(config.target_modules);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto cpu32 = torch::TensorOptions().dtype(torch::kFloat32);
  for (const std::string& path : model.projection_paths()) {
    const std::string short_name = path.substr(path.rfind('.') + 1);
    const auto& targets = adapter.config.target_modules;
    if (std::find(targets.begin(), targets.end(), short_name) == targets.end()) continue;
    const model::Qwen2LinearImpl* proj = model.projection(path);
    const int64_t out = proj->weight.size(0), in = proj->weight.size(1);
    // kaiming_uniform_(a=sqrt(5)) on [r, in]: gain = sqrt(2 / (1 + 5)), bound =
    // gain * sqrt(3 / fan_in) = 1 / sqrt(in).
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    torch::Tensor a = torch::empty({config.r, in}, cpu32).uniform_(-bound, bound, gen);  // [r, in]
    torch::Tensor b = torch::zeros({out, config.r}, cpu32);                              // [out, r]
    LoraPair pair;
    pair.a = a.to(model.device()).set_requires_grad(true);  // [r, in]
    pair.b = b.to(model.device()).set_requires_grad(true);  // [out, r]
    adapter.modules.emplace(path, std::move(pair));
  }
  return adapter;
}

namespace detail {

namespace {

// The LoRA branch scaling * (x A^T) B^T as one autograd node. Written out because the two
// linear() nodes of the plain formula keep an fp32 copy of x alive until backward (for a bf16
// base: twice the bytes of the bf16 activation, which the graph holds anyway) and spend a full
// pass over the [N, out] output on the scaling. Here x is saved at its own precision and
// widened only inside backward, and the scaling lives on the [N, r] intermediate.
class LoraBranchFunction : public torch::autograd::Function<LoraBranchFunction> {
 public:
  // x: [N, in] (any float dtype), a: [r, in], b: [out, r] (LoRA dtype) -> [N, out] LoRA dtype.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& a, const torch::Tensor& b, double scaling) {
    torch::Tensor xa = torch::mm(x.to(a.scalar_type()), a.t()).mul_(scaling);  // [N, r]
    ctx->save_for_backward({x, a, b, xa});
    ctx->saved_data["scaling"] = scaling;
    return torch::mm(xa, b.t());  // [N, out]
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];   // [N, in]
    const torch::Tensor& a = saved[1];   // [r, in]
    const torch::Tensor& b = saved[2];   // [out, r]
    const torch::Tensor& xa = saved[3];  // [N, r], already scaled
    const double scaling = ctx->saved_data["scaling"].toDouble();
    torch::Tensor g = grads[0].to(a.scalar_type());            // [N, out]
    torch::Tensor grad_b = torch::mm(g.t(), xa);               // [out, r]
    torch::Tensor grad_xa = torch::mm(g, b).mul_(scaling);     // [N, r]: d/d(x A^T)
    torch::Tensor grad_a = torch::mm(grad_xa.t(), x.to(a.scalar_type()));  // [r, in]
    torch::Tensor grad_x;
    if (ctx->needs_input_grad(0)) grad_x = torch::mm(grad_xa, a).to(x.scalar_type());  // [N, in]
    return {grad_x, grad_a, grad_b, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor lora_delta(const torch::Tensor& x,
                         const torch::Tensor& a,
                         const torch::Tensor& b,
                         double scaling) {
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = b.size(0);
  torch::Tensor rows = x.reshape({-1, x.size(-1)});                          // [N, in]
  return LoraBranchFunction::apply(rows, a, b, scaling).view(shape);         // [..., out]
}

torch::Tensor dropout(const torch::Tensor& x, double p) {
  if (p <= 0.0) return x;
  TORCH_CHECK(p < 1.0, "dropout probability must be < 1, got ", p);
  if (!x.device().is_cpu()) return torch::dropout(x, p, /*train=*/true);  // [..., in]
  uint64_t seed = 0;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    seed = gen.get<at::CPUGeneratorImpl>()->random64();
  }
  torch::Tensor mask = torch::empty(x.sizes(), x.options().dtype(torch::kFloat32));  // [..., in]
  float* data = mask.data_ptr<float>();
  const auto drop_below = static_cast<uint32_t>(p * 4294967296.0);  // P(u32 < t) = p
  const auto keep_scale = static_cast<float>(1.0 / (1.0 - p));
  at::parallel_for(0, mask.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      // splitmix64 of (seed + i): independent, well-mixed 64-bit values per element.
      uint64_t z = seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      z ^= z >> 31;
      data[i] = static_cast<uint32_t>(z >> 32) < drop_below ? 0.0f : keep_scale;
    }
  });
  return x * mask.to(x.scalar_type());  // [..., in]
}

}  // namespace detail
}  // namespace eztinker::lora
