// JSON <-> struct conversions for every type of api_types.h, and the request validation the
// server runs on its HTTP threads. Defined only in src/api/api_json.cpp (the ONLY JSON<->struct
// code). Mirrors FastAPI/pydantic v2 behaviour where Part A needs it: defaults filled, unknown
// fields ignored, errors as 422 detail lists naming the field:
//   {"detail":[{"loc":["body","lora_config","r"],"msg":"Input should be greater than or equal
//   to 1","type":"greater_than_equal"}]}
// Validation collects every problem of a request (like pydantic) before throwing.
#pragma once

#include "eztinker/api_types.h"
#include "eztinker/error.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

// nlohmann 3.11.2 has no std::optional support; this is the one specialization (nullopt <->
// null). Struct serializers omit absent optional fields instead of writing null where the
// contract gives "absent" a meaning (e.g. stop_token_ids).
namespace nlohmann {
template <typename T>
struct adl_serializer<std::optional<T>> {
  static void to_json(json& j, const std::optional<T>& value) {
    if (value) {
      j = *value;
    } else {
      j = nullptr;
    }
  }
  static void from_json(const json& j, std::optional<T>& value) {
    if (j.is_null()) {
      value.reset();
    } else {
      value = j.get<T>();
    }
  }
};
}  // namespace nlohmann

namespace eztinker::api {

// ---------------------------------------------------------------------------------------------
// Request parsing + validation (server side). Each takes the request body (an object; the
// caller parses text with parse_body) and returns the filled struct, or throws
// ApiError(kValidation) whose detail list names every bad field ("body", ...). None of them
// looks up runs or models: validation happens before any lookup (Part A).
// ---------------------------------------------------------------------------------------------

// Body text -> JSON object. Empty body -> 422 [loc ["body"], "Field required", "missing"]
// unless allow_empty (then {}); malformed JSON -> 422 "json_invalid" at ["body", <offset>];
// a non-object -> 422 "model_attributes_type" at ["body"].
nlohmann::json parse_body(std::string_view text, bool allow_empty = false);

CreateRunRequest parse_create_run_request(const nlohmann::json& body);
ForwardBackwardRequest parse_forward_backward_request(const nlohmann::json& body);  // + /forward
AdamParams parse_optim_step_request(const nlohmann::json& body);
SampleRequest parse_sample_request(const nlohmann::json& body);
// `body` may be null/empty object when the name comes as `?name=`; the query wins when both
// are given. Neither -> 422 at ["query","name"] ("Field required").
SaveRequest parse_save_request(const nlohmann::json& body, const std::optional<std::string>& query_name);
LoadRequest parse_load_request(const nlohmann::json& body);
EvaluateRequest parse_evaluate_request(const nlohmann::json& body);
TokenizeRequest parse_tokenize_request(const nlohmann::json& body);
DetokenizeRequest parse_detokenize_request(const nlohmann::json& body);

// Query parameters. `?wait=` -> seconds (>= 0, finite, <= 3600) at ["query","wait"];
// `?status=` -> JobStatus at ["query","status"]. nullopt input -> nullopt.
std::optional<double> parse_wait_query(const std::optional<std::string>& value);
std::optional<JobStatus> parse_job_status_query(const std::optional<std::string>& value);

// Names used as directory components (checkpoint names, run ids): non-empty, at most
// kMaxNameLength bytes, no '/', '\\', "..", NUL or control characters. Throws a 422 at `loc`
// (e.g. {"body","name"}) naming what was expected. Path parameters can use loc {"path", ...}.
void validate_name(std::string_view name, const std::vector<std::string>& loc);

// ---------------------------------------------------------------------------------------------
// to_json / from_json for every type (found by ADL, so json.get<T>() and json = value work).
// from_json on a request type runs the same validation as parse_* (throws ApiError); on a
// response/result type it requires the fields the server always sends and throws
// nlohmann::json::exception otherwise (the client turns that into a "malformed reply" error).
// ---------------------------------------------------------------------------------------------

#define EZTINKER_API_JSON(Type)                   \
  void to_json(nlohmann::json& j, const Type& v); \
  void from_json(const nlohmann::json& j, Type& v)

EZTINKER_API_JSON(Health);
EZTINKER_API_JSON(Version);
EZTINKER_API_JSON(LoadedModel);
EZTINKER_API_JSON(JobCounts);
EZTINKER_API_JSON(Status);
EZTINKER_API_JSON(LoraConfig);
EZTINKER_API_JSON(LossConfig);
EZTINKER_API_JSON(CreateRunRequest);
EZTINKER_API_JSON(CreateRunResponse);
EZTINKER_API_JSON(RunSummary);
EZTINKER_API_JSON(ListRunsResponse);
EZTINKER_API_JSON(RunInfo);
EZTINKER_API_JSON(DeleteRunResponse);
EZTINKER_API_JSON(Datum);
EZTINKER_API_JSON(ChatMessage);
EZTINKER_API_JSON(ForwardBackwardRequest);
EZTINKER_API_JSON(ForwardBackwardResult);
EZTINKER_API_JSON(AdamParams);
EZTINKER_API_JSON(OptimStepResult);
EZTINKER_API_JSON(SampleRequest);
EZTINKER_API_JSON(SampleOutput);
EZTINKER_API_JSON(SampleResult);
EZTINKER_API_JSON(SaveRequest);
EZTINKER_API_JSON(SaveResult);
EZTINKER_API_JSON(LoadRequest);
EZTINKER_API_JSON(LoadResult);
EZTINKER_API_JSON(CheckpointInfo);
EZTINKER_API_JSON(ListCheckpointsResponse);
EZTINKER_API_JSON(DeleteCheckpointResponse);
EZTINKER_API_JSON(EvalBatch);
EZTINKER_API_JSON(EvaluateRequest);
EZTINKER_API_JSON(EvaluateResult);
EZTINKER_API_JSON(TokenizeRequest);
EZTINKER_API_JSON(TokenizeResponse);
EZTINKER_API_JSON(DetokenizeRequest);
EZTINKER_API_JSON(DetokenizeResponse);
EZTINKER_API_JSON(JobInfo);
EZTINKER_API_JSON(ListJobsResponse);

#undef EZTINKER_API_JSON

// JobStatus <-> its wire string (uses to_string / job_status_from_string).
void to_json(nlohmann::json& j, JobStatus status);
void from_json(const nlohmann::json& j, JobStatus& status);

// SampleParams are flat fields of a sample request; these write/read just those fields
// (merge into / read from the request object).
void write_sample_params(nlohmann::json& j, const SampleParams& params);

// The typed result of a completed job: result_as<SampleResult>(job). Throws
// ApiError(kInternal) when the job has no result (not completed) or it does not parse.
template <typename T>
T result_as(const JobInfo& job) {
  if (!job.result_json) {
    throw ApiError(ErrorType::kInternal, "job " + job.job_id + " has no result (status " +
                                             std::string(to_string(job.status)) + ")");
  }
  try {
    return nlohmann::json::parse(*job.result_json).get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw ApiError(ErrorType::kInternal,
                   "job " + job.job_id + ": malformed result: " + std::string(e.what()));
  }
}

// Server side: a JobInfo whose result is `result` (serialized once, here).
template <typename T>
void set_result(JobInfo& job, const T& result) {
  job.result_json = nlohmann::json(result).dump();
}

}  // namespace eztinker::api
