// Server job-overhead benchmark (not a test): starts the real server in-process on 127.0.0.1
// (port 0) with the tiny random model, then measures over HTTP (keep-alive httplib clients):
//   1. submit->result latency of a trivial job with ?wait= (p50/p90/p99): a job on an unknown
//      run (pure HTTP + validation + queue + long-poll wake-up; the job fails at once) and an
//      optim_step on a real run with no gradients (adds a tiny AdamW step on the LoRA params);
//   2. GET /health requests per second with C concurrent keep-alive clients.
// Usage: eztinker_server_bench [--requests N=2000] [--clients C=4] [--seconds S=3]
//                              [--workers W=2] [--http-threads T=32]
// Numbers go in docs/performance.md ("Server").
#include "model/random_model.h"
#include "server.h"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Options {
  int requests = 2000;
  int clients = 4;
  double seconds = 3.0;
  int workers = 2;
  int http_threads = 32;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--requests") o.requests = std::atoi(next());
    else if (arg == "--clients") o.clients = std::atoi(next());
    else if (arg == "--seconds") o.seconds = std::atof(next());
    else if (arg == "--workers") o.workers = std::atoi(next());
    else if (arg == "--http-threads") o.http_threads = std::atoi(next());
    else throw std::invalid_argument("unknown option " + arg);
  }
  return o;
}

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(p * static_cast<double>(values.size())));
  return values[index];
}

void job_latency(int port, const std::string& label, const std::string& path, const json& body,
                 int requests) {
  httplib::Client client("127.0.0.1", port);
  client.set_keep_alive(true);
  // Without TCP_NODELAY httplib sends a POST as two segments and Nagle + delayed ACK add ~40 ms
  // to every request (the server side already sets it).
  client.set_tcp_nodelay(true);
  client.set_read_timeout(30, 0);
  const std::string payload = body.dump();
  std::vector<double> micros;
  micros.reserve(static_cast<size_t>(requests));
  for (int i = 0; i < requests + 50; ++i) {  // 50 warm-up requests
    const auto t0 = Clock::now();
    auto res = client.Post((path + "?wait=10").c_str(), payload, "application/json");
    const auto t1 = Clock::now();
    if (!res || res->status != 200) throw std::runtime_error("job POST failed");
    const auto reply = json::parse(res->body);
    const std::string status = reply["status"];
    if (status != "completed" && status != "failed") throw std::runtime_error("job did not end");
    if (i >= 50) micros.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::printf("%-34s n=%d  p50=%7.1f us  p90=%7.1f us  p99=%7.1f us\n", label.c_str(), requests,
              percentile(micros, 0.50), percentile(micros, 0.90), percentile(micros, 0.99));
}

void health_rps(int port, int clients, double seconds) {
  std::atomic<long> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", port);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      client.set_read_timeout(10, 0);
      while (!stop.load(std::memory_order_relaxed)) {
        auto res = client.Get("/health");
        if (res && res->status == 200) done.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("%-34s clients=%d  %.0f req/s\n", "GET /health", clients,
              static_cast<double>(done.load()) / elapsed);
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  try {
    const Options options = parse(argc, argv);
    spdlog::set_level(spdlog::level::err);
    const fs::path root = fs::temp_directory_path() /
                          ("eztinker-server-bench-" + std::to_string(std::random_device{}()));
    eztinker::model::RandomModelOptions model;
    model.preset = "tiny";
    model.out_dir = root / "tiny";
    eztinker::model::write_random_model(model);

    eztinker::server::ServerConfig config;
    config.port = 0;
    config.workers = options.workers;
    config.http_threads = options.http_threads;
    config.checkpoints_dir = root / "checkpoints";
    config.log_level = "critical";  // the unknown-run jobs fail by design
    config.dtype = "fp32";
    config.threads = 1;
    int port = 0;
    {
      eztinker::server::Server server(config);
      port = server.start();
      httplib::Client client("127.0.0.1", port);
      auto created = client.Post(
          "/v1/runs", json{{"base_model", model.out_dir.string()}, {"run_id", "run_bench"}}.dump(),
          "application/json");
      if (!created || created->status != 200) throw std::runtime_error("cannot create run");

      std::printf("eztinker server bench: workers=%d http_threads=%d (127.0.0.1, keep-alive)\n",
                  options.workers, options.http_threads);
      job_latency(port, "job on unknown run (?wait=)", "/v1/runs/run_none/optim_step",
                  json{{"learning_rate", 1e-4}}, options.requests);
      job_latency(port, "optim_step, tiny run (?wait=)", "/v1/runs/run_bench/optim_step",
                  json{{"learning_rate", 1e-4}}, options.requests);
      health_rps(port, options.clients, options.seconds);
      health_rps(port, 1, options.seconds);
      server.stop();
    }
    fs::remove_all(root);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
