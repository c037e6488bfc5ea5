// ServerConfig: every setting of `eztinker server`, one field per CLI flag (cli/engine_server.cpp
// maps flags onto it; tests and `eztinker demo` fill it directly). Defaults here are the flag
// defaults; each field says what it trades off.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>

namespace eztinker::server {

struct ServerConfig {
  // --host: address to bind. 127.0.0.1 keeps the server private to this machine; 0.0.0.0
  // exposes it (then set api_key).
  std::string host = "127.0.0.1";
  // --port: TCP port; 0 picks a free port (Server::start() returns it, the CLI prints it).
  int port = 8000;
  // --workers: job worker threads. Jobs of different runs execute concurrently up to this
  // many; jobs of one run always run in submission order. Concurrent jobs share the cores,
  // each with the full intra-op thread count: on 2 cores two runs training at once measured
  // ~6% more total throughput than one after another (docs/performance.md, "Concurrent jobs"),
  // and a small job of one run no longer waits behind a big job of another.
  int workers = 2;
  // --http-threads: connection threads of the HTTP server. Every long-poll (`?wait=`) and
  // every idle keep-alive connection holds one, so this bounds concurrent waiting clients.
  int http_threads = 32;

  // --checkpoints-dir: where checkpoints (<dir>/<run_id>/<name>/) and runs.json (metadata of
  // the runs, for inspection) live. Checkpoints survive a restart; runs are recreated from them
  // with POST /v1/runs {from_checkpoint} (docs/architecture.md, "Restart").
  std::filesystem::path checkpoints_dir = "checkpoints";
  // --models-dir: directory searched for model names (also env EZTINKER_MODELS_DIR); empty =
  // only aliases, paths and the HF cache.
  std::filesystem::path models_dir;
  // --alias NAME=DIR (repeatable): model name -> local directory, e.g.
  // "Qwen/Qwen2-0.5B-Instruct" -> /models/qwen2-0.5b-instruct.
  std::map<std::string, std::filesystem::path> aliases;
  // --allow-download: fetch unknown models from $HF_ENDPOINT into the HF cache. Off by
  // default: a typo in a model name should be an error, not a multi-GB download.
  bool allow_download = false;
  // --model: base model loaded at start-up (so the first run does not pay the load) and the
  // default model of /v1/sample and /v1/tokenize requests that name neither run nor model.
  std::string model;
  // --dtype: auto | fp32 | bf16 for base weights (auto: bf16 where the CPU has native bf16
  // or on CUDA, else fp32). bf16 halves memory; fp32 is the reference numerics.
  std::string dtype = "auto";
  // --device: torch device string ("cpu", "cuda:0").
  std::string device = "cpu";
  // --threads: intra-op threads of libtorch; 0 = libtorch's default (all cores).
  int threads = 0;

  // --api-key (env EZTINKER_API_KEY): when non-empty every endpoint but /health requires
  // `Authorization: Bearer <key>` (401 otherwise).
  std::string api_key;
  // --wait-default SECONDS: how long job POSTs without `?wait=` hold the reply for the job
  // to finish. 0 = pure async (Part A behaviour: reply at once with the queued job).
  double wait_default_s = 0.0;
  // --max-wait SECONDS: upper bound for any `?wait=` (keeps HTTP threads from being parked
  // indefinitely).
  double max_wait_s = 600.0;
  // --max-body-bytes: request bodies above this are rejected with 413 before parsing.
  std::size_t max_body_bytes = 64u << 20;
  // --max-queued: queued jobs accepted before 503 + Retry-After.
  std::size_t max_queued = 1024;
  // --max-results / --result-ttl: finished jobs kept pollable (count cap, seconds).
  std::size_t max_results = 10000;
  int result_ttl_s = 3600;
  // --log-level: trace | debug | info | warn | error | off. info logs lifecycle, one line per
  // request (except /health, at debug) and one line per finished job.
  std::string log_level = "info";
};

}  // namespace eztinker::server
