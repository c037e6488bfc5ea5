// See fused_ops.h. Backward math, with x32 = fp32(x), r = rsqrt(mean(x32^2) + eps) per row,
// xhat = x32 * r, dn = fp32(grad) * weight:
//   d x = r * (dn - xhat * mean(dn * xhat))            (RMSNorm; the bf16 rounding of xhat is
//                                                         treated as identity, as autograd does)
//   d gate = grad * up * s * (1 + gate * (1 - s)),  d up = grad * gate * s,  s = sigmoid(gate).
#include "model/fused_ops.h"

#include "model/attention_kernels.h"
#include "model/qwen2.h"
#include "model/rms_norm_kernels.h"
#include "model/rope_kernels.h"
#include "model/silu_kernels.h"

#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

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
    const bool kernels = rms_norm_kernels::supported(x, weight);
    ctx->saved_data["kernels"] = kernels;
    if (kernels) {
      auto [out, inv_rms] = rms_norm_kernels::forward(x, weight, eps);  // [..., H], [...] fp32
      ctx->save_for_backward({x, weight, inv_rms});
      return out;
    }
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
    const torch::Tensor& inv_rms = saved[2];  // [..., 1] fp32 ([...] from the kernels)
    if (ctx->saved_data["kernels"].toBool()) {
      return {rms_norm_kernels::backward(grads[0], x, weight, inv_rms), torch::Tensor(),
              torch::Tensor()};
    }
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
    if (silu_kernels::supported(gate, up)) return silu_kernels::forward(gate, up);  // [..., I]
    return torch::silu(gate).mul_(up);  // [..., I]
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& gate = saved[0];  // [..., I]
    const torch::Tensor& up = saved[1];    // [..., I]
    if (silu_kernels::supported(gate, up) && grads[0].sizes() == gate.sizes()) {
      auto [d_gate, d_up] = silu_kernels::backward(grads[0], gate, up);  // [..., I] x2, one pass
      return {d_gate, d_up};
    }
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

class RopeFunction : public torch::autograd::Function<RopeFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& cos, const torch::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["dtype"] = x.scalar_type();
    return rope_kernels::forward(x, cos, sin);  // [B, T, H, D]
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& cos = saved[0];  // [B, T, D] fp32
    const torch::Tensor& sin = saved[1];  // [B, T, D] fp32
    const torch::Dtype dtype = ctx->saved_data["dtype"].toScalarType();
    return {rope_kernels::backward(grads[0], cos, sin, dtype), torch::Tensor(), torch::Tensor()};
  }
};

// q k^T with the G = H / KV query heads of a kv head folded into the rows (no repeat_kv):
// q [B, H, T, D], k [B, KV, S, D] -> [B, KV, G*T, S] in q's dtype.
torch::Tensor attention_scores(const torch::Tensor& q, const torch::Tensor& k) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), KV = k.size(1);
  return torch::matmul(q.reshape({B, KV, (H / KV) * T, D}), k.transpose(-1, -2));
}

double attention_scale(const torch::Tensor& q) { return 1.0 / std::sqrt(static_cast<double>(q.size(3))); }

// softmax(q k^T / sqrt(D) + mask) v: [B, H, T, D]. The probabilities are computed in fp32 and
// rounded to v's dtype for the product, as HF's eager attention does. `scores_out`, when given,
// receives q k^T ([B, KV, G*T, S], q's dtype) for a backward pass.
torch::Tensor attention_forward(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, const torch::Tensor& bias,
                                torch::Tensor* scores_out = nullptr) {
  TORCH_CHECK(q.size(1) % k.size(1) == 0, "query heads ", q.size(1), " not a multiple of kv heads ",
              k.size(1));
  torch::Tensor scores = attention_scores(q, k);                                          // [B, KV, G*T, S]
  torch::Tensor probs = attention_kernels::softmax(scores, bias, q.size(2), attention_scale(q),
                                                   v.scalar_type());                      // [B, KV, G*T, S]
  if (scores_out != nullptr) *scores_out = scores;
  return torch::matmul(probs, v).view(q.sizes());                                        // [B, H, T, D]
}

// The mask travels outside the autograd inputs (it has no gradient and may be undefined, i.e.
// causal, which autograd::Function inputs may not be).
struct AttentionMask {
  torch::Tensor bias;  // [B or 1, 1, T, S] fp32, or undefined
};

class AttentionFunction : public torch::autograd::Function<AttentionFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q,
                               const torch::Tensor& k, const torch::Tensor& v,
                               const AttentionMask& mask) {
    // The scores (q's dtype, 1.8 MB per layer at T = S = 256 with 14 heads) are kept for
    // backward, which then skips their GEMM; the probabilities (fp32 and v's dtype) are not.
    torch::Tensor scores;                                                  // [B, KV, G*T, S]
    torch::Tensor out = attention_forward(q, k, v, mask.bias, &scores);    // [B, H, T, D]
    ctx->save_for_backward({q, k, v, scores});
    ctx->saved_data["bias"] = mask.bias;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& q = saved[0];  // [B, H, T, D]
    const torch::Tensor& k = saved[1];  // [B, KV, S, D]
    const torch::Tensor& v = saved[2];  // [B, KV, S, D]
    const torch::Tensor bias = ctx->saved_data["bias"].toTensor();
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
    const int64_t KV = k.size(1), G = H / KV;
    const double scale = attention_scale(q);
    const torch::Tensor& scores = saved[3];                                           // [B, KV, G*T, S]
    torch::Tensor probs = attention_kernels::softmax(scores, bias, T, scale, v.scalar_type());  // [B, KV, G*T, S]
    torch::Tensor grad_out = grads[0].reshape({B, KV, G * T, D});                     // [B, KV, G*T, D]
    torch::Tensor grad_v = torch::matmul(probs.transpose(-1, -2), grad_out);          // [B, KV, S, D]
    torch::Tensor grad_probs = torch::matmul(grad_out, v.transpose(-1, -2));          // [B, KV, G*T, S]
    // softmax backward, then the 1/sqrt(D) scale: d scores = p * (dp - sum(dp * p)) / sqrt(D).
    torch::Tensor grad_scores =
        attention_kernels::softmax_backward(grad_probs.to(q.scalar_type()), scores, bias, T, scale);
    torch::Tensor grad_q = torch::matmul(grad_scores, k).view({B, H, T, D});          // [B, H, T, D]
    torch::Tensor grad_k =
        torch::matmul(grad_scores.transpose(-1, -2), q.reshape({B, KV, G * T, D}));  // [B, KV, S, D]
    return {grad_q, grad_k, grad_v, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias) {
  const bool needs_grad = torch::GradMode::is_enabled() &&
                          (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (!needs_grad) return attention_forward(q, k, v, bias);     // [B, H, T, D]
  return AttentionFunction::apply(q, k, v, AttentionMask{bias});  // [B, H, T, D]
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  TORCH_CHECK(!weight.requires_grad(), "fused::rms_norm: the norm weight is frozen");
  return RmsNormFunction::apply(x, weight, eps);
}

torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  // The tables widened to fp32 (exact from bf16; the kernels round them back to x's dtype) and
  // detached: no gradient flows into position tables. [B, T, D] each, a few KB.
  torch::Tensor cos32 = cos.detach().to(torch::kFloat32), sin32 = sin.detach().to(torch::kFloat32);
  if (!rope_kernels::supported(x, cos32, sin32)) return detail::rope(x, cos, sin);  // [B, T, H, D]
  const bool needs_grad = torch::GradMode::is_enabled() && x.requires_grad();
  if (!needs_grad) return rope_kernels::forward(x, cos32, sin32);  // [B, T, H, D]
  return RopeFunction::apply(x, cos32, sin32);                     // [B, T, H, D]
}

torch::Tensor silu_mul(const torch::Tensor& gate, const torch::Tensor& up) {
  TORCH_CHECK(gate.sizes() == up.sizes() && gate.scalar_type() == up.scalar_type(),
              "fused::silu_mul: gate and up must match, got ", gate.sizes(), " ",
              gate.scalar_type(), " and ", up.sizes(), " ", up.scalar_type());
  return SiluMulFunction::apply(gate, up);
}

}  // namespace eztinker::model::fused
