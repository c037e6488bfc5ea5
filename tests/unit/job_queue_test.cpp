// JobQueue with fake executors: per-run ordering, cross-run concurrency, failure -> failed,
// result cap and TTL, cancellation, queue-full, long-poll waits and shutdown waking waiters.
// Every wait is bounded; no test sleeps to "let things happen".
#include "job_queue.h"

#include <eztinker/error.h>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <regex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace eztinker::server {
namespace {

using namespace std::chrono_literals;

constexpr auto kBound = 10s;

// Quiet job lines (one per job) unless a test fails.
const bool kQuiet = [] {
  spdlog::set_level(spdlog::level::warn);
  return true;
}();  // upper bound for anything that should happen "soon"

// A one-shot gate an executor blocks on (bounded, so a broken test fails instead of hanging).
class Gate {
 public:
  Gate() : future_(promise_.get_future().share()) {}
  void open() { promise_.set_value(); }
  bool wait() const { return future_.wait_for(kBound) == std::future_status::ready; }

 private:
  std::promise<void> promise_;
  std::shared_future<void> future_;
};

JobQueueOptions options_with(int workers) {
  JobQueueOptions options;
  options.workers = workers;
  return options;
}

JobSnapshot wait_done(const JobQueue& queue, const std::string& job_id) {
  auto snapshot = queue.wait(job_id, kBound);
  EXPECT_TRUE(snapshot.has_value()) << job_id;
  EXPECT_TRUE(snapshot && api::is_terminal(snapshot->state)) << job_id;
  return snapshot.value_or(JobSnapshot{});
}

TEST(JobQueueTest, CompletedJobCarriesResult) {
  JobQueue queue(options_with(1));
  auto job = queue.submit("run_a", "forward_backward", [] {
    return nlohmann::json{{"loss", 1.5}, {"batches", 1}};
  });
  EXPECT_EQ(job.state, api::JobStatus::kQueued);
  EXPECT_EQ(job.run_id, "run_a");
  EXPECT_EQ(job.type, "forward_backward");
  auto done = wait_done(queue, job.job_id);
  EXPECT_EQ(done.state, api::JobStatus::kCompleted);
  EXPECT_EQ(done.result, (nlohmann::json{{"loss", 1.5}, {"batches", 1}}));
  EXPECT_TRUE(done.error.empty());
  EXPECT_TRUE(done.started_at.has_value());
  EXPECT_TRUE(done.finished_at.has_value());
}

TEST(JobQueueTest, JobIdsAreUniqueAndWellFormed) {
  JobQueue queue(options_with(1));
  std::set<std::string> ids;
  const std::regex pattern("job_[0-9a-f]{8}");
  for (int i = 0; i < 500; ++i) {
    auto job = queue.submit("", "noop", [] { return nlohmann::json::object(); });
    EXPECT_TRUE(std::regex_match(job.job_id, pattern)) << job.job_id;
    ids.insert(job.job_id);
  }
  EXPECT_EQ(ids.size(), 500u);
}

TEST(JobQueueTest, ExceptionBecomesFailedJob) {
  JobQueue queue(options_with(1));
  auto job = queue.submit("run_a", "optim_step", []() -> nlohmann::json {
    throw std::runtime_error("Run ID run_a not found");
  });
  auto done = wait_done(queue, job.job_id);
  EXPECT_EQ(done.state, api::JobStatus::kFailed);
  EXPECT_TRUE(done.result.is_null());
  EXPECT_EQ(done.error, "Run ID run_a not found");
  // The queue keeps working after a failure.
  auto next = queue.submit("run_a", "noop", [] { return nlohmann::json{{"ok", true}}; });
  EXPECT_EQ(wait_done(queue, next.job_id).state, api::JobStatus::kCompleted);
}

TEST(JobQueueTest, JobsOfOneRunRunInSubmissionOrderNeverOverlapping) {
  JobQueue queue(options_with(4));
  std::mutex mutex;
  std::vector<int> order;
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) {
    ids.push_back(queue.submit("run_a", "step", [&, i] {
      const int now = ++in_flight;
      int seen = max_in_flight.load();
      while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
      }
      {
        std::lock_guard<std::mutex> lock(mutex);
        order.push_back(i);
      }
      --in_flight;
      return nlohmann::json{{"i", i}};
    }).job_id);
  }
  for (const auto& id : ids) wait_done(queue, id);
  ASSERT_EQ(order.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
  EXPECT_EQ(max_in_flight.load(), 1);
}

TEST(JobQueueTest, DifferentRunsExecuteConcurrently) {
  JobQueue queue(options_with(2));
  Gate b_started;
  // run_a's job only completes if run_b's job starts while it is still running.
  auto a = queue.submit("run_a", "step", [&] {
    if (!b_started.wait()) throw std::runtime_error("run_b never ran concurrently");
    return nlohmann::json{{"run", "a"}};
  });
  auto b = queue.submit("run_b", "step", [&] {
    b_started.open();
    return nlohmann::json{{"run", "b"}};
  });
  EXPECT_EQ(wait_done(queue, b.job_id).state, api::JobStatus::kCompleted);
  EXPECT_EQ(wait_done(queue, a.job_id).state, api::JobStatus::kCompleted);
}

TEST(JobQueueTest, OneBusyRunDoesNotStarveAnother) {
  // One worker: run_a has many queued jobs, run_b submits one later; lanes take turns so
  // run_b's job runs before run_a's queue is exhausted.
  JobQueue queue(options_with(1));
  Gate release;
  std::mutex mutex;
  std::vector<std::string> order;
  auto record = [&](std::string name) {
    std::lock_guard<std::mutex> lock(mutex);
    order.push_back(std::move(name));
  };
  auto first = queue.submit("run_a", "step", [&] {
    release.wait();
    record("a0");
    return nlohmann::json::object();
  });
  std::vector<std::string> ids{first.job_id};
  for (int i = 1; i < 5; ++i) {
    ids.push_back(queue.submit("run_a", "step", [&, i] {
      record("a" + std::to_string(i));
      return nlohmann::json::object();
    }).job_id);
  }
  ids.push_back(queue.submit("run_b", "step", [&] {
    record("b");
    return nlohmann::json::object();
  }).job_id);
  release.open();
  for (const auto& id : ids) wait_done(queue, id);
  ASSERT_EQ(order.size(), 6u);
  EXPECT_EQ(order[0], "a0");
  EXPECT_EQ(order[1], "b");  // run_b was ready before run_a's second job was re-queued
}

TEST(JobQueueTest, ResultCapEvictsOldestFinished) {
  JobQueueOptions options = options_with(1);
  options.max_results = 3;
  JobQueue queue(options);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(queue.submit("run_a", "step", [i] { return nlohmann::json{{"i", i}}; }).job_id);
    wait_done(queue, ids.back());
  }
  EXPECT_FALSE(queue.get(ids[0]).has_value());
  EXPECT_FALSE(queue.get(ids[1]).has_value());
  for (int i = 2; i < 5; ++i) {
    auto job = queue.get(ids[static_cast<std::size_t>(i)]);
    ASSERT_TRUE(job.has_value());
    EXPECT_EQ(job->result["i"], i);
  }
  EXPECT_EQ(queue.stats().completed, 3u);
  EXPECT_EQ(queue.list(std::nullopt, std::nullopt).size(), 3u);
}

TEST(JobQueueTest, ResultTtlExpiresFinishedJobsOnly) {
  JobQueueOptions options = options_with(1);
  options.result_ttl = 0s;  // finished jobs expire at once
  JobQueue queue(options);
  Gate release;
  auto running = queue.submit("run_a", "step", [&] {
    release.wait();
    return nlohmann::json::object();
  });
  auto queued = queue.submit("run_a", "step", [] { return nlohmann::json::object(); });
  Gate third_started;
  Gate third_release;
  auto third = queue.submit("run_a", "step", [&] {
    third_started.open();
    third_release.wait();
    return nlohmann::json::object();
  });
  // Unfinished jobs never expire.
  EXPECT_TRUE(queue.get(running.job_id).has_value());
  EXPECT_TRUE(queue.get(queued.job_id).has_value());
  release.open();
  // The third job starts only after the first two finished (one lane, FIFO): by then both
  // are expired and answer "unknown" to pollers.
  ASSERT_TRUE(third_started.wait());
  EXPECT_FALSE(queue.get(queued.job_id).has_value());
  EXPECT_FALSE(queue.get(running.job_id).has_value());
  EXPECT_TRUE(queue.get(third.job_id).has_value());
  // A waiter that is already waiting still sees the final state.
  std::promise<std::optional<JobSnapshot>> seen;
  std::thread waiter([&] { seen.set_value(queue.wait(third.job_id, kBound)); });
  auto future = seen.get_future();
  // Bounded: the waiter is usually parked by now; either way it must see the job finish
  // or (if it arrived after eviction) nothing.
  third_release.open();
  ASSERT_EQ(future.wait_for(kBound), std::future_status::ready);
  waiter.join();
  auto result = future.get();
  if (result) {
    EXPECT_EQ(result->state, api::JobStatus::kCompleted);
  }
  EXPECT_TRUE(queue.list(std::nullopt, std::nullopt).empty());
}

TEST(JobQueueTest, CancelQueuedJobNeverRunsIt) {
  JobQueue queue(options_with(1));
  Gate started;
  Gate release;
  std::atomic<bool> second_ran{false};
  std::atomic<bool> third_ran{false};
  auto first = queue.submit("run_a", "step", [&] {
    started.open();
    release.wait();
    return nlohmann::json::object();
  });
  auto second = queue.submit("run_a", "step", [&] {
    second_ran = true;
    return nlohmann::json::object();
  });
  auto third = queue.submit("run_a", "step", [&] {
    third_ran = true;
    return nlohmann::json::object();
  });
  ASSERT_TRUE(started.wait());
  auto cancelled = queue.cancel(second.job_id);
  EXPECT_EQ(cancelled.state, api::JobStatus::kCancelled);
  EXPECT_EQ(cancelled.error, "Job cancelled");
  EXPECT_EQ(queue.cancel(second.job_id).state, api::JobStatus::kCancelled);  // idempotent
  EXPECT_EQ(queue.stats().queued, 1u);

  // The first job is running: cancelling it is a conflict.
  try {
    queue.cancel(first.job_id);
    ADD_FAILURE() << "cancelling a running job must throw";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kConflict);
  }
  release.open();
  EXPECT_EQ(wait_done(queue, third.job_id).state, api::JobStatus::kCompleted);
  EXPECT_FALSE(second_ran.load());
  EXPECT_TRUE(third_ran.load());
  try {
    queue.cancel(third.job_id);
    ADD_FAILURE() << "cancelling a finished job must throw";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kConflict);
  }
  try {
    queue.cancel("job_unknown");
    ADD_FAILURE() << "cancelling an unknown job must throw";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kNotFound);
    EXPECT_EQ(std::string(e.what()), "Job not found");
  }
}

TEST(JobQueueTest, CancelEveryQueuedJobOfALaneLeavesQueueUsable) {
  JobQueue queue(options_with(1));
  Gate release;
  auto blocker = queue.submit("run_b", "step", [&] {
    release.wait();
    return nlohmann::json::object();
  });
  auto a1 = queue.submit("run_a", "step", [] { return nlohmann::json::object(); });
  auto a2 = queue.submit("run_a", "step", [] { return nlohmann::json::object(); });
  queue.cancel(a1.job_id);
  queue.cancel(a2.job_id);
  release.open();
  wait_done(queue, blocker.job_id);
  auto a3 = queue.submit("run_a", "step", [] { return nlohmann::json{{"ok", 1}}; });
  EXPECT_EQ(wait_done(queue, a3.job_id).state, api::JobStatus::kCompleted);
}

TEST(JobQueueTest, FullQueueRejectsWithRetryAfterAndKeepsAcceptedWork) {
  JobQueueOptions options = options_with(1);
  options.max_queued = 2;
  options.retry_after_s = 3;
  JobQueue queue(options);
  Gate started;
  Gate release;
  auto running = queue.submit("run_a", "step", [&] {
    started.open();
    release.wait();
    return nlohmann::json::object();
  });
  ASSERT_TRUE(started.wait());  // the first job left the queue
  auto q1 = queue.submit("run_a", "step", [] { return nlohmann::json{{"n", 1}}; });
  auto q2 = queue.submit("run_b", "step", [] { return nlohmann::json{{"n", 2}}; });
  try {
    queue.submit("run_c", "step", [] { return nlohmann::json::object(); });
    ADD_FAILURE() << "a full queue must reject";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kQueueFull);
    EXPECT_EQ(e.retry_after_s(), 3);
  }
  EXPECT_EQ(queue.stats().queued, 2u);
  release.open();
  EXPECT_EQ(wait_done(queue, running.job_id).state, api::JobStatus::kCompleted);
  EXPECT_EQ(wait_done(queue, q1.job_id).result["n"], 1);
  EXPECT_EQ(wait_done(queue, q2.job_id).result["n"], 2);
  // Space again.
  auto later = queue.submit("run_c", "step", [] { return nlohmann::json::object(); });
  EXPECT_EQ(wait_done(queue, later.job_id).state, api::JobStatus::kCompleted);
}

TEST(JobQueueTest, WaitTimesOutWithCurrentStateAndWakesOnCompletion) {
  JobQueue queue(options_with(1));
  Gate release;
  auto job = queue.submit("run_a", "step", [&] {
    release.wait();
    return nlohmann::json{{"done", true}};
  });
  auto early = queue.wait(job.job_id, 20ms);
  ASSERT_TRUE(early.has_value());
  EXPECT_FALSE(api::is_terminal(early->state));

  std::promise<std::chrono::steady_clock::duration> woke;
  std::thread waiter([&] {
    auto snapshot = queue.wait(job.job_id, 60s);
    EXPECT_TRUE(snapshot && snapshot->state == api::JobStatus::kCompleted);
    woke.set_value(std::chrono::steady_clock::now().time_since_epoch());
  });
  const auto opened = std::chrono::steady_clock::now();
  release.open();
  auto future = woke.get_future();
  ASSERT_EQ(future.wait_for(kBound), std::future_status::ready);
  // The long-poll returned promptly after completion, not at its 60 s timeout.
  EXPECT_LT(future.get() - opened.time_since_epoch(), std::chrono::steady_clock::duration(5s));
  waiter.join();
  EXPECT_FALSE(queue.wait("job_missing", 1s).has_value());
}

TEST(JobQueueTest, ShutdownWakesWaitersAndFinishesRunningJob) {
  auto queue = std::make_unique<JobQueue>(options_with(1));
  Gate started;
  Gate release;
  std::atomic<bool> running_finished{false};
  std::atomic<bool> queued_ran{false};
  auto running = queue->submit("run_a", "step", [&] {
    started.open();
    release.wait();
    running_finished = true;
    return nlohmann::json::object();
  });
  auto queued = queue->submit("run_a", "step", [&] {
    queued_ran = true;
    return nlohmann::json::object();
  });
  ASSERT_TRUE(started.wait());

  std::promise<api::JobStatus> waiter_state;
  std::thread waiter([&] {
    auto snapshot = queue->wait(queued.job_id, 120s);
    waiter_state.set_value(snapshot ? snapshot->state : api::JobStatus::kFailed);
  });
  std::thread stopper([&] { queue->shutdown(false); });
  auto state_future = waiter_state.get_future();
  // The waiter wakes on shutdown although its job has not finished.
  ASSERT_EQ(state_future.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(state_future.get(), api::JobStatus::kQueued);
  EXPECT_TRUE(queue->is_shutting_down());
  try {
    queue->submit("run_b", "step", [] { return nlohmann::json::object(); });
    ADD_FAILURE() << "a stopping queue must reject new jobs";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kQueueFull);
  }
  release.open();  // the running job finishes; shutdown returns
  stopper.join();
  waiter.join();
  EXPECT_TRUE(running_finished.load());
  EXPECT_FALSE(queued_ran.load());
  auto final_running = queue->get(running.job_id);
  ASSERT_TRUE(final_running.has_value());
  EXPECT_EQ(final_running->state, api::JobStatus::kCompleted);
  auto final_queued = queue->get(queued.job_id);
  ASSERT_TRUE(final_queued.has_value());
  EXPECT_EQ(final_queued->state, api::JobStatus::kFailed);
  queue.reset();  // second shutdown (destructor) is a no-op
}

TEST(JobQueueTest, ShutdownWithDrainRunsQueuedJobs) {
  JobQueue queue(options_with(2));
  std::atomic<int> ran{0};
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(queue.submit(i % 2 ? "run_a" : "run_b", "step", [&] {
      ++ran;
      return nlohmann::json::object();
    }).job_id);
  }
  queue.shutdown(true);
  EXPECT_EQ(ran.load(), 20);
  for (const auto& id : ids) EXPECT_EQ(queue.get(id)->state, api::JobStatus::kCompleted);
}

TEST(JobQueueTest, ListFiltersByRunAndState) {
  JobQueue queue(options_with(1));
  auto a = queue.submit("run_a", "step", [] { return nlohmann::json::object(); });
  auto b = queue.submit("run_b", "step", []() -> nlohmann::json {
    throw std::runtime_error("boom");
  });
  wait_done(queue, a.job_id);
  wait_done(queue, b.job_id);
  auto all = queue.list(std::nullopt, std::nullopt);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].job_id, a.job_id);  // oldest first
  EXPECT_EQ(all[1].job_id, b.job_id);
  auto only_a = queue.list(std::string("run_a"), std::nullopt);
  ASSERT_EQ(only_a.size(), 1u);
  EXPECT_EQ(only_a[0].job_id, a.job_id);
  auto failed = queue.list(std::nullopt, api::JobStatus::kFailed);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].job_id, b.job_id);
  EXPECT_TRUE(queue.list(std::string("run_a"), api::JobStatus::kFailed).empty());
  auto stats = queue.stats();
  EXPECT_EQ(stats.completed, 1u);
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.submitted_total, 2u);
}

}  // namespace
}  // namespace eztinker::server
