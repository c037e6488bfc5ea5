// GET /openapi.json: an OpenAPI 3.0 description generated from the route table (paths,
// methods, parameters, ?wait= on job endpoints, error replies) plus hand-written component
// schemas mirroring include/eztinker/api_types.h. A unit test checks that every route is
// described and every described operation is routed, so the two cannot drift.
#include "routes.h"

#include <eztinker/api_paths.h>
#include <eztinker/api_types.h>
#include <eztinker/error.h>
#include <eztinker/version.h>

#include <cctype>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace eztinker::server {

using nlohmann::json;

namespace {

json ref(const std::string& name) { return {{"$ref", "#/components/schemas/" + name}}; }
json str(const std::string& description = "") {
  json s = {{"type", "string"}};
  if (!description.empty()) s["description"] = description;
  return s;
}
json integer(std::optional<int64_t> minimum = std::nullopt, const char* description = nullptr) {
  json s = {{"type", "integer"}};
  if (minimum) s["minimum"] = *minimum;
  if (description) s["description"] = description;
  return s;
}
json number(const char* description = nullptr) {
  json s = {{"type", "number"}};
  if (description) s["description"] = description;
  return s;
}
json boolean() { return {{"type", "boolean"}}; }
json array(json items) { return {{"type", "array"}, {"items", std::move(items)}}; }
json nullable(json schema) {
  schema["nullable"] = true;
  return schema;
}
json object(json properties, std::vector<std::string> required = {}) {
  json s = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) s["required"] = required;
  return s;
}

json token_ids() { return array(integer(0)); }

json component_schemas() {
  json s;
  s["Health"] = object({{"status", {{"type", "string"}, {"enum", {"ok"}}}}}, {"status"});
  s["Version"] = object({{"version", str()}, {"api_version", str()}, {"git_sha", str()}},
                        {"version", "api_version"});
  s["Status"] = object({{"version", str()},
                        {"uptime_s", number()},
                        {"device", str()},
                        {"threads", integer()},
                        {"workers", integer()},
                        {"models", array(object({{"name", str()},
                                                 {"dtype", str()},
                                                 {"num_parameters", integer()},
                                                 {"bytes", integer()}}))},
                        {"num_runs", integer()},
                        {"queue_depth", integer()},
                        {"jobs", object({{"queued", integer()},
                                         {"running", integer()},
                                         {"completed", integer()},
                                         {"failed", integer()},
                                         {"cancelled", integer()}})}});
  s["LoraConfig"] = nullable(object(
      {{"r", integer(1, "rank (default 8)")},
       {"lora_alpha", integer(1, "scaling numerator (default 16)")},
       {"lora_dropout", {{"type", "number"}, {"minimum", 0}, {"maximum", 1}, {"default", 0.05}}},
       {"target_modules",
        {{"oneOf", {{{"type", "string"}, {"enum", {"all-linear"}}}, array(str())}},
         {"default", "all-linear"}}},
       {"use_rslora", boolean()}}));
  s["LossConfig"] = nullable(object(
      {{"loss_type",
        {{"type", "string"},
         {"enum", {"cross_entropy", "weighted_cross_entropy", "focal_loss"}},
         {"default", "cross_entropy"}}},
       {"ignore_index", {{"type", "integer"}, {"default", -100}}},
       {"focal_alpha", {{"type", "number"}, {"minimum", 0}, {"maximum", 1}, {"default", 0.25}}},
       {"focal_gamma", {{"type", "number"}, {"minimum", 0}, {"default", 2.0}}},
       {"reduction", {{"type", "string"}, {"enum", {"mean", "sum"}}, {"default", "mean"}}}}));
  s["CreateRunRequest"] = object({{"base_model", str("model name, alias or directory")},
                                  {"lora_config", ref("LoraConfig")},
                                  {"loss_config", ref("LossConfig")},
                                  {"run_id", str("default run_ + 8 hex")},
                                  {"from_checkpoint", str("checkpoint or PEFT adapter dir")},
                                  {"seed", integer(0)}},
                                 {"base_model"});
  s["CreateRunResponse"] = object(
      {{"run_id", str()}, {"status", str()}, {"message", str()}}, {"run_id", "status", "message"});
  s["ListRunsResponse"] = object(
      {{"runs", array(object({{"run_id", str()}, {"base_model", str()}, {"device", str()}}))}},
      {"runs"});
  s["RunInfo"] = object({{"run_id", str()},
                         {"base_model", str()},
                         {"device", str()},
                         {"lora_config", ref("LoraConfig")},
                         {"loss_config", ref("LossConfig")},
                         {"trainable_parameters", integer()},
                         {"step", integer()},
                         {"tokens_trained", integer()},
                         {"last_loss", nullable(number())},
                         {"created_at", str("ISO-8601 UTC")}});
  s["DeleteRunResponse"] = object({{"status", str()}, {"run_id", str()}}, {"status", "run_id"});
  s["Datum"] = object({{"input_ids", token_ids()},
                       {"target_ids", array(integer(std::nullopt,
                                                    "aligned with input_ids; -100 = no loss"))},
                       {"weights", array(number())},
                       {"advantages", array(number())},
                       {"logprobs", array(number())}},
                      {"input_ids"});
  s["ChatMessage"] = object(
      {{"role", {{"type", "string"}, {"enum", {"system", "user", "assistant"}}}},
       {"content", str()}},
      {"role", "content"});
  s["ForwardBackwardRequest"] = object(
      {{"input_ids", token_ids()},
       {"target_ids", array(integer())},
       {"weights", array(number())},
       {"advantages", array(number())},
       {"logprobs", array(number())},
       {"examples", array(ref("Datum"))},
       {"prompt", str("text form: prompt tokens get weight 0")},
       {"completion", str()},
       {"messages", array(ref("ChatMessage"))},
       {"train_on",
        {{"type", "string"}, {"enum", {"assistant", "last_assistant", "all"}}, {"default", "assistant"}}},
       {"loss_fn",
        {{"type", "string"},
         {"enum", {"cross_entropy", "importance_sampling", "ppo"}},
         {"default", "cross_entropy"}}},
       {"reduction", {{"type", "string"}, {"enum", {"mean", "sum"}}}},
       {"clip_low", number()},
       {"clip_high", number()},
       {"loss_config", ref("LossConfig")}});
  s["OptimStepRequest"] = object(
      {{"learning_rate", {{"type", "number"}, {"exclusiveMinimum", true}, {"minimum", 0}, {"default", 2e-4}}},
       {"weight_decay", {{"type", "number"}, {"minimum", 0}, {"default", 0}}},
       {"betas", {{"type", "array"}, {"items", number()}, {"minItems", 2}, {"maxItems", 2}}},
       {"eps", {{"type", "number"}, {"default", 1e-8}}},
       {"grad_clip_norm", {{"type", "number"}, {"minimum", 0}, {"default", 1.0}}}});
  s["SampleRequest"] = object(
      {{"prompt", str()},
       {"prompt_ids", token_ids()},
       {"messages", array(ref("ChatMessage"))},
       {"run_id", str()},
       {"base_model", str()},
       {"max_new_tokens",
        {{"type", "integer"}, {"minimum", 1}, {"maximum", api::kMaxNewTokensLimit}, {"default", 100}}},
       {"temperature", {{"type", "number"}, {"minimum", 0}, {"maximum", 10}, {"default", 1.0}}},
       {"top_p", {{"type", "number"}, {"minimum", 0}, {"maximum", 1}, {"default", 1.0}}},
       {"top_k", {{"type", "integer"}, {"minimum", 0}, {"default", 50}}},
       {"do_sample", {{"type", "boolean"}, {"default", true}}},
       {"num_samples",
        {{"type", "integer"}, {"minimum", 1}, {"maximum", api::kMaxNumSamples}, {"default", 1}}},
       {"seed", integer(0)},
       {"stop", array(str())},
       {"stop_token_ids", token_ids()},
       {"return_logprobs", boolean()}});
  s["SaveRequest"] = object({{"name", str("or ?name=; no '/', '..' or NUL")}});
  s["LoadRequest"] = object(
      {{"name", str()}, {"path", str()}, {"load_optimizer", {{"type", "boolean"}, {"default", true}}}});
  s["EvaluateRequest"] = object(
      {{"run_id", str()},
       {"batches",
        array(object({{"input_ids", token_ids()},
                      {"target_ids", array(integer())},
                      {"response_ids", array(integer())},
                      {"prompt_ids", array(integer())}},
                     {"input_ids"}))},
       {"temperature", number()},
       {"max_new_tokens", integer(1)}},
      {"batches"});
  s["CheckpointInfo"] = object({{"name", str()},
                                {"run_id", str()},
                                {"adapter_path", str()},
                                {"optimizer_path", nullable(str())},
                                {"created_at", str("ISO-8601 UTC")},
                                {"size_bytes", integer()},
                                {"is_sampler", boolean()}});
  s["ListCheckpointsResponse"] = object({{"checkpoints", array(ref("CheckpointInfo"))}},
                                        {"checkpoints"});
  s["DeleteCheckpointResponse"] = object({{"status", str()}, {"run_id", str()}, {"name", str()}});
  s["Job"] = object(
      {{"job_id", str()},
       {"status",
        {{"type", "string"}, {"enum", {"queued", "running", "completed", "failed", "cancelled"}}}},
       {"result", nullable(object(json::object()))},
       {"error", nullable(str())},
       {"run_id", str()},
       {"type", str()},
       {"created_at", str()}},
      {"job_id", "status", "result", "error"});
  s["ListJobsResponse"] = object({{"jobs", array(ref("Job"))}}, {"jobs"});
  s["TokenizeRequest"] = object({{"text", str()},
                                 {"run_id", str()},
                                 {"base_model", str()},
                                 {"add_special_tokens", boolean()}},
                                {"text"});
  s["TokenizeResponse"] = object({{"tokens", token_ids()}}, {"tokens"});
  s["DetokenizeRequest"] = object({{"tokens", token_ids()},
                                   {"run_id", str()},
                                   {"base_model", str()},
                                   {"skip_special_tokens", boolean()}},
                                  {"tokens"});
  s["DetokenizeResponse"] = object({{"text", str()}}, {"text"});
  s["HTTPError"] = object({{"detail", str()}}, {"detail"});
  s["ValidationError"] = object(
      {{"detail", array(object({{"loc", array({{"oneOf", {str(), integer()}}})},
                                {"msg", str()},
                                {"type", str()}}))}},
      {"detail"});
  s["OpenAPI"] = object(json::object());
  return s;
}

json error_response(const std::string& description, const std::string& schema) {
  return {{"description", description},
          {"content", {{"application/json", {{"schema", ref(schema)}}}}}};
}

}  // namespace

nlohmann::json openapi_document(const std::vector<Route>& routes) {
  json paths = json::object();
  for (const auto& route : routes) {
    json op;
    op["summary"] = route.summary;
    op["operationId"] = route.method + " " + route.pattern;
    json parameters = json::array();
    // Path parameters from the {name} segments.
    for (size_t pos = route.pattern.find('{'); pos != std::string::npos;
         pos = route.pattern.find('{', pos + 1)) {
      const size_t end = route.pattern.find('}', pos);
      parameters.push_back({{"name", route.pattern.substr(pos + 1, end - pos - 1)},
                            {"in", "path"},
                            {"required", true},
                            {"schema", str()}});
    }
    const bool get_job = route.method == "GET" && route.response_schema == "Job";
    if (route.is_job || get_job) {
      parameters.push_back(
          {{"name", api::kWaitParam},
           {"in", "query"},
           {"required", false},
           {"description", "hold the reply up to SECONDS for the job to end (long-poll)"},
           {"schema", {{"type", "number"}, {"minimum", 0}}}});
    }
    if (route.pattern == std::string(api::kRunsPath) + "/{run_id}" + api::kSaveSuffix) {
      parameters.push_back({{"name", api::kNameParam},
                            {"in", "query"},
                            {"required", false},
                            {"schema", str()}});
    }
    if (route.pattern == api::kJobsPath && route.method == "GET") {
      parameters.push_back(
          {{"name", api::kRunIdParam}, {"in", "query"}, {"required", false}, {"schema", str()}});
      parameters.push_back({{"name", api::kStatusParam},
                            {"in", "query"},
                            {"required", false},
                            {"schema", str()}});
    }
    if (!parameters.empty()) op["parameters"] = parameters;
    if (!route.request_schema.empty()) {
      op["requestBody"] = {
          {"required", !route.body_optional},
          {"content", {{"application/json", {{"schema", ref(route.request_schema)}}}}}};
    }
    const std::string reply_schema = route.response_schema.empty() ? "OpenAPI" : route.response_schema;
    op["responses"]["200"] = {
        {"description", "OK"},
        {"content", {{"application/json", {{"schema", ref(reply_schema)}}}}}};
    if (route.pattern != api::kHealthPath) {
      const auto status = [](ErrorType t) { return std::to_string(http_status(t)); };
      op["responses"][status(ErrorType::kValidation)] =
          error_response("Validation error", "ValidationError");
      op["responses"][status(ErrorType::kUnauthorized)] =
          error_response("Missing or wrong API key (with --api-key)", "HTTPError");
      if (route.method != "GET" || route.pattern.find('{') != std::string::npos) {
        op["responses"][status(ErrorType::kBadRequest)] = error_response("Bad request", "HTTPError");
        op["responses"][status(ErrorType::kNotFound)] = error_response("Not found", "HTTPError");
      }
      if (route.is_job) {
        op["responses"][status(ErrorType::kQueueFull)] =
            error_response("Job queue full (Retry-After)", "HTTPError");
      }
      if (!route.request_schema.empty()) {
        op["responses"][status(ErrorType::kPayloadTooLarge)] =
            error_response("Body above --max-body-bytes", "HTTPError");
      }
    }
    std::string method = route.method;
    for (auto& ch : method) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    paths[route.pattern][method] = std::move(op);
  }
  json doc;
  doc["openapi"] = "3.0.3";
  doc["info"] = {{"title", "EZTinker"},
                 {"version", kVersion},
                 {"description",
                  "LoRA fine-tuning service: runs, async training/sampling jobs, checkpoints. "
                  "See shared/docs/wire-protocol.md."}};
  doc["paths"] = std::move(paths);
  doc["components"]["schemas"] = component_schemas();
  doc["components"]["securitySchemes"]["bearer"] = {{"type", "http"}, {"scheme", "bearer"}};
  return doc;
}

}  // namespace eztinker::server
