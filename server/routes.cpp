// The /v1 handlers and the route table; see routes.h. Each handler: parse + validate the
// request with api::parse_* (422 before any lookup), check it against the model (vocabulary,
// context length) when the run exists, then either answer directly (runs, checkpoints, tokenizer)
// or enqueue a job on the run's lane and answer with the job (optionally after `?wait=`).
// Conversions api types <-> engine types live here and nowhere else.
#include "routes.h"

#include "server_log.h"

#include <eztinker/api_json.h>
#include <eztinker/api_paths.h>
#include <eztinker/error.h>
#include <eztinker/tokenizer.h>
#include <eztinker/version.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <utility>

namespace eztinker::server {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Request, RouteContext
// ---------------------------------------------------------------------------------------------

std::optional<std::string> Request::query_param(const std::string& name) const {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Request::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

const std::string& Request::path_param(const std::string& name) const {
  static const std::string kEmpty;
  auto it = path_params.find(name);
  return it == path_params.end() ? kEmpty : it->second;
}

RouteContext::RouteContext(engine::Engine& engine, JobQueue& queue, const ServerConfig& config)
    : engine_(engine), queue_(queue), config_(config), started_(std::chrono::steady_clock::now()) {}

double RouteContext::uptime_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

api::LossConfig RouteContext::loss_config(const std::string& run_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = loss_configs_.find(run_id);
  return it == loss_configs_.end() ? api::LossConfig{} : it->second;
}

void RouteContext::set_loss_config(const std::string& run_id, const api::LossConfig& config) {
  std::lock_guard<std::mutex> lock(mutex_);
  loss_configs_[run_id] = config;
}

void RouteContext::erase_loss_config(const std::string& run_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  loss_configs_.erase(run_id);
}

std::string iso8601(std::chrono::system_clock::time_point time) {
  const auto since_epoch = time.time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
  const std::time_t t = static_cast<std::time_t>(seconds.count());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[40];
  const size_t n = std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%S", &tm);
  char full[64];
  std::snprintf(full, sizeof(full), "%.*s.%03dZ", static_cast<int>(n), buffer,
                static_cast<int>(millis));
  return full;
}

json job_to_json(const JobSnapshot& job) {
  api::JobInfo info;
  info.job_id = job.job_id;
  info.status = job.state;
  if (!job.error.empty()) info.error = job.error;
  if (!job.run_id.empty()) info.run_id = job.run_id;
  info.type = job.type;
  info.created_at = iso8601(job.created_at);
  json out = info;
  out["result"] = job.result;  // already JSON: no text round trip
  return out;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Validation helpers (422 lists in FastAPI's shape, for checks that need the model)
// ---------------------------------------------------------------------------------------------

class Problems {
 public:
  void add(json loc, const std::string& msg, const std::string& type = "value_error") {
    if (list_.size() >= 20) return;  // like pydantic: enough to fix the request
    std::string where;
    for (const auto& part : loc) {
      std::string piece = part.is_string() ? part.get<std::string>() : part.dump();
      if (where.empty() && (piece == "body" || piece == "query" || piece == "path")) continue;
      where += (where.empty() ? "" : ".") + piece;
    }
    summary_ += (summary_.empty() ? "" : "; ") + where + ": " + msg;
    list_.push_back({{"loc", std::move(loc)}, {"msg", msg}, {"type", type}});
  }
  void throw_if_any() const {
    if (!list_.empty()) throw ApiError::validation(summary_, list_.dump());
  }

 private:
  json list_ = json::array();
  std::string summary_;
};

json loc_plus(json loc, json part) {
  loc.push_back(std::move(part));
  return loc;
}

// Token ids must index the model's embedding. `ignore_index` (targets only) is allowed.
void check_token_ids(Problems& problems,
                     const std::vector<int32_t>& ids,
                     int64_t vocab_size,
                     const json& loc,
                     std::optional<int32_t> ignore_index = std::nullopt) {
  for (size_t t = 0; t < ids.size(); ++t) {
    const int32_t id = ids[t];
    if (ignore_index && id == *ignore_index) continue;
    if (id < 0 || id >= vocab_size) {
      problems.add(loc_plus(loc, t),
                   "Value error, token id " + std::to_string(id) +
                       " is outside the model's vocabulary [0, " + std::to_string(vocab_size) +
                       ")" + (ignore_index ? " (use " + std::to_string(*ignore_index) +
                                                 " to mark positions without loss)"
                                           : ""));
      return;  // one message per list is enough
    }
  }
}

void check_length(Problems& problems, size_t length, int64_t max_positions, const json& loc) {
  if (max_positions > 0 && static_cast<int64_t>(length) > max_positions) {
    problems.add(loc, "Value error, sequence has " + std::to_string(length) +
                          " tokens, longer than the model's context of " +
                          std::to_string(max_positions) + " positions");
  }
}

// ---------------------------------------------------------------------------------------------
// api <-> engine conversions
// ---------------------------------------------------------------------------------------------

lora::LoraConfig to_engine_lora(const api::LoraConfig& config) {
  lora::LoraConfig out;
  out.r = config.r;
  out.lora_alpha = config.lora_alpha;
  out.lora_dropout = config.lora_dropout;
  out.target_modules = config.all_linear() ? lora::kAllLinearTargets : config.target_modules;
  out.use_rslora = config.use_rslora;
  return out;
}

api::LoraConfig to_api_lora(const lora::LoraConfig& config) {
  api::LoraConfig out;
  out.r = static_cast<int>(config.r);
  out.lora_alpha = static_cast<int>(std::lround(config.lora_alpha));
  out.lora_dropout = config.lora_dropout;
  const std::set<std::string> all(lora::kAllLinearTargets.begin(), lora::kAllLinearTargets.end());
  const std::set<std::string> given(config.target_modules.begin(), config.target_modules.end());
  if (given != all) out.target_modules = config.target_modules;  // empty = "all-linear"
  out.use_rslora = config.use_rslora;
  return out;
}

engine::LossSpec to_loss_spec(const api::LossConfig& config, const api::ForwardBackwardRequest& request) {
  engine::LossSpec spec;
  if (request.loss_fn == "importance_sampling") {
    spec.fn = engine::LossFn::kImportanceSampling;
  } else if (request.loss_fn == "ppo") {
    spec.fn = engine::LossFn::kPpo;
  } else if (config.loss_type == "weighted_cross_entropy") {
    spec.fn = engine::LossFn::kWeightedCrossEntropy;
  } else if (config.loss_type == "focal_loss") {
    spec.fn = engine::LossFn::kFocal;
  } else {
    spec.fn = engine::LossFn::kCrossEntropy;
  }
  spec.reduction_sum = request.reduction.value_or(config.reduction) == "sum";
  spec.ignore_index = config.ignore_index;
  spec.focal_alpha = config.focal_alpha;
  spec.focal_gamma = config.focal_gamma;
  spec.clip_low = request.clip_low;
  spec.clip_high = request.clip_high;
  return spec;
}

tokenizer::TrainOn to_train_on(const std::string& train_on) {
  if (train_on == "last_assistant") return tokenizer::TrainOn::kLastAssistant;
  if (train_on == "all") return tokenizer::TrainOn::kAll;
  return tokenizer::TrainOn::kAssistant;
}

std::vector<tokenizer::ChatMessage> to_chat(const std::vector<api::ChatMessage>& messages) {
  std::vector<tokenizer::ChatMessage> out;
  out.reserve(messages.size());
  for (const auto& m : messages) out.push_back({m.role, m.content});
  return out;
}

api::CheckpointInfo to_api_checkpoint(const engine::CheckpointInfo& c) {
  api::CheckpointInfo out;
  out.name = c.name;
  out.run_id = c.run_id;
  out.adapter_path = c.adapter_path;
  out.optimizer_path = c.optimizer_path;
  out.created_at = c.created_at;
  out.size_bytes = c.size_bytes;
  out.is_sampler = c.is_sampler;
  return out;
}

json forward_result_json(const engine::ForwardResult& r) {
  api::ForwardBackwardResult out;
  out.loss = r.loss;
  out.batches = r.batches;
  out.num_tokens = r.num_tokens;
  out.logprobs = r.logprobs;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

ApiError run_not_found(const std::string& run_id) {
  return ApiError(ErrorType::kNotFound, "Run ID " + run_id + " not found");
}

// The job-side check of Part A's quirk: a job naming an unknown run is accepted (200) and
// then fails with exactly "Run ID <id> not found".
void require_run(const engine::Engine& engine, const std::string& run_id) {
  if (!engine.has_run(run_id)) throw run_not_found(run_id);
}

double wait_seconds(const RouteContext& ctx, const Request& request) {
  const auto asked = api::parse_wait_query(request.query_param(api::kWaitParam));
  const double wait = asked.value_or(ctx.config().wait_default_s);
  return std::min(wait, ctx.config().max_wait_s);
}

json submit_job(RouteContext& ctx,
                const Request& request,
                const std::string& run_id,
                const std::string& type,
                JobExecutor executor) {
  const double wait = wait_seconds(ctx, request);  // validate ?wait= before enqueueing
  JobSnapshot job = ctx.queue().submit(run_id, type, std::move(executor));
  if (wait > 0) {
    if (auto done = ctx.queue().wait(job.job_id, std::chrono::duration<double>(wait))) {
      job = std::move(*done);
    }
  }
  return job_to_json(job);
}

json failing_job(RouteContext& ctx, const Request& request, const std::string& run_id,
                 const std::string& type) {
  return submit_job(ctx, request, run_id, type, [run_id]() -> json { throw run_not_found(run_id); });
}

json parse_json_body(const Request& request, bool allow_empty = false) {
  return api::parse_body(request.body, allow_empty);
}

// The tokenizer for tokenize/detokenize/sample when the request names neither a run nor a
// model: the server's --model, else the only run.
struct ModelTarget {
  std::optional<std::string> run_id;
  std::optional<std::string> base_model;
};

ModelTarget resolve_target(const RouteContext& ctx,
                           const std::optional<std::string>& run_id,
                           const std::optional<std::string>& base_model) {
  if (run_id) return {run_id, std::nullopt};
  if (base_model) return {std::nullopt, base_model};
  if (!ctx.config().model.empty()) return {std::nullopt, ctx.config().model};
  const auto runs = ctx.engine().list_runs();
  if (runs.size() == 1) return {runs.front().run_id, std::nullopt};
  throw ApiError(ErrorType::kBadRequest,
                 "No model to use: pass run_id (a run's adapter) or base_model (the bare model)"
                 ", or start the server with --model (" +
                     std::to_string(runs.size()) + " runs exist)");
}

std::shared_ptr<const tokenizer::Tokenizer> target_tokenizer(RouteContext& ctx,
                                                             const ModelTarget& target) {
  if (target.run_id) {
    if (!ctx.engine().has_run(*target.run_id)) throw run_not_found(*target.run_id);
    return ctx.engine().run_tokenizer(*target.run_id);
  }
  return ctx.engine().model_tokenizer(*target.base_model);
}

// ---------------------------------------------------------------------------------------------
// Handlers: server facts
// ---------------------------------------------------------------------------------------------

json handle_health(RouteContext&, const Request&) { return api::Health{}; }

json handle_version(RouteContext&, const Request&) {
  api::Version v;
  v.version = kVersion;
  v.api_version = api::kApiVersion;
  if (std::string(kGitSha).size() > 0) v.git_sha = kGitSha;
  return v;
}

json handle_status(RouteContext& ctx, const Request&) {
  api::Status s;
  s.version = kVersion;
  s.uptime_s = ctx.uptime_s();
  s.device = ctx.engine().options().device;
  s.threads = ctx.engine().options().threads;
  s.workers = ctx.config().workers;
  for (const auto& model : ctx.engine().base_models()) {
    api::LoadedModel m;
    m.name = model.name;
    m.dtype = model.dtype;
    m.num_parameters = model.parameters;
    m.bytes = model.bytes;
    s.models.push_back(std::move(m));
  }
  s.num_runs = static_cast<int64_t>(ctx.engine().list_runs().size());
  const auto stats = ctx.queue().stats();
  s.queue_depth = static_cast<int64_t>(stats.queued);
  s.jobs.queued = static_cast<int64_t>(stats.queued);
  s.jobs.running = static_cast<int64_t>(stats.running);
  s.jobs.completed = static_cast<int64_t>(stats.completed);
  s.jobs.failed = static_cast<int64_t>(stats.failed);
  s.jobs.cancelled = static_cast<int64_t>(stats.cancelled);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Handlers: runs
// ---------------------------------------------------------------------------------------------

// The base model a checkpoint was trained on: checkpoint.json's "base_model" (our checkpoints)
// or adapter_config.json's "base_model_name_or_path" (any PEFT adapter). 400 when neither says.
std::string checkpoint_base_model(const std::string& dir) {
  const std::filesystem::path root(dir);
  for (const auto& [file, key] : {std::pair<const char*, const char*>{"checkpoint.json", "base_model"},
                                  {"adapter_config.json", "base_model_name_or_path"}}) {
    std::ifstream in(root / file);
    if (!in) continue;
    const json meta = json::parse(in, nullptr, false);
    if (meta.is_object() && meta.contains(key) && meta[key].is_string() &&
        !meta[key].get<std::string>().empty()) {
      return meta[key].get<std::string>();
    }
  }
  throw ApiError(ErrorType::kBadRequest,
                 "base_model is empty and checkpoint " + dir +
                     " does not name its base model (checkpoint.json / adapter_config.json)");
}

// The loss_config a run had when this checkpoint was saved (checkpoint.json's
// attributes.loss_config); nullopt for checkpoints without one (PEFT adapters, older saves).
std::optional<api::LossConfig> checkpoint_loss_config(const std::string& dir) {
  std::ifstream in(std::filesystem::path(dir) / "checkpoint.json");
  if (!in) return std::nullopt;
  const json meta = json::parse(in, nullptr, false);
  if (!meta.is_object() || !meta.contains("attributes") || !meta["attributes"].is_object() ||
      !meta["attributes"].contains("loss_config")) {
    return std::nullopt;
  }
  try {
    return meta["attributes"]["loss_config"].get<api::LossConfig>();
  } catch (const ApiError& e) {
    throw ApiError(ErrorType::kBadRequest, "checkpoint " + dir +
                                               ": checkpoint.json attributes.loss_config is invalid: " +
                                               e.message());
  }
}

json handle_create_run(RouteContext& ctx, const Request& request) {
  const json body = parse_json_body(request);
  auto parsed = api::parse_create_run_request(body);
  // A run made from one of our checkpoints keeps the loss_config it was saved with, unless
  // the request gives one.
  if (parsed.from_checkpoint && (!body.contains("loss_config") || body["loss_config"].is_null())) {
    if (auto saved = checkpoint_loss_config(*parsed.from_checkpoint)) parsed.loss_config = *saved;
  }
  if (parsed.run_id && ctx.engine().has_run(*parsed.run_id)) {
    throw ApiError(ErrorType::kBadRequest, "Run ID " + *parsed.run_id + " already exists");
  }
  if (parsed.base_model.empty() && !parsed.from_checkpoint) {
    throw ApiError(ErrorType::kBadRequest, "Failed to load model '': base_model is empty");
  }
  engine::CreateRunSpec spec;
  spec.base_model = parsed.base_model.empty() ? checkpoint_base_model(*parsed.from_checkpoint)
                                              : parsed.base_model;
  spec.lora_config = to_engine_lora(parsed.lora_config);
  spec.run_id = parsed.run_id;
  spec.from_checkpoint = parsed.from_checkpoint;
  spec.seed = parsed.seed;
  engine::RunInfo run;
  try {
    run = ctx.engine().create_run(spec);
  } catch (const ApiError& e) {
    // Part A: every create failure but validation is a 400 (unknown model, existing id, ...).
    if (e.type() == ErrorType::kValidation || e.type() == ErrorType::kBadRequest) throw;
    throw ApiError(ErrorType::kBadRequest, e.message());
  } catch (const std::exception& e) {
    throw ApiError(ErrorType::kBadRequest,
                   "Failed to load model '" + parsed.base_model + "': " + e.what());
  }
  ctx.set_loss_config(run.run_id, parsed.loss_config);
  named_logger("jobs")->info("run created run={} base_model={} trainable_parameters={}",
                             run.run_id, run.base_model, run.trainable_parameters);
  api::CreateRunResponse reply;
  reply.run_id = run.run_id;
  return reply;
}

json handle_list_runs(RouteContext& ctx, const Request&) {
  api::ListRunsResponse reply;
  for (const auto& run : ctx.engine().list_runs()) {
    reply.runs.push_back({run.run_id, run.base_model, run.device});
  }
  return reply;
}

json handle_get_run(RouteContext& ctx, const Request& request) {
  const std::string& run_id = request.path_param("run_id");
  if (!ctx.engine().has_run(run_id)) throw run_not_found(run_id);
  const auto run = ctx.engine().get_run(run_id);
  api::RunInfo reply;
  reply.run_id = run.run_id;
  reply.base_model = run.base_model;
  reply.device = run.device;
  reply.lora_config = to_api_lora(run.lora_config);
  reply.loss_config = ctx.loss_config(run_id);
  reply.trainable_parameters = run.trainable_parameters;
  reply.step = run.step;
  reply.tokens_trained = run.tokens_trained;
  reply.last_loss = run.last_loss;
  reply.created_at = run.created_at;
  return reply;
}

json handle_delete_run(RouteContext& ctx, const Request& request) {
  const std::string& run_id = request.path_param("run_id");
  // Part A quirk: an unknown run is a 400 here (not 404).
  if (!ctx.engine().has_run(run_id)) {
    throw ApiError(ErrorType::kBadRequest, "Run ID " + run_id + " not found");
  }
  try {
    ctx.engine().delete_run(run_id);
  } catch (const ApiError& e) {
    if (e.type() == ErrorType::kNotFound) {
      throw ApiError(ErrorType::kBadRequest, "Run ID " + run_id + " not found");
    }
    throw;
  }
  ctx.erase_loss_config(run_id);
  named_logger("jobs")->info("run deleted run={}", run_id);
  api::DeleteRunResponse reply;
  reply.run_id = run_id;
  return reply;
}

// ---------------------------------------------------------------------------------------------
// Handlers: training
// ---------------------------------------------------------------------------------------------

// Builds the engine batch from any of the four input forms and checks it against the model.
std::vector<engine::TrainExample> training_batch(RouteContext& ctx,
                                                 const std::string& run_id,
                                                 const api::ForwardBackwardRequest& request,
                                                 const api::LossConfig& loss) {
  std::vector<engine::TrainExample> batch;
  if (request.form == api::TrainInputForm::kText || request.form == api::TrainInputForm::kChat) {
    const auto tok = ctx.engine().run_tokenizer(run_id);
    engine::TrainExample example;
    if (request.form == api::TrainInputForm::kText) {
      // Prompt and completion are tokenized separately (Tinker's convention) so the boundary
      // is exact; prompt tokens carry weight 0.
      const auto prompt = tok->encode(request.prompt);
      const auto completion = tok->encode(request.completion);
      example.input_ids = prompt;
      example.input_ids.insert(example.input_ids.end(), completion.begin(), completion.end());
      example.weights.assign(prompt.size(), 0.0f);
      example.weights.resize(example.input_ids.size(), 1.0f);
    } else {
      const auto encoded = tok->encode_chat(to_chat(request.messages), false,
                                            to_train_on(request.train_on));
      example.input_ids = encoded.ids;
      example.weights = encoded.weights;
    }
    batch.push_back(std::move(example));
  } else {
    for (const auto& datum : request.examples) {
      engine::TrainExample example;
      example.input_ids = datum.input_ids;
      example.target_ids = datum.target_ids.value_or(std::vector<int32_t>{});
      example.weights = datum.weights.value_or(std::vector<float>{});
      example.advantages = datum.advantages.value_or(std::vector<float>{});
      example.sampler_logprobs = datum.logprobs.value_or(std::vector<float>{});
      batch.push_back(std::move(example));
    }
  }

  const int64_t vocab = ctx.engine().run_vocab_size(run_id);
  const int64_t max_positions = ctx.engine().run_max_positions(run_id);
  Problems problems;
  for (size_t i = 0; i < batch.size(); ++i) {
    const json at = request.form == api::TrainInputForm::kBatch ? json{"body", "examples", i}
                                                                : json{"body"};
    const auto& example = batch[i];
    const json input_loc = request.form == api::TrainInputForm::kSingle ||
                                   request.form == api::TrainInputForm::kBatch
                               ? loc_plus(at, "input_ids")
                               : loc_plus(at, request.form == api::TrainInputForm::kText
                                                  ? "completion"
                                                  : "messages");
    if (example.input_ids.size() < 2 &&
        (request.form == api::TrainInputForm::kText || request.form == api::TrainInputForm::kChat)) {
      problems.add(input_loc, "Value error, the input tokenizes to fewer than 2 tokens; nothing "
                              "to predict");
    }
    check_length(problems, example.input_ids.size(), max_positions, input_loc);
    check_token_ids(problems, example.input_ids, vocab, input_loc);
    if (!example.target_ids.empty()) {
      check_token_ids(problems, example.target_ids, vocab, loc_plus(at, "target_ids"),
                      loss.ignore_index);
    }
  }
  problems.throw_if_any();
  return batch;
}

json handle_forward_common(RouteContext& ctx, const Request& request, bool backward) {
  const auto parsed = api::parse_forward_backward_request(parse_json_body(request));
  const std::string run_id = request.path_param("run_id");
  const std::string type = backward ? "forward_backward" : "forward";
  if (!ctx.engine().has_run(run_id)) return failing_job(ctx, request, run_id, type);
  const api::LossConfig loss = parsed.loss_config.value_or(ctx.loss_config(run_id));
  auto batch = training_batch(ctx, run_id, parsed, loss);
  const engine::LossSpec spec = to_loss_spec(loss, parsed);
  engine::Engine& engine = ctx.engine();
  return submit_job(ctx, request, run_id, type,
                    [&engine, run_id, batch = std::move(batch), spec, backward]() -> json {
                      require_run(engine, run_id);
                      return forward_result_json(engine.forward(run_id, batch, spec, backward));
                    });
}

json handle_forward_backward(RouteContext& ctx, const Request& request) {
  return handle_forward_common(ctx, request, true);
}

json handle_forward(RouteContext& ctx, const Request& request) {
  return handle_forward_common(ctx, request, false);
}

json handle_optim_step(RouteContext& ctx, const Request& request) {
  const auto parsed = api::parse_optim_step_request(parse_json_body(request, true));
  const std::string run_id = request.path_param("run_id");
  engine::AdamParams params;
  params.learning_rate = parsed.learning_rate;
  params.weight_decay = parsed.weight_decay;
  params.beta1 = parsed.beta1;
  params.beta2 = parsed.beta2;
  params.eps = parsed.eps;
  params.grad_clip_norm = parsed.grad_clip_norm;
  engine::Engine& engine = ctx.engine();
  return submit_job(ctx, request, run_id, "optim_step", [&engine, run_id, params]() -> json {
    require_run(engine, run_id);
    const auto r = engine.optim_step(run_id, params);
    api::OptimStepResult out;
    out.step = r.step;
    out.grad_norm = r.grad_norm;
    out.learning_rate = params.learning_rate;
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Handlers: sampling
// ---------------------------------------------------------------------------------------------

json handle_sample(RouteContext& ctx, const Request& request) {
  const auto parsed = api::parse_sample_request(parse_json_body(request));
  const double wait_check = wait_seconds(ctx, request);  // a bad ?wait= is a 422 first
  (void)wait_check;
  const ModelTarget target = resolve_target(ctx, parsed.run_id, parsed.base_model);
  if (target.run_id && !ctx.engine().has_run(*target.run_id)) {
    return failing_job(ctx, request, *target.run_id, "sample");
  }
  const auto tok = target_tokenizer(ctx, target);

  engine::SampleSpec spec;
  spec.run_id = target.run_id;
  spec.base_model = target.base_model;
  std::string prompt_text;
  switch (parsed.form) {
    case api::PromptForm::kText:
      spec.prompt_ids = tok->encode(parsed.prompt);
      prompt_text = parsed.prompt;
      break;
    case api::PromptForm::kTokenIds:
      spec.prompt_ids = parsed.prompt_ids;
      break;
    case api::PromptForm::kChat:
      spec.prompt_ids = tok->encode_chat(to_chat(parsed.messages), true,
                                         tokenizer::TrainOn::kAll).ids;
      break;
  }
  const int64_t vocab = target.run_id ? ctx.engine().run_vocab_size(*target.run_id)
                                      : static_cast<int64_t>(tok->vocab_size());
  const int64_t max_positions = target.run_id ? ctx.engine().run_max_positions(*target.run_id) : 0;
  Problems problems;
  const json prompt_loc = parsed.form == api::PromptForm::kTokenIds ? json{"body", "prompt_ids"}
                          : parsed.form == api::PromptForm::kChat   ? json{"body", "messages"}
                                                                    : json{"body", "prompt"};
  if (spec.prompt_ids.empty()) problems.add(prompt_loc, "Value error, the prompt is empty");
  check_token_ids(problems, spec.prompt_ids, vocab, prompt_loc);
  if (max_positions > 0 && static_cast<int64_t>(spec.prompt_ids.size()) >= max_positions) {
    problems.add(prompt_loc, "Value error, prompt has " + std::to_string(spec.prompt_ids.size()) +
                                 " tokens; the model's context is " +
                                 std::to_string(max_positions) + " positions");
  }
  if (parsed.params.stop_token_ids) {
    check_token_ids(problems, *parsed.params.stop_token_ids, vocab, json{"body", "stop_token_ids"});
  }
  problems.throw_if_any();
  if (parsed.form != api::PromptForm::kText) prompt_text = tok->decode(spec.prompt_ids, true);

  const auto& p = parsed.params;
  spec.max_new_tokens = p.max_new_tokens;
  spec.temperature = p.do_sample ? p.temperature : 0.0;
  spec.top_p = p.top_p;
  spec.top_k = p.top_k;
  spec.num_samples = p.num_samples;
  spec.seed = p.seed;
  spec.stop = p.stop;
  spec.stop_token_ids = p.stop_token_ids;
  spec.return_logprobs = p.return_logprobs;

  engine::Engine& engine = ctx.engine();
  const std::string lane = target.run_id.value_or("");
  return submit_job(ctx, request, lane, "sample",
                    [&engine, spec = std::move(spec), prompt_text = std::move(prompt_text)]() -> json {
                      if (spec.run_id) require_run(engine, *spec.run_id);
                      const auto r = engine.sample(spec);
                      api::SampleResult out;
                      for (const auto& s : r.samples) {
                        api::SampleOutput o;
                        o.text = s.text;
                        o.token_ids = s.token_ids;
                        if (spec.return_logprobs) o.logprobs = s.logprobs;
                        o.finish_reason = s.finish_reason;
                        out.samples.push_back(std::move(o));
                      }
                      out.generated_text =
                          prompt_text + (out.samples.empty() ? "" : out.samples.front().text);
                      return out;
                    });
}

// ---------------------------------------------------------------------------------------------
// Handlers: checkpoints, evaluation
// ---------------------------------------------------------------------------------------------

json handle_save(RouteContext& ctx, const Request& request) {
  const json body = parse_json_body(request, true);
  const auto parsed = api::parse_save_request(body.empty() ? json(nullptr) : body,
                                              request.query_param(api::kNameParam));
  const std::string run_id = request.path_param("run_id");
  engine::Engine& engine = ctx.engine();
  const std::string name = parsed.name;
  // Kept with the checkpoint, so a run recreated from it (after a restart) trains the same way.
  const json attributes = {{"loss_config", ctx.loss_config(run_id)}};
  return submit_job(ctx, request, run_id, "save", [&engine, run_id, name, attributes]() -> json {
    require_run(engine, run_id);
    const auto info = engine.save_checkpoint(run_id, name, attributes);
    api::SaveResult out;
    out.name = info.name;
    out.run_id = info.run_id;
    out.path = (engine.options().checkpoints_dir / run_id / name).string();
    out.adapter_path = info.adapter_path;
    out.optimizer_path = info.optimizer_path;
    out.step = engine.get_run(run_id).step;
    return out;
  });
}

json handle_load(RouteContext& ctx, const Request& request) {
  const auto parsed = api::parse_load_request(parse_json_body(request));
  const std::string run_id = request.path_param("run_id");
  engine::Engine& engine = ctx.engine();
  const std::string source = parsed.name ? *parsed.name : *parsed.path;
  const bool load_optimizer = parsed.load_optimizer;
  return submit_job(ctx, request, run_id, "load", [&engine, run_id, source, load_optimizer]() -> json {
    require_run(engine, run_id);
    engine.load_checkpoint(run_id, source, load_optimizer);
    api::LoadResult out;
    out.run_id = run_id;
    out.path = source;
    out.step = engine.get_run(run_id).step;
    out.loaded_optimizer = load_optimizer;
    return out;
  });
}

json handle_evaluate(RouteContext& ctx, const Request& request) {
  const auto parsed = api::parse_evaluate_request(parse_json_body(request));
  const std::string run_id = request.path_param("run_id");  // the path wins over body run_id
  if (!ctx.engine().has_run(run_id)) return failing_job(ctx, request, run_id, "evaluate");
  const int64_t vocab = ctx.engine().run_vocab_size(run_id);
  const int64_t max_positions = ctx.engine().run_max_positions(run_id);
  const int32_t ignore_index = ctx.loss_config(run_id).ignore_index;
  Problems problems;
  std::vector<engine::EvaluateBatch> batches;
  for (size_t i = 0; i < parsed.batches.size(); ++i) {
    const auto& b = parsed.batches[i];
    const json at{"body", "batches", i};
    check_length(problems, b.input_ids.size(), max_positions, loc_plus(at, "input_ids"));
    check_token_ids(problems, b.input_ids, vocab, loc_plus(at, "input_ids"));
    if (b.target_ids) {
      check_token_ids(problems, *b.target_ids, vocab, loc_plus(at, "target_ids"), ignore_index);
    }
    batches.push_back({b.input_ids, b.target_ids.value_or(b.input_ids)});
  }
  problems.throw_if_any();
  engine::Engine& engine = ctx.engine();
  return submit_job(ctx, request, run_id, "evaluate",
                    [&engine, run_id, batches = std::move(batches)]() -> json {
                      require_run(engine, run_id);
                      const auto r = engine.evaluate(run_id, batches);
                      api::EvaluateResult out;
                      out.scores = r.scores;
                      out.log_probs = r.log_probs;
                      return out;
                    });
}

json checkpoints_json(const std::vector<engine::CheckpointInfo>& list) {
  api::ListCheckpointsResponse reply;
  for (const auto& c : list) reply.checkpoints.push_back(to_api_checkpoint(c));
  std::stable_sort(reply.checkpoints.begin(), reply.checkpoints.end(),
                   [](const auto& a, const auto& b) { return a.created_at > b.created_at; });
  return reply;
}

json handle_run_checkpoints(RouteContext& ctx, const Request& request) {
  const std::string& run_id = request.path_param("run_id");
  api::validate_name(run_id, {"path", "run_id"});
  return checkpoints_json(ctx.engine().list_checkpoints(run_id));
}

json handle_delete_checkpoint(RouteContext& ctx, const Request& request) {
  const std::string& run_id = request.path_param("run_id");
  const std::string& name = request.path_param("name");
  api::validate_name(name, {"path", "name"});
  ctx.engine().delete_checkpoint(run_id, name);
  named_logger("jobs")->info("checkpoint deleted run={} name={}", run_id, name);
  api::DeleteCheckpointResponse reply;
  reply.run_id = run_id;
  reply.name = name;
  return reply;
}

json handle_all_checkpoints(RouteContext& ctx, const Request&) {
  return checkpoints_json(ctx.engine().list_checkpoints(std::nullopt));
}

// ---------------------------------------------------------------------------------------------
// Handlers: jobs
// ---------------------------------------------------------------------------------------------

json handle_list_jobs(RouteContext& ctx, const Request& request) {
  const auto status = api::parse_job_status_query(request.query_param(api::kStatusParam));
  const auto run_id = request.query_param(api::kRunIdParam);
  json jobs = json::array();
  for (const auto& job : ctx.queue().list(run_id, status)) jobs.push_back(job_to_json(job));
  return json{{"jobs", std::move(jobs)}};
}

json handle_get_job(RouteContext& ctx, const Request& request) {
  const auto wait = api::parse_wait_query(request.query_param(api::kWaitParam));
  const std::string& job_id = request.path_param("job_id");
  const double seconds = std::min(wait.value_or(0.0), ctx.config().max_wait_s);
  auto job = seconds > 0 ? ctx.queue().wait(job_id, std::chrono::duration<double>(seconds))
                         : ctx.queue().get(job_id);
  if (!job) throw ApiError(ErrorType::kNotFound, "Job not found");
  return job_to_json(*job);
}

json handle_cancel_job(RouteContext& ctx, const Request& request) {
  return job_to_json(ctx.queue().cancel(request.path_param("job_id")));
}

// ---------------------------------------------------------------------------------------------
// Handlers: tokenizer
// ---------------------------------------------------------------------------------------------

json handle_tokenize(RouteContext& ctx, const Request& request) {
  const auto parsed = api::parse_tokenize_request(parse_json_body(request));
  const auto tok = target_tokenizer(ctx, resolve_target(ctx, parsed.run_id, parsed.base_model));
  api::TokenizeResponse reply;
  reply.tokens = tok->encode(parsed.text, parsed.add_special_tokens);
  return reply;
}

json handle_detokenize(RouteContext& ctx, const Request& request) {
  const auto parsed = api::parse_detokenize_request(parse_json_body(request));
  const auto tok = target_tokenizer(ctx, resolve_target(ctx, parsed.run_id, parsed.base_model));
  Problems problems;
  check_token_ids(problems, parsed.tokens, tok->vocab_size(), json{"body", "tokens"});
  problems.throw_if_any();
  api::DetokenizeResponse reply;
  reply.text = tok->decode(parsed.tokens, parsed.skip_special_tokens);
  return reply;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The route table
// ---------------------------------------------------------------------------------------------

std::vector<Route> make_routes() {
  const std::string run = std::string(api::kRunsPath) + "/{run_id}";
  std::vector<Route> routes = {
      {"GET", api::kHealthPath, handle_health, "Liveness probe: exactly {\"status\":\"ok\"}", "",
       "Health"},
      {"GET", api::kVersionPath, handle_version, "Server and API version", "", "Version"},
      {"GET", api::kStatusPath, handle_status,
       "Server facts: uptime, device, loaded models, runs, queue depth, jobs per status", "",
       "Status"},
      {"POST", api::kRunsPath, handle_create_run,
       "Create a training run (a LoRA adapter on a base model)", "CreateRunRequest",
       "CreateRunResponse"},
      {"GET", api::kRunsPath, handle_list_runs, "List runs", "", "ListRunsResponse"},
      {"GET", run, handle_get_run, "One run: config, step, tokens trained, last loss", "",
       "RunInfo"},
      {"DELETE", run, handle_delete_run, "Delete a run (unknown run: 400)", "",
       "DeleteRunResponse"},
      {"POST", run + api::kForwardBackwardSuffix, handle_forward_backward,
       "Forward + backward; gradients accumulate until optim_step (job)", "ForwardBackwardRequest",
       "Job", true},
      {"POST", run + api::kForwardSuffix, handle_forward,
       "Forward only: loss and per-token logprobs, no gradient (job)", "ForwardBackwardRequest",
       "Job", true},
      {"POST", run + api::kOptimStepSuffix, handle_optim_step,
       "AdamW step over the accumulated gradients, then zero them (job)", "OptimStepRequest",
       "Job", true, true},
      {"POST", api::kSamplePath, handle_sample,
       "Sample completions through a run's adapter or a base model (job)", "SampleRequest", "Job",
       true},
      {"POST", run + api::kSaveSuffix, handle_save,
       "Save a checkpoint; name as ?name= or body {\"name\"} (job)", "SaveRequest", "Job", true,
       true},
      {"POST", run + api::kEvaluateSuffix, handle_evaluate,
       "Per batch mean CE loss and mean log-prob of target_ids[1:] (job)", "EvaluateRequest",
       "Job", true},
      {"POST", run + api::kLoadSuffix, handle_load,
       "Restore a checkpoint (or any PEFT adapter dir) into the run (job)", "LoadRequest", "Job",
       true},
      {"GET", run + api::kRunCheckpointsSuffix, handle_run_checkpoints,
       "The run's checkpoints, newest first", "", "ListCheckpointsResponse"},
      {"DELETE", run + api::kRunCheckpointsSuffix + "/{name}", handle_delete_checkpoint,
       "Delete one checkpoint", "", "DeleteCheckpointResponse"},
      {"GET", api::kCheckpointsPath, handle_all_checkpoints, "Every run's checkpoints", "",
       "ListCheckpointsResponse"},
      {"GET", api::kJobsPath, handle_list_jobs, "List jobs (?run_id=, ?status=)", "",
       "ListJobsResponse"},
      {"GET", std::string(api::kJobsPath) + "/{job_id}", handle_get_job,
       "One job; ?wait=SECONDS long-polls until it ends", "", "Job"},
      {"DELETE", std::string(api::kJobsPath) + "/{job_id}", handle_cancel_job,
       "Cancel a queued job", "", "Job"},
      {"POST", api::kTokenizePath, handle_tokenize, "Text -> token ids", "TokenizeRequest",
       "TokenizeResponse"},
      {"POST", api::kDetokenizePath, handle_detokenize, "Token ids -> text", "DetokenizeRequest",
       "DetokenizeResponse"},
  };
  // The description of the table itself; it needs the finished table, so it is added last and
  // captures a copy of the rows above.
  std::vector<Route> described = routes;
  described.push_back({"GET", api::kOpenApiPath, nullptr, "This OpenAPI 3 document", "", ""});
  const json document = openapi_document(described);
  routes.push_back({"GET", api::kOpenApiPath,
                    [document](RouteContext&, const Request&) { return document; },
                    "This OpenAPI 3 document", "", ""});
  return routes;
}

}  // namespace eztinker::server
