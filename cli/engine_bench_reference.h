// The PyTorch eager reference of `eztinker bench --reference`, run repeat by repeat alongside
// the engine's own: bench/reference_pytorch.py --serve in a child process, asked for one
// repeat of a row set right after each of the engine's repeats of it. The host's speed drifts
// by 10-25% over minutes (issue 7), so a ratio is only meaningful when both sides are
// measured in the same stretch; running the whole reference after the engine's rows put
// minutes between them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace eztinker::cli {

// A child process spoken to in lines: one command line to its stdin, one line back on its
// stdout. Its stderr is ours.
class LineProcess {
 public:
  // Starts argv[0] (a path) with these arguments; throws std::runtime_error when it cannot.
  explicit LineProcess(const std::vector<std::string>& argv);
  ~LineProcess();  // closes the child's stdin and waits for it
  LineProcess(const LineProcess&) = delete;
  LineProcess& operator=(const LineProcess&) = delete;

  // The child's next stdout line (without '\n'); throws std::runtime_error at end of stream.
  std::string read_line();
  // Writes `command` and a newline, then returns the next line.
  std::string ask(const std::string& command);

 private:
  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  std::string pending_;  // read but not yet returned
};

// The reference for one base dtype: started (model loaded) by the constructor, then one
// repeat() per engine repeat; values() holds the kept repeats of each row, in order.
class PairedReference {
 public:
  PairedReference(const std::string& script, const std::string& model, const std::string& dtype,
                  int threads);

  // One repeat of "train" or "decode" rows; its values count when `keep`. A warm-up (not
  // `keep`) runs three training repeats (see the .cpp), one decode repeat.
  void repeat(const std::string& rows, bool keep);
  const std::map<std::string, std::vector<double>>& values() const { return values_; }
  // The reference process's peak RSS in bytes (asked of it).
  int64_t peak_rss();

 private:
  LineProcess process_;
  std::map<std::string, std::vector<double>> values_;
};

}  // namespace eztinker::cli
