// EZTinkerClient: the C++ client of an EZTinker server (shared/docs/wire-protocol.md), the
// counterpart of the Python `EZTinkerClient` and of Tinker's TrainingClient/SamplingClient.
// Only the standard library and the api_types.h structs appear here: no libtorch, no
// cpp-httplib (the transport is behind a pimpl), no nlohmann in the signatures.
//
//   eztinker::EZTinkerClient client;                     // EZTINKER_BASE_URL or localhost:8000
//   std::string run = client.create_run("Qwen/Qwen2-0.5B-Instruct");
//   client.forward_backward(run, ids);                   // blocks until the job ends
//   client.optim_step(run, {});                          // AdamW with the wire defaults
//   std::cout << client.sample("Hello!").generated_text; // through the run just created
//
// Async: submit_* enqueue a job and return a JobFuture at once; jobs of one run execute in
// submission order on the server, so forward_backward and optim_step can be submitted back to
// back and awaited later. Waiting uses the server's long-poll (GET /v1/jobs/{id}?wait=S), not
// sleep polling.
#pragma once

#include "eztinker/api_types.h"
#include "eztinker/error.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace eztinker {

// Connection settings. Every field has a working default; tests set timeouts explicitly.
struct ClientOptions {
  // "http://host:port[/prefix]". Empty = env EZTINKER_BASE_URL, else http://localhost:8000.
  // https works when cpp-httplib has OpenSSL (Debian's does); other schemes throw ApiError.
  std::string base_url;
  // Sent as "Authorization: Bearer <key>". Empty = env EZTINKER_API_KEY (none if unset).
  std::string api_key;
  // TCP connect timeout. Short, because a server on localhost answers at once or not at all.
  double connect_timeout_s = 5.0;
  // Read timeout of one request (added to the ?wait= of long-polls). Large enough for a
  // sample of 2048 tokens on a CPU server; lower it to detect a hung server sooner.
  double read_timeout_s = 300.0;
  // Retries after "connection refused" and after 503 (queue full) replies, with exponential
  // backoff from retry_backoff_s up to max_backoff_s (a 503's Retry-After wins when given).
  // POSTs are never retried after the request was sent (that could enqueue a job twice).
  int max_retries = 3;
  double retry_backoff_s = 0.2;
  double max_backoff_s = 5.0;
  // Seconds one long-poll may hold a request (?wait=); a longer wait is several polls.
  double long_poll_s = 30.0;
  // How long the blocking calls (forward_backward, sample, ...) wait for their job; nullopt =
  // until the job ends. Expiry throws ApiError(kTimeout) carrying the job id (the job keeps
  // running on the server).
  std::optional<double> job_timeout_s;
};

namespace detail {
class ClientCore;  // transport + connection pool (src/client/client_core.h)
}

// An enqueued job. Cheap to copy (copies share nothing but the connection pool). A JobHandle
// stays usable after its EZTinkerClient is destroyed, until close() is called on it; then
// waiting throws ConnectionError. Not thread-safe: give each thread its own copy.
class JobHandle {
 public:
  JobHandle(std::shared_ptr<detail::ClientCore> core, api::JobInfo submitted);

  const std::string& job_id() const { return info_.job_id; }
  // The last known state (from the submit reply or the latest poll).
  const api::JobInfo& info() const { return info_; }
  bool done() const { return api::is_terminal(info_.status); }

  // One GET /v1/jobs/{id} (optionally long-polling up to wait_s); updates info().
  const api::JobInfo& poll(double wait_s = 0);
  // Blocks until the job ends (long-polls; no sleeps) and returns its final state, whatever it
  // is. timeout_s: nullopt = ClientOptions::job_timeout_s. Expiry throws ApiError(kTimeout).
  const api::JobInfo& wait(std::optional<double> timeout_s = std::nullopt);
  // wait(), then throws ApiError(kJobFailed, <the job's error>, job_id) unless it completed.
  const api::JobInfo& wait_ok(std::optional<double> timeout_s = std::nullopt);
  // DELETE /v1/jobs/{id}: cancels a job that is still queued (409 once it runs).
  const api::JobInfo& cancel();

 protected:
  std::shared_ptr<detail::ClientCore> core_;
  api::JobInfo info_;
};

// A JobHandle whose result has type T (ForwardBackwardResult, OptimStepResult, SampleResult,
// SaveResult, LoadResult, EvaluateResult).
template <typename T>
class JobFuture : public JobHandle {
 public:
  using JobHandle::JobHandle;
  // Waits, then returns the typed result; a failed or cancelled job throws
  // ApiError(kJobFailed) with the job's error and job_id().
  T get(std::optional<double> timeout_s = std::nullopt);
};

// Thread safety: all methods may be called concurrently from several threads (requests use a
// pool of connections; a long-poll in one thread does not block another). Ownership: the
// client owns its connections; the destructor calls close(). Errors: every method throws
// ApiError for a non-2xx reply (http_status(), message() = the server's detail, detail_json()
// for 422 lists), ConnectionError (an ApiError of type kConnection naming the URL) when the
// server cannot be reached, and ApiError(kJobFailed) with job_id() when a job fails.
class EZTinkerClient {
 public:
  explicit EZTinkerClient(ClientOptions options = {});
  ~EZTinkerClient();
  EZTinkerClient(const EZTinkerClient&) = delete;
  EZTinkerClient& operator=(const EZTinkerClient&) = delete;
  EZTinkerClient(EZTinkerClient&&) noexcept;
  EZTinkerClient& operator=(EZTinkerClient&&) noexcept;

  // Drops pooled connections; later calls (also through JobHandles) throw ConnectionError.
  // Idempotent.
  void close();
  // The resolved base URL ("http://localhost:8000").
  const std::string& base_url() const;

  // --- server ---
  api::Health health();
  api::Version version();
  api::Status status();

  // --- runs ---
  // Creates a run and remembers its id as the default of sample(). Returns the run id.
  std::string create_run(const std::string& base_model, const api::LoraConfig& lora = {},
                         const std::optional<std::string>& run_id = std::nullopt);
  api::CreateRunResponse create_run(const api::CreateRunRequest& request);
  // The id of the last run this client created (nullopt before the first create_run).
  std::optional<std::string> last_run_id() const;
  std::vector<api::RunSummary> list_runs();
  api::RunInfo get_run(const std::string& run_id);
  api::DeleteRunResponse delete_run(const std::string& run_id);

  // --- training (blocking: submit + wait) ---
  // Part A form. Empty target_ids = input_ids; empty weights = all 1.
  api::ForwardBackwardResult forward_backward(const std::string& run_id, const api::TokenIds& input_ids,
                                              const api::TokenIds& target_ids = {},
                                              const std::vector<float>& weights = {});
  api::ForwardBackwardResult forward_backward(const std::string& run_id,
                                              const api::ForwardBackwardRequest& request);
  api::ForwardBackwardResult forward_backward_batch(const std::string& run_id,
                                                    const std::vector<api::Datum>& examples);
  api::ForwardBackwardResult forward_backward_text(const std::string& run_id, const std::string& prompt,
                                                   const std::string& completion);
  api::ForwardBackwardResult forward_backward_chat(const std::string& run_id,
                                                   const std::vector<api::ChatMessage>& messages,
                                                   const std::string& train_on = "assistant");
  // Same inputs, no gradient (losses and logprobs only).
  api::ForwardResult forward(const std::string& run_id, const api::TokenIds& input_ids,
                             const api::TokenIds& target_ids = {});
  api::ForwardResult forward(const std::string& run_id, const api::ForwardRequest& request);
  api::OptimStepResult optim_step(const std::string& run_id, const api::AdamParams& params = {});

  // --- sampling ---
  // run_id nullopt = the last run this client created, else the server's default model.
  api::SampleResult sample(const std::string& prompt, const api::SampleParams& params = {},
                           const std::optional<std::string>& run_id = std::nullopt);
  // Full control (prompt_ids / messages / base_model); request.run_id is sent as given.
  api::SampleResult sample(const api::SampleRequest& request);

  // --- checkpoints ---
  api::SaveResult save_checkpoint(const std::string& run_id, const std::string& name);
  // run_id nullopt = every run's checkpoints (GET /v1/checkpoints). Newest first.
  std::vector<api::CheckpointInfo> list_checkpoints(const std::optional<std::string>& run_id = std::nullopt);
  api::DeleteCheckpointResponse delete_checkpoint(const std::string& run_id, const std::string& name);
  api::LoadResult load_checkpoint(const std::string& run_id, const std::string& name,
                                  bool load_optimizer = true);
  api::LoadResult load_checkpoint(const std::string& run_id, const api::LoadRequest& request);
  api::EvaluateResult evaluate(const std::string& run_id, const api::EvaluateRequest& request);

  // --- tokenizer (model: a run's, a base model's, or the server default) ---
  api::TokenIds tokenize(const std::string& text, const std::optional<std::string>& run_id = std::nullopt,
                         const std::optional<std::string>& base_model = std::nullopt);
  std::string detokenize(const api::TokenIds& tokens, const std::optional<std::string>& run_id = std::nullopt,
                         const std::optional<std::string>& base_model = std::nullopt);

  // --- jobs ---
  api::JobInfo get_job(const std::string& job_id, double wait_s = 0);
  // Long-polls until the job ends; returns its final JobInfo (does not throw for a failed job).
  api::JobInfo wait_for_job(const std::string& job_id, std::optional<double> timeout_s = std::nullopt);
  std::vector<api::JobInfo> list_jobs(const std::optional<std::string>& run_id = std::nullopt,
                                      std::optional<api::JobStatus> status = std::nullopt);
  api::JobInfo cancel_job(const std::string& job_id);

  // --- async: enqueue and return at once ---
  JobFuture<api::ForwardBackwardResult> submit_forward_backward(const std::string& run_id,
                                                                const api::ForwardBackwardRequest& request);
  JobFuture<api::ForwardBackwardResult> submit_forward_backward(const std::string& run_id,
                                                                const api::TokenIds& input_ids,
                                                                const api::TokenIds& target_ids = {},
                                                                const std::vector<float>& weights = {});
  JobFuture<api::ForwardResult> submit_forward(const std::string& run_id, const api::ForwardRequest& request);
  JobFuture<api::OptimStepResult> submit_optim_step(const std::string& run_id,
                                                    const api::AdamParams& params = {});
  JobFuture<api::SampleResult> submit_sample(const api::SampleRequest& request);
  JobFuture<api::SaveResult> submit_save_checkpoint(const std::string& run_id, const std::string& name);
  JobFuture<api::LoadResult> submit_load_checkpoint(const std::string& run_id, const api::LoadRequest& request);
  JobFuture<api::EvaluateResult> submit_evaluate(const std::string& run_id, const api::EvaluateRequest& request);

 private:
  std::shared_ptr<detail::ClientCore> core_;
};

// Request builders for the richer training forms (also used by the *_batch/_text/_chat calls).
api::ForwardBackwardRequest make_datum_request(const api::TokenIds& input_ids, const api::TokenIds& target_ids = {},
                                               const std::vector<float>& weights = {});
api::ForwardBackwardRequest make_batch_request(const std::vector<api::Datum>& examples);
api::ForwardBackwardRequest make_text_request(const std::string& prompt, const std::string& completion);
api::ForwardBackwardRequest make_chat_request(const std::vector<api::ChatMessage>& messages,
                                              const std::string& train_on = "assistant");

}  // namespace eztinker
