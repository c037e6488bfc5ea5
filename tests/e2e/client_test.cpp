// End-to-end: EZTinkerClient against the real server (in-process Server on 127.0.0.1, tiny
// random Qwen2). Every client method once (server facts, runs, the four training forms,
// forward, optim_step with a falling loss, sampling defaults / seeds / num_samples / logprobs,
// checkpoints save -> list -> load -> delete with identical logprobs after load, evaluate,
// tokenizer round trip, jobs), async submission order, error mapping (404/400/422/failed job),
// retries (connection refused until the server starts; 503 + Retry-After from a fake server)
// and connection failures naming the URL. Client timeouts are explicit; waits are bounded.
#include "e2e_fixture.h"

#include <eztinker/api_json.h>
#include <eztinker/version.h>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <future>
#include <set>
#include <thread>

namespace eztinker::e2e {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

api::SampleParams greedy(int max_new_tokens) {
  api::SampleParams params;
  params.max_new_tokens = max_new_tokens;
  params.do_sample = false;
  params.temperature = 0;
  params.stop_token_ids = api::TokenIds{};  // random weights: do not stop at a random EOS
  return params;
}

bool has_checkpoint(const std::vector<api::CheckpointInfo>& list, const std::string& name) {
  return std::any_of(list.begin(), list.end(), [&](const auto& c) { return c.name == name; });
}

class ClientE2E : public E2EServerTest {};

TEST_F(ClientE2E, ServerFactsAndRuns) {
  start();
  auto c = client();
  EXPECT_EQ(c.base_url(), url());
  EXPECT_EQ(c.health().status, "ok");

  api::Version v = c.version();
  EXPECT_EQ(v.version, kVersion);
  EXPECT_FALSE(v.api_version.empty());

  api::Status s = c.status();
  EXPECT_EQ(s.device, "cpu");
  EXPECT_EQ(s.workers, 2);
  EXPECT_EQ(s.num_runs, 0);
  ASSERT_EQ(s.models.size(), 1u);  // the preloaded --model
  EXPECT_GT(s.models[0].num_parameters, 0);
  EXPECT_GE(s.uptime_s, 0);

  EXPECT_TRUE(c.list_runs().empty());
  EXPECT_FALSE(c.last_run_id().has_value());

  api::LoraConfig lora;
  lora.r = 2;
  lora.lora_alpha = 4;
  lora.target_modules = {"q_proj", "v_proj"};
  const std::string named = c.create_run(tiny_model_dir(), lora, std::string("run_named"));
  EXPECT_EQ(named, "run_named");
  EXPECT_EQ(c.last_run_id(), "run_named");
  const std::string generated = c.create_run(tiny_model_dir());
  EXPECT_EQ(generated.rfind("run_", 0), 0u) << generated;
  EXPECT_EQ(c.last_run_id(), generated);

  auto runs = c.list_runs();
  ASSERT_EQ(runs.size(), 2u);
  for (const auto& r : runs) {
    EXPECT_TRUE(r.run_id == named || r.run_id == generated) << r.run_id;
    EXPECT_EQ(r.base_model, tiny_model_dir());
    EXPECT_EQ(r.device, "cpu");
  }

  api::RunInfo info = c.get_run(named);
  EXPECT_EQ(info.run_id, named);
  EXPECT_EQ(info.lora_config.r, 2);
  EXPECT_EQ(info.lora_config.lora_alpha, 4);
  EXPECT_EQ(info.lora_config.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_GT(info.trainable_parameters, 0);
  EXPECT_EQ(info.step, 0);
  EXPECT_FALSE(info.created_at.empty());
  // Fewer adapted modules, fewer trainable parameters than the all-linear default (r = 8).
  EXPECT_LT(info.trainable_parameters, c.get_run(generated).trainable_parameters);

  EXPECT_EQ(c.status().num_runs, 2);
  api::DeleteRunResponse deleted = c.delete_run(named);
  EXPECT_EQ(deleted.status, "deleted");
  EXPECT_EQ(deleted.run_id, named);
  ASSERT_EQ(c.list_runs().size(), 1u);
  EXPECT_EQ(c.list_runs()[0].run_id, generated);
}

TEST_F(ClientE2E, TrainingFormsForwardAndFallingLoss) {
  start();
  auto c = client();
  const std::string run = create_run(c, "run_train");
  const api::TokenIds ids = token_sequence(12);

  // Part A single form; forward (no gradient) sees the same loss before any step.
  api::ForwardResult before = c.forward(run, ids);
  EXPECT_TRUE(std::isfinite(before.loss));
  EXPECT_EQ(before.batches, 1);
  ASSERT_EQ(before.logprobs.size(), 1u);
  EXPECT_EQ(before.logprobs[0].size(), ids.size() - 1);
  api::ForwardBackwardResult single = c.forward_backward(run, ids);
  EXPECT_NEAR(single.loss, before.loss, 1e-5);
  EXPECT_EQ(single.num_tokens, static_cast<int64_t>(ids.size()) - 1);

  // Weights: a zero-weight prefix carries no loss.
  std::vector<float> weights(ids.size(), 1.0f);
  for (int t = 0; t < 6; ++t) weights[t] = 0.0f;
  api::ForwardBackwardResult weighted = c.forward_backward(run, ids, ids, weights);
  EXPECT_LT(weighted.num_tokens, single.num_tokens);
  EXPECT_GT(weighted.num_tokens, 0);

  // Batch form: one job, two sequences.
  api::Datum a;
  a.input_ids = token_sequence(8, 1);
  api::Datum b;
  b.input_ids = token_sequence(5, 2);
  api::ForwardBackwardResult batch = c.forward_backward_batch(run, {a, b});
  // note: the engine reports batches = 1 (one padded batch per job) although api_types.h calls
  // it "sequences in the batch"; the per-sequence logprobs are the unambiguous check.
  EXPECT_GE(batch.batches, 1);
  ASSERT_EQ(batch.logprobs.size(), 2u);
  EXPECT_EQ(batch.logprobs[0].size(), a.input_ids.size() - 1);
  EXPECT_EQ(batch.logprobs[1].size(), b.input_ids.size() - 1);

  // Text form: the server tokenizes; only the completion carries loss.
  api::ForwardBackwardResult text = c.forward_backward_text(run, "What is 2+2?", " 4");
  EXPECT_TRUE(std::isfinite(text.loss));
  EXPECT_GT(text.num_tokens, 0);
  const int64_t prompt_tokens = static_cast<int64_t>(c.tokenize("What is 2+2?", run).size());
  const int64_t all_tokens = static_cast<int64_t>(c.tokenize("What is 2+2? 4", run).size());
  EXPECT_LT(text.num_tokens, all_tokens - 1);
  EXPECT_GT(all_tokens, prompt_tokens);

  // Chat form: the chat template, assistant turns only.
  api::ForwardBackwardResult chat =
      c.forward_backward_chat(run, {{"user", "hi"}, {"assistant", "hello there"}});
  EXPECT_TRUE(std::isfinite(chat.loss));
  EXPECT_GT(chat.num_tokens, 0);
  api::ForwardBackwardResult chat_all =
      c.forward_backward_chat(run, {{"user", "hi"}, {"assistant", "hello there"}}, "all");
  EXPECT_GT(chat_all.num_tokens, chat.num_tokens);

  // None of the above stepped the optimizer; now train one sequence and watch the loss fall.
  EXPECT_EQ(c.get_run(run).step, 0);
  api::AdamParams adam;
  adam.learning_rate = 1e-2;
  std::vector<double> losses;
  for (int step = 1; step <= 6; ++step) {
    // Accumulated gradients of the forms above are part of the first step; that is fine.
    api::ForwardBackwardResult fb = c.forward_backward(run, ids);
    losses.push_back(fb.loss);
    api::OptimStepResult opt = c.optim_step(run, adam);
    EXPECT_EQ(opt.status, "optimizer_step_completed");
    EXPECT_EQ(opt.step, step);
    EXPECT_GT(opt.grad_norm, 0);
    EXPECT_DOUBLE_EQ(opt.learning_rate, 1e-2);
  }
  const double after = c.forward(run, ids).loss;
  EXPECT_LT(after, losses.front() * 0.9) << ::testing::PrintToString(losses) << " -> " << after;
  EXPECT_LT(losses.back(), losses.front()) << ::testing::PrintToString(losses);
  api::RunInfo info = c.get_run(run);
  EXPECT_EQ(info.step, 6);
  EXPECT_GT(info.tokens_trained, 0);
  ASSERT_TRUE(info.last_loss.has_value());
}

TEST_F(ClientE2E, SamplingDefaultsSeedsSamplesAndLogprobs) {
  start();
  auto c = client();
  const std::string run = create_run(c, "run_sample");

  // sample() without run_id goes through the run this client created last.
  api::SampleParams params;
  params.max_new_tokens = 6;
  params.seed = 11;
  params.stop_token_ids = api::TokenIds{};
  api::SampleResult by_default = c.sample("hello", params);
  EXPECT_EQ(by_default.generated_text.rfind("hello", 0), 0u) << by_default.generated_text;
  ASSERT_EQ(by_default.samples.size(), 1u);
  EXPECT_EQ(by_default.samples[0].token_ids.size(), 6u);
  EXPECT_EQ(by_default.samples[0].finish_reason, "length");
  EXPECT_EQ(by_default.generated_text, "hello" + by_default.samples[0].text);
  auto sample_jobs = c.list_jobs(run);
  EXPECT_EQ(std::count_if(sample_jobs.begin(), sample_jobs.end(),
                          [](const api::JobInfo& j) { return j.type == std::string("sample"); }),
            1)
      << "the default sample did not go through " << run;

  // Same seed, same tokens (explicit run_id = the default); another seed, other tokens likely.
  api::SampleResult explicit_run = c.sample("hello", params, run);
  EXPECT_EQ(explicit_run.samples[0].token_ids, by_default.samples[0].token_ids);
  api::SampleParams other = params;
  other.seed = 12;
  other.max_new_tokens = 16;
  api::SampleParams same_long = params;
  same_long.max_new_tokens = 16;
  EXPECT_NE(c.sample("hello", other, run).samples[0].token_ids,
            c.sample("hello", same_long, run).samples[0].token_ids);

  // num_samples and logprobs.
  api::SampleParams many = params;
  many.num_samples = 3;
  many.return_logprobs = true;
  api::SampleResult three = c.sample("hello", many);
  ASSERT_EQ(three.samples.size(), 3u);
  for (const auto& s : three.samples) {
    ASSERT_TRUE(s.logprobs.has_value());
    EXPECT_EQ(s.logprobs->size(), s.token_ids.size());
    for (float lp : *s.logprobs) EXPECT_LE(lp, 1e-5f);
  }
  EXPECT_FALSE(by_default.samples[0].logprobs.has_value());

  // Greedy is deterministic without a seed; the full-request form with prompt_ids and the base
  // model (no adapter) agrees with the untrained run (LoRA B starts at zero).
  api::SampleResult g1 = c.sample("abc", greedy(5), run);
  api::SampleResult g2 = c.sample("abc", greedy(5), run);
  EXPECT_EQ(g1.samples[0].token_ids, g2.samples[0].token_ids);
  api::SampleRequest base;
  base.form = api::PromptForm::kTokenIds;
  base.prompt_ids = c.tokenize("abc", run);
  base.base_model = tiny_model_dir();
  base.params = greedy(5);
  EXPECT_EQ(c.sample(base).samples[0].token_ids, g1.samples[0].token_ids);
}

TEST_F(ClientE2E, CheckpointsSaveListLoadDeleteAndEvaluate) {
  start();
  auto c = client();
  const std::string run = create_run(c, "run_ck");
  const api::TokenIds ids = token_sequence(10);
  api::AdamParams adam;
  adam.learning_rate = 1e-2;
  c.forward_backward(run, ids);
  c.optim_step(run, adam);
  const api::ForwardResult at_save = c.forward(run, ids);

  api::SaveResult saved = c.save_checkpoint(run, "ck1");
  EXPECT_EQ(saved.name, "ck1");
  EXPECT_EQ(saved.run_id, run);
  EXPECT_EQ(saved.step, 1);
  EXPECT_TRUE(std::filesystem::exists(saved.adapter_path)) << saved.adapter_path;
  ASSERT_TRUE(saved.optimizer_path.has_value());
  c.save_checkpoint(run, "ck2");

  auto mine = c.list_checkpoints(run);
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_TRUE(has_checkpoint(mine, "ck1"));
  EXPECT_TRUE(has_checkpoint(mine, "ck2"));
  for (const auto& ck : mine) {
    EXPECT_EQ(ck.run_id, run);
    EXPECT_GT(ck.size_bytes, 0);
    EXPECT_FALSE(ck.created_at.empty());
  }
  EXPECT_EQ(c.list_checkpoints().size(), 2u);  // every run's

  // Train further (the logprobs move), then load ck1: the logprobs are those at save time.
  c.forward_backward(run, ids);
  c.optim_step(run, adam);
  const api::ForwardResult moved = c.forward(run, ids);
  EXPECT_GT(std::abs(moved.loss - at_save.loss), 1e-6);
  api::LoadResult loaded = c.load_checkpoint(run, "ck1");
  EXPECT_EQ(loaded.run_id, run);
  EXPECT_EQ(loaded.step, 1);
  EXPECT_TRUE(loaded.loaded_optimizer);
  EXPECT_EQ(c.get_run(run).step, 1);
  const api::ForwardResult restored = c.forward(run, ids);
  EXPECT_NEAR(restored.loss, at_save.loss, 1e-6);
  ASSERT_EQ(restored.logprobs[0].size(), at_save.logprobs[0].size());
  for (size_t t = 0; t < restored.logprobs[0].size(); ++t) {
    ASSERT_TRUE(restored.logprobs[0][t] && at_save.logprobs[0][t]);
    EXPECT_NEAR(*restored.logprobs[0][t], *at_save.logprobs[0][t], 1e-5) << t;
  }
  api::LoadRequest by_path;
  by_path.path = saved.path;
  by_path.load_optimizer = false;
  api::LoadResult from_path = c.load_checkpoint(run, by_path);
  EXPECT_FALSE(from_path.loaded_optimizer);

  api::DeleteCheckpointResponse del = c.delete_checkpoint(run, "ck2");
  EXPECT_EQ(del.status, "deleted");
  EXPECT_EQ(del.name, "ck2");
  EXPECT_EQ(del.run_id, run);
  auto left = c.list_checkpoints(run);
  EXPECT_TRUE(has_checkpoint(left, "ck1"));
  EXPECT_FALSE(has_checkpoint(left, "ck2"));

  // evaluate: per batch, the mean CE loss and mean log-prob (= -loss for plain CE).
  api::EvaluateRequest eval;
  eval.batches.push_back({ids, std::nullopt, std::nullopt, std::nullopt});
  eval.batches.push_back({token_sequence(6, 9), std::nullopt, std::nullopt, std::nullopt});
  api::EvaluateResult scores = c.evaluate(run, eval);
  ASSERT_EQ(scores.scores.size(), 2u);
  ASSERT_EQ(scores.log_probs.size(), 2u);
  EXPECT_NEAR(scores.scores[0], restored.loss, 1e-4);
  EXPECT_NEAR(scores.log_probs[0], -scores.scores[0], 1e-4);
}

TEST_F(ClientE2E, TokenizerAndJobs) {
  start();
  auto c = client();
  const std::string run = create_run(c, "run_tok");
  const std::string text = "hello world 12+3";
  api::TokenIds tokens = c.tokenize(text, run);
  ASSERT_FALSE(tokens.empty());
  EXPECT_EQ(c.detokenize(tokens, run), text);
  EXPECT_EQ(c.tokenize(text), tokens);                                   // server default model
  EXPECT_EQ(c.tokenize(text, std::nullopt, tiny_model_dir()), tokens);  // by base model
  EXPECT_EQ(c.detokenize(tokens, std::nullopt, tiny_model_dir()), text);

  api::SampleRequest request;
  request.prompt = "hi";
  request.run_id = run;
  request.params = greedy(4);
  auto future = c.submit_sample(request);
  EXPECT_EQ(future.job_id().rfind("job_", 0), 0u) << future.job_id();
  api::JobInfo done = c.wait_for_job(future.job_id(), 30.0);
  EXPECT_EQ(done.status, api::JobStatus::kCompleted);
  ASSERT_TRUE(done.result_json.has_value());
  EXPECT_EQ(done.run_id, run);
  EXPECT_EQ(done.type, std::string("sample"));
  EXPECT_EQ(api::result_as<api::SampleResult>(done).samples[0].token_ids.size(), 4u);
  api::JobInfo again = c.get_job(future.job_id());
  EXPECT_EQ(again.status, api::JobStatus::kCompleted);
  EXPECT_EQ(future.get(30.0).samples[0].token_ids, api::result_as<api::SampleResult>(done).samples[0].token_ids);
  auto completed = c.list_jobs(run, api::JobStatus::kCompleted);
  EXPECT_TRUE(std::any_of(completed.begin(), completed.end(),
                          [&](const api::JobInfo& j) { return j.job_id == future.job_id(); }));
}

// forward_backward, optim_step and forward submitted back to back on one run execute in
// submission order: the forward sees the stepped adapter, whatever order we await them in.
TEST_F(ClientE2E, AsyncSubmissionOrder) {
  start();
  auto c = client();
  const std::string run = create_run(c, "run_async");
  const api::TokenIds ids = token_sequence(12);
  const double initial = c.forward(run, ids).loss;

  api::AdamParams adam;
  adam.learning_rate = 5e-2;
  api::ForwardRequest forward_request = make_datum_request(ids);
  auto fb = c.submit_forward_backward(run, ids);
  auto opt = c.submit_optim_step(run, adam);
  auto fwd = c.submit_forward(run, forward_request);
  auto fb2 = c.submit_forward_backward(run, ids);
  auto opt2 = c.submit_optim_step(run, adam);
  std::vector<std::string> job_ids = {fb.job_id(), opt.job_id(), fwd.job_id(), fb2.job_id(), opt2.job_id()};
  EXPECT_EQ(std::set<std::string>(job_ids.begin(), job_ids.end()).size(), 5u);

  // Await in reverse order.
  api::OptimStepResult second = opt2.get(60.0);
  api::ForwardBackwardResult fb2_result = fb2.get(60.0);
  api::ForwardResult after = fwd.get(60.0);
  api::OptimStepResult first = opt.get(60.0);
  api::ForwardBackwardResult fb_result = fb.get(60.0);
  EXPECT_EQ(first.step, 1);
  EXPECT_EQ(second.step, 2);
  EXPECT_NEAR(fb_result.loss, initial, 1e-5);   // ran before the first step
  EXPECT_LT(after.loss, initial);               // ran after it
  EXPECT_NEAR(fb2_result.loss, after.loss, 1e-5);  // same adapter as the forward
  EXPECT_TRUE(fb.done() && opt.done() && fwd.done() && fb2.done() && opt2.done());

  // The server lists the run's jobs in submission order.
  auto jobs = c.list_jobs(run);
  std::vector<std::string> listed;
  for (const auto& j : jobs) {
    if (std::find(job_ids.begin(), job_ids.end(), j.job_id) != job_ids.end()) listed.push_back(j.job_id);
  }
  ASSERT_EQ(listed.size(), job_ids.size());
  EXPECT_EQ(listed, job_ids);
}

TEST_F(ClientE2E, ErrorMapping) {
  start();
  auto c = client();
  const std::string run = create_run(c, "run_err");

  // Unknown run on GET: 404 with the server's detail.
  try {
    c.get_run("run_nope");
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kNotFound);
    EXPECT_EQ(e.http_status(), 404);
    EXPECT_EQ(e.message(), "Run ID run_nope not found");
    EXPECT_TRUE(e.job_id().empty());
  }
  // Unknown run on DELETE: 400 (Part A), same detail.
  try {
    c.delete_run("run_nope");
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.http_status(), 400);
    EXPECT_EQ(e.message(), "Run ID run_nope not found");
  }
  // Duplicate run id: 400.
  try {
    create_run(c, run);
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kBadRequest);
    EXPECT_EQ(e.message(), "Run ID " + run + " already exists");
  }
  // 422: the detail names the field.
  api::AdamParams bad;
  bad.learning_rate = -1e-3;
  try {
    c.optim_step(run, bad);
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kValidation);
    EXPECT_EQ(e.http_status(), 422);
    EXPECT_NE(e.message().find("learning_rate"), std::string::npos) << e.message();
    auto detail = nlohmann::json::parse(e.detail_json());
    ASSERT_TRUE(detail.is_array() && !detail.empty()) << e.detail_json();
    EXPECT_EQ(detail[0]["loc"], nlohmann::json({"body", "learning_rate"}));
  }
  try {
    c.save_checkpoint(run, "a/b");
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.http_status(), 422);
    EXPECT_NE(e.detail_json().find("name"), std::string::npos) << e.detail_json();
  }
  // A job that fails on the server: ApiError(kJobFailed) with the job id and the job's error.
  try {
    c.load_checkpoint(run, "never-saved");
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kJobFailed);
    EXPECT_EQ(e.http_status(), 0);
    EXPECT_EQ(e.job_id().rfind("job_", 0), 0u) << e.job_id();
    EXPECT_NE(e.message().find("never-saved"), std::string::npos) << e.message();
    api::JobInfo job = c.get_job(e.job_id());
    EXPECT_EQ(job.status, api::JobStatus::kFailed);
    EXPECT_EQ(job.error, e.message());
  }
  // A job on an unknown run is accepted, then fails: the future carries the job id.
  auto ghost = c.submit_forward_backward("run_ghost", token_sequence(4));
  try {
    ghost.get(30.0);
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kJobFailed);
    EXPECT_EQ(e.job_id(), ghost.job_id());
    EXPECT_EQ(e.message(), "Run ID run_ghost not found");
  }
  // wait_for_job does not throw for a failed job; an unknown job is a 404.
  EXPECT_EQ(c.wait_for_job(ghost.job_id(), 10.0).status, api::JobStatus::kFailed);
  try {
    c.get_job("job_nope");
    FAIL() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.http_status(), 404);
  }
  // Client-side timeout of a job wait: kTimeout with the job id (the job keeps running).
  api::SampleRequest slow;
  slow.prompt = "x";
  slow.run_id = run;
  slow.params = greedy(400);
  auto pending = c.submit_sample(slow);
  try {
    pending.wait(0.001);
    ADD_FAILURE() << "400 tokens sampled within 1 ms?";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kTimeout);
    EXPECT_EQ(e.job_id(), pending.job_id());
  }
  EXPECT_EQ(pending.wait(60.0).status, api::JobStatus::kCompleted);  // it kept running
}

TEST_F(ClientE2E, ConnectionFailureNamesTheUrl) {
  const int port = free_port();
  ASSERT_GT(port, 0);
  const std::string dead = "http://127.0.0.1:" + std::to_string(port);
  ClientOptions options = test_client_options(dead);
  options.max_retries = 1;
  options.retry_backoff_s = 0.05;
  EZTinkerClient c(options);
  const auto t0 = Clock::now();
  try {
    c.health();
    FAIL() << "expected ConnectionError";
  } catch (const ConnectionError& e) {
    EXPECT_EQ(e.type(), ErrorType::kConnection);
    EXPECT_EQ(e.url(), dead);
    EXPECT_NE(std::string(e.what()).find(dead), std::string::npos) << e.what();
  }
  EXPECT_LT(seconds_since(t0), 5.0);
  // Also for job POSTs and after close().
  EXPECT_THROW(c.forward_backward("run_x", token_sequence(3)), ConnectionError);
  start();
  EZTinkerClient live(test_client_options(url()));
  EXPECT_EQ(live.health().status, "ok");
  live.close();
  EXPECT_THROW(live.health(), ConnectionError);
}

// Connection refused is retried with backoff: a server that comes up after the first attempt
// still answers the call.
TEST_F(ClientE2E, RetriesUntilTheServerStarts) {
  const int port = free_port();
  ASSERT_GT(port, 0);
  ClientOptions options = test_client_options("http://127.0.0.1:" + std::to_string(port));
  options.max_retries = 8;
  options.retry_backoff_s = 0.1;
  options.max_backoff_s = 0.5;
  EZTinkerClient c(options);
  const auto t0 = Clock::now();
  auto health = std::async(std::launch::async, [&c] { return c.health().status; });
  std::this_thread::sleep_for(300ms);  // the client's first attempts are refused
  server::ServerConfig config = base_config();
  config.port = port;
  config.model.clear();  // start fast
  start(config);
  ASSERT_EQ(health.wait_for(20s), std::future_status::ready);
  EXPECT_EQ(health.get(), "ok");
  EXPECT_GE(seconds_since(t0), 0.3);

  // Without retries the same situation is an immediate ConnectionError.
  stop();
  ClientOptions no_retry = options;
  no_retry.max_retries = 0;
  EZTinkerClient once(no_retry);
  EXPECT_THROW(once.health(), ConnectionError);
}

// A fake server answers 503 + Retry-After a few times: the client retries and succeeds, and
// gives up with ApiError(kQueueFull) carrying Retry-After when retries run out.
TEST(ClientRetryE2E, Retries503WithRetryAfter) {
  httplib::Server fake;
  std::atomic<int> calls{0};
  std::atomic<int> fail_first{2};
  fake.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    if (calls.fetch_add(1) < fail_first.load()) {
      res.status = 503;
      res.set_header("Retry-After", "0");
      res.set_content(R"({"detail":"Job queue is full"})", "application/json");
      return;
    }
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  const int port = fake.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread thread([&] { fake.listen_after_bind(); });
  // The socket listens from bind on; wait (bounded) for the accept loop too.
  for (int i = 0; i < 500 && !fake.is_running(); ++i) std::this_thread::sleep_for(10ms);

  ClientOptions options = test_client_options("http://127.0.0.1:" + std::to_string(port));
  options.max_retries = 3;
  options.retry_backoff_s = 0.05;
  EZTinkerClient c(options);
  const auto t0 = Clock::now();
  EXPECT_EQ(c.health().status, "ok");
  EXPECT_EQ(calls.load(), 3);
  EXPECT_LT(seconds_since(t0), 5.0);  // Retry-After: 0 wins over the backoff

  calls = 0;
  fail_first = 100;
  try {
    c.health();
    ADD_FAILURE() << "expected ApiError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.type(), ErrorType::kQueueFull);
    EXPECT_EQ(e.http_status(), 503);
    EXPECT_EQ(e.message(), "Job queue is full");
    EXPECT_EQ(e.retry_after_s(), 0);
  }
  EXPECT_EQ(calls.load(), 4);  // 1 + max_retries
  c.close();  // drop the keep-alive connection, or stop() waits for its idle timeout
  fake.stop();
  thread.join();
}

}  // namespace
}  // namespace eztinker::e2e
