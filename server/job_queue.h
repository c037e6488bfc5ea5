// The server's asynchronous job queue: every /v1 job endpoint validates on the HTTP thread,
// submits an executor here and answers with the job id at once. Mirrors Tinker's futures and
// llama.cpp's server task queue: jobs of one run ("lane") execute strictly in submission
// order, jobs of different lanes run concurrently on `workers` threads, finished results are
// kept in a bounded map (cap + TTL), queued jobs can be cancelled, and waiters long-poll on a
// per-job condition variable (no sleep-polling anywhere).
#pragma once

#include <eztinker/api_types.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace eztinker::server {

// Produces a job's result object; a thrown exception makes the job `failed` with e.what().
using JobExecutor = std::function<nlohmann::json()>;

struct JobQueueOptions {
  // Threads executing jobs. Jobs of different lanes (runs) run concurrently up to this many;
  // more workers only help when several runs are busy at once. >= 1.
  int workers = 1;
  // Queued (not yet running) jobs accepted before submit() answers "queue full" (503 +
  // Retry-After). Bounds memory held by pending requests; accepted work is never dropped.
  std::size_t max_queued = 1024;
  // Finished jobs whose results stay pollable; the oldest are evicted beyond this cap.
  std::size_t max_results = 10000;
  // How long a finished job stays pollable (GET /v1/jobs/{id}); then it answers 404.
  std::chrono::seconds result_ttl{3600};
  // Retry-After seconds sent with a queue-full 503.
  int retry_after_s = 1;
};

// A copy of one job's state, safe to read after the queue moved on.
struct JobSnapshot {
  std::string job_id;
  std::string run_id;  // the lane's run; empty for jobs that touch no run (base-model sampling)
  std::string type;    // "forward_backward", "optim_step", "sample", ...
  api::JobStatus state = api::JobStatus::kQueued;  // kCancelled: cancelled while queued
  nlohmann::json result;  // null unless completed
  std::string error;      // set when failed / cancelled
  std::chrono::system_clock::time_point created_at;
  std::optional<std::chrono::system_clock::time_point> started_at;
  std::optional<std::chrono::system_clock::time_point> finished_at;
};

struct JobQueueStats {
  std::size_t queued = 0;   // queue depth (waiting, not running)
  std::size_t running = 0;
  std::size_t completed = 0;  // retained (not yet evicted) finished jobs per state
  std::size_t failed = 0;
  std::size_t cancelled = 0;
  uint64_t submitted_total = 0;  // since start
};

// Thread safety: every public method may be called from any thread concurrently.
// Ownership: the queue owns its worker threads; the destructor calls shutdown().
// Errors: submit() throws ApiError(kQueueFull) (with Retry-After) when the queue is full or
// shutting down; cancel() throws ApiError(kNotFound / kConflict).
class JobQueue {
 public:
  explicit JobQueue(JobQueueOptions options);
  ~JobQueue();
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Enqueues `executor` on the lane `run_id` (empty = a lane of its own: runs concurrently with
  // everything). Returns the new job's snapshot (state queued).
  JobSnapshot submit(const std::string& run_id, const std::string& type, JobExecutor executor);

  // nullopt for an unknown (or evicted) job id.
  std::optional<JobSnapshot> get(const std::string& job_id) const;
  // Blocks until the job is finished, `timeout` passes, or the queue shuts down; then returns
  // its snapshot (nullopt if unknown). timeout <= 0 returns at once.
  std::optional<JobSnapshot> wait(const std::string& job_id,
                                  std::chrono::duration<double> timeout) const;
  // Jobs known to the queue, oldest first, optionally filtered.
  std::vector<JobSnapshot> list(const std::optional<std::string>& run_id,
                                const std::optional<api::JobStatus>& state) const;
  // Cancels a queued job (it never runs). A cancelled job stays cancelled (idempotent);
  // a running or finished job is a conflict; an unknown one is not found.
  JobSnapshot cancel(const std::string& job_id);

  JobQueueStats stats() const;
  const JobQueueOptions& options() const { return options_; }

  // Stops accepting jobs and wakes every waiter; the jobs running now finish; with
  // `drain` the queued ones run too, otherwise they end `failed` ("server shutting down").
  // Joins the workers. Idempotent.
  void shutdown(bool drain = false);
  bool is_shutting_down() const;

 private:
  struct Job;
  struct Lane {
    std::deque<std::shared_ptr<Job>> pending;
    bool active = false;    // one of its jobs is executing now
    bool in_ready = false;  // listed in ready_
  };

  void worker_loop();
  void finish_locked(const std::shared_ptr<Job>& job);
  void evict_locked(std::chrono::steady_clock::time_point now);
  std::string next_job_id_locked();
  static JobSnapshot snapshot_locked(const Job& job);

  const JobQueueOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable work_cv_;  // workers: a lane became ready, or shutdown
  std::unordered_map<std::string, std::shared_ptr<Job>> jobs_;  // every retained job
  std::deque<std::shared_ptr<Job>> finished_;   // finish order (eviction: cap + TTL)
  std::unordered_map<std::string, Lane> lanes_;  // lanes with queued or running jobs
  std::deque<std::string> ready_;                // lanes with work and no running job, FIFO
  std::size_t queued_ = 0;
  std::size_t running_ = 0;
  uint64_t submitted_total_ = 0;
  uint32_t id_counter_ = 0;
  uint32_t id_salt_ = 0;
  bool stopping_ = false;
  bool drain_ = false;
  std::vector<std::thread> workers_;
  std::once_flag shutdown_once_;
};

}  // namespace eztinker::server
