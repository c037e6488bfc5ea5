// Server (engine + job queue + routes + HTTP listener) and run_server(); see server.h.
#include "server.h"

#include "http_server.h"
#include "job_queue.h"
#include "routes.h"
#include "server_log.h"

#include <csignal>
#include <cstdio>
#include <mutex>
#include <pthread.h>
#include <stdexcept>

namespace eztinker::server {

engine::EngineOptions engine_options(const ServerConfig& config) {
  engine::EngineOptions options;
  options.checkpoints_dir = config.checkpoints_dir;
  options.models_dir = config.models_dir;
  options.aliases = config.aliases;
  options.dtype = config.dtype;
  options.device = config.device;
  options.allow_download = config.allow_download;
  options.threads = config.threads;
  return options;
}

namespace {
JobQueueOptions queue_options(const ServerConfig& config) {
  JobQueueOptions options;
  options.workers = config.workers;
  options.max_queued = config.max_queued;
  options.max_results = config.max_results;
  options.result_ttl = std::chrono::seconds(config.result_ttl_s);
  return options;
}

void check_config(const ServerConfig& config) {
  if (config.workers < 1) throw std::invalid_argument("--workers must be >= 1");
  if (config.port < 0 || config.port > 65535) throw std::invalid_argument("--port must be 0..65535");
  if (!(config.wait_default_s >= 0)) throw std::invalid_argument("--wait-default must be >= 0");
  if (config.max_body_bytes == 0) throw std::invalid_argument("--max-body-bytes must be > 0");
  if (config.max_queued == 0) throw std::invalid_argument("--max-queued must be > 0");
}
}  // namespace

struct Server::Impl {
  explicit Impl(ServerConfig c)
      : config((check_config(c), std::move(c))),
        engine(engine_options(config)),
        queue(queue_options(config)),
        context(engine, queue, config),
        router(make_routes(), context, config.api_key),
        http(router, config) {}

  ServerConfig config;
  engine::Engine engine;
  JobQueue queue;
  RouteContext context;
  Router router;
  HttpServer http;
  std::once_flag stopped;
  bool started = false;
};

Server::Server(ServerConfig config) {
  set_server_log_level(config.log_level);
  impl_ = std::make_unique<Impl>(std::move(config));
  if (!impl_->config.model.empty()) {
    const auto info = impl_->engine.load_base_model(impl_->config.model);
    named_logger("http")->info("model loaded name={} dtype={} device={} parameters={}",
                               info.name, info.dtype, info.device, info.parameters);
  }
}

Server::~Server() { stop(); }

int Server::start() {
  const int port = impl_->http.start();
  impl_->started = true;
  named_logger("http")->info("listening on http://{}:{} workers={} auth={}", impl_->config.host,
                             port, impl_->config.workers,
                             impl_->config.api_key.empty() ? "off" : "bearer");
  return port;
}

void Server::stop() {
  if (!impl_) return;
  std::call_once(impl_->stopped, [this] {
    // Jobs first: rejects new ones, wakes every long-poll (so HTTP threads are free), lets the
    // running jobs finish. Then the listener: in-flight requests complete, the socket closes.
    impl_->queue.shutdown(false);
    impl_->http.stop();
    if (impl_->started) named_logger("http")->info("server stopped");
  });
}

int Server::port() const { return impl_->http.port(); }
std::string Server::url() const {
  return "http://" + impl_->config.host + ":" + std::to_string(impl_->http.port());
}
const ServerConfig& Server::config() const { return impl_->config; }
engine::Engine& Server::engine() { return impl_->engine; }
JobQueue& Server::queue() { return impl_->queue; }

int run_server(const ServerConfig& config) {
  // Block the stop signals in every thread (the server's threads inherit this mask) and take
  // them synchronously below: no async-signal-safety concerns, and a second Ctrl-C during the
  // graceful stop is ignored rather than killing a job half-way.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Server server(config);
  const int port = server.start();
  std::printf("EZTinker server listening on http://%s:%d\n", config.host.c_str(), port);
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  named_logger("http")->info("received {}, stopping: finishing running jobs",
                             received == SIGINT ? "SIGINT" : "SIGTERM");
  server.stop();
  return 0;
}

}  // namespace eztinker::server
