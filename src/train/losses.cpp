// Chunked target log-probabilities (custom autograd function) and the per-token losses.
// The lm_head is the single largest matmul of a small model's step (vocab 151936 x hidden 896
// on Qwen2-0.5B); materialising [T, vocab] fp32 logits and letting autograd keep them costs
// ~600 KB per position. Here each chunk's logits live only inside the loop.
#include "train/losses.h"

#include "model/dtype.h"
#include "train/lm_head_kernels.h"

#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

namespace eztinker::train {

namespace {

constexpr int64_t kChunkElements = int64_t{1} << 25;  // 32 M fp32 logits = 128 MB per chunk
constexpr int64_t kVocabSliceWeightBytes = int64_t{8} << 20;  // lm_head rows per GEMM call: ~8 MiB

// One row chunk through the bf16 kernels: the lm_head GEMM one vocabulary slice at a time, each
// slice folded into a running log-sum-exp while it is in cache. Without gradient a slice's
// logits live in one reused [r, S] buffer; with it they go into the chunk's [r, V] logits,
// which then become softmax - onehot for the gradient GEMM.
//   h: [r, H] bf16, weight: [V, H] bf16, targets: [r] int64, logprobs: [r] fp32 (written),
//   direction: [r, H] fp32 (written; undefined without gradient).
void bf16_chunk(const torch::Tensor& h, const torch::Tensor& weight, const torch::Tensor& targets,
                int64_t vocab_slice_rows, torch::Tensor logprobs, torch::Tensor direction) {
  const int64_t rows = h.size(0), vocab = weight.size(0);
  const bool need_grad = direction.defined();
  const int64_t slice_rows = std::min(vocab_slice_rows, vocab);
  auto bf16 = h.options().dtype(torch::kBFloat16);
  torch::Tensor logits = torch::empty({rows, need_grad ? vocab : slice_rows}, bf16);  // [r, V or S]
  lm_head_kernels::RunningLogSumExp running(targets, vocab);  // checks the targets once
  for (int64_t s = 0; s < vocab; s += slice_rows) {
    const int64_t width = std::min(slice_rows, vocab - s);
    auto out = logits.narrow(1, need_grad ? s : 0, width);                   // [r, width] view
    torch::mm_out(out, h, weight.narrow(0, s, width).t());                  // [r, width] bf16
    lm_head_kernels::accumulate(out, s, running);
  }
  auto lp = torch::empty({rows}, torch::kFloat32);  // [r]
  float* lpp = lp.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    lpp[r] = running.target_logit[static_cast<size_t>(r)] - running.logsumexp(r);
  }
  logprobs.copy_(lp);
  if (need_grad) {
    lm_head_kernels::write_softmax_minus_onehot(logits, running);
    // d logp / d h = -(softmax - onehot) @ W: [r, H].
    direction.copy_(torch::matmul(logits, weight).neg_());
  }
}

// Forward computes log-probs chunk by chunk; with grad it also keeps d logp / d hidden per row.
class TargetLogprobsFunction : public torch::autograd::Function<TargetLogprobsFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx,
                               const torch::Tensor& hidden,  // [N, H]
                               const torch::Tensor& weight,  // [V, H]
                               const torch::Tensor& targets,  // [N] int64
                               int64_t chunk_rows,
                               int64_t vocab_slice_rows,
                               bool need_grad) {
    const int64_t n = hidden.size(0);
    auto logprobs = torch::empty({n}, hidden.options().dtype(torch::kFloat32));  // [N]
    torch::Tensor direction;  // [N, H] fp32: d logp_i / d hidden_i
    if (need_grad) {
      direction = torch::empty({n, hidden.size(1)}, hidden.options().dtype(torch::kFloat32));
    }
    // Chunks of equal size (at most chunk_rows): 255 rows as 128 + 127, not 220 + 35, whose
    // small GEMM runs well below the large one's rate.
    const int64_t chunks = (n + chunk_rows - 1) / std::max<int64_t>(1, chunk_rows);
    const int64_t even_rows = (n + chunks - 1) / std::max<int64_t>(1, chunks);
    for (int64_t start = 0; start < n; start += even_rows) {
      const int64_t rows = std::min(even_rows, n - start);
      auto h = hidden.narrow(0, start, rows);                                // [r, H]
      auto t = targets.narrow(0, start, rows).unsqueeze(1);                  // [r, 1]
      if (lm_head_kernels::supported(weight) && h.scalar_type() == torch::kBFloat16) {
        bf16_chunk(h, weight, t.squeeze(1), vocab_slice_rows, logprobs.narrow(0, start, rows),
                   need_grad ? direction.narrow(0, start, rows) : torch::Tensor());
        continue;
      }
      auto chunk_logits = torch::nn::functional::linear(h, weight);          // [r, V] weight dtype
      auto logits = chunk_logits.to(torch::kFloat32);                       // [r, V]
      // log-sum-exp with the max shift written out and the exponentials taken in place, so the
      // chunk never holds a second [r, V] fp32 buffer (logsumexp() allocates one).
      auto target_logit = logits.gather(1, t);                              // [r, 1]
      auto row_max = logits.amax(1, /*keepdim=*/true);                      // [r, 1]
      auto p = logits.sub_(row_max).exp_();                                 // [r, V] unnormalised
      auto row_sum = p.sum(1, /*keepdim=*/true);                            // [r, 1]
      auto lse = row_sum.log().add_(row_max);                               // [r, 1]
      logprobs.narrow(0, start, rows).copy_((target_logit - lse).squeeze(1));
      if (need_grad) {
        // softmax - onehot, in place over the logits buffer: [r, V] fp32.
        p.div_(row_sum);                                                     // [r, V]
        p.scatter_add_(1, t, torch::full({rows, 1}, -1.0F, p.options()));    // [r, V]
        // d logp / d h = W[t] - softmax @ W = -(softmax - onehot) @ W: [r, H].
        auto d = torch::matmul(p.to(weight.scalar_type()), weight).neg_();  // [r, H]
        direction.narrow(0, start, rows).copy_(d);
      }
    }
    if (need_grad) {
      ctx->save_for_backward({direction});
    }
    ctx->saved_data["hidden_dtype"] = static_cast<int64_t>(hidden.scalar_type());
    return logprobs;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const auto dtype = static_cast<torch::ScalarType>(ctx->saved_data["hidden_dtype"].toInt());
    torch::Tensor grad_hidden;
    if (!saved.empty() && saved[0].defined()) {
      // grad_outputs[0]: [N] -> grad_hidden [N, H] in the hidden dtype.
      grad_hidden = (saved[0] * grad_outputs[0].unsqueeze(1)).to(dtype);
    }
    return {grad_hidden, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

int64_t default_chunk_rows(int64_t vocab_size) {
  return std::max<int64_t>(16, kChunkElements / std::max<int64_t>(1, vocab_size));
}

int64_t default_vocab_slice_rows(const torch::Tensor& lm_head_weight) {
  const int64_t row_bytes = lm_head_weight.size(1) * lm_head_weight.element_size();
  // A multiple of 256 rows (whole GEMM blocks), at least 256.
  return std::max<int64_t>(256, kVocabSliceWeightBytes / std::max<int64_t>(1, row_bytes) / 256 * 256);
}

torch::Tensor target_logprobs(const torch::Tensor& hidden,
                              const torch::Tensor& lm_head_weight,
                              const torch::Tensor& targets,
                              int64_t chunk_rows,
                              int64_t vocab_slice_rows) {
  TORCH_CHECK(hidden.dim() == 2 && lm_head_weight.dim() == 2 && targets.dim() == 1,
              "target_logprobs: expected hidden [N,H], weight [V,H], targets [N]");
  TORCH_CHECK(hidden.size(1) == lm_head_weight.size(1) && hidden.size(0) == targets.size(0),
              "target_logprobs: shape mismatch");
  if (chunk_rows <= 0) {
    chunk_rows = default_chunk_rows(lm_head_weight.size(0));
    // The bf16 kernel path holds no fp32 copy of a chunk: the same bytes hold twice the rows.
    if (lm_head_weight.scalar_type() == torch::kBFloat16 && lm_head_weight.device().is_cpu() &&
        model::cpu_has_fast_bf16()) {
      chunk_rows *= 2;
    }
  }
  if (vocab_slice_rows <= 0) vocab_slice_rows = default_vocab_slice_rows(lm_head_weight);
  const bool need_grad = hidden.requires_grad() && torch::GradMode::is_enabled();
  auto targets64 = targets.to(torch::kLong);  // [N]
  return TargetLogprobsFunction::apply(hidden, lm_head_weight, targets64, chunk_rows,
                                       vocab_slice_rows, need_grad);
}

torch::Tensor per_token_loss(const LossInputs& inputs, const LossOptions& options) {
  const auto& lp = inputs.logprobs;  // [N]
  switch (options.kind) {
    case LossKind::kCrossEntropy:
      return -lp;  // [N]
    case LossKind::kFocal: {
      // alpha * (1 - p)^gamma * (-log p); (1 - p) clamped so gamma < 1 stays finite at p = 1.
      auto one_minus_p = (1.0 - lp.exp()).clamp_min(0.0);                        // [N]
      return -options.focal_alpha * one_minus_p.pow(options.focal_gamma) * lp;  // [N]
    }
    case LossKind::kImportanceSampling: {
      TORCH_CHECK(inputs.advantages.defined() && inputs.sampler_logprobs.defined(),
                  "importance_sampling needs advantages and sampler logprobs");
      auto ratio = (lp - inputs.sampler_logprobs).exp();  // [N]
      return -ratio * inputs.advantages;                  // [N]
    }
    case LossKind::kPpo: {
      TORCH_CHECK(inputs.advantages.defined() && inputs.sampler_logprobs.defined(),
                  "ppo needs advantages and sampler logprobs");
      auto ratio = (lp - inputs.sampler_logprobs).exp();                       // [N]
      auto clipped = ratio.clamp(options.clip_low, options.clip_high);         // [N]
      auto objective = torch::min(ratio * inputs.advantages, clipped * inputs.advantages);  // [N]
      return -objective;  // [N]
    }
  }
  TORCH_CHECK(false, "unknown loss kind");
}

torch::Tensor reduce_loss(const LossInputs& inputs, const LossOptions& options) {
  auto mask = inputs.mask.to(torch::kFloat32);  // [N]
  auto w = inputs.weights * mask;               // [N]
  // Ignored positions may hold garbage logprobs (e.g. a clamped pad target): zero them via where
  // so a NaN/inf there can never leak into the sum or its gradient.
  auto loss = torch::where(inputs.mask, per_token_loss(inputs, options),
                           torch::zeros_like(inputs.logprobs));  // [N]
  auto total = (loss * w).sum();                                 // []
  if (options.reduction_sum) {
    return total;
  }
  auto denom = w.sum();  // []
  if (denom.item<double>() == 0.0) {
    return total * 0.0;  // keeps the graph, yields zero gradients
  }
  return total / denom;
}

}  // namespace eztinker::train
