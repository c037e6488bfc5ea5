// The /v1 route table and its handlers, as plain functions (llama.cpp's handler-as-function
// design): Request in, JSON out, ApiError thrown for every failure. Nothing here knows about
// httplib or spells an HTTP status; the Router (http_server.h) turns results and errors into
// replies. Handlers validate on the calling (HTTP) thread, so malformed input never reaches the
// job queue; job endpoints enqueue an executor that drives the synchronous engine.
#pragma once

#include "engine/engine.h"
#include "job_queue.h"
#include "server_config.h"

#include <eztinker/api_types.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace eztinker::server {

// One HTTP request as handlers see it (built by the httplib adapter, or directly by tests).
struct Request {
  std::string method;                              // "GET", "POST", "DELETE", ...
  std::string path;                                // decoded, without the query string
  std::map<std::string, std::string> query;        // first value of each parameter
  std::map<std::string, std::string> headers;      // names lower-cased
  std::string body;
  std::map<std::string, std::string> path_params;  // filled by the router from the pattern

  std::optional<std::string> query_param(const std::string& name) const;
  std::optional<std::string> header(const std::string& lower_name) const;
  const std::string& path_param(const std::string& name) const;  // "" when absent
};

// State shared by the handlers. Thread safety: the engine and queue are thread-safe; the
// per-run loss configs are guarded by their own mutex.
class RouteContext {
 public:
  RouteContext(engine::Engine& engine, JobQueue& queue, const ServerConfig& config);

  engine::Engine& engine() const { return engine_; }
  JobQueue& queue() const { return queue_; }
  const ServerConfig& config() const { return config_; }
  double uptime_s() const;

  // A run's default loss (POST /v1/runs loss_config). The engine has no notion of it, so the
  // server keeps it (in memory: a restarted server uses the defaults for reloaded runs).
  api::LossConfig loss_config(const std::string& run_id) const;
  void set_loss_config(const std::string& run_id, const api::LossConfig& config);
  void erase_loss_config(const std::string& run_id);

 private:
  engine::Engine& engine_;
  JobQueue& queue_;
  const ServerConfig& config_;
  const std::chrono::steady_clock::time_point started_;
  mutable std::mutex mutex_;
  std::map<std::string, api::LossConfig> loss_configs_;
};

using Handler = std::function<nlohmann::json(RouteContext&, const Request&)>;

// One row of the route table. `pattern` uses {name} for a path parameter
// ("/v1/runs/{run_id}/save"); the same table drives dispatch and GET /openapi.json.
struct Route {
  std::string method;
  std::string pattern;
  Handler handler;
  std::string summary;          // one line for the OpenAPI description
  std::string request_schema;   // OpenAPI component name of the JSON body ("" = no body)
  std::string response_schema;  // component name of the 200 reply
  bool is_job = false;          // enqueues a job: accepts ?wait=, replies with a Job
  bool body_optional = false;   // body may be absent (save takes ?name= instead)
};

// Every endpoint of the contract, in the order the docs list them.
std::vector<Route> make_routes();

// The OpenAPI 3 document describing `routes` (openapi.cpp).
nlohmann::json openapi_document(const std::vector<Route>& routes);

// A job's wire form (api::JobInfo: job_id, status, result, error, run_id, type, created_at).
nlohmann::json job_to_json(const JobSnapshot& job);

// ISO-8601 UTC with milliseconds ("2025-01-31T12:00:00.123Z").
std::string iso8601(std::chrono::system_clock::time_point time);

}  // namespace eztinker::server
