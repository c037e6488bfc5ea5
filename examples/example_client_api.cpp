// A tour of EZTinkerClient next to the raw HTTP it replaces (the Python README's
// example_client_api): health, runs, sampling, a few training steps with the richer input
// forms, checkpoints, then the same create/sample steps by hand with cpp-httplib.
//
//   eztinker server --model <model> &
//   ./example_client_api [base_model]      # server: EZTINKER_BASE_URL or localhost:8000
#include "eztinker/client.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

namespace {

void client_api_tour(const std::string& base_model) {
  eztinker::EZTinkerClient client;
  std::printf("== client API (%s)\n", client.base_url().c_str());
  std::printf("health: %s, server %s\n", client.health().status.c_str(), client.version().version.c_str());

  std::string run_id = client.create_run(base_model);
  std::printf("created %s; runs on the server: %zu\n", run_id.c_str(), client.list_runs().size());

  // Sampling defaults to the run just created (the README's client.sample("Hello!")).
  eztinker::api::SampleParams params;
  params.max_new_tokens = 20;
  params.seed = 0;
  std::printf("sample: %s\n", client.sample("Hello!", params).generated_text.c_str());

  // Training: a text pair (prompt tokens get weight 0), then a chat, each followed by a step.
  for (int step = 0; step < 3; ++step) {
    auto fb = client.forward_backward_text(run_id, "Q: What is 2+3?\nA:", " 5");
    auto opt = client.optim_step(run_id);
    std::printf("step %lld  loss %.4f  grad_norm %.4f\n", static_cast<long long>(opt.step), fb.loss,
                opt.grad_norm);
  }
  client.forward_backward_chat(run_id, {{"user", "Say hi"}, {"assistant", "Hi!"}});
  client.optim_step(run_id);

  auto saved = client.save_checkpoint(run_id, "tour");
  std::printf("saved %s\n", saved.adapter_path.c_str());
  for (const auto& c : client.list_checkpoints(run_id)) {
    std::printf("  checkpoint %s (%lld bytes, %s)\n", c.name.c_str(), static_cast<long long>(c.size_bytes),
                c.created_at.c_str());
  }
  client.load_checkpoint(run_id, "tour");
  client.delete_checkpoint(run_id, "tour");
  client.delete_run(run_id);
}

// The same first steps with raw HTTP (what the client does for you: JSON, job polling, errors).
void raw_http_tour(const std::string& base_model) {
  const char* env = std::getenv("EZTINKER_BASE_URL");
  httplib::Client http(env && *env ? env : "http://localhost:8000");
  std::printf("== raw HTTP\n");
  auto r = http.Post("/v1/runs", nlohmann::json{{"base_model", base_model}}.dump(), "application/json");
  if (!r || r->status != 200) throw std::runtime_error("POST /v1/runs failed");
  std::string run_id = nlohmann::json::parse(r->body)["run_id"];
  auto s = http.Post("/v1/sample", nlohmann::json{{"prompt", "Hello!"}, {"max_new_tokens", 20}, {"run_id", run_id}}.dump(),
                     "application/json");
  if (!s || s->status != 200) throw std::runtime_error("POST /v1/sample failed");
  std::string job_id = nlohmann::json::parse(s->body)["job_id"];
  // Long-poll instead of sleeping: the server holds the reply until the job ends.
  nlohmann::json job;
  do {
    auto j = http.Get(("/v1/jobs/" + job_id + "?wait=30").c_str());
    if (!j || j->status != 200) throw std::runtime_error("GET /v1/jobs failed");
    job = nlohmann::json::parse(j->body);
  } while (job["status"] == "queued" || job["status"] == "running");
  std::printf("job %s %s: %s\n", job_id.c_str(), job["status"].get<std::string>().c_str(),
              job["result"].is_object() ? job["result"]["generated_text"].get<std::string>().c_str()
                                        : job["error"].dump().c_str());
  http.Delete(("/v1/runs/" + run_id).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const std::string base_model = argc > 1 ? argv[1] : "Qwen/Qwen2-0.5B-Instruct";
  try {
    client_api_tour(base_model);
    raw_http_tour(base_model);
  } catch (const eztinker::ConnectionError& e) {
    std::cerr << "error: " << e.what() << " (start `eztinker server` first)\n";
    return 3;
  } catch (const eztinker::ApiError& e) {
    std::cerr << "error: " << e.message() << " (HTTP " << e.http_status() << ")\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
