// Shared fixture of the client / CLI / install end-to-end tests: the tiny random Qwen2
// (model/random_model.h, preset "tiny", written once per test process) served by an in-process
// Server on 127.0.0.1 port 0, explicit client timeouts, and small helpers (a free port, token
// sequences inside the tiny vocabulary). Every wait in here is bounded.
#pragma once

#include "model/random_model.h"
#include "server.h"
#include "test_support.h"

#include <eztinker/client.h>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace eztinker::e2e {

// The tiny model directory, written on first use and removed at process exit.
inline const std::string& tiny_model_dir() {
  static std::unique_ptr<testing::TempDir> root;
  static std::string dir;
  static std::once_flag once;
  std::call_once(once, [] {
    spdlog::set_level(spdlog::level::warn);
    root = std::make_unique<testing::TempDir>("eztinker-e2e-tiny");
    model::RandomModelOptions options;
    options.preset = "tiny";
    options.out_dir = root->path() / "tiny";
    options.seed = 1234;
    model::write_random_model(options);
    dir = options.out_dir.string();
  });
  return dir;
}

// A TCP port on 127.0.0.1 that nothing listens on (bound to port 0, then released).
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// Token ids inside the tiny vocabulary (256), deterministic.
inline api::TokenIds token_sequence(int length, int offset = 3) {
  api::TokenIds ids;
  for (int i = 0; i < length; ++i) ids.push_back((offset + 7 * i) % 200 + 10);
  return ids;
}

// Client options for tests: explicit, short timeouts so a hung server fails the test quickly.
inline ClientOptions test_client_options(const std::string& url) {
  ClientOptions options;
  options.base_url = url;
  options.connect_timeout_s = 2;
  options.read_timeout_s = 60;
  options.max_retries = 0;
  options.long_poll_s = 10;
  options.job_timeout_s = 60;
  return options;
}

// One in-process server per test (fresh checkpoints dir), stopped in TearDown.
class E2EServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tiny_model_dir(); }

  server::ServerConfig base_config() const {
    server::ServerConfig config;
    config.host = "127.0.0.1";
    config.port = 0;
    config.workers = 2;
    config.http_threads = 8;
    config.checkpoints_dir = dir_.path() / "checkpoints";
    config.model = tiny_model_dir();  // preloaded; the default model of sample / tokenize
    config.dtype = "fp32";
    config.threads = 1;  // deterministic kernels on the shared CI cores
    config.log_level = "warn";
    return config;
  }

  // Starts a server; returns its port.
  int start(server::ServerConfig config) {
    server_ = std::make_unique<server::Server>(std::move(config));
    return server_->start();
  }
  int start() { return start(base_config()); }
  void stop() {
    if (server_) server_->stop();
    server_.reset();
  }
  void TearDown() override { stop(); }

  std::string url() const { return server_->url(); }
  EZTinkerClient client() const { return EZTinkerClient(test_client_options(url())); }

  // A run on the tiny model with deterministic adapter init and no dropout.
  static std::string create_run(EZTinkerClient& client, const std::string& run_id) {
    api::CreateRunRequest request;
    request.base_model = tiny_model_dir();
    request.run_id = run_id;
    request.lora_config.r = 4;
    request.lora_config.lora_alpha = 8;
    request.lora_config.lora_dropout = 0.0;
    request.seed = 7;
    return client.create_run(request).run_id;
  }

  testing::TempDir dir_{"eztinker-e2e"};
  std::unique_ptr<server::Server> server_;
};

}  // namespace eztinker::e2e
