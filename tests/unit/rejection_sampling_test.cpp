// Rejection-sampling helper tests against a scripted fake /v1 server (cpp-httplib on
// 127.0.0.1, port chosen by the OS): what goes on the wire (one sample job with num_samples,
// lora r = alpha, text-form training of verified-correct candidates only, then optim_step)
// and what the helpers return. The real-server path is covered by tests/e2e/demo_test.cpp.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "eztinker/recipes/rejection_sampling.h"

namespace ezr = eztinker::recipes;
using nlohmann::json;

namespace {

// Records every request and answers job POSTs with an already-completed job.
class FakeServer {
 public:
  explicit FakeServer(std::vector<std::string> sample_texts) : sample_texts_(std::move(sample_texts)) {
    server_.Post("/v1/runs", [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      res.set_content(R"({"run_id":"run_fake","status":"created","message":"Training session initialized"})",
                      "application/json");
    });
    server_.Post("/v1/sample", [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      json body = json::parse(req.body);
      int n = body.value("num_samples", 1);
      json samples = json::array();
      for (int i = 0; i < n; ++i) {
        std::string text = sample_texts_[static_cast<size_t>(i) % sample_texts_.size()];
        samples.push_back({{"text", text}, {"token_ids", json::array()}, {"finish_reason", "stop"}});
      }
      json result = {{"generated_text", body.value("prompt", "") + samples[0]["text"].get<std::string>()},
                     {"samples", samples}};
      reply_job(res, result);
    });
    server_.Post(R"(/v1/runs/([^/]+)/forward_backward)",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   record(req);
                   reply_job(res, {{"loss", 1.5}, {"batches", 1}, {"num_tokens", 3}});
                 });
    server_.Post(R"(/v1/runs/([^/]+)/optim_step)",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   record(req);
                   reply_job(res, {{"status", "optimizer_step_completed"}, {"step", 1},
                                   {"grad_norm", 0.5}, {"learning_rate", 0.01}});
                 });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() is a no-op until the accept loop runs, so wait for it (bounded: 5 s).
    for (int i = 0; i < 500 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~FakeServer() {
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // (path, body) of every request so far.
  std::vector<std::pair<std::string, json>> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::vector<json> bodies(const std::string& path_suffix) {
    std::vector<json> out;
    for (auto& [path, body] : requests()) {
      if (path.size() >= path_suffix.size() &&
          path.compare(path.size() - path_suffix.size(), path_suffix.size(), path_suffix) == 0) {
        out.push_back(body);
      }
    }
    return out;
  }

 private:
  void record(const httplib::Request& req) {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.emplace_back(req.path, req.body.empty() ? json() : json::parse(req.body));
  }
  void reply_job(httplib::Response& res, const json& result) {
    int id = ++job_counter_;
    json job = {{"job_id", "job_" + std::to_string(id)}, {"status", "completed"},
                {"result", result}, {"error", nullptr}};
    res.set_content(job.dump(), "application/json");
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<std::pair<std::string, json>> requests_;
  std::vector<std::string> sample_texts_;
  std::atomic<int> job_counter_{0};
};

eztinker::ClientOptions options_for(const FakeServer& server) {
  eztinker::ClientOptions o;
  o.base_url = server.url();
  o.connect_timeout_s = 2;
  o.read_timeout_s = 10;
  o.max_retries = 0;
  o.job_timeout_s = 10;
  return o;
}

}  // namespace

TEST(RejectionSamplingTest, CreateTrainingRunUsesRankAsAlpha) {
  FakeServer server({"x"});
  eztinker::EZTinkerClient client(options_for(server));
  EXPECT_EQ(ezr::create_training_run(client, "tiny", 4), "run_fake");
  auto bodies = server.bodies("/v1/runs");
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(bodies[0]["base_model"], "tiny");
  EXPECT_EQ(bodies[0]["lora_config"]["r"], 4);
  EXPECT_EQ(bodies[0]["lora_config"]["lora_alpha"], 4);
  EXPECT_THROW(ezr::create_training_run(client, "tiny", 0), std::invalid_argument);
}

TEST(RejectionSamplingTest, GenerateCandidatesIsOneSampleJob) {
  FakeServer server({"The answer is 7", "no idea", "#### 8"});
  eztinker::EZTinkerClient client(options_for(server));
  ezr::CandidateOptions opts;
  opts.seed = 3;
  opts.stop = {"\n"};
  auto candidates = ezr::generate_candidates(client, "run_fake", "What is 3 + 4?", 6, 0.9, 16, opts);
  ASSERT_EQ(candidates.size(), 6u);
  EXPECT_EQ(candidates[0], "The answer is 7");
  EXPECT_EQ(candidates[4], "no idea");
  auto bodies = server.bodies("/v1/sample");
  ASSERT_EQ(bodies.size(), 1u);  // one job, not one request per candidate
  EXPECT_EQ(bodies[0]["num_samples"], 6);
  EXPECT_EQ(bodies[0]["prompt"], "What is 3 + 4?");
  EXPECT_EQ(bodies[0]["run_id"], "run_fake");
  EXPECT_EQ(bodies[0]["max_new_tokens"], 16);
  EXPECT_DOUBLE_EQ(bodies[0]["temperature"].get<double>(), 0.9);
  EXPECT_EQ(bodies[0]["seed"], 3);
  EXPECT_EQ(bodies[0]["stop"], json::array({"\n"}));
  EXPECT_THROW(ezr::generate_candidates(client, "run_fake", "p", 0), std::invalid_argument);
}

TEST(RejectionSamplingTest, TrainsOnlyOnVerifiedCorrectCandidates) {
  FakeServer server({"x"});
  eztinker::EZTinkerClient client(options_for(server));
  const std::vector<std::string> candidates = {"I think 5", "The answer is 7. Then 9",
                                               "#### 7", "The answer is 7. Then 9", "70"};
  auto r = ezr::select_best_candidate_and_train(client, "run_fake", "PROMPT", candidates, "7",
                                                "What is 3 + 4?", nullptr, 0.01);
  EXPECT_TRUE(r.trained);
  EXPECT_TRUE(r.is_correct);
  EXPECT_EQ(r.selected_index, 2u);  // the shortest correct one
  EXPECT_DOUBLE_EQ(r.selected_score, 1.0);
  EXPECT_EQ(r.num_correct, 3u);
  EXPECT_EQ(r.num_trained, 1u);
  ASSERT_TRUE(r.loss.has_value());
  EXPECT_DOUBLE_EQ(*r.loss, 1.5);
  ASSERT_EQ(r.verdicts.size(), candidates.size());
  EXPECT_FALSE(r.verdicts[4].is_correct);  // 70 is not 7

  auto fb = server.bodies("/forward_backward");
  ASSERT_EQ(fb.size(), 1u);
  EXPECT_EQ(fb[0]["prompt"], "PROMPT");  // text form: loss on the completion only
  EXPECT_EQ(fb[0]["completion"], "#### 7");
  auto steps = server.bodies("/optim_step");
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_DOUBLE_EQ(steps[0]["learning_rate"].get<double>(), 0.01);
}

TEST(RejectionSamplingTest, SeveralDistinctCorrectCandidatesAndTruncation) {
  FakeServer server({"x"});
  eztinker::EZTinkerClient client(options_for(server));
  ezr::SelectOptions opts;
  opts.max_train_candidates = 5;
  opts.truncate_after_answer = true;
  const std::vector<std::string> candidates = {"The answer is 7. Then 9", "#### 7",
                                               "The answer is 7. Then 9", "wrong 3"};
  auto r = ezr::select_best_candidate_and_train(client, "run_fake", "P", candidates, "7", "",
                                                nullptr, 0.01, opts);
  EXPECT_EQ(r.num_correct, 3u);
  EXPECT_EQ(r.num_trained, 2u);  // the repeated candidate is trained once
  auto fb = server.bodies("/forward_backward");
  ASSERT_EQ(fb.size(), 2u);
  EXPECT_EQ(fb[0]["completion"], "#### 7");  // selected (shortest) first
  EXPECT_EQ(fb[1]["completion"], "The answer is 7");
  EXPECT_EQ(server.bodies("/optim_step").size(), 1u);
}

TEST(RejectionSamplingTest, NothingIsSentWithoutACorrectCandidate) {
  FakeServer server({"x"});
  eztinker::EZTinkerClient client(options_for(server));
  auto r = ezr::select_best_candidate_and_train(client, "run_fake", "P", {"5", "The answer is 6"},
                                                "7", "", nullptr, 0.01);
  EXPECT_FALSE(r.trained);
  EXPECT_FALSE(r.is_correct);
  EXPECT_EQ(r.num_correct, 0u);
  EXPECT_EQ(r.skip_reason, "no verified-correct candidate (0/2)");
  r = ezr::select_best_candidate_and_train(client, "run_fake", "P", {}, "7", "");
  EXPECT_EQ(r.skip_reason, "no candidates");
  EXPECT_FALSE(r.selected_index.has_value());
  EXPECT_TRUE(server.requests().empty());
}

TEST(RejectionSamplingTest, TruncateAfterAnswer) {
  EXPECT_EQ(ezr::truncate_after_answer("so \\boxed{12} and more"), "so \\boxed{12}");
  EXPECT_EQ(ezr::truncate_after_answer("#### 5\nblah"), "#### 5");
  EXPECT_EQ(ezr::truncate_after_answer("nothing here"), "nothing here");
  EXPECT_EQ(ezr::truncate_after_answer("3 then 4 xyz"), "3 then 4");
}
