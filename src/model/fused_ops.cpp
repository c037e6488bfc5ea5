// See fused_ops.h. Backward math, with x32 = fp32(x), r = rsqrt(mean(x32^2) + eps) per row,
// xhat = x32 * r, dn = fp32(grad) * weight:
//   d x = r * (dn - xhat * mean(dn * xhat))            (RMSNorm; the bf16 rounding of xhat is
//                                                         treated as identity, as autograd does)
//   d gate = grad * up * s * (1 + gate * (1 - s)),  d up = grad * gate * s,  s = sigmoid(gate).
#include "model/fused_ops.h"

#include <torch/csrc/autograd/custom_function.h>

namespace eztinker::model::fused {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// An fp32 tensor that may be modified in place: always a new buffer, also when t is fp32
// already (to() would return t itself).
torch::Tensor widened_copy(const torch::Tensor& t) {
  return t.to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true);
}

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, double eps) {
    torch::Tensor x32 = widened_copy(x);                                            // [..., H]
    torch::Tensor inv_rms = x32.square().mean(-1, /*keepdim=*/true).add_(eps).rsqrt_();  // [..., 1]
    torch::Tensor normed = x32.mul_(inv_rms).to(x.scalar_type());                  // [..., H]
    ctx->save_for_backward({x, weight, inv_rms});
    return normed.mul_(weight);                                                     // [..., H]
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];        // [..., H]
    const torch::Tensor& weight = saved[1];   // [H]
    const torch::Tensor& inv_rms = saved[2];  // [..., 1] fp32
    torch::Tensor xhat = widened_copy(x).mul_(inv_rms);                             // [..., H]
    torch::Tensor dn = widened_copy(grads[0]).mul_(weight.to(torch::kFloat32));     // [..., H]
    torch::Tensor proj = (dn * xhat).mean(-1, /*keepdim=*/true);                    // [..., 1]
    torch::Tensor dx = dn.sub_(xhat.mul_(proj)).mul_(inv_rms);                      // [..., H]
    return {dx.to(x.scalar_type()), torch::Tensor(), torch::Tensor()};
  }
};

class SiluMulFunction : public torch::autograd::Function<SiluMulFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate,
                               const torch::Tensor& up) {
    ctx->save_for_backward({gate, up});
    return torch::silu(gate).mul_(up);  // [..., I]
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& gate = saved[0];  // [..., I]
    const torch::Tensor& up = saved[1];    // [..., I]
    torch::Tensor g32 = widened_copy(grads[0]);                // [..., I]
    torch::Tensor gate32 = widened_copy(gate);                 // [..., I]
    torch::Tensor s = torch::sigmoid(gate32);                  // [..., I]
    torch::Tensor d_up = (g32 * gate32).mul_(s);               // [..., I] = grad * silu(gate)
    // s * (1 + gate * (1 - s)) = s + gate * s * (1 - s)
    torch::Tensor dsilu = gate32.mul_(s).mul_(1.0 - s).add_(s);  // [..., I]
    torch::Tensor d_gate = g32.mul_(up.to(torch::kFloat32)).mul_(dsilu);  // [..., I]
    return {d_gate.to(gate.scalar_type()), d_up.to(up.scalar_type())};
  }
};

}  // namespace

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  TORCH_CHECK(!weight.requires_grad(), "fused::rms_norm: the norm weight is frozen");
  return RmsNormFunction::apply(x, weight, eps);
}

torch::Tensor silu_mul(const torch::Tensor& gate, const torch::Tensor& up) {
  TORCH_CHECK(gate.sizes() == up.sizes() && gate.scalar_type() == up.scalar_type(),
              "fused::silu_mul: gate and up must match, got ", gate.sizes(), " ",
              gate.scalar_type(), " and ", up.sizes(), " ", up.scalar_type());
  return SiluMulFunction::apply(gate, up);
}

}  // namespace eztinker::model::fused
