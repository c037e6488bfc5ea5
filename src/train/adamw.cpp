// AdamW implementation. Mirrors torch.optim.AdamW (single-tensor, non-amsgrad path) with
// clip_grad_norm_ folded in, in double-precision scalars and fp32 tensors.
#include "train/adamw.h"

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

double grad_total_norm(const std::vector<torch::Tensor>& params) {
  double sum_sq = 0.0;
  for (const auto& p : params) {
    const auto& g = p.grad();
    if (g.defined()) {
      sum_sq += g.to(torch::kFloat64).pow(2).sum().item<double>();
    }
  }
  return std::sqrt(sum_sq);
}

void AdamW::zero_grad() {
  for (auto& p : params_) {
    auto& g = p.mutable_grad();
    if (g.defined()) {
      g.detach_();
      g.zero_();
    }
  }
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
  for (size_t i = 0; i < params_.size(); ++i) {
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
  zero_grad();
  result.step = step_;
  return result;
}

}  // namespace eztinker::train
