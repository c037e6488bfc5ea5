// The EZTinker server as a library: Server bundles the engine, the job queue, the route table
// and the HTTP listener, with an in-process start/stop API that `eztinker server`, `eztinker
// demo`, the end-to-end tests and the benchmark all use. run_server() is the daemon: start,
// wait for SIGINT/SIGTERM, stop gracefully.
#pragma once

#include "engine/engine.h"
#include "server_config.h"

#include <memory>
#include <string>

namespace eztinker::server {

class JobQueue;

// Thread safety: start() and stop() from one controlling thread; everything else the server
// does happens on its own threads. Ownership: owns the engine (so base models and runs live as
// long as the Server). Errors: the constructor throws ApiError / std::exception when --model
// cannot be preloaded or the config is invalid; start() throws std::runtime_error when the
// address cannot be bound.
class Server {
 public:
  explicit Server(ServerConfig config);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds (port 0 = a free port) and serves in the background; returns the bound port.
  int start();
  // Graceful stop: new jobs get 503, long-polls wake, the running jobs finish, queued jobs
  // end `failed`, then the HTTP listener closes. Idempotent.
  void stop();

  int port() const;
  std::string url() const;  // "http://<host>:<port>"
  const ServerConfig& config() const;
  engine::Engine& engine();
  JobQueue& queue();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `eztinker server`: builds the Server, prints the listening address, serves until SIGINT or
// SIGTERM, then stops gracefully. Returns the process exit code (0 on a clean stop).
int run_server(const ServerConfig& config);

// The engine options a ServerConfig implies.
engine::EngineOptions engine_options(const ServerConfig& config);

}  // namespace eztinker::server
