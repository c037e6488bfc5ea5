// Route handlers called as plain functions through Router::dispatch (no sockets): status codes
// and exact FastAPI bodies for unknown paths/methods, malformed JSON, missing fields, wrong
// lengths, bad names, unknown ids, auth, queue-full; Part A's quirks (DELETE unknown run -> 400,
// job on unknown run -> 200 + failed job); the OpenAPI document against the route table.
// Uses a real Engine over an empty checkpoints dir: none of these requests loads a model.
#include "http_server.h"
#include "job_queue.h"
#include "routes.h"
#include "server.h"
#include "test_support.h"

#include <eztinker/error.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <future>
#include <memory>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace eztinker::server {
namespace {

using nlohmann::json;

class RoutesTest : public ::testing::Test {
 protected:
  void SetUp() override { build(""); }

  void build(const std::string& api_key, std::size_t max_queued = 64) {
    spdlog::set_level(spdlog::level::warn);
    router_.reset();
    context_.reset();
    queue_.reset();
    engine_.reset();
    config_.checkpoints_dir = dir_.path() / "checkpoints";
    config_.api_key = api_key;
    config_.max_queued = max_queued;
    engine_ = std::make_unique<engine::Engine>(engine_options(config_));
    JobQueueOptions options;
    options.workers = 1;
    options.max_queued = max_queued;
    options.retry_after_s = 2;
    queue_ = std::make_unique<JobQueue>(options);
    context_ = std::make_unique<RouteContext>(*engine_, *queue_, config_);
    router_ = std::make_unique<Router>(make_routes(), *context_, api_key);
  }

  Reply call(const std::string& method,
             const std::string& path,
             const std::string& body = "",
             std::map<std::string, std::string> query = {},
             std::map<std::string, std::string> headers = {}) {
    Request request;
    request.method = method;
    request.path = path;
    request.body = body;
    request.query = std::move(query);
    request.headers = std::move(headers);
    return router_->dispatch(std::move(request));
  }

  static json body_of(const Reply& reply) { return json::parse(reply.body); }

  testing::TempDir dir_{"eztinker-routes"};
  ServerConfig config_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<RouteContext> context_;
  std::unique_ptr<Router> router_;
};

const int kOk = kHttpOk;
const int k400 = http_status(ErrorType::kBadRequest);
const int k401 = http_status(ErrorType::kUnauthorized);
const int k404 = http_status(ErrorType::kNotFound);
const int k405 = http_status(ErrorType::kMethodNotAllowed);
const int k409 = http_status(ErrorType::kConflict);
const int k422 = http_status(ErrorType::kValidation);
const int k503 = http_status(ErrorType::kQueueFull);

TEST_F(RoutesTest, HealthIsExactlyStatusOk) {
  auto reply = call("GET", "/health");
  EXPECT_EQ(reply.status, kOk);
  EXPECT_EQ(reply.body, R"({"status":"ok"})");
}

TEST_F(RoutesTest, UnknownPathAndWrongMethodAreJson) {
  auto missing = call("GET", "/v2/nothing");
  EXPECT_EQ(missing.status, k404);
  EXPECT_EQ(missing.body, R"({"detail":"Not Found"})");
  auto deep = call("GET", "/v1/runs/a/b/c/d/e");
  EXPECT_EQ(deep.status, k404);
  auto wrong = call("PUT", "/v1/runs");
  EXPECT_EQ(wrong.status, k405);
  EXPECT_EQ(wrong.body, R"({"detail":"Method Not Allowed"})");
  EXPECT_EQ(call("GET", "/v1/sample").status, k405);
  EXPECT_EQ(call("POST", "/health").status, k405);
}

TEST_F(RoutesTest, VersionAndStatus) {
  auto version = body_of(call("GET", "/v1/version"));
  EXPECT_FALSE(version["version"].get<std::string>().empty());
  EXPECT_EQ(version["api_version"], "v1");
  auto status = call("GET", "/v1/status");
  ASSERT_EQ(status.status, kOk);
  auto s = body_of(status);
  EXPECT_EQ(s["num_runs"], 0);
  EXPECT_EQ(s["queue_depth"], 0);
  EXPECT_TRUE(s["models"].is_array());
  EXPECT_TRUE(s["jobs"].contains("failed"));
}

TEST_F(RoutesTest, EmptyRunList) {
  auto reply = call("GET", "/v1/runs");
  EXPECT_EQ(reply.status, kOk);
  EXPECT_EQ(reply.body, R"({"runs":[]})");
}

TEST_F(RoutesTest, UnknownRunQuirks) {
  auto del = call("DELETE", "/v1/runs/run_nope");
  EXPECT_EQ(del.status, k400);  // Part A: 400, not 404
  EXPECT_EQ(del.body, R"({"detail":"Run ID run_nope not found"})");
  auto get = call("GET", "/v1/runs/run_nope");
  EXPECT_EQ(get.status, k404);
  EXPECT_EQ(get.body, R"({"detail":"Run ID run_nope not found"})");
}

TEST_F(RoutesTest, JobOnUnknownRunIsAcceptedThenFails) {
  auto reply = call("POST", "/v1/runs/run_nope/forward_backward", R"({"input_ids":[1,2,3]})");
  ASSERT_EQ(reply.status, kOk);
  auto job = body_of(reply);
  ASSERT_TRUE(job.contains("job_id"));
  EXPECT_TRUE(job.contains("status"));
  auto polled = call("GET", "/v1/jobs/" + job["job_id"].get<std::string>(), "", {{"wait", "10"}});
  ASSERT_EQ(polled.status, kOk);
  auto done = body_of(polled);
  EXPECT_EQ(done["status"], "failed");
  EXPECT_TRUE(done["result"].is_null());
  EXPECT_EQ(done["error"], "Run ID run_nope not found");
  EXPECT_EQ(done["run_id"], "run_nope");
  EXPECT_EQ(done["type"], "forward_backward");

  // Every job endpoint behaves the same; ?wait= on the POST returns the final state at once.
  for (const auto& [path, body] : std::vector<std::pair<std::string, std::string>>{
           {"/v1/runs/run_nope/optim_step", R"({"learning_rate":0.001})"},
           {"/v1/runs/run_nope/forward", R"({"input_ids":[1,2]})"},
           {"/v1/runs/run_nope/save", R"({"name":"ckpt"})"},
           {"/v1/runs/run_nope/load", R"({"name":"ckpt"})"},
           {"/v1/runs/run_nope/evaluate", R"({"batches":[{"input_ids":[1,2]}]})"},
           {"/v1/sample", R"({"prompt":"hi","run_id":"run_nope"})"}}) {
    auto r = call("POST", path, body, {{"wait", "10"}});
    ASSERT_EQ(r.status, kOk) << path << " " << r.body;
    auto j = body_of(r);
    EXPECT_EQ(j["status"], "failed") << path;
    EXPECT_EQ(j["error"], "Run ID run_nope not found") << path;
    EXPECT_TRUE(j["result"].is_null()) << path;
  }
}

TEST_F(RoutesTest, UnknownJob) {
  auto get = call("GET", "/v1/jobs/job_00000000");
  EXPECT_EQ(get.status, k404);
  EXPECT_EQ(get.body, R"({"detail":"Job not found"})");
  auto waited = call("GET", "/v1/jobs/job_00000000", "", {{"wait", "1"}});
  EXPECT_EQ(waited.status, k404);
  auto cancel = call("DELETE", "/v1/jobs/job_00000000");
  EXPECT_EQ(cancel.status, k404);
  EXPECT_EQ(cancel.body, R"({"detail":"Job not found"})");
}

TEST_F(RoutesTest, MalformedJsonIs422) {
  auto reply = call("POST", "/v1/runs", R"({"base_model": )");
  EXPECT_EQ(reply.status, k422);
  auto body = body_of(reply);
  ASSERT_TRUE(body["detail"].is_array());
  ASSERT_EQ(body["detail"].size(), 1u);
  EXPECT_EQ(body["detail"][0]["loc"][0], "body");
  EXPECT_EQ(body["detail"][0]["type"], "json_invalid");
  EXPECT_EQ(body["detail"][0]["msg"], "JSON decode error");
}

TEST_F(RoutesTest, MissingBodyAndFieldsAre422) {
  auto empty = call("POST", "/v1/runs", "");
  EXPECT_EQ(empty.status, k422);
  EXPECT_EQ(empty.body, R"({"detail":[{"loc":["body"],"msg":"Field required","type":"missing"}]})");
  auto missing = call("POST", "/v1/runs", R"({"lora_config":null})");
  EXPECT_EQ(missing.status, k422);
  EXPECT_EQ(missing.body,
            R"({"detail":[{"loc":["body","base_model"],"msg":"Field required","type":"missing"}]})");
  auto no_ids = call("POST", "/v1/runs/run_x/forward_backward", R"({"weights":[1.0]})");
  EXPECT_EQ(no_ids.status, k422);
  EXPECT_EQ(no_ids.body,
            R"({"detail":[{"loc":["body","input_ids"],"msg":"Field required","type":"missing"}]})");
  auto not_object = call("POST", "/v1/sample", "[1,2]");
  EXPECT_EQ(not_object.status, k422);
}

TEST_F(RoutesTest, LengthsThatDisagreeAre422BeforeRunLookup) {
  auto reply = call("POST", "/v1/runs/run_unknown/forward_backward",
                    R"({"input_ids":[1,2,3],"target_ids":[1,2]})");
  EXPECT_EQ(reply.status, k422);
  EXPECT_EQ(
      reply.body,
      R"js({"detail":[{"loc":["body","target_ids"],"msg":"Value error, `target_ids` has 2 entries, expected 3 (one per input_ids entry)","type":"value_error"}]})js");
  auto weights = call("POST", "/v1/runs/run_unknown/forward_backward",
                      R"({"input_ids":[1,2,3],"weights":[1,1,1,1]})");
  EXPECT_EQ(weights.status, k422);
  EXPECT_EQ(body_of(weights)["detail"][0]["loc"], json({"body", "weights"}));
  auto empty = call("POST", "/v1/runs/run_unknown/forward_backward", R"({"input_ids":[]})");
  EXPECT_EQ(empty.status, k422);
  EXPECT_EQ(body_of(empty)["detail"][0]["type"], "too_short");
  auto batch = call("POST", "/v1/runs/run_unknown/forward_backward",
                    R"({"examples":[{"input_ids":[1,2]},{"input_ids":[1],"weights":[1,2]}]})");
  EXPECT_EQ(batch.status, k422);
  EXPECT_EQ(body_of(batch)["detail"][0]["loc"], json({"body", "examples", 1, "weights"}));
  // Nothing was enqueued by a rejected request.
  EXPECT_EQ(queue_->stats().submitted_total, 0u);
}

TEST_F(RoutesTest, BadOptimizerSettingsAre422) {
  for (const char* body : {R"({"learning_rate":-1})", R"({"learning_rate":0})",
                           R"({"learning_rate":"fast"})", R"({"weight_decay":-0.1})",
                           R"({"betas":[0.9]})"}) {
    auto reply = call("POST", "/v1/runs/run_x/optim_step", body);
    EXPECT_EQ(reply.status, k422) << body;
    EXPECT_TRUE(body_of(reply)["detail"].is_array()) << body;
  }
  auto nan = call("POST", "/v1/runs/run_x/optim_step", R"({"learning_rate":NaN})");
  EXPECT_EQ(nan.status, k422);
  EXPECT_EQ(queue_->stats().submitted_total, 0u);
}

TEST_F(RoutesTest, SaveNameFromQueryOrBody) {
  auto neither = call("POST", "/v1/runs/run_x/save");
  EXPECT_EQ(neither.status, k422);
  EXPECT_EQ(neither.body,
            R"({"detail":[{"loc":["query","name"],"msg":"Field required","type":"missing"}]})");
  for (const std::string& bad : std::vector<std::string>{"a/b", "..", "../x", std::string("a\0b", 3)}) {
    auto query = call("POST", "/v1/runs/run_x/save", "", {{"name", bad}});
    EXPECT_EQ(query.status, k422) << bad;
    EXPECT_EQ(body_of(query)["detail"][0]["loc"], json({"query", "name"}));
    auto body = call("POST", "/v1/runs/run_x/save", json{{"name", bad}}.dump());
    EXPECT_EQ(body.status, k422) << bad;
    EXPECT_EQ(body_of(body)["detail"][0]["loc"], json({"body", "name"}));
  }
  EXPECT_EQ(call("POST", "/v1/runs/run_x/save", "", {{"name", "ok"}}).status, kOk);
  EXPECT_EQ(call("POST", "/v1/runs/run_x/save", R"({"name":"ok"})").status, kOk);
  auto bad_delete = call("DELETE", "/v1/runs/run_x/checkpoints/..");
  EXPECT_EQ(bad_delete.status, k422);
  EXPECT_EQ(body_of(bad_delete)["detail"][0]["loc"], json({"path", "name"}));
}

TEST_F(RoutesTest, BadQueryParametersAre422) {
  auto wait = call("POST", "/v1/runs/run_x/optim_step", "{}", {{"wait", "soon"}});
  EXPECT_EQ(wait.status, k422);
  EXPECT_EQ(body_of(wait)["detail"][0]["loc"], json({"query", "wait"}));
  auto negative = call("GET", "/v1/jobs/job_x", "", {{"wait", "-1"}});
  EXPECT_EQ(negative.status, k422);
  auto status = call("GET", "/v1/jobs", "", {{"status", "done"}});
  EXPECT_EQ(status.status, k422);
  EXPECT_EQ(body_of(status)["detail"][0]["loc"], json({"query", "status"}));
  EXPECT_EQ(queue_->stats().submitted_total, 0u);
}

TEST_F(RoutesTest, CreateRunErrorsAre400) {
  auto empty = call("POST", "/v1/runs", R"({"base_model":""})");
  EXPECT_EQ(empty.status, k400);
  EXPECT_TRUE(body_of(empty)["detail"].is_string());
  auto unknown = call("POST", "/v1/runs", R"({"base_model":"no-such-model-anywhere"})");
  EXPECT_EQ(unknown.status, k400) << unknown.body;
  EXPECT_TRUE(body_of(unknown)["detail"].is_string());
  auto bad_lora = call("POST", "/v1/runs", R"({"base_model":"m","lora_config":{"r":0}})");
  EXPECT_EQ(bad_lora.status, k422);
  EXPECT_EQ(body_of(bad_lora)["detail"][0]["loc"], json({"body", "lora_config", "r"}));
  auto bad_id = call("POST", "/v1/runs", R"({"base_model":"m","run_id":"../etc"})");
  EXPECT_EQ(bad_id.status, k422);
}

TEST_F(RoutesTest, SampleWithoutAnyModelIs400) {
  auto reply = call("POST", "/v1/sample", R"({"prompt":"hello"})");
  EXPECT_EQ(reply.status, k400);
  EXPECT_NE(body_of(reply)["detail"].get<std::string>().find("run_id"), std::string::npos);
  auto invalid = call("POST", "/v1/sample", R"({"prompt":"hello","max_new_tokens":0})");
  EXPECT_EQ(invalid.status, k422);
  EXPECT_EQ(body_of(invalid)["detail"][0]["loc"], json({"body", "max_new_tokens"}));
}

TEST_F(RoutesTest, UnknownRunTokenizerIs404) {
  auto reply = call("POST", "/v1/tokenize", R"({"text":"hi","run_id":"run_nope"})");
  EXPECT_EQ(reply.status, k404);
  EXPECT_EQ(reply.body, R"({"detail":"Run ID run_nope not found"})");
}

TEST_F(RoutesTest, JobListAndCancel) {
  // Block the only worker, then queue a job behind it and cancel it over the API.
  std::promise<void> release;
  auto released = release.get_future().share();
  std::promise<void> started;
  auto blocker = queue_->submit("run_a", "test", [&started, released] {
    started.set_value();
    released.wait_for(std::chrono::seconds(10));
    return json::object();
  });
  ASSERT_EQ(started.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto queued = body_of(call("POST", "/v1/runs/run_a/optim_step", "{}"));
  ASSERT_EQ(queued["status"], "queued");
  const std::string id = queued["job_id"];
  auto listed = body_of(call("GET", "/v1/jobs", "", {{"run_id", "run_a"}, {"status", "queued"}}));
  ASSERT_EQ(listed["jobs"].size(), 1u);
  EXPECT_EQ(listed["jobs"][0]["job_id"], id);
  auto cancelled = call("DELETE", "/v1/jobs/" + id);
  ASSERT_EQ(cancelled.status, kOk);
  EXPECT_EQ(body_of(cancelled)["status"], "cancelled");
  auto running = call("DELETE", "/v1/jobs/" + blocker.job_id);
  EXPECT_EQ(running.status, k409);
  release.set_value();
  EXPECT_EQ(body_of(call("GET", "/v1/jobs/" + blocker.job_id, "", {{"wait", "10"}}))["status"],
            "completed");
}

TEST_F(RoutesTest, FullQueueIs503WithRetryAfter) {
  build("", 1);
  std::promise<void> release;
  auto released = release.get_future().share();
  std::promise<void> started;
  queue_->submit("run_a", "test", [&started, released] {
    started.set_value();
    released.wait_for(std::chrono::seconds(10));
    return json::object();
  });
  started.get_future().wait_for(std::chrono::seconds(10));
  EXPECT_EQ(call("POST", "/v1/runs/run_b/optim_step", "{}").status, kOk);  // fills the queue
  auto full = call("POST", "/v1/runs/run_c/optim_step", "{}");
  EXPECT_EQ(full.status, k503);
  EXPECT_TRUE(body_of(full)["detail"].is_string());
  ASSERT_EQ(full.headers.size(), 1u);
  EXPECT_EQ(full.headers[0].first, "Retry-After");
  EXPECT_EQ(full.headers[0].second, "2");
  release.set_value();
}

TEST_F(RoutesTest, BearerAuthExceptHealth) {
  build("s3cret");
  EXPECT_EQ(call("GET", "/health").status, kOk);
  auto none = call("GET", "/v1/runs");
  EXPECT_EQ(none.status, k401);
  EXPECT_TRUE(body_of(none)["detail"].is_string());
  EXPECT_EQ(call("GET", "/v1/runs", "", {}, {{"authorization", "Bearer wrong"}}).status, k401);
  EXPECT_EQ(call("GET", "/v1/runs", "", {}, {{"authorization", "s3cret"}}).status, k401);
  EXPECT_EQ(call("GET", "/v1/runs", "", {}, {{"authorization", "Bearer s3cret"}}).status, kOk);
  // Unknown paths stay 404 (no auth needed to learn a path does not exist).
  EXPECT_EQ(call("GET", "/nope").status, k404);
}

TEST_F(RoutesTest, OpenApiDescribesExactlyTheRouteTable) {
  auto reply = call("GET", "/openapi.json");
  ASSERT_EQ(reply.status, kOk);
  auto doc = body_of(reply);
  EXPECT_EQ(doc["openapi"], "3.0.3");
  std::set<std::pair<std::string, std::string>> routed;
  for (const auto& route : router_->routes()) {
    std::string method = route.method;
    for (auto& ch : method) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    routed.emplace(route.pattern, method);
    ASSERT_TRUE(doc["paths"].contains(route.pattern)) << route.pattern;
    ASSERT_TRUE(doc["paths"][route.pattern].contains(method)) << route.method << " " << route.pattern;
    const auto& op = doc["paths"][route.pattern][method];
    EXPECT_TRUE(op["responses"].contains("200"));
    if (!route.request_schema.empty()) {
      const std::string ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"];
      EXPECT_TRUE(doc["components"]["schemas"].contains(ref.substr(ref.rfind('/') + 1))) << ref;
    }
    if (route.is_job) {
      bool has_wait = false;
      for (const auto& p : op["parameters"]) has_wait = has_wait || p["name"] == "wait";
      EXPECT_TRUE(has_wait) << route.pattern;
    }
  }
  std::set<std::pair<std::string, std::string>> described;
  for (const auto& [path, ops] : doc["paths"].items()) {
    for (const auto& [method, op] : ops.items()) described.emplace(path, method);
  }
  EXPECT_EQ(routed, described);
  // Every $ref resolves.
  std::function<void(const json&)> check_refs = [&](const json& node) {
    if (node.is_object()) {
      if (node.contains("$ref")) {
        const std::string ref = node["$ref"];
        EXPECT_TRUE(doc["components"]["schemas"].contains(ref.substr(ref.rfind('/') + 1))) << ref;
      }
      for (const auto& [key, child] : node.items()) check_refs(child);
    } else if (node.is_array()) {
      for (const auto& child : node) check_refs(child);
    }
  };
  check_refs(doc);
  // The contract's endpoints are all there.
  for (const char* path : {"/health", "/v1/version", "/v1/status", "/v1/runs", "/v1/runs/{run_id}",
                           "/v1/runs/{run_id}/forward_backward", "/v1/runs/{run_id}/forward",
                           "/v1/runs/{run_id}/optim_step", "/v1/sample", "/v1/runs/{run_id}/save",
                           "/v1/runs/{run_id}/evaluate", "/v1/runs/{run_id}/load",
                           "/v1/runs/{run_id}/checkpoints",
                           "/v1/runs/{run_id}/checkpoints/{name}", "/v1/checkpoints", "/v1/jobs",
                           "/v1/jobs/{job_id}", "/v1/tokenize", "/v1/detokenize",
                           "/openapi.json"}) {
    EXPECT_TRUE(doc["paths"].contains(path)) << path;
  }
}

TEST_F(RoutesTest, CheckpointListsOnEmptyServer) {
  auto all = call("GET", "/v1/checkpoints");
  ASSERT_EQ(all.status, kOk);
  EXPECT_EQ(all.body, R"({"checkpoints":[]})");
}

}  // namespace
}  // namespace eztinker::server
