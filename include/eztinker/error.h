// Errors shared by the server, the client and the CLI: the ErrorType enum, the ApiError
// exception, and the FastAPI-compatible error body (shared/docs/wire-protocol.md, "Errors").
// The ErrorType <-> (HTTP status, type string) table lives only in src/api/error.cpp; nothing
// else in the codebase spells a status number.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace eztinker {

// Every kind of failure a caller can see. The first group is what a server sends; the second
// group exists only on the client side (it never travels over the wire, http_status() is 0).
enum class ErrorType {
  kValidation,        // 422: missing / ill-typed / out-of-range field, bad JSON, missing body
  kBadRequest,        // 400: e.g. model cannot be loaded, run id exists, unknown run (DELETE)
  kUnauthorized,      // 401: --api-key set and no/incorrect Authorization: Bearer
  kNotFound,          // 404: unknown route, job, run (GET), checkpoint
  kMethodNotAllowed,  // 405
  kConflict,          // 409: e.g. cancelling a job that is already running
  kPayloadTooLarge,   // 413: body above --max-body-bytes
  kQueueFull,         // 503: job queue full; the reply carries Retry-After
  kInternal,          // 500: a bug or an engine failure outside a job
  // Client side only:
  kConnection,  // the server could not be reached (refused, DNS, reset, read timeout)
  kTimeout,     // a client-side wait ran out before the job ended
  kJobFailed,   // the job ended with status "failed" or "cancelled"; message = the job's error
};

// The HTTP status of `type` (0 for the client-side kinds).
int http_status(ErrorType type);
// Stable snake_case name: "validation_error", "bad_request", ..., "connection_error".
std::string_view error_type_name(ErrorType type);
// The ErrorType a server status maps to (unknown 4xx -> kBadRequest, unknown 5xx -> kInternal).
ErrorType error_type_from_status(int status);

// The one exception type of the API layer. Thrown by request validation on the server (and
// turned into the reply by the route wrapper), and by EZTinkerClient for non-2xx replies and
// failed jobs. Immutable after construction; safe to copy and to read from any thread.
class ApiError : public std::runtime_error {
 public:
  // `message` is the human-readable detail ("Run ID run_1 not found").
  ApiError(ErrorType type, std::string message);

  // A 422 with a FastAPI detail list. `detail_json` is the JSON text of the list
  // (`[{"loc":[...],"msg":...,"type":...}]`); `message` is a one-line summary of it.
  static ApiError validation(std::string message, std::string detail_json);

  ErrorType type() const { return type_; }
  int http_status() const;  // from the one table; 0 for client-side kinds
  // The server's detail: the string detail, or the one-line summary of a 422 list.
  const std::string& message() const { return message_; }
  // JSON text of the 422 detail list when there is one (empty otherwise).
  const std::string& detail_json() const { return detail_json_; }

  // The job this error belongs to (set by the client for failed/timed-out jobs).
  const std::string& job_id() const { return job_id_; }
  ApiError& with_job_id(std::string job_id);
  // Seconds from a 503's Retry-After header (client), or to send with one (server).
  std::optional<int> retry_after_s() const { return retry_after_s_; }
  ApiError& with_retry_after(int seconds);
  // The raw reply body a client received (for debugging); empty on the server side.
  const std::string& raw_body() const { return raw_body_; }
  ApiError& with_raw_body(std::string body);

 private:
  ErrorType type_;
  std::string message_;
  std::string detail_json_;
  std::string job_id_;
  std::optional<int> retry_after_s_;
  std::string raw_body_;
};

// A transport failure: the client could not reach `url` (or the connection broke / timed
// out). type() is ErrorType::kConnection; the message names the URL.
class ConnectionError : public ApiError {
 public:
  ConnectionError(const std::string& url, const std::string& reason);
  const std::string& url() const { return url_; }

 private:
  std::string url_;
};

// The exact FastAPI reply body for `error`: `{"detail":[...]}` for a 422 that has a detail list
// (a 422 without one gets a one-entry list at loc ["body"]), `{"detail":"<message>"}` otherwise.
std::string error_body_json(const ApiError& error);

// Client side: the ApiError for a non-2xx reply. Reads "detail" from `body` (string or 422
// list); falls back to the raw body text (or the status line) when it is not FastAPI JSON.
ApiError error_from_response(int status, std::string_view body);

}  // namespace eztinker
