// GSM8K loader (see include/eztinker/datasets/gsm8k.h): file lookup (explicit path, data dir,
// EZTINKER_DATA_DIR, cache, opt-in download), jsonl parsing with file:line:field errors, and the
// EZTinker prompt. Mirrors the Python EZTinker GSM8KDataset.
#include "eztinker/datasets/gsm8k.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "io_util.h"

extern char** environ;

namespace eztinker::datasets {
namespace fs = std::filesystem;

namespace {

bool is_split_name(std::string_view s) { return s == "train" || s == "test"; }

// Runs `curl` (argv form, no shell) to fetch `url` into `dest`. Returns an error text or "".
std::string run_curl(const std::string& url, const fs::path& dest) {
  std::vector<std::string> args = {"curl", "--fail", "--silent", "--show-error", "--location",
                                   "--max-time", "300", "--output", dest.string(), url};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, "curl", nullptr, nullptr, argv.data(), environ);
  if (rc != 0) return "cannot run `curl` (is it installed and on PATH?)";
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return "waiting for `curl` failed";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return "`curl` failed with exit status " +
           std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  return "";
}

// Downloads one split into cache_dir atomically (temp file, validate by parsing, rename), so a
// partial download never masquerades as the dataset.
fs::path download_split(const std::string& split, const fs::path& cache_dir) {
  std::string url(kGsm8kDownloadUrl);
  url.replace(url.find("{split}"), 7, split);
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  if (ec) {
    throw DatasetError("gsm8k: cannot create cache directory " + cache_dir.string() + ": " +
                       ec.message());
  }
  fs::path final_path = cache_dir / (split + ".jsonl");
  fs::path tmp = cache_dir / (split + ".jsonl.part." + std::to_string(::getpid()));
  std::string err = run_curl(url, tmp);
  if (!err.empty()) {
    fs::remove(tmp, ec);
    throw DatasetError("gsm8k: download of " + url + " failed: " + err);
  }
  try {
    auto rows = parse_gsm8k_jsonl(detail::read_text_file(tmp), tmp.string());
    if (rows.empty()) throw DatasetError("gsm8k: downloaded " + url + " holds no rows");
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  fs::rename(tmp, final_path, ec);
  if (ec) throw DatasetError("gsm8k: cannot move download to " + final_path.string());
  return final_path;
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return false;
  std::string s(v);
  return s == "1" || s == "true" || s == "yes" || s == "on";
}

}  // namespace

fs::path default_cache_dir(std::string_view dataset_name) {
  fs::path base;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    base = xdg;
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    base = fs::path(home) / ".cache";
  } else {
    base = fs::temp_directory_path();
  }
  return base / "eztinker" / "data" / std::string(dataset_name);
}

fs::path locate_gsm8k_file(const GSM8KOptions& options) {
  if (!options.path.empty()) {
    if (!fs::is_regular_file(options.path)) {
      throw DatasetError("gsm8k: file " + options.path.string() + " does not exist");
    }
    return options.path;
  }
  if (!is_split_name(options.split)) {
    throw DatasetError("gsm8k: unknown split `" + options.split +
                       "` (expected \"train\" or \"test\", or pass a file path)");
  }
  const std::string file = options.split + ".jsonl";
  std::vector<fs::path> tried;
  auto try_dir = [&](const fs::path& dir) -> std::optional<fs::path> {
    for (const fs::path& candidate : {dir / file, dir / "gsm8k" / file}) {
      tried.push_back(candidate);
      if (fs::is_regular_file(candidate)) return candidate;
    }
    return std::nullopt;
  };
  if (!options.data_dir.empty()) {
    if (auto p = try_dir(options.data_dir)) return *p;
  }
  if (const char* env = std::getenv("EZTINKER_DATA_DIR"); env && *env) {
    if (auto p = try_dir(env)) return *p;
  }
  fs::path cache = options.cache_dir.empty() ? default_cache_dir("gsm8k") : options.cache_dir;
  tried.push_back(cache / file);
  if (fs::is_regular_file(cache / file)) return cache / file;

  if (options.allow_download || env_flag("EZTINKER_ALLOW_DOWNLOAD")) {
    return download_split(options.split, cache);
  }
  std::string msg = "gsm8k: no " + file + " found; looked in:";
  for (const auto& p : tried) msg += "\n  " + p.string();
  msg +=
      "\nPass an explicit path, set EZTINKER_DATA_DIR, or allow the download "
      "(EZTINKER_ALLOW_DOWNLOAD=1).";
  throw DatasetError(msg);
}

std::string format_gsm8k_prompt(std::string_view question) {
  std::string prompt(kGsm8kPromptTemplate);
  prompt.replace(prompt.find("{question}"), 10, question);
  return prompt;
}

std::string extract_gsm8k_final_answer(std::string_view solution, std::string_view where) {
  std::string prefix = where.empty() ? std::string() : std::string(where) + ": ";
  size_t pos = solution.rfind("####");
  if (pos == std::string_view::npos) {
    throw DatasetError(prefix + "`answer` has no `####` final-answer line");
  }
  std::string answer;
  for (char c : detail::trim(solution.substr(pos + 4))) {
    if (c != ',') answer += c;
  }
  if (answer.empty()) throw DatasetError(prefix + "`answer` has nothing after `####`");
  return answer;
}

std::vector<GSM8KExample> parse_gsm8k_jsonl(std::string_view text, std::string_view source,
                                            size_t max_samples) {
  std::vector<GSM8KExample> rows;
  size_t line_no = 0;
  for (std::string_view line : detail::split_lines(text)) {
    ++line_no;
    if (detail::trim(line).empty()) continue;
    std::string where = std::string(source) + ":" + std::to_string(line_no);
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw DatasetError(where + ": invalid JSON (" + e.what() + ")");
    }
    if (!row.is_object()) throw DatasetError(where + ": expected a JSON object");
    GSM8KExample ex;
    for (const char* field : {"question", "answer"}) {
      auto it = row.find(field);
      if (it == row.end()) throw DatasetError(where + ": missing `" + field + "`");
      if (!it->is_string()) throw DatasetError(where + ": `" + field + "` must be a string");
    }
    ex.question = row["question"].get<std::string>();
    ex.solution = row["answer"].get<std::string>();
    if (detail::trim(ex.question).empty()) throw DatasetError(where + ": `question` is empty");
    ex.answer = extract_gsm8k_final_answer(ex.solution, where);
    rows.push_back(std::move(ex));
    if (max_samples != 0 && rows.size() >= max_samples) break;
  }
  return rows;
}

GSM8KDataset::GSM8KDataset(const std::string& split_or_path, size_t max_samples)
    : GSM8KDataset([&] {
        GSM8KOptions o;
        if (is_split_name(split_or_path)) {
          o.split = split_or_path;
        } else {
          o.path = split_or_path;
        }
        o.max_samples = max_samples;
        return o;
      }()) {}

GSM8KDataset::GSM8KDataset(const GSM8KOptions& options) {
  fs::path file = locate_gsm8k_file(options);
  source_ = file.string();
  examples_ = parse_gsm8k_jsonl(detail::read_text_file(file), source_, options.max_samples);
}

GSM8KDataset::GSM8KDataset(std::vector<GSM8KExample> examples, std::string source)
    : examples_(std::move(examples)), source_(std::move(source)) {}

const GSM8KExample& GSM8KDataset::example(size_t i) const {
  if (i >= examples_.size()) {
    throw std::out_of_range("gsm8k: index " + std::to_string(i) + " out of range (size " +
                            std::to_string(examples_.size()) + ")");
  }
  return examples_[i];
}

GSM8KQuestion GSM8KDataset::get_example_question(size_t i) const {
  const GSM8KExample& ex = example(i);
  return {ex.question, format_gsm8k_prompt(ex.question), ex.answer};
}

std::vector<ChatMessage> GSM8KDataset::get_example_messages(size_t i,
                                                            std::string_view system_prompt) const {
  std::vector<ChatMessage> messages;
  if (!system_prompt.empty()) messages.push_back({"system", std::string(system_prompt)});
  messages.push_back({"user", format_gsm8k_prompt(example(i).question)});
  return messages;
}

VerificationResult GSM8KDataset::evaluate_answer(std::string_view generated,
                                                 std::string_view ground_truth,
                                                 std::string_view question) const {
  return datasets::evaluate_answer(generated, ground_truth, question);
}

}  // namespace eztinker::datasets
