// EZTinkerClient against a small in-test fake server (cpp-httplib on 127.0.0.1, port 0) that
// speaks the /v1 job protocol with a FIFO worker and real long-polling: typed results, the
// default run of sample(), submission order, long-poll (no sleep polling), error mapping
// (422 detail lists, 400, failed jobs, timeouts), retries on 503 with Retry-After, auth header,
// and connection errors naming the URL. The real-server tests are tests/e2e/client_test.cpp.
#include "eztinker/client.h"

#include "eztinker/api_json.h"
#include "eztinker/api_paths.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace eztinker {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A fake EZTinker server: jobs run one at a time on a worker thread, each taking `job_delay`.
class FakeServer {
 public:
  FakeServer() {
    using httplib::Request;
    using httplib::Response;
    server_.Get(api::kHealthPath, [](const Request&, Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    server_.Get(api::kStatusPath, [this](const Request&, Response& res) {
      if (status_503_left_ > 0) {
        --status_503_left_;
        res.status = 503;
        res.set_header("Retry-After", "0");
        res.set_content(R"({"detail":"queue full"})", "application/json");
        return;
      }
      api::Status s;
      s.version = "fake";
      s.num_runs = 1;
      res.set_content(json(s).dump(), "application/json");
    });
    server_.Post(api::kRunsPath, [this](const Request& req, Response& res) {
      auth_header_ = req.get_header_value("Authorization");
      try {
        auto r = api::parse_create_run_request(api::parse_body(req.body));
        if (r.base_model.empty()) throw ApiError(ErrorType::kBadRequest, "Failed to load model ''");
        api::CreateRunResponse reply;
        reply.run_id = r.run_id.value_or("run_0000000" + std::to_string(++runs_));
        res.set_content(json(reply).dump(), "application/json");
      } catch (const ApiError& e) {
        res.status = e.http_status();
        res.set_content(error_body_json(e), "application/json");
      }
    });
    server_.Post(R"(/v1/runs/([^/]+)/(forward_backward|optim_step))",
                 [this](const Request& req, Response& res) {
                   std::string kind = req.matches[2];
                   json result = kind == "optim_step"
                                     ? json(api::OptimStepResult{"optimizer_step_completed", 1, 0.5, 2e-4})
                                     : json{{"loss", 1.5}, {"batches", 1}};
                   submit(req, res, req.matches[1].str() + ":" + kind, result, "");
                 });
    server_.Post(api::kSamplePath, [this](const Request& req, Response& res) {
      json body = json::parse(req.body);
      std::string prompt = body.value("prompt", "");
      std::string run = body.value("run_id", "<none>");
      api::SampleResult result;
      result.generated_text = prompt + " world";
      result.samples.push_back({" world", {1, 2}, std::nullopt, "stop"});
      submit(req, res, run + ":sample", json(result), prompt == "fail" ? "boom: sampler failed" : "",
             prompt == "slow" ? 2000ms : 0ms);
    });
    server_.Get(R"(/v1/jobs/([^/]+))", [this](const Request& req, Response& res) {
      ++job_gets_;
      std::unique_lock<std::mutex> lock(mu_);
      auto it = jobs_.find(req.matches[1]);
      if (it == jobs_.end()) {
        res.status = 404;
        res.set_content(R"({"detail":"Job not found"})", "application/json");
        return;
      }
      hold(lock, req, it->first);
      res.set_content(json(jobs_[req.matches[1]]).dump(), "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    worker_ = std::thread([this] { work(); });
    for (int i = 0; i < 200 && !server_.is_running(); ++i) std::this_thread::sleep_for(5ms);
  }

  ~FakeServer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    server_.stop();
    thread_.join();
    worker_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> executed() {
    std::lock_guard<std::mutex> lock(mu_);
    return executed_;
  }

  std::atomic<int> job_gets_{0};
  std::atomic<int> status_503_left_{0};
  std::string auth_header_;

 private:
  struct Pending {
    std::string id, label, error;
    json result;
    std::chrono::milliseconds extra;
  };

  void submit(const httplib::Request& req, httplib::Response& res, const std::string& label,
              json result, const std::string& error, std::chrono::milliseconds extra = 0ms) {
    std::unique_lock<std::mutex> lock(mu_);
    std::string id = "job_" + std::to_string(++next_job_);
    api::JobInfo info;
    info.job_id = id;
    jobs_[id] = info;
    queue_.push_back({id, label, error, std::move(result), extra});
    cv_.notify_all();
    hold(lock, req, id);
    res.set_content(json(jobs_[id]).dump(), "application/json");
  }

  // ?wait=S: hold the reply until the job ends or S passes (the server's long-poll).
  void hold(std::unique_lock<std::mutex>& lock, const httplib::Request& req, const std::string& id) {
    if (!req.has_param("wait")) return;
    auto wait = std::chrono::duration<double>(std::stod(req.get_param_value("wait")));
    cv_.wait_for(lock, wait, [&] { return stop_ || api::is_terminal(jobs_[id].status); });
  }

  void work() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      Pending p = std::move(queue_.front());
      queue_.pop_front();
      jobs_[p.id].status = api::JobStatus::kRunning;
      lock.unlock();
      std::this_thread::sleep_for(20ms + p.extra);
      lock.lock();
      executed_.push_back(p.label);
      if (p.error.empty()) {
        jobs_[p.id].status = api::JobStatus::kCompleted;
        jobs_[p.id].result_json = p.result.dump();
      } else {
        jobs_[p.id].status = api::JobStatus::kFailed;
        jobs_[p.id].error = p.error;
      }
      cv_.notify_all();
    }
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_, worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int next_job_ = 0;
  int runs_ = 0;
  std::map<std::string, api::JobInfo> jobs_;
  std::deque<Pending> queue_;
  std::vector<std::string> executed_;
};

ClientOptions options_for(const FakeServer& server) {
  ClientOptions o;
  o.base_url = server.url();
  o.connect_timeout_s = 2;
  o.read_timeout_s = 10;
  o.retry_backoff_s = 0.01;
  o.long_poll_s = 5;
  o.job_timeout_s = 10;
  return o;
}

TEST(ClientTest, HealthCreateRunAndSampleDefaultsToTheLastRun) {
  FakeServer server;
  EZTinkerClient client(options_for(server));
  EXPECT_EQ(client.health().status, "ok");
  EXPECT_FALSE(client.last_run_id().has_value());
  std::string run = client.create_run("tiny", api::LoraConfig{}, std::string("my_run"));
  EXPECT_EQ(run, "my_run");
  EXPECT_EQ(client.last_run_id(), "my_run");
  api::SampleResult result = client.sample("Hello!");
  EXPECT_EQ(result.generated_text, "Hello! world");
  ASSERT_EQ(result.samples.size(), 1u);
  EXPECT_EQ(result.samples[0].token_ids, (api::TokenIds{1, 2}));
  EXPECT_EQ(server.executed().back(), "my_run:sample");
  // One submit with ?wait= completes a quick job: no GET /v1/jobs needed.
  EXPECT_EQ(server.job_gets_.load(), 0);
}

TEST(ClientTest, TypedTrainingResults) {
  FakeServer server;
  EZTinkerClient client(options_for(server));
  auto fb = client.forward_backward("r1", {1, 2, 3}, {}, {0, 1, 1});
  EXPECT_DOUBLE_EQ(fb.loss, 1.5);
  EXPECT_EQ(fb.batches, 1);
  auto step = client.optim_step("r1", api::AdamParams{});
  EXPECT_EQ(step.status, "optimizer_step_completed");
  EXPECT_EQ(step.step, 1);
}

TEST(ClientTest, SubmittedJobsRunInOrderAndWaitByLongPoll) {
  FakeServer server;
  EZTinkerClient client(options_for(server));
  auto fb = client.submit_forward_backward("r1", {1, 2, 3});
  auto step = client.submit_optim_step("r1");
  EXPECT_FALSE(fb.done());  // submit returns at once
  // Await in reverse order: the long-poll returns as soon as the job ends.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(step.get().status, "optimizer_step_completed");
  EXPECT_DOUBLE_EQ(fb.get().loss, 1.5);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ(server.executed(), (std::vector<std::string>{"r1:forward_backward", "r1:optim_step"}));
  // One long-poll per job at most (sleep polling would take many).
  EXPECT_LE(server.job_gets_.load(), 2);
}

TEST(ClientTest, ValidationErrorCarriesStatusAndDetailList) {
  FakeServer server;
  EZTinkerClient client(options_for(server));
  api::LoraConfig bad;
  bad.r = 0;
  try {
    client.create_run("tiny", bad);
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.http_status(), 422);
    EXPECT_EQ(e.type(), ErrorType::kValidation);
    EXPECT_NE(e.message().find("lora_config.r"), std::string::npos) << e.message();
    auto detail = json::parse(e.detail_json());
    EXPECT_EQ(detail[0]["loc"], json({"body", "lora_config", "r"}));
  }
  try {
    client.create_run("");
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.http_status(), 400);
    EXPECT_EQ(e.message(), "Failed to load model ''");
  }
}

TEST(ClientTest, FailedJobThrowsWithTheJobsErrorAndId) {
  FakeServer server;
  EZTinkerClient client(options_for(server));
  try {
    client.sample("fail", {}, std::string("r1"));
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kJobFailed);
    EXPECT_EQ(e.message(), "boom: sampler failed");
    EXPECT_EQ(e.job_id().rfind("job_", 0), 0u);
  }
  // wait_for_job returns the failed state instead of throwing.
  api::SampleRequest req;
  req.prompt = "fail";
  auto handle = client.submit_sample(req);
  auto info = client.wait_for_job(handle.job_id());
  EXPECT_EQ(info.status, api::JobStatus::kFailed);
  EXPECT_EQ(info.error, "boom: sampler failed");
}

TEST(ClientTest, UnknownJobIs404) {
  FakeServer server;
  EZTinkerClient client(options_for(server));
  try {
    client.get_job("job_missing");
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.http_status(), 404);
    EXPECT_EQ(e.message(), "Job not found");
  }
}

TEST(ClientTest, JobTimeoutThrowsTimeoutWithJobId) {
  FakeServer server;
  ClientOptions o = options_for(server);
  o.job_timeout_s = 0.2;
  EZTinkerClient client(o);
  try {
    client.sample("slow", {}, std::string("r1"));
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kTimeout);
    EXPECT_FALSE(e.job_id().empty());
  }
}

TEST(ClientTest, RetriesOn503HonoringRetryAfter) {
  FakeServer server;
  server.status_503_left_ = 2;
  EZTinkerClient client(options_for(server));
  EXPECT_EQ(client.status().version, "fake");
  EXPECT_EQ(server.status_503_left_.load(), 0);

  server.status_503_left_ = 10;
  ClientOptions o = options_for(server);
  o.max_retries = 1;
  EZTinkerClient impatient(o);
  try {
    impatient.status();
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.http_status(), 503);
    EXPECT_EQ(e.type(), ErrorType::kQueueFull);
    EXPECT_EQ(e.retry_after_s(), 0);
  }
}

TEST(ClientTest, ApiKeyIsSentAsBearerToken) {
  FakeServer server;
  ClientOptions o = options_for(server);
  o.api_key = "sekrit";
  EZTinkerClient client(o);
  client.create_run("tiny");
  EXPECT_EQ(server.auth_header_, "Bearer sekrit");
}

TEST(ClientTest, ConnectionRefusedNamesTheUrl) {
  // A port nobody listens on: bind one, read its number, close it (never listened).
  int port = 0;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    ::close(fd);
  }
  ClientOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(port);
  o.max_retries = 2;
  o.retry_backoff_s = 0.01;
  o.connect_timeout_s = 1;
  o.read_timeout_s = 2;
  EZTinkerClient client(o);
  try {
    client.health();
    FAIL() << "expected ConnectionError";
  } catch (const ConnectionError& e) {
    EXPECT_EQ(e.type(), ErrorType::kConnection);
    EXPECT_EQ(e.url(), o.base_url);
    EXPECT_NE(std::string(e.what()).find(o.base_url), std::string::npos);
  }
}

TEST(ClientTest, ClosedClientAndBadUrl) {
  FakeServer server;
  EZTinkerClient client(options_for(server));
  client.close();
  client.close();  // idempotent
  EXPECT_THROW(client.health(), ConnectionError);
  ClientOptions o;
  o.base_url = "ftp://example.invalid";
  EXPECT_THROW(EZTinkerClient bad(o), ApiError);
}

TEST(ClientTest, BaseUrlFromEnvironment) {
  ::setenv("EZTINKER_BASE_URL", "http://127.0.0.1:1234/", 1);
  EZTinkerClient client;
  EXPECT_EQ(client.base_url(), "http://127.0.0.1:1234");
  ::unsetenv("EZTINKER_BASE_URL");
  EZTinkerClient fallback;
  EXPECT_EQ(fallback.base_url(), api::kDefaultBaseUrl);
}

}  // namespace
}  // namespace eztinker
