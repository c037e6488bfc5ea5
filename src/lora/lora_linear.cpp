// See lora_linear.h.
#include "lora/lora_linear.h"

#include "lora/lora_kernels.h"

#include <torch/csrc/autograd/custom_function.h>

namespace eztinker::lora {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The frozen projection: not an autograd input (never differentiated, and an undefined bias may
// not be one), so apply() receives it as a plain struct.
struct FrozenLinear {
  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out] or undefined
};

// Inputs x and x_lora (possibly the same tensor), a, b.
class LoraLinearFunction : public torch::autograd::Function<LoraLinearFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& x_lora, const torch::Tensor& a,
                               const torch::Tensor& b, const FrozenLinear& base, double scaling) {
    const torch::Tensor& weight = base.weight;
    const int64_t in = weight.size(1), out = weight.size(0);
    torch::Tensor rows = x.reshape({-1, in});                                  // [N, in]
    torch::Tensor rows_lora = x_lora.is_same(x) ? rows : x_lora.reshape({-1, in});  // [N, in]
    torch::Tensor y = torch::linear(rows, weight, base.bias).contiguous();          // [N, out] base dtype
    torch::Tensor xa = kernels::rows_dot(rows_lora, a, scaling);               // [N, r] fp32, scaled
    torch::Tensor bt = b.t().contiguous();                                     // [r, out]
    kernels::add_rows_times(y, xa, bt);                                        // y += xa B^T
    ctx->save_for_backward({rows_lora, a, bt, xa});  // B^T once per step, not again in backward
    ctx->saved_data["weight"] = weight;
    ctx->saved_data["scaling"] = scaling;
    ctx->saved_data["lora_input_is_x"] = x_lora.is_same(x);
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = out;
    return y.view(shape);                                                      // [..., out]
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& rows_lora = saved[0];  // [N, in]
    const torch::Tensor& a = saved[1];          // [r, in]
    const torch::Tensor& bt = saved[2];         // [r, out] = B^T
    const torch::Tensor& xa = saved[3];         // [N, r] fp32, scaled
    const torch::Tensor weight = ctx->saved_data["weight"].toTensor();  // [out, in]
    const double scaling = ctx->saved_data["scaling"].toDouble();
    const bool lora_input_is_x = ctx->saved_data["lora_input_is_x"].toBool();
    const std::vector<int64_t> x_sizes = ctx->saved_data["x_sizes"].toIntVector();
    torch::Tensor g = grads[0].reshape({-1, weight.size(0)}).contiguous();    // [N, out]

    torch::Tensor grad_xa = kernels::rows_dot(g, bt, scaling);                 // [N, r] = s g B
    // [out, r] = g^T xa as a transposed view: autograd adds it into B's gradient (or copies it
    // into B's layout the first time) without a contiguous copy here.
    torch::Tensor grad_b = kernels::columns_dot(xa, g).t();
    torch::Tensor grad_a = kernels::columns_dot(grad_xa, rows_lora);           // [r, in]
    torch::Tensor grad_x, grad_x_lora;
    if (ctx->needs_input_grad(0)) {
      grad_x = torch::mm(g, weight);                                           // [N, in] base dtype
      if (lora_input_is_x) kernels::add_rows_times(grad_x, grad_xa, a);       // += s (g B) A
      grad_x = grad_x.view(x_sizes);                                           // [..., in]
    }
    if (!lora_input_is_x && ctx->needs_input_grad(1)) {
      grad_x_lora = torch::mm(grad_xa, a).view(x_sizes);                       // [..., in] fp32
    }
    return {grad_x, grad_x_lora, grad_a, grad_b, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor lora_linear(const torch::Tensor& x, const torch::Tensor& weight,
                          const torch::Tensor& bias, const torch::Tensor& x_lora,
                          const torch::Tensor& a, const torch::Tensor& b, double scaling) {
  TORCH_CHECK(x.size(-1) == weight.size(1) && x_lora.sizes() == x.sizes() &&
                  a.dim() == 2 && b.dim() == 2 && a.size(1) == weight.size(1) &&
                  b.size(0) == weight.size(0) && b.size(1) == a.size(0),
              "lora_linear: x ", x.sizes(), ", weight ", weight.sizes(), ", x_lora ",
              x_lora.sizes(), ", A ", a.sizes(), ", B ", b.sizes(), " do not fit together");
  return LoraLinearFunction::apply(x, x_lora, a, b, FrozenLinear{weight, bias}, scaling);  // [..., out]
}

}  // namespace eztinker::lora
