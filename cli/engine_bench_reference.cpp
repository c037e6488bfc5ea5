// See engine_bench_reference.h.
#include "engine_bench_reference.h"

#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>

namespace eztinker::cli {

namespace {

std::runtime_error os_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

}  // namespace

LineProcess::LineProcess(const std::vector<std::string>& argv) {
  if (argv.empty()) throw std::runtime_error("LineProcess: no program");
  int in[2], out[2];
  if (::pipe(in) != 0) throw os_error("pipe");
  if (::pipe(out) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    throw os_error("pipe");
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw os_error("fork");
  if (pid_ == 0) {
    // Child: the pipes become stdin and stdout; nothing here may throw or allocate much.
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::close(in[0]);
    ::close(in[1]);
    ::close(out[0]);
    ::close(out[1]);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  to_child_ = in[1];
  from_child_ = out[0];
  // A child that dies must not kill us with SIGPIPE on the next write.
  std::signal(SIGPIPE, SIG_IGN);
}

LineProcess::~LineProcess() {
  if (to_child_ >= 0) ::close(to_child_);  // end of its stdin: the serve loop returns
  if (from_child_ >= 0) ::close(from_child_);
  if (pid_ > 0) {
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

std::string LineProcess::read_line() {
  while (true) {
    const size_t eol = pending_.find('\n');
    if (eol != std::string::npos) {
      std::string line = pending_.substr(0, eol);
      pending_.erase(0, eol + 1);
      return line;
    }
    char buf[4096];
    const ssize_t n = ::read(from_child_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw os_error("reading from the reference process");
    if (n == 0) throw std::runtime_error("the reference process exited");
    pending_.append(buf, static_cast<size_t>(n));
  }
}

std::string LineProcess::ask(const std::string& command) {
  const std::string line = command + "\n";
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(to_child_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw os_error("writing to the reference process");
    done += static_cast<size_t>(n);
  }
  return read_line();
}

PairedReference::PairedReference(const std::string& script, const std::string& model,
                                 const std::string& dtype, int threads)
    : process_({"/usr/bin/python3", script, "--model", model, "--dtype", dtype, "--threads",
                std::to_string(threads), "--serve"}) {
  const nlohmann::json ready = nlohmann::json::parse(process_.read_line());
  if (!ready.value("ready", false)) {
    throw std::runtime_error("the reference process did not start: " + ready.dump());
  }
}

void PairedReference::repeat(const std::string& rows, bool keep) {
  // The reference's training steps speed up over their first repeats (glibc's heap settles
  // around the multi-GB activations: fb 4x128 92 -> 94 -> 100 -> 116 tok/s over four repeats
  // of a fresh process here), where the engine's reach their speed after one; its warm-up is
  // three repeats so that both sides are timed in their steady state.
  const int runs = keep ? 1 : (rows == "train" ? 3 : 1);
  for (int i = 0; i < runs; ++i) {
    const nlohmann::json answer = nlohmann::json::parse(process_.ask(rows));
    if (answer.contains("error")) {
      throw std::runtime_error("reference: " + answer["error"].get<std::string>());
    }
    if (!keep) continue;
    for (const auto& [row, value] : answer.items()) values_[row].push_back(value.get<double>());
  }
}

int64_t PairedReference::peak_rss() {
  return nlohmann::json::parse(process_.ask("peak_rss"))["peak_rss"].get<int64_t>();
}

}  // namespace eztinker::cli
