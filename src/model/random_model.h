// Random-initialised Qwen2 model directories for tests and benchmarks: `tiny` (2 layers,
// hidden 64, 4 heads, 2 kv heads, intermediate 128, a small trained byte-level BPE) and
// `qwen2-0.5b` (the exact Qwen2-0.5B shapes, 494 M parameters). Written as a complete HF
// directory: config.json, generation_config.json, model.safetensors, tokenizer files.
// Deterministic for a seed. Used by `eztinker make-model`.
#pragma once

#include "model/qwen2.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace eztinker::model {

inline const std::vector<std::string> kRandomModelPresets = {"tiny", "qwen2-0.5b"};

struct RandomModelOptions {
  std::string preset = "tiny";            // one of kRandomModelPresets
  std::filesystem::path out_dir;          // created; existing model files are replaced
  uint64_t seed = 0;                      // weight init seed
  std::string dtype = "fp32";             // stored dtype: fp32 | bf16
  // Copy the tokenizer from this directory instead of training the built-in tiny BPE. The
  // config vocab_size becomes max(preset vocab, tokenizer vocab rounded up to 64) for tiny, and
  // stays 151936 for qwen2-0.5b (the tokenizer must fit in it).
  std::filesystem::path tokenizer_from;
};

// The preset's config with vocab_size left at its default (tiny: 256; qwen2-0.5b: 151936).
// Throws std::invalid_argument listing the presets for an unknown name.
Qwen2Config random_model_preset(const std::string& preset);

// Fills every parameter: normal(0, initializer_range) for embeddings, projections and biases
// (HF zeroes biases; random ones exercise the bias path in tests), RMSNorm weights = 1.
// Values are drawn in fp32 from a CPU generator in named_parameters() order, then cast, so the
// fp32 and bf16 models of one seed agree up to rounding.
void init_random_weights(Qwen2ForCausalLMImpl& model, uint64_t seed);

// Writes the directory; returns the config written. Throws std::runtime_error /
// std::invalid_argument with the reason.
Qwen2Config write_random_model(const RandomModelOptions& options);

// The built-in demo model (`eztinker demo`): the tiny preset with an untied lm_head drawn with
// std kDemoLmHeadStd, fp32, tokenizer files copied from `tokenizer_dir`, deterministic for the
// seed. Why untied: the tiny preset ties lm_head to the embeddings (HF init, std 0.02); with
// hidden 64 that bounds every logit by |h| * |e| ~ 8 * 0.16 ~ 1.3, so no adapter could make the
// model confident about a token (the final norm and lm_head are not LoRA targets), and scaling
// the tied matrix up instead makes a random model repeat its last token. An untied std-0.2
// lm_head keeps the untrained model close to uniform (logit std ~1.6) while LoRA can reach
// confident answers.
constexpr double kDemoLmHeadStd = 0.2;
void write_demo_model(const std::filesystem::path& out_dir,
                      const std::filesystem::path& tokenizer_dir, uint64_t seed);

// The built-in English + arithmetic text the tiny tokenizer is trained on.
const std::string& tiny_tokenizer_training_text();

}  // namespace eztinker::model
