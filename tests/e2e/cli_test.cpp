// End-to-end: the built `eztinker` executable (build/cli/eztinker), spawned with posix_spawn
// against the in-process server (127.0.0.1, tiny random Qwen2) via --url. Checks every client
// subcommand's human and --json output, --help on each subcommand, and the exit codes: 0 ok,
// 1 API error, 2 usage, 3 cannot connect, each failure with one `error:` line on stderr.
// Each spawned process is bounded (killed after its timeout).
#include "e2e_fixture.h"

#include <eztinker/version.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>

extern char** environ;

namespace eztinker::e2e {
namespace {

using nlohmann::json;

struct CliResult {
  int exit_code = -1;  // -1: did not exit normally (killed after the timeout)
  std::string out;
  std::string err;
  json out_json() const { return json::parse(out, nullptr, false); }
};

std::string describe(const std::vector<std::string>& args, const CliResult& r) {
  std::string cmd = "eztinker";
  for (const auto& a : args) cmd += " '" + a + "'";
  return cmd + "\n  exit " + std::to_string(r.exit_code) + "\n  stdout: " + r.out + "\n  stderr: " + r.err;
}

size_t count_lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

class CliE2E : public E2EServerTest {
 protected:
  static std::filesystem::path exe() { return testing::binary_dir() / "cli" / "eztinker"; }

  // Runs `eztinker args...` with stdout/stderr captured, EZTINKER_* env removed (plus `env`
  // additions), killed after timeout_s.
  CliResult run(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                double timeout_s = 60) {
    const auto out_path = dir_ / ("out" + std::to_string(counter_));
    const auto err_path = dir_ / ("err" + std::to_string(counter_));
    ++counter_;
    std::vector<std::string> argv_s = {exe().string()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) {
      std::string var = *e;
      if (var.rfind("EZTINKER_BASE_URL=", 0) == 0 || var.rfind("EZTINKER_API_KEY=", 0) == 0) continue;
      env_s.push_back(var);
    }
    env_s.insert(env_s.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    CliResult result;
    if (!std::filesystem::exists(argv_s[0])) {
      ADD_FAILURE() << argv_s[0] << " does not exist: build the `eztinker` target first";
      return result;
    }
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawn " << argv_s[0] << " failed: " << rc;
      return result;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    int status = 0;
    for (;;) {
      pid_t done = ::waitpid(pid, &status, WNOHANG);
      if (done == pid) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        ADD_FAILURE() << "eztinker did not exit within " << timeout_s << " s";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    result.out = testing::read_file(out_path);
    result.err = testing::read_file(err_path);
    return result;
  }

  // `eztinker --url <server> [--json] args...`, expecting exit 0 and an empty stderr.
  CliResult ok(std::vector<std::string> args, bool as_json = false) {
    std::vector<std::string> full = {"--url", url()};
    if (as_json) full.push_back("--json");
    full.insert(full.end(), args.begin(), args.end());
    CliResult r = run(full);
    EXPECT_EQ(r.exit_code, 0) << describe(full, r);
    EXPECT_EQ(r.err, "") << describe(full, r);
    if (as_json) EXPECT_FALSE(r.out_json().is_discarded()) << describe(full, r);
    return r;
  }

  // Expects `code` and exactly one line "error: ..." on stderr (returned), nothing on stdout.
  std::string fails(const std::vector<std::string>& args, int code,
                    const std::vector<std::string>& env = {}) {
    CliResult r = run(args, env);
    EXPECT_EQ(r.exit_code, code) << describe(args, r);
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << describe(args, r);
    EXPECT_EQ(count_lines(r.err), 1u) << describe(args, r);
    EXPECT_EQ(r.out, "") << describe(args, r);
    return r.err;
  }

  int counter_ = 0;
};

TEST_F(CliE2E, VersionHealthStatus) {
  start();
  CliResult version = ok({"version"});
  EXPECT_NE(version.out.find(std::string("eztinker ") + kVersion + " (client)"), std::string::npos)
      << version.out;
  EXPECT_NE(version.out.find(std::string("server   ") + kVersion + " (api "), std::string::npos)
      << version.out;
  json vj = ok({"version"}, true).out_json();
  EXPECT_EQ(vj["client_version"], kVersion);
  EXPECT_EQ(vj["server"]["version"], kVersion);
  EXPECT_TRUE(vj["server"]["api_version"].is_string());

  EXPECT_EQ(ok({"health"}).out, "ok (" + url() + ")\n");
  json hj = ok({"health"}, true).out_json();
  EXPECT_EQ(hj["status"], "ok");
  EXPECT_EQ(hj["url"], url());

  CliResult status = ok({"status"});
  EXPECT_NE(status.out.find("server    " + url()), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("device    cpu (1 threads, 2 workers)"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("MODEL"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find(tiny_model_dir()), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("no runs"), std::string::npos) << status.out;
  json sj = ok({"status"}, true).out_json();
  EXPECT_EQ(sj["url"], url());
  EXPECT_EQ(sj["status"]["version"], kVersion);
  EXPECT_EQ(sj["status"]["num_runs"], 0);
  EXPECT_EQ(sj["status"]["models"].size(), 1u);
  EXPECT_EQ(sj["runs"], json::array());

  // Global options also work after the subcommand, and EZTINKER_BASE_URL replaces --url.
  CliResult after = run({"health", "--url", url(), "--json"});
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(after.out_json()["status"], "ok");
  CliResult from_env = run({"health"}, {"EZTINKER_BASE_URL=" + url()});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.err;
  EXPECT_EQ(from_env.out, "ok (" + url() + ")\n");
}

TEST_F(CliE2E, RunsSamplingCheckpointsTokenize) {
  start();
  const std::string model = tiny_model_dir();

  // create (human: the run id alone on stdout; --json: the create reply).
  EXPECT_EQ(ok({"create", "--model", model, "--run-id", "cli_a", "--lora-rank", "4", "--lora-alpha", "8"}).out,
            "cli_a\n");
  json created = ok({"create", "-m", model}, true).out_json();
  const std::string generated = created["run_id"];
  EXPECT_EQ(generated.rfind("run_", 0), 0u);
  EXPECT_EQ(created["status"], "created");
  EXPECT_EQ(created["message"], "Training session initialized");
  EZTinkerClient c = client();
  EXPECT_EQ(c.get_run("cli_a").lora_config.r, 4);
  EXPECT_EQ(c.get_run("cli_a").lora_config.lora_alpha, 8);

  // list-runs
  CliResult runs = ok({"list-runs"});
  EXPECT_EQ(runs.out.rfind("RUN_ID", 0), 0u) << runs.out;
  EXPECT_NE(runs.out.find("cli_a  "), std::string::npos) << runs.out;
  EXPECT_NE(runs.out.find(generated), std::string::npos) << runs.out;
  EXPECT_EQ(count_lines(runs.out), 3u) << runs.out;
  json runs_json = ok({"list-runs"}, true).out_json();
  ASSERT_EQ(runs_json["runs"].size(), 2u);
  for (const auto& r : runs_json["runs"]) {
    EXPECT_EQ(r["base_model"], model);
    EXPECT_EQ(r["device"], "cpu");
  }
  json status = ok({"status"}, true).out_json();
  EXPECT_EQ(status["status"]["num_runs"], 2);
  EXPECT_EQ(status["runs"].size(), 2u);

  // sample: deterministic with --seed; -n prints one line per sample; --json the result.
  const std::vector<std::string> sample = {"sample", "hello", "--run-id", "cli_a", "--max-tokens", "5",
                                           "--seed", "3"};
  CliResult s1 = ok(sample);
  CliResult s2 = ok(sample);
  EXPECT_EQ(s1.out.rfind("hello", 0), 0u) << s1.out;
  EXPECT_EQ(s1.out, s2.out);
  api::SampleParams params;
  params.max_new_tokens = 5;
  params.seed = 3;
  EXPECT_EQ(s1.out, c.sample("hello", params, std::string("cli_a")).generated_text + "\n");
  CliResult many = ok({"sample", "hello", "--run-id", "cli_a", "--max-tokens", "3", "-n", "2", "--seed", "1"});
  EXPECT_EQ(many.out.rfind("[0] (", 0), 0u) << many.out;
  EXPECT_NE(many.out.find("\n[1] ("), std::string::npos) << many.out;
  EXPECT_EQ(count_lines(many.out), 2u) << many.out;
  json sj = ok({"sample", "hi", "--run-id", "cli_a", "--max-tokens", "4", "--greedy", "--logprobs"}, true)
                .out_json();
  EXPECT_EQ(sj["generated_text"].get<std::string>().rfind("hi", 0), 0u);
  ASSERT_EQ(sj["samples"].size(), 1u);
  EXPECT_LE(sj["samples"][0]["token_ids"].size(), 4u);
  EXPECT_EQ(sj["samples"][0]["logprobs"].size(), sj["samples"][0]["token_ids"].size());
  // --model: the base model (no run).
  json base = ok({"sample", "hi", "--model", model, "--max-tokens", "2", "--seed", "0"}, true).out_json();
  EXPECT_TRUE(base["generated_text"].is_string());

  // save / checkpoints / load
  CliResult saved = ok({"save", "cli_a", "ck1"});
  EXPECT_EQ(saved.out.rfind("saved cli_a/ck1 -> ", 0), 0u) << saved.out;
  json saved_json = ok({"save", "cli_a", "ck2"}, true).out_json();
  EXPECT_EQ(saved_json["name"], "ck2");
  EXPECT_EQ(saved_json["run_id"], "cli_a");
  EXPECT_TRUE(std::filesystem::exists(saved_json["adapter_path"].get<std::string>()));
  CliResult cks = ok({"checkpoints"});
  EXPECT_EQ(cks.out.rfind("NAME", 0), 0u) << cks.out;
  EXPECT_NE(cks.out.find("ck1"), std::string::npos) << cks.out;
  EXPECT_NE(cks.out.find("ck2"), std::string::npos) << cks.out;
  EXPECT_EQ(count_lines(cks.out), 3u) << cks.out;
  json cks_json = ok({"checkpoints", "--run-id", "cli_a"}, true).out_json();
  ASSERT_EQ(cks_json["checkpoints"].size(), 2u);
  for (const auto& ck : cks_json["checkpoints"]) {
    EXPECT_EQ(ck["run_id"], "cli_a");
    EXPECT_GT(ck["size_bytes"].get<int64_t>(), 0);
  }
  EXPECT_EQ(ok({"checkpoints", "--run-id", generated}).out, "no checkpoints\n");
  CliResult loaded = ok({"load", "cli_a", "ck1"});
  EXPECT_EQ(loaded.out.rfind("loaded ", 0), 0u) << loaded.out;
  EXPECT_NE(loaded.out.find(" into cli_a (step 0)"), std::string::npos) << loaded.out;
  json loaded_json = ok({"load", "cli_a", "--path", saved_json["path"].get<std::string>(), "--no-optimizer"}, true)
                         .out_json();
  EXPECT_EQ(loaded_json["run_id"], "cli_a");
  EXPECT_EQ(loaded_json["loaded_optimizer"], false);

  // tokenize: the ids the client sees, space separated.
  const api::TokenIds ids = c.tokenize("hello world", std::string("cli_a"));
  std::string expected;
  for (int32_t id : ids) expected += (expected.empty() ? "" : " ") + std::to_string(id);
  EXPECT_EQ(ok({"tokenize", "hello world", "--run-id", "cli_a"}).out, expected + "\n");
  EXPECT_EQ(ok({"tokenize", "hello world"}, true).out_json()["tokens"], json(ids));  // default model

  // delete
  EXPECT_EQ(ok({"delete", "cli_a"}).out, "deleted cli_a\n");
  json del = ok({"delete", generated}, true).out_json();
  EXPECT_EQ(del["status"], "deleted");
  EXPECT_EQ(del["run_id"], generated);
  EXPECT_EQ(ok({"list-runs"}).out, "no runs\n");
  EXPECT_EQ(ok({"list-runs"}, true).out_json(), json({{"runs", json::array()}}));
}

TEST_F(CliE2E, HelpOnEverySubcommandExitsZero) {
  const std::vector<std::string> commands = {"version", "health",      "status", "create",   "list-runs",
                                             "delete",  "sample",      "save",   "checkpoints", "load",
                                             "tokenize", "demo",       "server", "make-model", "bench"};
  for (const auto& cmd : commands) {
    CliResult r = run({cmd, "--help"}, {}, 30);
    EXPECT_EQ(r.exit_code, 0) << describe({cmd, "--help"}, r);
    EXPECT_NE(r.out.find(cmd), std::string::npos) << describe({cmd, "--help"}, r);
    EXPECT_NE(r.out.find("--help"), std::string::npos) << describe({cmd, "--help"}, r);
  }
  CliResult top = run({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  for (const auto& cmd : commands) EXPECT_NE(top.out.find(cmd), std::string::npos) << cmd << "\n" << top.out;
  CliResult version = run({"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out, std::string("eztinker ") + kVersion + "\n");
}

TEST_F(CliE2E, ServerDownExitsThree) {
  const int port = free_port();
  ASSERT_GT(port, 0);
  const std::string dead = "http://127.0.0.1:" + std::to_string(port);
  for (const std::vector<std::string>& cmd :
       std::vector<std::vector<std::string>>{{"health"},
                                             {"status"},
                                             {"list-runs"},
                                             {"create", "--model", "m"},
                                             {"sample", "hi"},
                                             {"checkpoints"},
                                             {"tokenize", "x"},
                                             {"delete", "run_x"}}) {
    std::vector<std::string> args = {"--url", dead};
    args.insert(args.end(), cmd.begin(), cmd.end());
    const std::string err = fails(args, 3);
    EXPECT_NE(err.find(dead), std::string::npos) << err;
  }
  // Also through the environment, and with --json.
  EXPECT_NE(fails({"--json", "health"}, 3, {"EZTINKER_BASE_URL=" + dead}).find(dead), std::string::npos);
  // `version` still prints the client version when the server is down.
  CliResult version = run({"--url", dead, "version"});
  EXPECT_EQ(version.exit_code, 0) << version.err;
  EXPECT_NE(version.out.find("not reachable"), std::string::npos) << version.out;
}

TEST_F(CliE2E, UsageErrorsExitTwo) {
  start();
  const std::string u = url();
  fails({"--url", u, "health", "--bogus"}, 2);
  fails({"--url", u, "--no-such-flag", "health"}, 2);
  fails({"--url", u}, 2);                                     // no subcommand
  fails({"--url", u, "frobnicate"}, 2);                        // unknown subcommand
  fails({"--url", u, "create"}, 2);                            // --model is required
  fails({"--url", u, "sample"}, 2);                            // PROMPT is required
  fails({"--url", u, "sample", "hi", "--max-tokens", "many"}, 2);  // not a number
  fails({"--url", u, "save", "run_x"}, 2);                     // NAME is required
  fails({"--url", u, "load", "run_x"}, 2);                     // NAME or --path
  fails({"--url", u, "load", "run_x", "ck", "--path", "/tmp"}, 2);  // not both
  EXPECT_EQ(client().list_runs().size(), 0u);                  // nothing reached the server
}

TEST_F(CliE2E, ApiErrorsExitOne) {
  start();
  const std::string u = url();
  EXPECT_NE(fails({"--url", u, "delete", "run_nope"}, 1).find("Run ID run_nope not found (HTTP 400)"),
            std::string::npos);
  EXPECT_NE(fails({"--url", u, "create", "--model", "no/such-model"}, 1).find("(HTTP 400)"), std::string::npos);
  EZTinkerClient c = client();
  create_run(c, "cli_e");
  EXPECT_NE(fails({"--url", u, "create", "--model", tiny_model_dir(), "--run-id", "cli_e"}, 1)
                .find("Run ID cli_e already exists"),
            std::string::npos);
  EXPECT_NE(fails({"--url", u, "sample", "hi", "--run-id", "cli_e", "--max-tokens", "0"}, 1).find("HTTP 422"),
            std::string::npos);
  EXPECT_NE(fails({"--url", u, "save", "cli_e", "a/b"}, 1).find("HTTP 422"), std::string::npos);
  // A failed job: the job id is in the message.
  const std::string failed = fails({"--url", u, "load", "cli_e", "never-saved"}, 1);
  EXPECT_NE(failed.find("never-saved"), std::string::npos) << failed;
  EXPECT_NE(failed.find("[job job_"), std::string::npos) << failed;
  // --json does not change the error contract.
  EXPECT_NE(fails({"--url", u, "--json", "delete", "run_nope"}, 1).find("run_nope"), std::string::npos);
}

}  // namespace
}  // namespace eztinker::e2e
