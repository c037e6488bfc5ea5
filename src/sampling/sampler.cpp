// Token selection (greedy / temperature / top-k / top-p, seeded) and stop handling.
#include "sampling/sampler.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace eztinker::sampling {

torch::Generator make_generator(std::optional<uint64_t> seed) {
  uint64_t value = 0;
  if (seed) {
    value = *seed;
  } else {
    std::random_device rd;
    value = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  return at::make_generator<at::CPUGeneratorImpl>(value);
}

torch::Tensor filter_logits(const torch::Tensor& logits, const SamplingParams& params) {
  const auto neg_inf = -std::numeric_limits<float>::infinity();
  auto scaled = logits.to(torch::kFloat32) / params.temperature;  // [B, V]
  const int64_t vocab = scaled.size(-1);
  if (params.top_k > 0 && params.top_k < vocab) {
    // Keep the k largest; the k-th value is the threshold (ties at the threshold stay, as HF).
    auto kth = std::get<0>(scaled.topk(params.top_k, -1)).narrow(-1, params.top_k - 1, 1);  // [B,1]
    scaled = scaled.masked_fill(scaled < kth, neg_inf);  // [B, V]
  }
  if (params.top_p < 1.0) {
    auto sorted = scaled.sort(-1, /*descending=*/true);
    auto sorted_logits = std::get<0>(sorted);                     // [B, V]
    auto sorted_index = std::get<1>(sorted);                      // [B, V]
    auto probs = sorted_logits.softmax(-1);                       // [B, V]
    auto mass_before = probs.cumsum(-1) - probs;                  // [B, V]
    // Remove a token when the tokens ranked above it already hold top_p of the mass; the
    // first token is never removed (mass_before = 0), so top_p = 0 keeps the argmax only.
    auto remove_sorted = mass_before > params.top_p;              // [B, V] bool
    auto remove = torch::zeros_like(remove_sorted).scatter(-1, sorted_index, remove_sorted);
    scaled = scaled.masked_fill(remove, neg_inf);                 // [B, V]
  }
  return scaled;
}

torch::Tensor select_tokens(const torch::Tensor& logits, const SamplingParams& params,
                            torch::Generator& gen) {
  if (params.temperature <= 0.0) {
    return logits.argmax(-1);  // [B]
  }
  return draw_tokens(filter_logits(logits, params), gen);  // [B]
}

torch::Tensor draw_tokens(const torch::Tensor& filtered, torch::Generator& gen) {
  TORCH_CHECK(filtered.dim() == 2, "draw_tokens: logits must be [B, V], got ", filtered.sizes());
  // Inverse CDF, one uniform per row: torch::multinomial in libtorch 1.13 draws an exponential
  // per vocabulary entry in a serial loop (7 ms per step for 4 x 151936 on the target CPU),
  // where a scan over the row costs a few hundred microseconds and skips filtered entries.
  auto rows = filtered.to(torch::kCPU, torch::kFloat32).contiguous();  // [B, V]
  const int64_t batch = rows.size(0), vocab = rows.size(1);
  auto u = torch::rand({batch}, gen, torch::TensorOptions().dtype(torch::kFloat64));  // [B]
  auto out = torch::empty({batch}, torch::kInt64);                                    // [B]
  const float* data = rows.data_ptr<float>();
  const double* uniform = u.data_ptr<double>();
  int64_t* picked = out.data_ptr<int64_t>();
  const float removed = -std::numeric_limits<float>::infinity();
  std::vector<double> weight(static_cast<size_t>(vocab));  // exp(logit - max), 0 when removed
  for (int64_t b = 0; b < batch; ++b) {
    const float* row = data + b * vocab;
    float max_value = removed;
    for (int64_t i = 0; i < vocab; ++i) max_value = std::max(max_value, row[i]);
    TORCH_CHECK(std::isfinite(max_value), "draw_tokens: row ", b, " has no finite logit");
    double total = 0.0;  // softmax denominator over the kept entries
    int64_t last_kept = -1;
    for (int64_t i = 0; i < vocab; ++i) {
      const bool kept = row[i] != removed;
      weight[static_cast<size_t>(i)] = kept ? std::exp(row[i] - max_value) : 0.0;
      total += weight[static_cast<size_t>(i)];
      if (kept) last_kept = i;
    }
    const double target = uniform[b] * total;
    double mass = 0.0;
    int64_t choice = last_kept;  // when rounding leaves target at the very end
    for (int64_t i = 0; i < vocab; ++i) {
      if (weight[static_cast<size_t>(i)] == 0.0) continue;
      mass += weight[static_cast<size_t>(i)];
      if (mass > target) {
        choice = i;
        break;
      }
    }
    picked[b] = choice;
  }
  return out.to(filtered.device());  // [B]
}

torch::Tensor token_logprobs(const torch::Tensor& logits, const torch::Tensor& tokens) {
  auto lse = logits.to(torch::kFloat32).logsumexp(-1);                              // [B]
  auto chosen = logits.to(torch::kFloat32).gather(-1, tokens.unsqueeze(-1)).squeeze(-1);  // [B]
  return chosen - lse;
}

size_t find_stop_string(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = std::string::npos;
  for (const auto& s : stops) {
    if (s.empty()) {
      continue;
    }
    const size_t pos = text.find(s);
    if (pos != std::string::npos && (best == std::string::npos || pos < best)) {
      best = pos;
    }
  }
  return best;
}

void append_token(SequenceState& state, int32_t token, float logprob, const StopCriteria& stop) {
  if (state.finished()) {
    return;
  }
  state.token_ids.push_back(token);
  state.logprobs.push_back(logprob);
  if (std::find(stop.stop_token_ids.begin(), stop.stop_token_ids.end(), token) !=
      stop.stop_token_ids.end()) {
    state.finish_reason = "stop";
    return;
  }
  if (!stop.stop_strings.empty() && stop.decode) {
    // Decode the whole completion: a stop string may span tokens, and a multi-byte character
    // may only become valid UTF-8 once its last token arrives.
    std::string text = stop.decode(state.token_ids);
    const size_t pos = find_stop_string(text, stop.stop_strings);
    if (pos != std::string::npos) {
      state.text = text.substr(0, pos);
      state.text_final = true;
      state.finish_reason = "stop";
      return;
    }
  }
  if (static_cast<int64_t>(state.token_ids.size()) >= stop.max_new_tokens) {
    state.finish_reason = "length";
  }
}

void finalize_text(SequenceState& state, const StopCriteria& stop) {
  if (state.text_final || !stop.decode) {
    return;
  }
  std::vector<int32_t> ids = state.token_ids;
  // A stop token's own text is dropped like a stop string's (EOS is special and decodes to
  // nothing anyway; this matters for a non-special id passed in stop_token_ids).
  if (state.finish_reason == "stop" && !ids.empty() &&
      std::find(stop.stop_token_ids.begin(), stop.stop_token_ids.end(), ids.back()) !=
          stop.stop_token_ids.end()) {
    ids.pop_back();
  }
  state.text = stop.decode(ids);
  state.text_final = true;
}

}  // namespace eztinker::sampling
