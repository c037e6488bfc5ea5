// The HTTP layer: Router (route matching, auth, and the ONE choke point that turns handler
// results and exceptions into replies, llama.cpp's ex_wrapper idea) and HttpServer (the
// cpp-httplib adapter: threads, body cap, request log). Status numbers come only from the
// error table (eztinker/error.h); success is the single kHttpOk below.
#pragma once

#include "routes.h"
#include "server_config.h"

#include <eztinker/error.h>

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace httplib {
class Server;
}

namespace eztinker::server {

inline constexpr int kHttpOk = 200;

// A reply as it goes on the wire.
struct Reply {
  int status = kHttpOk;
  std::string body;                                         // JSON text
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Retry-After)
};

// The reply for an ApiError: its status from the table, the FastAPI body, Retry-After on 503.
Reply error_reply(const ApiError& error);

// Matches requests against the route table and runs the handler inside the choke point:
// unknown path -> 404 {"detail":"Not Found"}; known path, other method -> 405
// {"detail":"Method Not Allowed"}; missing/wrong Bearer key (when configured; never for
// /health) -> 401; ApiError -> its status and body; nlohmann type errors -> 422; any other
// exception -> 500 (logged). Thread-safe (const after construction).
class Router {
 public:
  Router(std::vector<Route> routes, RouteContext& context, std::string api_key);

  Reply dispatch(Request request) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
  RouteContext& context_;
  std::string api_key_;
};

// cpp-httplib adapter. Every method of every path goes to Router::dispatch; httplib's own
// error replies (413 body too large, 400 unparsable request) get a FastAPI JSON body.
// Logs one line per request on the "http" logger (method, path, status, duration).
// Thread safety: start/stop from one controlling thread.
class HttpServer {
 public:
  HttpServer(const Router& router, const ServerConfig& config);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (0 = any free port) and starts listening on a background thread.
  // Returns the bound port. Throws std::runtime_error when the address cannot be bound.
  int start();
  // Stops accepting, lets in-flight requests finish, joins the listener. Idempotent.
  void stop();
  int port() const { return port_; }

 private:
  const Router& router_;
  const ServerConfig& config_;
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int port_ = 0;
};

}  // namespace eztinker::server
