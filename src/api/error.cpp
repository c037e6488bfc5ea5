// ErrorType <-> (HTTP status, type name): the ONLY mapping table in the codebase, plus the
// FastAPI-compatible error body and its client-side inverse (error_from_response).
#include "eztinker/error.h"

#include <nlohmann/json.hpp>

#include <array>
#include <utility>

namespace eztinker {
namespace {

struct ErrorRow {
  ErrorType type;
  int status;  // 0 = client-side only, never sent by a server
  std::string_view name;
};

// The table. Order does not matter; error_type_from_status takes the first row per status.
constexpr std::array<ErrorRow, 12> kErrorTable = {{
    {ErrorType::kValidation, 422, "validation_error"},
    {ErrorType::kBadRequest, 400, "bad_request"},
    {ErrorType::kUnauthorized, 401, "unauthorized"},
    {ErrorType::kNotFound, 404, "not_found"},
    {ErrorType::kMethodNotAllowed, 405, "method_not_allowed"},
    {ErrorType::kConflict, 409, "conflict"},
    {ErrorType::kPayloadTooLarge, 413, "payload_too_large"},
    {ErrorType::kQueueFull, 503, "queue_full"},
    {ErrorType::kInternal, 500, "internal_error"},
    {ErrorType::kConnection, 0, "connection_error"},
    {ErrorType::kTimeout, 0, "timeout"},
    {ErrorType::kJobFailed, 0, "job_failed"},
}};

const ErrorRow& row_of(ErrorType type) {
  for (const auto& row : kErrorTable) {
    if (row.type == type) return row;
  }
  return kErrorTable[8];  // unreachable: every enumerator has a row (kInternal)
}

}  // namespace

int http_status(ErrorType type) { return row_of(type).status; }

std::string_view error_type_name(ErrorType type) { return row_of(type).name; }

ErrorType error_type_from_status(int status) {
  for (const auto& row : kErrorTable) {
    if (row.status != 0 && row.status == status) return row.type;
  }
  if (status >= 400 && status < 500) return ErrorType::kBadRequest;
  return ErrorType::kInternal;
}

ApiError::ApiError(ErrorType type, std::string message)
    : std::runtime_error(message), type_(type), message_(std::move(message)) {}

ApiError ApiError::validation(std::string message, std::string detail_json) {
  ApiError error(ErrorType::kValidation, std::move(message));
  error.detail_json_ = std::move(detail_json);
  return error;
}

int ApiError::http_status() const { return eztinker::http_status(type_); }

ApiError& ApiError::with_job_id(std::string job_id) {
  job_id_ = std::move(job_id);
  return *this;
}

ApiError& ApiError::with_retry_after(int seconds) {
  retry_after_s_ = seconds;
  return *this;
}

ApiError& ApiError::with_raw_body(std::string body) {
  raw_body_ = std::move(body);
  return *this;
}

ConnectionError::ConnectionError(const std::string& url, const std::string& reason)
    : ApiError(ErrorType::kConnection, "cannot connect to " + url + ": " + reason), url_(url) {}

std::string error_body_json(const ApiError& error) {
  nlohmann::json body;
  if (error.type() == ErrorType::kValidation) {
    nlohmann::json detail = nlohmann::json::parse(error.detail_json(), nullptr, false);
    if (!detail.is_array() || detail.empty()) {
      // A 422 raised without a list still gets FastAPI's list shape.
      detail = nlohmann::json::array(
          {{{"loc", {"body"}}, {"msg", error.message()}, {"type", "value_error"}}});
    }
    body["detail"] = std::move(detail);
  } else {
    body["detail"] = error.message();
  }
  return body.dump();
}

namespace {

// One line from a 422 detail list: "lora_config.r: Input should be ...; input_ids: ...".
std::string summarize_detail_list(const nlohmann::json& list) {
  std::string out;
  for (const auto& item : list) {
    if (!out.empty()) out += "; ";
    std::string loc;
    if (item.contains("loc") && item["loc"].is_array()) {
      for (const auto& part : item["loc"]) {
        std::string piece = part.is_string() ? part.get<std::string>() : part.dump();
        if (loc.empty() && (piece == "body" || piece == "query" || piece == "path")) continue;
        if (!loc.empty()) loc += ".";
        loc += piece;
      }
    }
    std::string msg = item.contains("msg") && item["msg"].is_string()
                          ? item["msg"].get<std::string>()
                          : item.dump();
    out += loc.empty() ? msg : loc + ": " + msg;
  }
  return out;
}

}  // namespace

ApiError error_from_response(int status, std::string_view body) {
  ErrorType type = error_type_from_status(status);
  std::string message;
  std::string detail_list;
  nlohmann::json parsed = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (parsed.is_object() && parsed.contains("detail")) {
    const auto& detail = parsed["detail"];
    if (detail.is_string()) {
      message = detail.get<std::string>();
    } else if (detail.is_array()) {
      message = summarize_detail_list(detail);
      detail_list = detail.dump();
    } else {
      message = detail.dump();
    }
  } else if (!body.empty()) {
    message = std::string(body.substr(0, 500));
  } else {
    message = "HTTP " + std::to_string(status);
  }
  ApiError error = detail_list.empty() ? ApiError(type, message)
                                       : ApiError::validation(message, detail_list);
  if (!detail_list.empty() && type != ErrorType::kValidation) {
    error = ApiError(type, message);  // a list under a non-422 status: keep the server's status
  }
  error.with_raw_body(std::string(body));
  return error;
}

}  // namespace eztinker
