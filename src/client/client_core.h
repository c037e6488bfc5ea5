// The transport behind EZTinkerClient (private to src/client/): a pool of cpp-httplib
// connections, retries with backoff, the mapping of replies to ApiError, and the long-poll
// wait shared by EZTinkerClient and JobHandle.
#pragma once

#include "eztinker/api_types.h"
#include "eztinker/client.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace httplib {
class Client;
}

namespace eztinker::detail {

// Thread-safe: each request borrows a connection from the pool (or opens one).
class ClientCore {
 public:
  explicit ClientCore(ClientOptions options);
  ~ClientCore();

  const ClientOptions& options() const { return options_; }
  const std::string& base_url() const { return options_.base_url; }

  // One request; returns the parsed JSON of a 2xx reply. Throws ApiError for other statuses
  // (after the retries for 503), ConnectionError when the server cannot be reached.
  // `body` is sent as application/json when set. `extra_read_s` extends the read timeout
  // (for ?wait= long-polls).
  nlohmann::json request(const std::string& method, const std::string& path,
                         const nlohmann::json* body = nullptr, double extra_read_s = 0);

  // Submits a job (POST with ?wait=) and returns the reply's JobInfo.
  api::JobInfo submit(const std::string& path, const nlohmann::json& body, double wait_s);
  // GET /v1/jobs/{id}?wait=S.
  api::JobInfo get_job(const std::string& job_id, double wait_s);
  // Long-polls until terminal or timeout (nullopt = options().job_timeout_s).
  api::JobInfo wait(api::JobInfo info, std::optional<double> timeout_s);

  void close();
  bool closed() const { return closed_.load(); }

  std::optional<std::string> last_run_id() const;
  void set_last_run_id(std::string run_id);

 private:
  std::unique_ptr<httplib::Client> acquire();
  void release(std::unique_ptr<httplib::Client> client);

  ClientOptions options_;
  std::string scheme_host_port_;  // "http://host:port"
  std::string path_prefix_;       // "" or "/prefix" (a server behind a reverse proxy)
  std::atomic<bool> closed_{false};
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<httplib::Client>> pool_;  // guarded by mu_
  std::optional<std::string> last_run_id_;              // guarded by mu_
};

// "%XX"-escapes a query value / path segment.
std::string url_encode(const std::string& text);
// Formats seconds for ?wait= ("30", "0.5").
std::string format_seconds(double seconds);

}  // namespace eztinker::detail
