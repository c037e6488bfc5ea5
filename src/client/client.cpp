// EZTinkerClient and JobHandle/JobFuture: each method is one /v1 call (paths from
// api_paths.h, bodies from api_json.h); blocking job calls are submit(?wait=) + long-poll.
#include "eztinker/client.h"

#include "client_core.h"
#include "eztinker/api_json.h"
#include "eztinker/api_paths.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace eztinker {

using detail::url_encode;
using nlohmann::json;

namespace {

// Parses a reply into T, turning a shape mismatch into a clear ApiError.
template <typename T>
T parse_reply(const json& reply, const std::string& what) {
  try {
    return reply.get<T>();
  } catch (const json::exception& e) {
    throw ApiError(ErrorType::kInternal, "malformed reply to " + what + ": " + e.what())
        .with_raw_body(reply.dump());
  }
}

template <typename T>
T typed_result(const api::JobInfo& info) {
  if (info.status != api::JobStatus::kCompleted) {
    std::string error = info.error.value_or("job " + std::string(api::to_string(info.status)));
    throw ApiError(ErrorType::kJobFailed, error).with_job_id(info.job_id);
  }
  try {
    return api::result_as<T>(info);
  } catch (ApiError& e) {
    e.with_job_id(info.job_id);
    throw;
  }
}

std::string run_path(const std::string& run_id, const char* suffix = "") {
  return api::run_path(url_encode(run_id), suffix);
}

}  // namespace

// --- request builders ---

api::ForwardBackwardRequest make_datum_request(const api::TokenIds& input_ids,
                                               const api::TokenIds& target_ids,
                                               const std::vector<float>& weights) {
  api::Datum d;
  d.input_ids = input_ids;
  if (!target_ids.empty()) d.target_ids = target_ids;
  if (!weights.empty()) d.weights = weights;
  api::ForwardBackwardRequest r;
  r.form = api::TrainInputForm::kSingle;
  r.examples = {std::move(d)};
  return r;
}

api::ForwardBackwardRequest make_batch_request(const std::vector<api::Datum>& examples) {
  api::ForwardBackwardRequest r;
  r.form = api::TrainInputForm::kBatch;
  r.examples = examples;
  return r;
}

api::ForwardBackwardRequest make_text_request(const std::string& prompt, const std::string& completion) {
  api::ForwardBackwardRequest r;
  r.form = api::TrainInputForm::kText;
  r.prompt = prompt;
  r.completion = completion;
  return r;
}

api::ForwardBackwardRequest make_chat_request(const std::vector<api::ChatMessage>& messages,
                                              const std::string& train_on) {
  api::ForwardBackwardRequest r;
  r.form = api::TrainInputForm::kChat;
  r.messages = messages;
  r.train_on = train_on;
  return r;
}

// --- JobHandle / JobFuture ---

JobHandle::JobHandle(std::shared_ptr<detail::ClientCore> core, api::JobInfo submitted)
    : core_(std::move(core)), info_(std::move(submitted)) {}

const api::JobInfo& JobHandle::poll(double wait_s) {
  if (!done()) info_ = core_->get_job(info_.job_id, wait_s);
  return info_;
}

const api::JobInfo& JobHandle::wait(std::optional<double> timeout_s) {
  if (!done()) info_ = core_->wait(info_, timeout_s);
  return info_;
}

const api::JobInfo& JobHandle::wait_ok(std::optional<double> timeout_s) {
  wait(timeout_s);
  if (info_.status != api::JobStatus::kCompleted) {
    std::string error = info_.error.value_or("job " + std::string(api::to_string(info_.status)));
    throw ApiError(ErrorType::kJobFailed, error).with_job_id(info_.job_id);
  }
  return info_;
}

const api::JobInfo& JobHandle::cancel() {
  json reply = core_->request("DELETE", api::job_path(url_encode(info_.job_id)));
  info_ = parse_reply<api::JobInfo>(reply, "cancel job " + info_.job_id);
  return info_;
}

template <typename T>
T JobFuture<T>::get(std::optional<double> timeout_s) {
  wait(timeout_s);
  return typed_result<T>(info_);
}

template class JobFuture<api::ForwardBackwardResult>;
template class JobFuture<api::OptimStepResult>;
template class JobFuture<api::SampleResult>;
template class JobFuture<api::SaveResult>;
template class JobFuture<api::LoadResult>;
template class JobFuture<api::EvaluateResult>;

// --- EZTinkerClient ---

EZTinkerClient::EZTinkerClient(ClientOptions options)
    : core_(std::make_shared<detail::ClientCore>(std::move(options))) {}

EZTinkerClient::~EZTinkerClient() {
  if (core_) core_->close();
}

EZTinkerClient::EZTinkerClient(EZTinkerClient&&) noexcept = default;
EZTinkerClient& EZTinkerClient::operator=(EZTinkerClient&& other) noexcept {
  if (this != &other) {
    if (core_) core_->close();
    core_ = std::move(other.core_);
  }
  return *this;
}

void EZTinkerClient::close() {
  if (core_) core_->close();
}

const std::string& EZTinkerClient::base_url() const { return core_->base_url(); }

api::Health EZTinkerClient::health() {
  return parse_reply<api::Health>(core_->request("GET", api::kHealthPath), "GET /health");
}

api::Version EZTinkerClient::version() {
  return parse_reply<api::Version>(core_->request("GET", api::kVersionPath), "GET /v1/version");
}

api::Status EZTinkerClient::status() {
  return parse_reply<api::Status>(core_->request("GET", api::kStatusPath), "GET /v1/status");
}

std::string EZTinkerClient::create_run(const std::string& base_model, const api::LoraConfig& lora,
                                       const std::optional<std::string>& run_id) {
  api::CreateRunRequest request;
  request.base_model = base_model;
  request.lora_config = lora;
  request.run_id = run_id;
  return create_run(request).run_id;
}

api::CreateRunResponse EZTinkerClient::create_run(const api::CreateRunRequest& request) {
  json body = request;
  auto reply = parse_reply<api::CreateRunResponse>(core_->request("POST", api::kRunsPath, &body),
                                                   "POST /v1/runs");
  core_->set_last_run_id(reply.run_id);
  return reply;
}

std::optional<std::string> EZTinkerClient::last_run_id() const { return core_->last_run_id(); }

std::vector<api::RunSummary> EZTinkerClient::list_runs() {
  return parse_reply<api::ListRunsResponse>(core_->request("GET", api::kRunsPath), "GET /v1/runs").runs;
}

api::RunInfo EZTinkerClient::get_run(const std::string& run_id) {
  return parse_reply<api::RunInfo>(core_->request("GET", run_path(run_id)), "GET run " + run_id);
}

api::DeleteRunResponse EZTinkerClient::delete_run(const std::string& run_id) {
  return parse_reply<api::DeleteRunResponse>(core_->request("DELETE", run_path(run_id)),
                                             "DELETE run " + run_id);
}

// Blocking job call: submit with ?wait= (one round trip when the job is quick), then
// long-poll, then the typed result.
namespace {
template <typename T>
T run_job(detail::ClientCore& core, const std::string& path, const json& body) {
  double first_wait = core.options().long_poll_s;
  if (core.options().job_timeout_s) first_wait = std::min(first_wait, *core.options().job_timeout_s);
  auto start = std::chrono::steady_clock::now();
  api::JobInfo info = core.submit(path, body, first_wait);
  std::optional<double> remaining = core.options().job_timeout_s;
  if (remaining) {
    *remaining -= std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (*remaining < 0) *remaining = 0;
  }
  if (!api::is_terminal(info.status)) info = core.wait(info, remaining);
  return typed_result<T>(info);
}
}  // namespace

api::ForwardBackwardResult EZTinkerClient::forward_backward(const std::string& run_id,
                                                            const api::TokenIds& input_ids,
                                                            const api::TokenIds& target_ids,
                                                            const std::vector<float>& weights) {
  return forward_backward(run_id, make_datum_request(input_ids, target_ids, weights));
}

api::ForwardBackwardResult EZTinkerClient::forward_backward(const std::string& run_id,
                                                            const api::ForwardBackwardRequest& request) {
  return run_job<api::ForwardBackwardResult>(*core_, run_path(run_id, api::kForwardBackwardSuffix),
                                             json(request));
}

api::ForwardBackwardResult EZTinkerClient::forward_backward_batch(const std::string& run_id,
                                                                  const std::vector<api::Datum>& examples) {
  return forward_backward(run_id, make_batch_request(examples));
}

api::ForwardBackwardResult EZTinkerClient::forward_backward_text(const std::string& run_id,
                                                                 const std::string& prompt,
                                                                 const std::string& completion) {
  return forward_backward(run_id, make_text_request(prompt, completion));
}

api::ForwardBackwardResult EZTinkerClient::forward_backward_chat(const std::string& run_id,
                                                                 const std::vector<api::ChatMessage>& messages,
                                                                 const std::string& train_on) {
  return forward_backward(run_id, make_chat_request(messages, train_on));
}

api::ForwardResult EZTinkerClient::forward(const std::string& run_id, const api::TokenIds& input_ids,
                                           const api::TokenIds& target_ids) {
  return forward(run_id, make_datum_request(input_ids, target_ids));
}

api::ForwardResult EZTinkerClient::forward(const std::string& run_id, const api::ForwardRequest& request) {
  return run_job<api::ForwardResult>(*core_, run_path(run_id, api::kForwardSuffix), json(request));
}

api::OptimStepResult EZTinkerClient::optim_step(const std::string& run_id, const api::AdamParams& params) {
  return run_job<api::OptimStepResult>(*core_, run_path(run_id, api::kOptimStepSuffix), json(params));
}

api::SampleResult EZTinkerClient::sample(const std::string& prompt, const api::SampleParams& params,
                                         const std::optional<std::string>& run_id) {
  api::SampleRequest request;
  request.form = api::PromptForm::kText;
  request.prompt = prompt;
  request.params = params;
  request.run_id = run_id ? run_id : core_->last_run_id();
  return sample(request);
}

api::SampleResult EZTinkerClient::sample(const api::SampleRequest& request) {
  return run_job<api::SampleResult>(*core_, api::kSamplePath, json(request));
}

api::SaveResult EZTinkerClient::save_checkpoint(const std::string& run_id, const std::string& name) {
  return run_job<api::SaveResult>(*core_, run_path(run_id, api::kSaveSuffix), json(api::SaveRequest{name}));
}

std::vector<api::CheckpointInfo> EZTinkerClient::list_checkpoints(const std::optional<std::string>& run_id) {
  std::string path = run_id ? run_path(*run_id, api::kRunCheckpointsSuffix) : std::string(api::kCheckpointsPath);
  return parse_reply<api::ListCheckpointsResponse>(core_->request("GET", path), "GET " + path).checkpoints;
}

api::DeleteCheckpointResponse EZTinkerClient::delete_checkpoint(const std::string& run_id,
                                                                const std::string& name) {
  std::string path = api::checkpoint_path(url_encode(run_id), url_encode(name));
  return parse_reply<api::DeleteCheckpointResponse>(core_->request("DELETE", path), "DELETE " + path);
}

api::LoadResult EZTinkerClient::load_checkpoint(const std::string& run_id, const std::string& name,
                                                bool load_optimizer) {
  api::LoadRequest request;
  request.name = name;
  request.load_optimizer = load_optimizer;
  return load_checkpoint(run_id, request);
}

api::LoadResult EZTinkerClient::load_checkpoint(const std::string& run_id, const api::LoadRequest& request) {
  return run_job<api::LoadResult>(*core_, run_path(run_id, api::kLoadSuffix), json(request));
}

api::EvaluateResult EZTinkerClient::evaluate(const std::string& run_id, const api::EvaluateRequest& request) {
  return run_job<api::EvaluateResult>(*core_, run_path(run_id, api::kEvaluateSuffix), json(request));
}

api::TokenIds EZTinkerClient::tokenize(const std::string& text, const std::optional<std::string>& run_id,
                                       const std::optional<std::string>& base_model) {
  api::TokenizeRequest request;
  request.text = text;
  request.run_id = run_id;
  request.base_model = base_model;
  const json body = request;
  return parse_reply<api::TokenizeResponse>(core_->request("POST", api::kTokenizePath, &body),
                                            "POST /v1/tokenize")
      .tokens;
}

std::string EZTinkerClient::detokenize(const api::TokenIds& tokens, const std::optional<std::string>& run_id,
                                       const std::optional<std::string>& base_model) {
  api::DetokenizeRequest request;
  request.tokens = tokens;
  request.run_id = run_id;
  request.base_model = base_model;
  const json body = request;
  return parse_reply<api::DetokenizeResponse>(core_->request("POST", api::kDetokenizePath, &body),
                                              "POST /v1/detokenize")
      .text;
}

api::JobInfo EZTinkerClient::get_job(const std::string& job_id, double wait_s) {
  return core_->get_job(job_id, wait_s);
}

api::JobInfo EZTinkerClient::wait_for_job(const std::string& job_id, std::optional<double> timeout_s) {
  api::JobInfo info;
  info.job_id = job_id;
  info.status = api::JobStatus::kQueued;  // unknown yet: wait() polls at once
  return core_->wait(info, timeout_s);
}

std::vector<api::JobInfo> EZTinkerClient::list_jobs(const std::optional<std::string>& run_id,
                                                    std::optional<api::JobStatus> status) {
  std::string path = api::kJobsPath;
  char sep = '?';
  if (run_id) {
    path += sep + std::string(api::kRunIdParam) + "=" + url_encode(*run_id);
    sep = '&';
  }
  if (status) path += sep + std::string(api::kStatusParam) + "=" + std::string(api::to_string(*status));
  return parse_reply<api::ListJobsResponse>(core_->request("GET", path), "GET " + path).jobs;
}

api::JobInfo EZTinkerClient::cancel_job(const std::string& job_id) {
  return parse_reply<api::JobInfo>(core_->request("DELETE", api::job_path(url_encode(job_id))),
                                   "DELETE job " + job_id);
}

JobFuture<api::ForwardBackwardResult> EZTinkerClient::submit_forward_backward(
    const std::string& run_id, const api::ForwardBackwardRequest& request) {
  return {core_, core_->submit(run_path(run_id, api::kForwardBackwardSuffix), json(request), 0)};
}

JobFuture<api::ForwardBackwardResult> EZTinkerClient::submit_forward_backward(
    const std::string& run_id, const api::TokenIds& input_ids, const api::TokenIds& target_ids,
    const std::vector<float>& weights) {
  return submit_forward_backward(run_id, make_datum_request(input_ids, target_ids, weights));
}

JobFuture<api::ForwardResult> EZTinkerClient::submit_forward(const std::string& run_id,
                                                             const api::ForwardRequest& request) {
  return {core_, core_->submit(run_path(run_id, api::kForwardSuffix), json(request), 0)};
}

JobFuture<api::OptimStepResult> EZTinkerClient::submit_optim_step(const std::string& run_id,
                                                                  const api::AdamParams& params) {
  return {core_, core_->submit(run_path(run_id, api::kOptimStepSuffix), json(params), 0)};
}

JobFuture<api::SampleResult> EZTinkerClient::submit_sample(const api::SampleRequest& request) {
  return {core_, core_->submit(api::kSamplePath, json(request), 0)};
}

JobFuture<api::SaveResult> EZTinkerClient::submit_save_checkpoint(const std::string& run_id,
                                                                  const std::string& name) {
  return {core_, core_->submit(run_path(run_id, api::kSaveSuffix), json(api::SaveRequest{name}), 0)};
}

JobFuture<api::LoadResult> EZTinkerClient::submit_load_checkpoint(const std::string& run_id,
                                                                  const api::LoadRequest& request) {
  return {core_, core_->submit(run_path(run_id, api::kLoadSuffix), json(request), 0)};
}

JobFuture<api::EvaluateResult> EZTinkerClient::submit_evaluate(const std::string& run_id,
                                                               const api::EvaluateRequest& request) {
  return {core_, core_->submit(run_path(run_id, api::kEvaluateSuffix), json(request), 0)};
}

}  // namespace eztinker
