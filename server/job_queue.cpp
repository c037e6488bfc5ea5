// The server's asynchronous job queue; see job_queue.h. One mutex guards all queue state;
// executors run outside it. Scheduling: `ready_` is a FIFO of lanes that have queued work and
// no running job, so a lane is never executed by two workers at once (per-run order) and busy
// lanes take turns (no run starves another).
#include "job_queue.h"

#include "server_log.h"

#include <eztinker/error.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <random>

namespace eztinker::server {

struct JobQueue::Job {
  uint64_t seq = 0;
  std::string job_id;
  std::string run_id;
  std::string lane;
  std::string type;
  api::JobStatus state = api::JobStatus::kQueued;
  JobExecutor executor;
  nlohmann::json result;
  std::string error;
  std::chrono::system_clock::time_point created_at;
  std::optional<std::chrono::system_clock::time_point> started_at;
  std::optional<std::chrono::system_clock::time_point> finished_at;
  std::chrono::steady_clock::time_point finished_steady;
  mutable std::condition_variable done_cv;  // waiters, with the queue's mutex
};

JobQueue::JobQueue(JobQueueOptions options) : options_(std::move(options)) {
  std::random_device device;
  id_salt_ = static_cast<uint32_t>(device());
  id_counter_ = static_cast<uint32_t>(device());
  const int workers = std::max(1, options_.workers);
  workers_.reserve(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

JobQueue::~JobQueue() { shutdown(false); }

// "job_" + 8 hex digits, unique for 2^32 submissions: an odd multiplier is a bijection on
// uint32, so consecutive counters give distinct ids that do not look sequential.
std::string JobQueue::next_job_id_locked() {
  const uint32_t value = (id_counter_++ * 0x9E3779B1u) ^ id_salt_;
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "%08x", value);
  return std::string("job_") + buffer;
}

JobSnapshot JobQueue::submit(const std::string& run_id,
                             const std::string& type,
                             JobExecutor executor) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_) {
    throw ApiError(ErrorType::kQueueFull, "Server is shutting down; not accepting jobs")
        .with_retry_after(options_.retry_after_s);
  }
  if (queued_ >= options_.max_queued) {
    throw ApiError(ErrorType::kQueueFull,
                   "Job queue is full (" + std::to_string(queued_) +
                       " jobs queued); retry later")
        .with_retry_after(options_.retry_after_s);
  }
  evict_locked(std::chrono::steady_clock::now());
  auto job = std::make_shared<Job>();
  job->seq = submitted_total_++;
  job->job_id = next_job_id_locked();
  job->run_id = run_id;
  // A job without a run gets a lane of its own (job ids never collide with run ids: a run id
  // cannot contain NUL).
  job->lane = run_id.empty() ? std::string(1, '\0') + job->job_id : run_id;
  job->type = type;
  job->executor = std::move(executor);
  job->created_at = std::chrono::system_clock::now();
  jobs_[job->job_id] = job;

  Lane& lane = lanes_[job->lane];
  lane.pending.push_back(job);
  ++queued_;
  if (!lane.active && !lane.in_ready) {
    lane.in_ready = true;
    ready_.push_back(job->lane);
    work_cv_.notify_one();
  }
  named_logger("jobs")->debug(
      "job queued job_id={} run={} type={} depth={}", job->job_id, run_id, type, queued_);
  return snapshot_locked(*job);
}

void JobQueue::worker_loop() {
  auto log = named_logger("jobs");
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] { return !ready_.empty() || (stopping_ && queued_ == 0) ||
                                     (stopping_ && !drain_); });
    if (ready_.empty() || (stopping_ && !drain_)) {
      if (stopping_) return;
      continue;
    }
    const std::string lane_key = ready_.front();
    ready_.pop_front();
    auto lane_it = lanes_.find(lane_key);
    if (lane_it == lanes_.end()) continue;
    Lane& lane = lane_it->second;
    lane.in_ready = false;
    if (lane.pending.empty()) {  // its queued jobs were cancelled
      if (!lane.active) lanes_.erase(lane_it);
      continue;
    }
    std::shared_ptr<Job> job = lane.pending.front();
    lane.pending.pop_front();
    lane.active = true;
    --queued_;
    ++running_;
    job->state = api::JobStatus::kRunning;
    job->started_at = std::chrono::system_clock::now();
    JobExecutor executor = std::move(job->executor);
    job->executor = nullptr;

    lock.unlock();
    const auto start = std::chrono::steady_clock::now();
    nlohmann::json result;
    std::string error;
    bool ok = true;
    try {
      result = executor();
    } catch (const std::exception& e) {
      ok = false;
      error = e.what();
    } catch (...) {
      ok = false;
      error = "unknown error";
    }
    executor = nullptr;  // release captured request data outside the lock
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count();
    if (ok) {
      if (result.is_object() && result.contains("loss") && result["loss"].is_number()) {
        log->info("job completed job_id={} run={} type={} duration_ms={:.2f} loss={:.6f}",
                  job->job_id, job->run_id, job->type, ms, result["loss"].get<double>());
      } else {
        log->info("job completed job_id={} run={} type={} duration_ms={:.2f}",
                  job->job_id, job->run_id, job->type, ms);
      }
    } else {
      log->error("job failed job_id={} run={} type={} duration_ms={:.2f} error={}",
                 job->job_id, job->run_id, job->type, ms, error);
    }
    lock.lock();

    --running_;
    job->state = ok ? api::JobStatus::kCompleted : api::JobStatus::kFailed;
    job->result = ok ? std::move(result) : nlohmann::json(nullptr);
    job->error = std::move(error);
    finish_locked(job);

    auto again = lanes_.find(lane_key);
    if (again != lanes_.end()) {
      Lane& same = again->second;
      same.active = false;
      if (!same.pending.empty()) {
        same.in_ready = true;
        ready_.push_back(lane_key);
        work_cv_.notify_one();
      } else if (!same.in_ready) {
        lanes_.erase(again);
      }
    }
    if (stopping_) work_cv_.notify_all();
  }
}

void JobQueue::finish_locked(const std::shared_ptr<Job>& job) {
  job->finished_at = std::chrono::system_clock::now();
  job->finished_steady = std::chrono::steady_clock::now();
  finished_.push_back(job);
  job->done_cv.notify_all();
  evict_locked(job->finished_steady);
}

void JobQueue::evict_locked(std::chrono::steady_clock::time_point now) {
  while (!finished_.empty()) {
    const auto& oldest = finished_.front();
    const bool over_cap = finished_.size() > options_.max_results;
    const bool expired = now - oldest->finished_steady >= options_.result_ttl;
    if (!over_cap && !expired) break;
    jobs_.erase(oldest->job_id);
    finished_.pop_front();
  }
}

JobSnapshot JobQueue::snapshot_locked(const Job& job) {
  JobSnapshot snapshot;
  snapshot.job_id = job.job_id;
  snapshot.run_id = job.run_id;
  snapshot.type = job.type;
  snapshot.state = job.state;
  snapshot.result = job.result;
  snapshot.error = job.error;
  snapshot.created_at = job.created_at;
  snapshot.started_at = job.started_at;
  snapshot.finished_at = job.finished_at;
  return snapshot;
}

std::optional<JobSnapshot> JobQueue::get(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return std::nullopt;
  const auto& job = *it->second;
  // A finished job past its TTL is gone even if no submit/finish evicted it yet.
  if (api::is_terminal(job.state) &&
      std::chrono::steady_clock::now() - job.finished_steady >= options_.result_ttl) {
    return std::nullopt;
  }
  return snapshot_locked(job);
}

std::optional<JobSnapshot> JobQueue::wait(const std::string& job_id,
                                          std::chrono::duration<double> timeout) const {
  std::unique_lock<std::mutex> lock(mutex_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return std::nullopt;
  std::shared_ptr<Job> job = it->second;  // keeps it alive across an eviction while waiting
  if (timeout.count() > 0 && !api::is_terminal(job->state) && !stopping_) {
    const auto deadline =
        std::chrono::steady_clock::now() +
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
    job->done_cv.wait_until(lock, deadline, [&] { return api::is_terminal(job->state) || stopping_; });
  }
  return snapshot_locked(*job);
}

std::vector<JobSnapshot> JobQueue::list(const std::optional<std::string>& run_id,
                                        const std::optional<api::JobStatus>& state) const {
  std::vector<std::pair<uint64_t, JobSnapshot>> rows;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    for (const auto& [id, job] : jobs_) {
      if (run_id && job->run_id != *run_id) continue;
      if (state && job->state != *state) continue;
      if (api::is_terminal(job->state) && now - job->finished_steady >= options_.result_ttl) continue;
      rows.emplace_back(job->seq, snapshot_locked(*job));
    }
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<JobSnapshot> out;
  out.reserve(rows.size());
  for (auto& row : rows) out.push_back(std::move(row.second));
  return out;
}

JobSnapshot JobQueue::cancel(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) throw ApiError(ErrorType::kNotFound, "Job not found");
  std::shared_ptr<Job> job = it->second;
  if (job->state == api::JobStatus::kCancelled) return snapshot_locked(*job);
  if (job->state != api::JobStatus::kQueued) {
    throw ApiError(ErrorType::kConflict,
                   "Job " + job_id + " is " + std::string(api::to_string(job->state)) +
                       "; only queued jobs can be cancelled");
  }
  auto lane_it = lanes_.find(job->lane);
  if (lane_it != lanes_.end()) {
    auto& pending = lane_it->second.pending;
    pending.erase(std::remove(pending.begin(), pending.end(), job), pending.end());
    // An emptied lane stays in ready_ (if listed); the worker that pops it drops it.
  }
  --queued_;
  job->state = api::JobStatus::kCancelled;
  job->error = "Job cancelled";
  job->executor = nullptr;
  finish_locked(job);
  named_logger("jobs")->info("job cancelled job_id={} run={} type={}", job->job_id, job->run_id,
                             job->type);
  return snapshot_locked(*job);
}

JobQueueStats JobQueue::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  JobQueueStats stats;
  stats.queued = queued_;
  stats.running = running_;
  stats.submitted_total = submitted_total_;
  for (const auto& job : finished_) {
    switch (job->state) {
      case api::JobStatus::kCompleted: ++stats.completed; break;
      case api::JobStatus::kFailed: ++stats.failed; break;
      case api::JobStatus::kCancelled: ++stats.cancelled; break;
      default: break;
    }
  }
  return stats;
}

bool JobQueue::is_shutting_down() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stopping_;
}

void JobQueue::shutdown(bool drain) {
  std::call_once(shutdown_once_, [&] {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      drain_ = drain;
      for (const auto& [id, job] : jobs_) job->done_cv.notify_all();  // wake long-polls
      work_cv_.notify_all();
    }
    for (auto& worker : workers_) {
      if (worker.joinable()) worker.join();
    }
    // Without drain: whatever is still queued never runs; report it as failed.
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [key, lane] : lanes_) {
      for (auto& job : lane.pending) {
        job->state = api::JobStatus::kFailed;
        job->error = "Server shutting down; job did not run";
        job->executor = nullptr;
        --queued_;
        finish_locked(job);
      }
      lane.pending.clear();
    }
    lanes_.clear();
    ready_.clear();
  });
}

}  // namespace eztinker::server
