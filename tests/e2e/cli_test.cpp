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
#include <cstdlib>
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

// One `eztinker` invocation: arguments and extra environment.
struct Cmd {
  std::vector<std::string> args;
  std::vector<std::string> env = {};
};

class CliE2E : public E2EServerTest {
 protected:
  static std::filesystem::path exe() { return testing::binary_dir() / "cli" / "eztinker"; }

  struct Spawned {
    pid_t pid = -1;
    std::filesystem::path out, err;
  };

  // Starts `eztinker args...` with stdout/stderr to files and the EZTINKER_* environment
  // removed (plus `env` additions).
  Spawned spawn(const Cmd& cmd) {
    Spawned p{-1, dir_ / ("out" + std::to_string(counter_)), dir_ / ("err" + std::to_string(counter_))};
    ++counter_;
    std::vector<std::string> argv_s = {exe().string()};
    argv_s.insert(argv_s.end(), cmd.args.begin(), cmd.args.end());
    if (!std::filesystem::exists(argv_s[0])) {
      ADD_FAILURE() << argv_s[0] << " does not exist: build the `eztinker` target first";
      return p;
    }
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) {
      std::string var = *e;
      if (var.rfind("EZTINKER_BASE_URL=", 0) == 0 || var.rfind("EZTINKER_API_KEY=", 0) == 0) continue;
      env_s.push_back(var);
    }
    env_s.insert(env_s.end(), cmd.env.begin(), cmd.env.end());
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, p.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, p.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int rc = posix_spawn(&p.pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawn " << argv_s[0] << " failed: " << rc;
      p.pid = -1;
    }
    return p;
  }

  // Waits for the process (killed once `deadline` passes) and collects its output.
  static CliResult finish(const Spawned& p, std::chrono::steady_clock::time_point deadline) {
    CliResult result;
    if (p.pid < 0) return result;
    int status = 0;
    for (;;) {
      pid_t done = ::waitpid(p.pid, &status, WNOHANG);
      if (done == p.pid) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(p.pid, SIGKILL);
        ::waitpid(p.pid, &status, 0);
        ADD_FAILURE() << "eztinker did not exit in time";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    result.out = testing::read_file(p.out);
    result.err = testing::read_file(p.err);
    return result;
  }

  // Runs the commands concurrently (each process pays libtorch's load time, ~0.5 s of CPU, so
  // independent commands overlap), all bounded by one deadline.
  std::vector<CliResult> run_all(const std::vector<Cmd>& cmds, double timeout_s = 60) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(timeout_s));
    std::vector<Spawned> spawned;
    for (const auto& c : cmds) spawned.push_back(spawn(c));
    std::vector<CliResult> results;
    for (const auto& p : spawned) results.push_back(finish(p, deadline));
    return results;
  }
  CliResult run(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                double timeout_s = 60) {
    return run_all({Cmd{args, env}}, timeout_s)[0];
  }

  // `--url <server> [--json] args...`
  std::vector<std::string> with_url(std::vector<std::string> args, bool as_json) const {
    std::vector<std::string> full = {"--url", url()};
    if (as_json) full.push_back("--json");
    full.insert(full.end(), args.begin(), args.end());
    return full;
  }
  // Expects exit 0, an empty stderr, and with --json a JSON document on stdout.
  static void check_ok(const std::vector<std::string>& full, const CliResult& r, bool as_json) {
    EXPECT_EQ(r.exit_code, 0) << describe(full, r);
    EXPECT_EQ(r.err, "") << describe(full, r);
    if (as_json) {
      EXPECT_FALSE(r.out_json().is_discarded()) << describe(full, r);
    }
  }
  CliResult ok(std::vector<std::string> args, bool as_json = false) {
    auto full = with_url(std::move(args), as_json);
    CliResult r = run(full);
    check_ok(full, r, as_json);
    return r;
  }
  // Several independent successful commands at once: {args, as_json}.
  std::vector<CliResult> ok_all(const std::vector<std::pair<std::vector<std::string>, bool>>& cmds) {
    std::vector<Cmd> full;
    for (const auto& [args, as_json] : cmds) full.push_back({with_url(args, as_json)});
    auto results = run_all(full);
    for (size_t i = 0; i < cmds.size(); ++i) check_ok(full[i].args, results[i], cmds[i].second);
    return results;
  }

  // Expects `code`, exactly one line "error: ..." on stderr, nothing on stdout; returns stderr.
  static std::string check_fails(const std::vector<std::string>& args, const CliResult& r, int code) {
    EXPECT_EQ(r.exit_code, code) << describe(args, r);
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << describe(args, r);
    EXPECT_EQ(count_lines(r.err), 1u) << describe(args, r);
    EXPECT_EQ(r.out, "") << describe(args, r);
    return r.err;
  }
  // Several failing commands at once, each expected to exit with `code`; returns the stderrs.
  std::vector<std::string> fail_all(const std::vector<Cmd>& cmds, int code) {
    auto results = run_all(cmds);
    std::vector<std::string> errs;
    for (size_t i = 0; i < cmds.size(); ++i) errs.push_back(check_fails(cmds[i].args, results[i], code));
    return errs;
  }

  int counter_ = 0;
};

TEST_F(CliE2E, VersionHealthStatus) {
  start();
  auto r = ok_all({{{"version"}, false},
                   {{"version"}, true},
                   {{"health"}, false},
                   {{"health"}, true},
                   {{"status"}, false},
                   {{"status"}, true}});
  const std::string& version = r[0].out;
  EXPECT_NE(version.find(std::string("eztinker ") + kVersion + " (client)"), std::string::npos) << version;
  EXPECT_NE(version.find(std::string("server   ") + kVersion + " (api "), std::string::npos) << version;
  json vj = r[1].out_json();
  EXPECT_EQ(vj["client_version"], kVersion);
  EXPECT_EQ(vj["server"]["version"], kVersion);
  EXPECT_TRUE(vj["server"]["api_version"].is_string());

  EXPECT_EQ(r[2].out, "ok (" + url() + ")\n");
  json hj = r[3].out_json();
  EXPECT_EQ(hj["status"], "ok");
  EXPECT_EQ(hj["url"], url());

  const std::string& status = r[4].out;
  EXPECT_NE(status.find("server    " + url()), std::string::npos) << status;
  EXPECT_NE(status.find("device    cpu ("), std::string::npos) << status;
  EXPECT_NE(status.find("MODEL"), std::string::npos) << status;
  EXPECT_NE(status.find(tiny_model_dir()), std::string::npos) << status;
  EXPECT_NE(status.find("no runs"), std::string::npos) << status;
  json sj = r[5].out_json();
  EXPECT_EQ(sj["url"], url());
  EXPECT_EQ(sj["status"]["version"], kVersion);
  EXPECT_EQ(sj["status"]["workers"], 2);
  EXPECT_EQ(sj["status"]["num_runs"], 0);
  EXPECT_EQ(sj["status"]["models"].size(), 1u);
  EXPECT_EQ(sj["runs"], json::array());

  // Global options also work after the subcommand, and EZTINKER_BASE_URL replaces --url.
  auto more = run_all({{{"health", "--url", url(), "--json"}}, {{"health"}, {"EZTINKER_BASE_URL=" + url()}}});
  EXPECT_EQ(more[0].exit_code, 0) << more[0].err;
  EXPECT_EQ(more[0].out_json()["status"], "ok");
  EXPECT_EQ(more[1].exit_code, 0) << more[1].err;
  EXPECT_EQ(more[1].out, "ok (" + url() + ")\n");
}

TEST_F(CliE2E, RunsSamplingCheckpointsTokenize) {
  start();
  const std::string model = tiny_model_dir();

  // create (human: the run id alone on stdout; --json: the create reply).
  auto created = ok_all({{{"create", "--model", model, "--run-id", "cli_a", "--lora-rank", "4", "--lora-alpha", "8"},
                          false},
                         {{"create", "-m", model}, true}});
  EXPECT_EQ(created[0].out, "cli_a\n");
  json cj = created[1].out_json();
  const std::string generated = cj["run_id"];
  EXPECT_EQ(generated.rfind("run_", 0), 0u);
  EXPECT_EQ(cj["status"], "created");
  EXPECT_EQ(cj["message"], "Training session initialized");
  EZTinkerClient c = client();
  EXPECT_EQ(c.get_run("cli_a").lora_config.r, 4);
  EXPECT_EQ(c.get_run("cli_a").lora_config.lora_alpha, 8);

  // list-runs, status, sample (deterministic with --seed; -n: one line per sample; --json),
  // save: independent of each other, run together.
  auto r = ok_all({{{"list-runs"}, false},
                   {{"list-runs"}, true},
                   {{"status"}, true},
                   {{"sample", "hello", "--run-id", "cli_a", "--max-tokens", "5", "--seed", "3"}, false},
                   {{"sample", "hello", "--run-id", "cli_a", "--max-tokens", "3", "-n", "2", "--seed", "1"}, false},
                   {{"sample", "hi", "--run-id", "cli_a", "--max-tokens", "4", "--greedy", "--logprobs"}, true},
                   {{"sample", "hi", "--model", model, "--max-tokens", "2", "--seed", "0"}, true},
                   {{"save", "cli_a", "ck1"}, false},
                   {{"save", "cli_a", "ck2"}, true}});
  const std::string& runs = r[0].out;
  EXPECT_EQ(runs.rfind("RUN_ID", 0), 0u) << runs;
  EXPECT_NE(runs.find("cli_a  "), std::string::npos) << runs;
  EXPECT_NE(runs.find(generated), std::string::npos) << runs;
  EXPECT_EQ(count_lines(runs), 3u) << runs;
  json runs_json = r[1].out_json();
  ASSERT_EQ(runs_json["runs"].size(), 2u);
  for (const auto& run : runs_json["runs"]) {
    EXPECT_EQ(run["base_model"], model);
    EXPECT_EQ(run["device"], "cpu");
  }
  EXPECT_EQ(r[2].out_json()["status"]["num_runs"], 2);
  EXPECT_EQ(r[2].out_json()["runs"].size(), 2u);

  api::SampleParams params;
  params.max_new_tokens = 5;
  params.seed = 3;
  EXPECT_EQ(r[3].out.rfind("hello", 0), 0u) << r[3].out;
  EXPECT_EQ(r[3].out, c.sample("hello", params, std::string("cli_a")).generated_text + "\n");  // same seed
  const std::string& many = r[4].out;
  EXPECT_EQ(many.rfind("[0] (", 0), 0u) << many;
  EXPECT_NE(many.find("\n[1] ("), std::string::npos) << many;
  EXPECT_EQ(count_lines(many), 2u) << many;
  json sj = r[5].out_json();
  EXPECT_EQ(sj["generated_text"].get<std::string>().rfind("hi", 0), 0u);
  ASSERT_EQ(sj["samples"].size(), 1u);
  EXPECT_LE(sj["samples"][0]["token_ids"].size(), 4u);
  EXPECT_EQ(sj["samples"][0]["logprobs"].size(), sj["samples"][0]["token_ids"].size());
  EXPECT_TRUE(r[6].out_json()["generated_text"].is_string());  // base model, no run

  EXPECT_EQ(r[7].out.rfind("saved cli_a/ck1 -> ", 0), 0u) << r[7].out;
  json saved = r[8].out_json();
  EXPECT_EQ(saved["name"], "ck2");
  EXPECT_EQ(saved["run_id"], "cli_a");
  EXPECT_TRUE(std::filesystem::exists(saved["adapter_path"].get<std::string>()));

  // checkpoints, load, tokenize.
  const api::TokenIds ids = c.tokenize("hello world", std::string("cli_a"));
  std::string expected_ids;
  for (int32_t id : ids) expected_ids += (expected_ids.empty() ? "" : " ") + std::to_string(id);
  r = ok_all({{{"checkpoints"}, false},
              {{"checkpoints", "--run-id", "cli_a"}, true},
              {{"checkpoints", "--run-id", generated}, false},
              {{"load", "cli_a", "ck1"}, false},
              {{"load", "cli_a", "--path", saved["path"].get<std::string>(), "--no-optimizer"}, true},
              {{"tokenize", "hello world", "--run-id", "cli_a"}, false},
              {{"tokenize", "hello world"}, true}});
  const std::string& cks = r[0].out;
  EXPECT_EQ(cks.rfind("NAME", 0), 0u) << cks;
  EXPECT_NE(cks.find("ck1"), std::string::npos) << cks;
  EXPECT_NE(cks.find("ck2"), std::string::npos) << cks;
  EXPECT_EQ(count_lines(cks), 3u) << cks;
  json cks_json = r[1].out_json();
  ASSERT_EQ(cks_json["checkpoints"].size(), 2u);
  for (const auto& ck : cks_json["checkpoints"]) {
    EXPECT_EQ(ck["run_id"], "cli_a");
    EXPECT_GT(ck["size_bytes"].get<int64_t>(), 0);
  }
  EXPECT_EQ(r[2].out, "no checkpoints\n");
  EXPECT_EQ(r[3].out.rfind("loaded ", 0), 0u) << r[3].out;
  EXPECT_NE(r[3].out.find(" into cli_a (step 0)"), std::string::npos) << r[3].out;
  json loaded = r[4].out_json();
  EXPECT_EQ(loaded["run_id"], "cli_a");
  EXPECT_EQ(loaded["loaded_optimizer"], false);
  EXPECT_EQ(r[5].out, expected_ids + "\n");
  EXPECT_EQ(r[6].out_json()["tokens"], json(ids));  // the server's default model

  // delete, then the list is empty.
  r = ok_all({{{"delete", "cli_a"}, false}, {{"delete", generated}, true}});
  EXPECT_EQ(r[0].out, "deleted cli_a\n");
  EXPECT_EQ(r[1].out_json()["status"], "deleted");
  EXPECT_EQ(r[1].out_json()["run_id"], generated);
  r = ok_all({{{"list-runs"}, false}, {{"list-runs"}, true}});
  EXPECT_EQ(r[0].out, "no runs\n");
  EXPECT_EQ(r[1].out_json(), json({{"runs", json::array()}}));
}

TEST_F(CliE2E, HelpOnEverySubcommandExitsZero) {
  const std::vector<std::string> commands = {"version", "health",      "status", "create",     "list-runs",
                                             "delete",  "sample",      "save",   "checkpoints", "load",
                                             "tokenize", "demo",       "server", "make-model", "bench"};
  std::vector<Cmd> cmds;
  for (const auto& cmd : commands) cmds.push_back({{cmd, "--help"}});
  cmds.push_back({{"--help"}});
  cmds.push_back({{"--version"}});
  auto r = run_all(cmds);
  for (size_t i = 0; i < commands.size(); ++i) {
    EXPECT_EQ(r[i].exit_code, 0) << describe(cmds[i].args, r[i]);
    EXPECT_NE(r[i].out.find(commands[i]), std::string::npos) << describe(cmds[i].args, r[i]);
    EXPECT_NE(r[i].out.find("--help"), std::string::npos) << describe(cmds[i].args, r[i]);
  }
  const CliResult& top = r[commands.size()];
  EXPECT_EQ(top.exit_code, 0);
  for (const auto& cmd : commands) EXPECT_NE(top.out.find(cmd), std::string::npos) << cmd << "\n" << top.out;
  const CliResult& version = r[commands.size() + 1];
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out, std::string("eztinker ") + kVersion + "\n");
}

TEST_F(CliE2E, ServerDownExitsThree) {
  const int port = free_port();
  ASSERT_GT(port, 0);
  const std::string dead = "http://127.0.0.1:" + std::to_string(port);
  std::vector<Cmd> cmds;
  for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
           {"health"}, {"status"}, {"create", "--model", "m"}, {"sample", "hi"}, {"checkpoints"}, {"delete", "run_x"}}) {
    std::vector<std::string> args = {"--url", dead};
    args.insert(args.end(), cmd.begin(), cmd.end());
    cmds.push_back({args});
  }
  cmds.push_back({{"--json", "list-runs"}, {"EZTINKER_BASE_URL=" + dead}});  // through the environment
  for (const std::string& err : fail_all(cmds, 3)) EXPECT_NE(err.find(dead), std::string::npos) << err;
  // `version` still prints the client version when the server is down.
  CliResult version = run({"--url", dead, "version"});
  EXPECT_EQ(version.exit_code, 0) << version.err;
  EXPECT_NE(version.out.find("not reachable"), std::string::npos) << version.out;
}

TEST_F(CliE2E, UsageErrorsExitTwo) {
  start();
  const std::string u = url();
  fail_all({{{"--url", u, "health", "--bogus"}},
            {{"--url", u, "--no-such-flag", "health"}},
            {{"--url", u}},                                             // no subcommand
            {{"--url", u, "frobnicate"}},                               // unknown subcommand
            {{"--url", u, "create"}},                                   // --model is required
            {{"--url", u, "sample"}},                                   // PROMPT is required
            {{"--url", u, "sample", "hi", "--max-tokens", "many"}},     // not a number
            {{"--url", u, "save", "run_x"}},                            // NAME is required
            {{"--url", u, "load", "run_x"}},                            // NAME or --path
            {{"--url", u, "load", "run_x", "ck", "--path", "/tmp"}}},  // not both
           2);
  // bench flags on a real model directory: rejected before anything is loaded or measured.
  const std::string m = tiny_model_dir();
  const auto bench_errs =
      fail_all({{{"bench", "--model", m, "--repeats", "0"}},
                {{"bench", "--model", m, "--threads", "-1"}},
                {{"bench", "--model", m, "--rows", "bogus"}},
                {{"bench", "--model", m, "--profile", "/nonexistent/dir/trace.json"}}},
               2);
  EXPECT_NE(bench_errs[0].find("--repeats"), std::string::npos) << bench_errs[0];
  EXPECT_NE(bench_errs[3].find("--profile: cannot write"), std::string::npos) << bench_errs[3];
  EXPECT_EQ(client().status().jobs.completed + client().status().jobs.failed, 0);  // no job reached it
  EXPECT_TRUE(client().list_runs().empty());
}

// `bench --reference`: the PyTorch reference (bench/reference_pytorch.py --serve) runs one
// repeat right after each of the engine's, and its medians come back beside the engine's.
TEST_F(CliE2E, BenchPairsEachRepeatWithAReferenceRepeat) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch (scripts/setup.sh --with-reference)";
  }
  const std::string script = (testing::source_dir() / "bench" / "reference_pytorch.py").string();
  const std::vector<std::string> args = {"--json", "bench", "--model", tiny_model_dir(),
                                         "--dtype", "bf16", "--threads", "1", "--repeats", "2",
                                         "--reference", "--reference-script", script};
  const CliResult r = run(args, {}, 240);
  ASSERT_EQ(r.exit_code, 0) << describe(args, r);
  const json out = r.out_json();
  ASSERT_FALSE(out.is_discarded()) << describe(args, r);
  const json& ref = out["pytorch_eager"]["bf16"];
  for (const char* row : {"forward_backward_1x256_tok_s", "forward_1x256_tok_s",
                          "sample_batch1_tok_s", "sample_4_total_tok_s"}) {
    ASSERT_TRUE(ref.contains(row)) << row << "\n" << describe(args, r);
    EXPECT_GT(ref[row]["median"].get<double>(), 0.0) << row;
    EXPECT_LE(ref[row]["min"].get<double>(), ref[row]["max"].get<double>()) << row;
    EXPECT_GT(out["eztinker"]["bf16"][row]["median"].get<double>(), 0.0) << row;
    // Both sides keep their repeats in order (repeat i of each ran back to back).
    EXPECT_EQ(ref[row]["values"].size(), 2u) << row;
    EXPECT_EQ(out["eztinker"]["bf16"][row]["values"].size(), 2u) << row;
  }
  EXPECT_GT(ref["peak_rss"].get<double>(), 0.0);
  // On stderr the two sides alternate: ours (repeat 0 is the warm-up), then the reference's.
  size_t at = 0;
  for (const char* line : {"[bf16] repeat 0: fb1x256", "[pytorch bf16] fb1", "[bf16] repeat 1: fb1x256",
                           "[pytorch bf16] fb1", "[bf16] repeat 2: fb1x256", "[pytorch bf16] fb1",
                           "[bf16] repeat 0: decode", "[pytorch bf16] decode"}) {
    const size_t found = r.err.find(line, at);
    ASSERT_NE(found, std::string::npos) << "no '" << line << "' after offset " << at << ":\n" << r.err;
    at = found + 1;
  }
}

TEST_F(CliE2E, ApiErrorsExitOne) {
  start();
  const std::string u = url();
  EZTinkerClient c = client();
  create_run(c, "cli_e");
  auto errs = fail_all({{{"--url", u, "delete", "run_nope"}},
                        {{"--url", u, "--json", "delete", "run_nope"}},
                        {{"--url", u, "create", "--model", "no/such-model"}},
                        {{"--url", u, "create", "--model", tiny_model_dir(), "--run-id", "cli_e"}},
                        {{"--url", u, "sample", "hi", "--run-id", "cli_e", "--max-tokens", "0"}},
                        {{"--url", u, "save", "cli_e", "a/b"}},
                        {{"--url", u, "load", "cli_e", "never-saved"}}},
                       1);
  EXPECT_NE(errs[0].find("Run ID run_nope not found (HTTP 400)"), std::string::npos) << errs[0];
  EXPECT_EQ(errs[1], errs[0]);  // --json does not change the error contract
  EXPECT_NE(errs[2].find("(HTTP 400)"), std::string::npos) << errs[2];
  EXPECT_NE(errs[3].find("Run ID cli_e already exists"), std::string::npos) << errs[3];
  EXPECT_NE(errs[4].find("HTTP 422"), std::string::npos) << errs[4];
  EXPECT_NE(errs[5].find("HTTP 422"), std::string::npos) << errs[5];
  // A failed job: the job's error and its id.
  EXPECT_NE(errs[6].find("never-saved"), std::string::npos) << errs[6];
  EXPECT_NE(errs[6].find("[job job_"), std::string::npos) << errs[6];
}

}  // namespace
}  // namespace eztinker::e2e
