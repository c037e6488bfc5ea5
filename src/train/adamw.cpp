// AdamW implementation. Mirrors torch.optim.AdamW (single-tensor, non-amsgrad path) with
// clip_grad_norm_ folded in, in double-precision scalars and fp32 tensors.
#include "train/adamw.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <stdexcept>

namespace eztinker::train {

AdamW::AdamW(std::vector<torch::Tensor> params) : params_(std::move(params)) { reset_state(); }

void AdamW::reset_state() {
  torch::NoGradGuard no_grad;
  exp_avg_.clear();
  exp_avg_sq_.clear();
  for (const auto& p : params_) {
    exp_avg_.push_back(torch::zeros_like(p, p.options().dtype(torch::kFloat32)));     // [p]
    exp_avg_sq_.push_back(torch::zeros_like(p, p.options().dtype(torch::kFloat32)));  // [p]
  }
  step_ = 0;
}

void AdamW::set_state(int64_t step, std::vector<torch::Tensor> exp_avg,
                      std::vector<torch::Tensor> exp_avg_sq) {
  TORCH_CHECK(exp_avg.size() == params_.size() && exp_avg_sq.size() == params_.size(),
              "optimizer state has ", exp_avg.size(), " tensors, expected ", params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    TORCH_CHECK(exp_avg[i].sizes() == params_[i].sizes() &&
                    exp_avg_sq[i].sizes() == params_[i].sizes(),
                "optimizer state tensor ", i, " has shape ", exp_avg[i].sizes(), ", expected ",
                params_[i].sizes());
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    exp_avg_[i] = exp_avg[i].to(params_[i].device(), torch::kFloat32).clone();
    exp_avg_sq_[i] = exp_avg_sq[i].to(params_[i].device(), torch::kFloat32).clone();
  }
  step_ = step;
}

namespace {

// fp32, contiguous, on the CPU: the layout the single-pass loops below read.
bool plain_cpu_fp32(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous();
}

// sum(g^2) in double.
double sum_of_squares(const float* g, int64_t n) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(g[i]) * static_cast<double>(g[i]);
  return sum;
}

// The per-step constants of the update, as the fp32 scalars the ATen ops of step() use.
struct AdamWCoefficients {
  float clip = 1.0f;        // gradient scale from clipping
  float decay = 1.0f;       // 1 - lr * weight_decay
  float beta1 = 0.0f;
  float one_minus_beta1 = 0.0f;
  float beta2 = 0.0f;
  float one_minus_beta2 = 0.0f;
  float bias2_sqrt = 1.0f;  // sqrt(1 - beta2^t)
  float eps = 0.0f;
  float neg_step_size = 0.0f;  // -lr / (1 - beta1^t)
};

// One tensor's update in a single pass over p, g, m, v that also zeroes g (the ATen chain
// makes ~8 passes and as many dispatches per tensor, then one more to zero the gradient; a
// LoRA adapter has hundreds of small tensors). Same formulas and operation order as that
// chain; g == nullptr is a zero gradient.
void adamw_update(float* p, float* g, float* m, float* v, int64_t n, const AdamWCoefficients& c) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g == nullptr ? 0.0f : (c.clip == 1.0f ? g[i] : g[i] * c.clip);
    if (g != nullptr) g[i] = 0.0f;
    const float pi = p[i] * c.decay;
    const float mi = m[i] * c.beta1 + c.one_minus_beta1 * gi;
    const float vi = v[i] * c.beta2 + c.one_minus_beta2 * gi * gi;
    const float denom = std::sqrt(vi) / c.bias2_sqrt + c.eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + c.neg_step_size * mi / denom;
  }
}

}  // namespace

double grad_total_norm(const std::vector<torch::Tensor>& params) {
  double sum_sq = 0.0;
  for (const auto& p : params) {
    const auto& g = p.grad();
    if (!g.defined()) continue;
    sum_sq += plain_cpu_fp32(g) ? sum_of_squares(g.data_ptr<float>(), g.numel())
                                : g.to(torch::kFloat64).pow(2).sum().item<double>();
  }
  return std::sqrt(sum_sq);
}

namespace {

void zero_grad_of(torch::Tensor& p) {
  auto& g = p.mutable_grad();
  if (g.defined()) {
    g.detach_();
    g.zero_();
  }
}

}  // namespace

void AdamW::zero_grad() {
  for (auto& p : params_) zero_grad_of(p);
}

AdamWStepResult AdamW::step(const AdamWHyper& hyper) {
  // Caller validates hyper-parameters at the boundary; these guard engine invariants.
  TORCH_CHECK(std::isfinite(hyper.learning_rate) && hyper.learning_rate > 0.0,
              "learning_rate must be finite and > 0");
  torch::NoGradGuard no_grad;
  AdamWStepResult result;
  result.grad_norm = grad_total_norm(params_);
  // clip_grad_norm_: coefficient max_norm / (norm + 1e-6), applied only when below 1.
  double clip_coef = 1.0;
  if (hyper.grad_clip_norm > 0.0) {
    clip_coef = std::min(1.0, hyper.grad_clip_norm / (result.grad_norm + 1e-6));
  }
  ++step_;
  const double bias1 = 1.0 - std::pow(hyper.beta1, static_cast<double>(step_));
  const double bias2 = 1.0 - std::pow(hyper.beta2, static_cast<double>(step_));
  const double step_size = hyper.learning_rate / bias1;
  const double bias2_sqrt = std::sqrt(bias2);
  AdamWCoefficients c;
  c.clip = static_cast<float>(clip_coef);
  c.decay = static_cast<float>(1.0 - hyper.learning_rate * hyper.weight_decay);
  c.beta1 = static_cast<float>(hyper.beta1);
  c.one_minus_beta1 = static_cast<float>(1.0 - hyper.beta1);
  c.beta2 = static_cast<float>(hyper.beta2);
  c.one_minus_beta2 = static_cast<float>(1.0 - hyper.beta2);
  c.bias2_sqrt = static_cast<float>(bias2_sqrt);
  c.eps = static_cast<float>(hyper.eps);
  c.neg_step_size = static_cast<float>(-step_size);
  // CPU fp32 state (always, for LoRA adapters on the CPU): one pass per tensor, the tensors
  // split over the intra-op threads. Elsewhere (another device, a non-contiguous tensor): the
  // ATen ops below.
  std::vector<size_t> fused;
  std::vector<size_t> by_ops;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& g = params_[i].grad();
    const bool plain = plain_cpu_fp32(params_[i]) && plain_cpu_fp32(exp_avg_[i]) &&
                       plain_cpu_fp32(exp_avg_sq_[i]) &&
                       (!g.defined() || (plain_cpu_fp32(g) && g.numel() == params_[i].numel()));
    (plain ? fused : by_ops).push_back(i);
  }
  at::parallel_for(0, static_cast<int64_t>(fused.size()), 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const size_t i = fused[static_cast<size_t>(t)];
      const auto& g = params_[i].grad();
      adamw_update(params_[i].data_ptr<float>(), g.defined() ? g.data_ptr<float>() : nullptr,
                   exp_avg_[i].data_ptr<float>(), exp_avg_sq_[i].data_ptr<float>(),
                   params_[i].numel(), c);
    }
  });
  for (const size_t i : by_ops) {
    auto& p = params_[i];
    auto g = p.grad().defined() ? p.grad().to(torch::kFloat32) : torch::zeros_like(exp_avg_[i]);
    if (clip_coef < 1.0) {
      g = g * clip_coef;  // [p]
    }
    if (hyper.weight_decay != 0.0) {
      p.mul_(1.0 - hyper.learning_rate * hyper.weight_decay);
    }
    exp_avg_[i].mul_(hyper.beta1).add_(g, 1.0 - hyper.beta1);                  // m
    exp_avg_sq_[i].mul_(hyper.beta2).addcmul_(g, g, 1.0 - hyper.beta2);        // v
    auto denom = (exp_avg_sq_[i].sqrt() / bias2_sqrt).add_(hyper.eps);         // [p]
    p.addcdiv_(exp_avg_[i], denom, -step_size);
  }
  for (const size_t i : by_ops) zero_grad_of(params_[i]);  // the single-pass loop zeroed the rest
  result.step = step_;
  return result;
}

}  // namespace eztinker::train
