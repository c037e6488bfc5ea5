// Every /v1 request, response and job struct, as plain C++ (no JSON, no libtorch), mirroring
// shared/docs/wire-protocol.md field for field (snake_case names = the wire names). Defaults
// here ARE the wire defaults: a struct left at its defaults serializes to what a Part-A client
// gets when it omits the field. JSON conversion and validation live in api_json.h.
// Tensors never appear here: token ids are std::vector<int32_t>, per-token values float
// (the Tinker TensorData boundary; a client never needs libtorch).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eztinker::api {

using TokenIds = std::vector<int32_t>;

// ---------------------------------------------------------------------------------------------
// Server facts
// ---------------------------------------------------------------------------------------------

// GET /health -> exactly {"status":"ok"}.
struct Health {
  std::string status = "ok";
};

// GET /v1/version.
struct Version {
  std::string version;                 // eztinker version, e.g. "0.2.0"
  std::string api_version;             // kApiVersion
  std::optional<std::string> git_sha;  // absent outside a git build
};

// One base model loaded by the server (GET /v1/status).
struct LoadedModel {
  std::string name;            // as requested (alias or path)
  std::string dtype;           // "float32", "bfloat16", ...
  int64_t num_parameters = 0;  // base parameters (frozen)
  int64_t bytes = 0;           // memory held by the base weights
};

// Number of jobs the server currently remembers per status.
struct JobCounts {
  int64_t queued = 0;
  int64_t running = 0;
  int64_t completed = 0;
  int64_t failed = 0;
  int64_t cancelled = 0;
};

// GET /v1/status.
struct Status {
  std::string version;
  double uptime_s = 0;
  std::string device;  // "cpu", "cuda:0"
  int threads = 0;     // intra-op threads of the engine
  int workers = 0;     // concurrent job workers
  std::vector<LoadedModel> models;
  int64_t num_runs = 0;
  int64_t queue_depth = 0;  // jobs queued, not yet running
  JobCounts jobs;
};

// ---------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------

// PEFT LoRA settings (wire `lora_config`; `null` or absent = all defaults, partial = filled).
struct LoraConfig {
  int r = 8;                   // rank, >= 1. Higher = more capacity, more memory.
  int lora_alpha = 16;         // >= 1; scaling = alpha / r (alpha / sqrt(r) with rsLoRA)
  double lora_dropout = 0.05;  // 0..1, applied to the adapter input only while training
  // Modules to adapt. Empty = "all-linear" (on Qwen2: q,k,v,o,gate,up,down; never lm_head);
  // otherwise module names such as {"q_proj","v_proj"}.
  std::vector<std::string> target_modules;
  bool use_rslora = false;  // rank-stabilised scaling alpha/sqrt(r)

  bool all_linear() const { return target_modules.empty(); }
};

// Default loss of a run (wire `loss_config`). Values outside the sets below -> 422.
struct LossConfig {
  std::string loss_type = "cross_entropy";  // "cross_entropy" | "weighted_cross_entropy" | "focal_loss"
  int ignore_index = -100;                  // target id that carries no loss
  double focal_alpha = 0.25;                // 0..1 (focal_loss only)
  double focal_gamma = 2.0;                 // >= 0 (focal_loss only)
  std::string reduction = "mean";           // "mean" | "sum"
};

// POST /v1/runs.
struct CreateRunRequest {
  // Model name (alias such as "Qwen/Qwen2-0.5B-Instruct") or local directory. Required unless
  // from_checkpoint is given (then empty = the checkpoint's base model). An empty or unknown
  // name is a 400 from the server (model cannot be loaded), not a 422.
  std::string base_model;
  LoraConfig lora_config;
  LossConfig loss_config;
  std::optional<std::string> run_id;           // default: "run_" + 8 hex
  std::optional<std::string> from_checkpoint;  // checkpoint dir (or PEFT adapter dir) to start from
  std::optional<uint64_t> seed;                // adapter init seed
};

// 200 reply of POST /v1/runs.
struct CreateRunResponse {
  std::string run_id;
  std::string status = "created";
  std::string message = "Training session initialized";
};

// One entry of GET /v1/runs.
struct RunSummary {
  std::string run_id;
  std::string base_model;
  std::string device;
};

// GET /v1/runs -> {"runs":[...]} ({"runs":[]} when empty).
struct ListRunsResponse {
  std::vector<RunSummary> runs;
};

// GET /v1/runs/{run_id}.
struct RunInfo {
  std::string run_id;
  std::string base_model;
  std::string device;
  LoraConfig lora_config;
  LossConfig loss_config;
  int64_t trainable_parameters = 0;
  int64_t step = 0;            // optimizer steps taken
  int64_t tokens_trained = 0;  // loss-carrying tokens seen by forward_backward
  std::optional<double> last_loss;
  std::string created_at;  // ISO-8601 UTC
};

// DELETE /v1/runs/{run_id}.
struct DeleteRunResponse {
  std::string status = "deleted";
  std::string run_id;
};

// ---------------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------------

// One training sequence. Every per-token vector has input_ids' length (checked: 422 otherwise).
// target_ids share input_ids' alignment (NOT pre-shifted): position t predicts target_ids[t+1].
struct Datum {
  TokenIds input_ids;                          // non-empty, ids >= 0
  std::optional<TokenIds> target_ids;          // default input_ids; ignore_index = no loss
  std::optional<std::vector<float>> weights;   // >= 0; weights[t] weighs target_ids[t]
  std::optional<std::vector<float>> advantages;  // RL losses: per-token advantage
  std::optional<std::vector<float>> logprobs;    // RL losses: sampler log-probs of target_ids[t]
};
using Example = Datum;

// One chat turn (chat forms of training and sampling).
struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

// Which of the four training-input forms a request used.
enum class TrainInputForm {
  kSingle,  // top-level {input_ids, target_ids?, weights?, ...} (Part A)
  kBatch,   // {"examples":[Datum...]}: one job, one padded batch
  kText,    // {"prompt","completion"}: server tokenizes; prompt tokens weight 0
  kChat,    // {"messages","train_on"}: server applies the chat template
};

// POST /v1/runs/{run_id}/forward_backward and /forward (same body).
struct ForwardBackwardRequest {
  TrainInputForm form = TrainInputForm::kSingle;
  // kSingle: exactly one entry (from the top-level fields); kBatch: >= 1 entries.
  std::vector<Datum> examples;
  // kText:
  std::string prompt;
  std::string completion;
  // kChat:
  std::vector<ChatMessage> messages;
  std::string train_on = "assistant";  // "assistant" | "last_assistant" | "all"

  std::string loss_fn = "cross_entropy";  // "cross_entropy" | "importance_sampling" | "ppo"
  std::optional<std::string> reduction;   // "mean" | "sum"; absent = the run's loss_config
  double clip_low = 0.8;                  // ppo: probability ratio clipped to [clip_low,
  double clip_high = 1.2;                 //      clip_high]; 0 < clip_low <= 1 <= clip_high
  std::optional<LossConfig> loss_config;  // per-request override of the run's loss_config
};
using ForwardRequest = ForwardBackwardRequest;

// Job result of forward_backward / forward.
struct ForwardBackwardResult {
  double loss = 0;
  int64_t batches = 0;     // sequences in the batch
  int64_t num_tokens = 0;  // loss-carrying tokens
  // One list per example; logprobs[i][t] = log p(target_ids[t+1] | input_ids[0..t]),
  // t = 0..T-2; nullopt (JSON null) where the target is ignored.
  std::vector<std::vector<std::optional<float>>> logprobs;
};
using ForwardResult = ForwardBackwardResult;

// POST /v1/runs/{run_id}/optim_step: AdamW hyper-parameters. Changing them between steps
// keeps the Adam moments.
struct AdamParams {
  double learning_rate = 2e-4;  // > 0, finite
  double weight_decay = 0.0;    // >= 0 (decoupled, AdamW)
  double beta1 = 0.9;           // wire: betas[0], 0 <= b < 1
  double beta2 = 0.999;         // wire: betas[1]
  double eps = 1e-8;            // > 0
  double grad_clip_norm = 1.0;  // >= 0; 0 = no clipping
};
using OptimStepRequest = AdamParams;

// Job result of optim_step.
struct OptimStepResult {
  std::string status = "optimizer_step_completed";
  int64_t step = 0;       // optimizer steps taken so far, this one included
  double grad_norm = 0;   // global L2 norm before clipping
  double learning_rate = 0;
};

// ---------------------------------------------------------------------------------------------
// Sampling
// ---------------------------------------------------------------------------------------------

// Decoding settings of /v1/sample (flat fields on the wire, next to the prompt).
struct SampleParams {
  int max_new_tokens = 100;  // 1..2048
  double temperature = 1.0;  // 0..10; 0 = greedy
  double top_p = 1.0;        // 0..1 (nucleus); 1 = off
  int top_k = 50;            // >= 0; 0 = off
  bool do_sample = true;     // false = greedy whatever the temperature
  int num_samples = 1;       // 1..kMaxNumSamples, sampled as one batch
  std::optional<uint64_t> seed;  // absent = nondeterministic
  std::vector<std::string> stop;  // stop strings (not included in the completion)
  // Absent = the model's EOS tokens; an explicit empty list disables token stops.
  std::optional<TokenIds> stop_token_ids;
  bool return_logprobs = false;  // per-token log-probs of the sampled tokens
};
inline constexpr int kMaxNewTokensLimit = 2048;
inline constexpr int kMaxNumSamples = 64;

// Which of the three prompt forms a sample request used.
enum class PromptForm { kText, kTokenIds, kChat };

// POST /v1/sample.
struct SampleRequest {
  PromptForm form = PromptForm::kText;
  std::string prompt;                 // kText
  TokenIds prompt_ids;                // kTokenIds
  std::vector<ChatMessage> messages;  // kChat: chat template + generation prompt
  // Which model: run_id (through its adapter), base_model (no adapter), or neither (server's
  // default model, or the only run).
  std::optional<std::string> run_id;
  std::optional<std::string> base_model;
  SampleParams params;
};

// One completion.
struct SampleOutput {
  std::string text;  // completion only (no prompt), special tokens skipped
  TokenIds token_ids;
  std::optional<std::vector<float>> logprobs;  // when return_logprobs
  std::string finish_reason;                   // "stop" | "length"
};

// Job result of sample.
struct SampleResult {
  std::string generated_text;  // prompt + first completion (Part A)
  std::vector<SampleOutput> samples;
};

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

// POST /v1/runs/{run_id}/save (`?name=` or body {"name"}).
struct SaveRequest {
  std::string name;  // validated: non-empty, <= kMaxNameLength, no '/', '\\', "..", NUL
};
inline constexpr size_t kMaxNameLength = 128;

// Job result of save.
struct SaveResult {
  std::string name;
  std::string run_id;
  std::string path;  // the checkpoint directory
  std::string adapter_path;
  std::optional<std::string> optimizer_path;  // null when no optimizer state was saved
  int64_t step = 0;
};

// POST /v1/runs/{run_id}/load: exactly one of name (a checkpoint of this run) or path (any
// checkpoint or PEFT adapter directory).
struct LoadRequest {
  std::optional<std::string> name;
  std::optional<std::string> path;
  bool load_optimizer = true;
};

// Job result of load.
struct LoadResult {
  std::string run_id;
  std::string path;
  int64_t step = 0;
  bool loaded_optimizer = false;
};

// One checkpoint (GET /v1/runs/{id}/checkpoints and /v1/checkpoints), newest first.
struct CheckpointInfo {
  std::string name;
  std::string run_id;
  std::string adapter_path;
  std::optional<std::string> optimizer_path;
  std::string created_at;  // ISO-8601 UTC
  int64_t size_bytes = 0;
  bool is_sampler = false;  // saved for sampling only (no optimizer state)
};

struct ListCheckpointsResponse {
  std::vector<CheckpointInfo> checkpoints;
};

// DELETE /v1/runs/{run_id}/checkpoints/{name}.
struct DeleteCheckpointResponse {
  std::string status = "deleted";
  std::string run_id;
  std::string name;
};

// ---------------------------------------------------------------------------------------------
// Evaluation, tokenizer
// ---------------------------------------------------------------------------------------------

// One evaluation batch (Part A shape; response_ids/prompt_ids are accepted and passed along).
struct EvalBatch {
  TokenIds input_ids;                  // non-empty
  std::optional<TokenIds> target_ids;  // default input_ids; same length
  std::optional<TokenIds> response_ids;
  std::optional<TokenIds> prompt_ids;
};

// POST /v1/runs/{run_id}/evaluate.
struct EvaluateRequest {
  std::optional<std::string> run_id;  // Part A sends it in the body too; the path wins
  std::vector<EvalBatch> batches;     // >= 1
  double temperature = 1.0;           // 0..10 (accepted for compatibility)
  int max_new_tokens = 100;           // 1..2048 (accepted for compatibility)
};

// Job result of evaluate: per batch, mean CE loss and mean log-prob of target_ids[1:].
struct EvaluateResult {
  std::vector<double> scores;
  std::vector<double> log_probs;
};

// POST /v1/tokenize.
struct TokenizeRequest {
  std::string text;
  std::optional<std::string> run_id;      // the tokenizer of this run's model, or
  std::optional<std::string> base_model;  // of this model; neither = the default model
  bool add_special_tokens = false;
};
struct TokenizeResponse {
  TokenIds tokens;
};

// POST /v1/detokenize.
struct DetokenizeRequest {
  TokenIds tokens;
  std::optional<std::string> run_id;
  std::optional<std::string> base_model;
  bool skip_special_tokens = false;
};
struct DetokenizeResponse {
  std::string text;
};

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

enum class JobStatus { kQueued, kRunning, kCompleted, kFailed, kCancelled };

// The wire strings ("queued", "running", "completed", "failed", "cancelled"): the ONLY place
// they are spelled.
std::string_view to_string(JobStatus status);
std::optional<JobStatus> job_status_from_string(std::string_view text);
inline bool is_terminal(JobStatus s) {
  return s == JobStatus::kCompleted || s == JobStatus::kFailed || s == JobStatus::kCancelled;
}

// GET /v1/jobs/{job_id}, and the reply of every job POST (then result/error are set only when
// `?wait=` saw the job end). Always serialized with job_id, status, result, error (null when
// unset); the optional facts below are added only when set.
struct JobInfo {
  std::string job_id;
  JobStatus status = JobStatus::kQueued;
  // The result object as JSON text (nullopt <-> null). Kept as text so this header stays free
  // of nlohmann; api_json.h's result_as<T>(job) gives the typed result
  // (ForwardBackwardResult, OptimStepResult, SampleResult, SaveResult, LoadResult,
  // EvaluateResult).
  std::optional<std::string> result_json;
  std::optional<std::string> error;
  std::optional<std::string> run_id;      // the run the job belongs to (none for base sampling)
  std::optional<std::string> type;        // "forward_backward", "optim_step", "sample", ...
  std::optional<std::string> created_at;  // ISO-8601 UTC
};

// GET /v1/jobs?run_id=&status=.
struct ListJobsResponse {
  std::vector<JobInfo> jobs;
};

// DELETE /v1/jobs/{job_id} -> the cancelled job.
using CancelJobResponse = JobInfo;

}  // namespace eztinker::api
