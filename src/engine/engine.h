// The EZTinker engine: base models loaded once per (model, dtype, device) and shared by every
// run on them; runs = one LoRA adapter + AdamW state each; forward / forward_backward /
// optim_step / sample / checkpoints as a C++ API with no HTTP. The server's job queue drives it.
// Semantics are those of shared/docs/wire-protocol.md (EZTinker alignment: target_ids aligned
// with input_ids and shifted inside).
//
// Thread safety: calls for DIFFERENT runs may execute concurrently; calls for the SAME run must
// be serialised by the caller (the job queue does). Run creation/deletion are internally locked.
// Errors: throws eztinker::ApiError (include/eztinker/error.h) with kNotFound for unknown runs /
// checkpoints ("Run ID <id> not found"), kBadRequest for unloadable models, kConflict for an
// existing run id, kValidation for bad inputs (token id out of vocabulary, too long, ...).
#pragma once

#include "lora/lora_adapter.h"

#include <eztinker/tokenizer.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace eztinker::engine {

struct EngineOptions {
  std::filesystem::path checkpoints_dir = "checkpoints";  // <dir>/<run_id>/<name>/ + runs.json
  std::filesystem::path models_dir;                        // EZTINKER_MODELS_DIR; empty = unset
  std::map<std::string, std::filesystem::path> aliases;   // --alias NAME=DIR
  std::string dtype = "auto";   // auto | fp32 | bf16 (auto: bf16 with avx512_bf16/AMX or CUDA)
  std::string device = "cpu";   // any torch device string ("cpu", "cuda:0")
  bool allow_download = false;  // fetch unknown models from $HF_ENDPOINT into the HF cache
  int threads = 0;              // intra-op threads; 0 = leave libtorch's default
};

// One training sequence. Empty target_ids = input_ids; empty weights = all ones.
struct TrainExample {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> target_ids;
  std::vector<float> weights;
  std::vector<float> advantages;        // RL losses: per position, aligned like weights
  std::vector<float> sampler_logprobs;  // RL losses: log q(target_ids[t]) under the sampler
};

enum class LossFn { kCrossEntropy, kWeightedCrossEntropy, kFocal, kImportanceSampling, kPpo };

struct LossSpec {
  LossFn fn = LossFn::kCrossEntropy;
  bool reduction_sum = false;  // false = "mean": sum(w*loss) / sum(w over non-ignored)
  int32_t ignore_index = -100;
  double focal_alpha = 0.25;
  double focal_gamma = 2.0;
  double clip_low = 0.8;   // ppo ratio clip range [clip_low, clip_high]
  double clip_high = 1.2;
};

struct ForwardResult {
  double loss = 0.0;
  int64_t num_tokens = 0;  // positions that carried loss
  int64_t batches = 1;
  // logprobs[i][t] = log p(target_ids[t+1] | input_ids[0..t]), T-1 values; nullopt if ignored.
  std::vector<std::vector<std::optional<float>>> logprobs;
};

struct AdamParams {
  double learning_rate = 2e-4;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double grad_clip_norm = 1.0;  // 0 = no clipping
};

struct OptimResult {
  int64_t step = 0;
  double grad_norm = 0.0;  // total L2 norm before clipping
};

struct SampleSpec {
  std::optional<std::string> run_id;      // sample through this run's adapter, or
  std::optional<std::string> base_model;  // the bare base (no adapter)
  std::vector<int32_t> prompt_ids;
  int64_t max_new_tokens = 100;
  double temperature = 1.0;  // 0 = greedy
  double top_p = 1.0;
  int64_t top_k = 50;        // 0 = off
  int64_t num_samples = 1;   // decoded as one batch
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;                       // stop strings (cut from the text)
  std::optional<std::vector<int32_t>> stop_token_ids;  // nullopt = model EOS ids
  bool return_logprobs = false;
};

struct SampleOutput {
  std::vector<int32_t> token_ids;  // completion only
  std::string text;                // completion only, special tokens skipped
  std::vector<float> logprobs;     // per completion token (temperature-1 model distribution)
  std::string finish_reason;       // "stop" | "length"
};

struct SampleResult {
  std::vector<SampleOutput> samples;
};

struct CheckpointInfo {
  std::string name;
  std::string run_id;
  std::string adapter_path;
  std::optional<std::string> optimizer_path;
  std::string created_at;  // ISO-8601 UTC
  int64_t size_bytes = 0;
  bool is_sampler = false;
};

struct RunInfo {
  std::string run_id;
  std::string base_model;
  std::string device;
  std::string dtype;
  lora::LoraConfig lora_config;
  int64_t trainable_parameters = 0;
  int64_t step = 0;
  int64_t tokens_trained = 0;
  std::optional<double> last_loss;
  std::string created_at;
};

struct CreateRunSpec {
  std::string base_model;
  lora::LoraConfig lora_config;
  std::optional<std::string> run_id;           // default: "run_" + 8 lowercase hex
  std::optional<std::string> from_checkpoint;  // checkpoint dir or PEFT adapter dir
  std::optional<uint64_t> seed;                // LoRA init seed
};

struct BaseModelInfo {
  std::string name;
  std::string path;
  std::string dtype;
  std::string device;
  int64_t parameters = 0;
  int64_t bytes = 0;
  int64_t runs = 0;
};

struct EvaluateBatch {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> target_ids;
};

struct EvaluateResult {
  std::vector<double> scores;     // per batch: mean CE loss
  std::vector<double> log_probs;  // per batch: mean log-prob of target_ids[1:]
};

class Engine {
 public:
  explicit Engine(EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Loads (or reuses) a base model; used for --model preloading and /v1/sample with base_model.
  BaseModelInfo load_base_model(const std::string& name);
  std::vector<BaseModelInfo> base_models() const;

  RunInfo create_run(const CreateRunSpec& spec);
  void delete_run(const std::string& run_id);  // unloads the base when its last run goes
  std::vector<RunInfo> list_runs() const;
  RunInfo get_run(const std::string& run_id) const;
  bool has_run(const std::string& run_id) const;

  // Tokenizer of a run's base model or of a base model by name (loading it if needed).
  std::shared_ptr<const tokenizer::Tokenizer> run_tokenizer(const std::string& run_id) const;
  std::shared_ptr<const tokenizer::Tokenizer> model_tokenizer(const std::string& base_model);
  // Context length / vocabulary of a run's base (for request validation before enqueueing).
  int64_t run_max_positions(const std::string& run_id) const;
  int64_t run_vocab_size(const std::string& run_id) const;

  // backward=false: forward only, no gradient. Gradients accumulate until optim_step.
  ForwardResult forward(const std::string& run_id,
                        const std::vector<TrainExample>& batch,
                        const LossSpec& loss,
                        bool backward);
  OptimResult optim_step(const std::string& run_id, const AdamParams& params);
  SampleResult sample(const SampleSpec& spec);
  EvaluateResult evaluate(const std::string& run_id, const std::vector<EvaluateBatch>& batches);

  // <checkpoints_dir>/<run_id>/<name>/, atomic (temp dir + rename). `attributes`: what the
  // caller keeps with the checkpoint (the server: the run's loss_config), written as
  // checkpoint.json's "attributes" object (the engine does not read it back).
  CheckpointInfo save_checkpoint(const std::string& run_id, const std::string& name,
                                 const nlohmann::json& attributes = nlohmann::json::object());
  // name_or_path: a checkpoint name of this run, a checkpoint dir, or any PEFT adapter dir.
  void load_checkpoint(const std::string& run_id,
                       const std::string& name_or_path,
                       bool load_optimizer);
  std::vector<CheckpointInfo> list_checkpoints(const std::optional<std::string>& run_id) const;
  void delete_checkpoint(const std::string& run_id, const std::string& name);
  // Writes base + adapter merged as a Hugging Face model directory the loader reads back.
  void export_merged(const std::string& run_id, const std::filesystem::path& out_dir);

  const EngineOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace eztinker::engine
