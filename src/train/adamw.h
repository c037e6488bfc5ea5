// AdamW over an explicit list of (LoRA) parameters, as torch.optim.AdamW computes it:
// decoupled weight decay p *= 1 - lr * wd, moments m/v, bias correction 1 - beta^t, and
// p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps). Hyper-parameters are given
// per step (the wire protocol lets every optim_step change them); the moments and the step
// counter live here and survive learning-rate changes. Gradients are clipped first by their
// total L2 norm (torch.nn.utils.clip_grad_norm_) and zeroed after the step.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace eztinker::train {

struct AdamWHyper {
  double learning_rate = 2e-4;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double grad_clip_norm = 1.0;  // 0 = no clipping
};

struct AdamWStepResult {
  int64_t step = 0;         // the optimizer step count after this step
  double grad_norm = 0.0;   // total L2 norm of the gradients before clipping
};

class AdamW {
 public:
  AdamW() = default;
  // `params` are the trainable tensors in a fixed order (LoraAdapter::parameters()).
  explicit AdamW(std::vector<torch::Tensor> params);

  // One update with these hyper-parameters; parameters without a gradient count as zero
  // gradient (their moments still decay, as in a fused optimizer over a flat buffer).
  AdamWStepResult step(const AdamWHyper& hyper);

  // Sets every parameter's gradient to zero (keeps the buffers allocated).
  void zero_grad();

  int64_t step_count() const { return step_; }
  const std::vector<torch::Tensor>& params() const { return params_; }
  // Moments, aligned with params(); fp32, same shapes. Exposed for checkpoints and tests.
  const std::vector<torch::Tensor>& exp_avg() const { return exp_avg_; }
  const std::vector<torch::Tensor>& exp_avg_sq() const { return exp_avg_sq_; }

  // Restores state saved from another AdamW over parameters of the same shapes.
  void set_state(int64_t step, std::vector<torch::Tensor> exp_avg,
                 std::vector<torch::Tensor> exp_avg_sq);
  // Forgets the moments and the step count (e.g. an adapter loaded without optimizer state).
  void reset_state();

 private:
  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> exp_avg_;     // m, one per param
  std::vector<torch::Tensor> exp_avg_sq_;  // v, one per param
  int64_t step_ = 0;
};

// Total L2 norm of the parameters' gradients (undefined gradients count as zero).
double grad_total_norm(const std::vector<torch::Tensor>& params);

}  // namespace eztinker::train
