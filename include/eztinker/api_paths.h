// Route constants of the /v1 API (shared/docs/wire-protocol.md): the server's route table and
// EZTinkerClient both use these, so a path is spelled exactly once. Paths with a parameter are
// given as a prefix plus a suffix and built with the helpers below; the server's regex
// patterns are built from the same pieces.
#pragma once

#include <string>
#include <string_view>

namespace eztinker::api {

// Bumped when the wire contract changes incompatibly; reported by GET /v1/version.
inline constexpr const char* kApiVersion = "v1";

// Default server address: the server binds kDefaultHost; clients use kDefaultBaseUrl unless
// env kBaseUrlEnv is set.
inline constexpr const char* kDefaultHost = "127.0.0.1";
inline constexpr int kDefaultPort = 8000;
inline constexpr const char* kDefaultBaseUrl = "http://localhost:8000";
inline constexpr const char* kBaseUrlEnv = "EZTINKER_BASE_URL";
inline constexpr const char* kApiKeyEnv = "EZTINKER_API_KEY";

// Fixed paths.
inline constexpr const char* kHealthPath = "/health";
inline constexpr const char* kVersionPath = "/v1/version";
inline constexpr const char* kStatusPath = "/v1/status";
inline constexpr const char* kRunsPath = "/v1/runs";                // POST create, GET list
inline constexpr const char* kSamplePath = "/v1/sample";            // POST
inline constexpr const char* kCheckpointsPath = "/v1/checkpoints";  // GET all runs'
inline constexpr const char* kJobsPath = "/v1/jobs";                // GET list
inline constexpr const char* kTokenizePath = "/v1/tokenize";        // POST
inline constexpr const char* kDetokenizePath = "/v1/detokenize";    // POST
inline constexpr const char* kOpenApiPath = "/openapi.json";        // GET

// Suffixes under /v1/runs/{run_id}.
inline constexpr const char* kForwardBackwardSuffix = "/forward_backward";  // POST
inline constexpr const char* kForwardSuffix = "/forward";                   // POST
inline constexpr const char* kOptimStepSuffix = "/optim_step";              // POST
inline constexpr const char* kSaveSuffix = "/save";                         // POST
inline constexpr const char* kLoadSuffix = "/load";                         // POST
inline constexpr const char* kEvaluateSuffix = "/evaluate";                 // POST
inline constexpr const char* kRunCheckpointsSuffix = "/checkpoints";        // GET; DELETE /{name}

// Query parameters.
inline constexpr const char* kWaitParam = "wait";      // ?wait=SECONDS on job POSTs and GET job
inline constexpr const char* kNameParam = "name";      // ?name= on save
inline constexpr const char* kRunIdParam = "run_id";   // GET /v1/jobs?run_id=
inline constexpr const char* kStatusParam = "status";  // GET /v1/jobs?status=

// "/v1/runs/{run_id}" + suffix (suffix "" for the run itself).
inline std::string run_path(std::string_view run_id, std::string_view suffix = "") {
  std::string path = std::string(kRunsPath) + "/";
  path.append(run_id);
  path.append(suffix);
  return path;
}
// "/v1/runs/{run_id}/checkpoints/{name}".
inline std::string checkpoint_path(std::string_view run_id, std::string_view name) {
  std::string path = run_path(run_id, kRunCheckpointsSuffix) + "/";
  path.append(name);
  return path;
}
// "/v1/jobs/{job_id}".
inline std::string job_path(std::string_view job_id) {
  std::string path = std::string(kJobsPath) + "/";
  path.append(job_id);
  return path;
}

}  // namespace eztinker::api
