// Router (matching, auth, the choke point) and the cpp-httplib adapter; see http_server.h.
#include "http_server.h"

#include "server_log.h"

#include <eztinker/api_paths.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <stdexcept>

namespace eztinker::server {

namespace {

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 1;  // paths start with '/'
  if (path.empty() || path[0] != '/') return {path};
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

// Matches "/v1/runs/{run_id}" against a path; fills params on success. A parameter matches
// one non-empty segment.
bool match_pattern(const std::vector<std::string>& pattern,
                   const std::vector<std::string>& path,
                   std::map<std::string, std::string>* params) {
  if (pattern.size() != path.size()) return false;
  std::map<std::string, std::string> found;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const std::string& p = pattern[i];
    if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
      if (path[i].empty()) return false;
      found[p.substr(1, p.size() - 2)] = path[i];
    } else if (p != path[i]) {
      return false;
    }
  }
  if (params) *params = std::move(found);
  return true;
}

// Comparison of the presented key without an early exit on the first differing byte.
bool same_key(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return text;
}

}  // namespace

Reply error_reply(const ApiError& error) {
  Reply reply;
  reply.status = error.http_status();
  if (reply.status == 0) reply.status = http_status(ErrorType::kInternal);  // client-only kinds
  reply.body = error_body_json(error);
  if (error.retry_after_s()) {
    reply.headers.emplace_back("Retry-After", std::to_string(*error.retry_after_s()));
  }
  return reply;
}

Router::Router(std::vector<Route> routes, RouteContext& context, std::string api_key)
    : routes_(std::move(routes)), context_(context), api_key_(std::move(api_key)) {}

Reply Router::dispatch(Request request) const {
  const auto path_parts = split_path(request.path);
  const Route* route = nullptr;
  bool path_known = false;
  for (const auto& candidate : routes_) {
    std::map<std::string, std::string> params;
    if (!match_pattern(split_path(candidate.pattern), path_parts, &params)) continue;
    path_known = true;
    if (candidate.method == request.method ||
        (request.method == "HEAD" && candidate.method == "GET")) {
      route = &candidate;
      request.path_params = std::move(params);
      break;
    }
  }
  if (!path_known) return error_reply(ApiError(ErrorType::kNotFound, "Not Found"));
  if (!api_key_.empty() && request.path != api::kHealthPath) {
    const auto header = request.header("authorization");
    const std::string prefix = "Bearer ";
    if (!header || header->compare(0, prefix.size(), prefix) != 0 ||
        !same_key(header->substr(prefix.size()), api_key_)) {
      named_logger("http")->warn("{} {} rejected: {} API key", request.method, request.path,
                                 header ? "wrong" : "missing");
      return error_reply(ApiError(ErrorType::kUnauthorized,
                                  header ? "Invalid API key" : "Not authenticated: send "
                                                               "Authorization: Bearer <key>"));
    }
  }
  if (!route) return error_reply(ApiError(ErrorType::kMethodNotAllowed, "Method Not Allowed"));

  try {
    Reply reply;
    reply.body = route->handler(context_, request).dump(-1, ' ', false,
                                                        nlohmann::json::error_handler_t::replace);
    return reply;
  } catch (const ApiError& e) {
    if (e.type() == ErrorType::kValidation) {
      named_logger("http")->debug("{} {} 422: {}", request.method, request.path, e.message());
    }
    return error_reply(e);
  } catch (const nlohmann::json::exception& e) {
    // A JSON type error that escaped the validators is still the client's input: 422.
    const std::string detail =
        nlohmann::json::array({{{"loc", {"body"}}, {"msg", e.what()}, {"type", "value_error"}}})
            .dump();
    return error_reply(ApiError::validation(e.what(), detail));
  } catch (const std::exception& e) {
    named_logger("http")->error("{} {} failed: {}", request.method, request.path, e.what());
    return error_reply(ApiError(ErrorType::kInternal, std::string("Internal error: ") + e.what()));
  } catch (...) {
    named_logger("http")->error("{} {} failed: unknown exception", request.method, request.path);
    return error_reply(ApiError(ErrorType::kInternal, "Internal error"));
  }
}

HttpServer::HttpServer(const Router& router, const ServerConfig& config)
    : router_(router), config_(config), http_(std::make_unique<httplib::Server>()) {
  const int threads = std::max(2, config_.http_threads);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http_->set_payload_max_length(config_.max_body_bytes);
  http_->set_keep_alive_max_count(1000);
  http_->set_keep_alive_timeout(2);  // idle keep-alive connections hold a thread; stop() waits
  http_->set_tcp_nodelay(true);

  auto log = named_logger("http");
  auto handle = [this, log](const httplib::Request& req, httplib::Response& res) {
    const auto start = std::chrono::steady_clock::now();
    Request request;
    request.method = req.method;
    request.path = req.path;
    for (const auto& [key, value] : req.params) request.query.emplace(key, value);  // first wins
    for (const auto& [key, value] : req.headers) request.headers.emplace(lower(key), value);
    request.body = req.body;
    Reply reply = router_.dispatch(std::move(request));
    res.status = reply.status;
    for (const auto& [key, value] : reply.headers) res.set_header(key, value);
    res.set_content(std::move(reply.body), "application/json");
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const auto level = req.path == api::kHealthPath ? spdlog::level::debug : spdlog::level::info;
    log->log(level, "{} {} {} {:.2f}ms", req.method, req.path, res.status, ms);
  };
  for (const char* pattern : {".*"}) {
    http_->Get(pattern, handle);
    http_->Post(pattern, handle);
    http_->Put(pattern, handle);
    http_->Patch(pattern, handle);
    http_->Delete(pattern, handle);
    http_->Options(pattern, handle);
  }
  // httplib's own failures (body over the cap, unparsable request, unknown method) reach the
  // client with an empty body; give them the FastAPI shape. Our replies already have a body.
  http_->set_error_handler([this, log](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const ErrorType type = error_type_from_status(res.status);
    std::string message;
    switch (type) {
      case ErrorType::kNotFound: message = "Not Found"; break;
      case ErrorType::kMethodNotAllowed: message = "Method Not Allowed"; break;
      case ErrorType::kPayloadTooLarge:
        message = "Request body too large (limit " + std::to_string(config_.max_body_bytes) +
                  " bytes, --max-body-bytes)";
        break;
      case ErrorType::kBadRequest: message = "Bad Request"; break;
      default: message = std::string(error_type_name(type)); break;
    }
    res.set_content(error_body_json(ApiError(type, message)), "application/json");
    log->warn("{} {} {} {}", req.method, req.path, res.status, message);
  });
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::start() {
  if (config_.port == 0) {
    port_ = http_->bind_to_any_port(config_.host);
    if (port_ <= 0) throw std::runtime_error("cannot bind " + config_.host + " (any port)");
  } else {
    if (!http_->bind_to_port(config_.host, config_.port)) {
      throw std::runtime_error("cannot bind " + config_.host + ":" +
                               std::to_string(config_.port) + " (in use, or not an address here)");
    }
    port_ = config_.port;
  }
  listener_ = std::thread([this] { http_->listen_after_bind(); });
  return port_;
}

void HttpServer::stop() {
  if (http_) http_->stop();
  if (listener_.joinable()) listener_.join();
}

}  // namespace eztinker::server
