// The rejection-sampling fine-tuning demo (see include/eztinker/recipes/demo.h): data
// selection (GSM8K or built-in arithmetic), baseline and per-epoch evaluation on a held-out
// set, the RFT loop over generate_candidates / select_best_candidate_and_train, checkpoints,
// summary.json and an SVG plot. Mirrors the Python EZTinker rejection_sft_demo.py loop.
#include "eztinker/recipes/demo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include "eztinker/datasets/arithmetic.h"
#include "eztinker/recipes/rejection_sampling.h"
#include "eztinker/tokenizer.h"
#include "io_util.h"

namespace eztinker::recipes {

using datasets::arithmetic_tokenizer_corpus;
using datasets::DatasetError;
using datasets::evaluate_answer;
using datasets::format_gsm8k_prompt;
using datasets::GSM8KDataset;
using datasets::GSM8KExample;
using datasets::GSM8KOptions;
using datasets::GSM8KQuestion;
using datasets::make_arithmetic_dataset;
using datasets::make_arithmetic_problems;
namespace detail = datasets::detail;

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void validate(const DemoOptions& o) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("demo: " + what); };
  if (o.dataset != "auto" && o.dataset != "gsm8k" && o.dataset != "arithmetic") {
    fail("dataset must be auto, gsm8k or arithmetic, got `" + o.dataset + "`");
  }
  if (o.max_samples < 1) fail("max_samples must be >= 1");
  if (o.eval_size < 1) fail("eval_size must be >= 1");
  if (o.epochs < 1) fail("epochs must be >= 1");
  if (o.num_candidates < 1 || o.num_candidates > api::kMaxNumSamples) {
    fail("num_candidates must be in 1.." + std::to_string(api::kMaxNumSamples));
  }
  if (o.max_new_tokens < 1 || o.max_new_tokens > api::kMaxNewTokensLimit) {
    fail("max_new_tokens must be in 1.." + std::to_string(api::kMaxNewTokensLimit));
  }
  if (!(o.learning_rate > 0) || !std::isfinite(o.learning_rate)) fail("learning_rate must be > 0");
  if (o.temperature < 0) fail("temperature must be >= 0");
  if (o.lora_rank < 1) fail("lora_rank must be >= 1");
}

// Train and eval sets per options.dataset.
struct DemoData {
  std::string kind;
  std::string source;
  GSM8KDataset train;
  GSM8KDataset eval;
  std::vector<GSM8KExample> warmup;  // labelled problems for the SFT warm-up
};

std::optional<DemoData> try_gsm8k(const DemoOptions& o) {
  try {
    if (!o.data_path.empty() && fs::is_regular_file(o.data_path)) {
      // One file: the first max_samples rows train, the next eval_size evaluate.
      GSM8KDataset all(o.data_path.string(), o.max_samples + o.eval_size);
      if (all.size() <= o.max_samples) {
        throw DatasetError("demo: " + o.data_path.string() + " has " +
                           std::to_string(all.size()) + " rows, need more than max_samples=" +
                           std::to_string(o.max_samples) + " to hold out an eval set");
      }
      std::vector<GSM8KExample> train(all.examples().begin(),
                                      all.examples().begin() + static_cast<long>(o.max_samples));
      std::vector<GSM8KExample> eval(all.examples().begin() + static_cast<long>(o.max_samples),
                                     all.examples().end());
      return DemoData{"gsm8k", all.source(), GSM8KDataset(std::move(train), all.source()),
                      GSM8KDataset(std::move(eval), all.source()), {}};
    }
    GSM8KOptions train_opts;
    train_opts.split = "train";
    train_opts.data_dir = o.data_path;
    train_opts.max_samples = o.max_samples;
    GSM8KOptions eval_opts = train_opts;
    eval_opts.split = "test";
    eval_opts.max_samples = o.eval_size;
    train_opts.max_samples = o.max_samples + o.warmup_examples;
    GSM8KDataset train_all(train_opts);
    GSM8KDataset eval(eval_opts);
    // The first max_samples rows are the RFT problems, the next warmup_examples the SFT ones.
    std::vector<GSM8KExample> train(train_all.examples().begin(),
                                    train_all.examples().begin() +
                                        static_cast<long>(std::min(o.max_samples, train_all.size())));
    std::vector<GSM8KExample> warmup(train_all.examples().begin() +
                                         static_cast<long>(std::min(o.max_samples, train_all.size())),
                                     train_all.examples().end());
    return DemoData{"gsm8k", train_all.source(), GSM8KDataset(std::move(train), train_all.source()),
                    std::move(eval), std::move(warmup)};
  } catch (const DatasetError&) {
    if (o.dataset == "gsm8k") throw;
    return std::nullopt;  // auto: fall back to the built-in problems
  }
}

DemoData arithmetic_data(const DemoOptions& o) {
  GSM8KDataset train = make_arithmetic_dataset(o.max_samples, o.seed * 2 + 1);
  // Held-out problems: another seed, minus any question that also occurs in training.
  std::set<std::string> seen;
  for (const auto& ex : train.examples()) seen.insert(ex.question);
  std::vector<GSM8KExample> eval;
  for (const auto& ex : make_arithmetic_problems(o.eval_size * 4 + 16, o.seed * 2 + 2)) {
    if (eval.size() >= o.eval_size) break;
    if (seen.insert(ex.question).second) eval.push_back(ex);
  }
  std::vector<GSM8KExample> warmup;
  for (const auto& ex : make_arithmetic_problems(o.warmup_examples * 4 + 16, o.seed * 2 + 3)) {
    if (warmup.size() >= o.warmup_examples) break;
    if (seen.insert(ex.question).second) warmup.push_back(ex);
  }
  std::string source = train.source();
  return DemoData{"arithmetic", source, std::move(train), GSM8KDataset(std::move(eval), source),
                  std::move(warmup)};
}

DemoData load_data(const DemoOptions& o) {
  if (o.dataset != "arithmetic") {
    if (auto d = try_gsm8k(o)) return std::move(*d);
  }
  return arithmetic_data(o);
}

// Seeds derived from the demo seed so every sample job is reproducible and evaluations at
// different epochs draw with the same seeds (a fair before/after comparison).
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + a * 0xBF58476D1CE4E5B9ULL + b * 0x94D049BB133111EBULL;
  return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFULL;  // positive and JSON-safe
}

class Progress {
 public:
  Progress(std::ostream* log, bool enabled, std::string label, size_t total)
      : log_(log), enabled_(enabled && log != nullptr), label_(std::move(label)), total_(total) {}
  void update(size_t done, const std::string& suffix) {
    if (!enabled_) return;
    *log_ << '\r' << label_ << ' ' << progress_bar(done, total_) << ' ' << suffix << std::flush;
  }
  void finish() {
    if (enabled_) *log_ << '\r' << std::string(100, ' ') << '\r' << std::flush;
  }

 private:
  std::ostream* log_;
  bool enabled_;
  std::string label_;
  size_t total_;
};

std::string fixed(double v, int digits = 3) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

struct EvalSet {
  const GSM8KDataset* data = nullptr;
  std::vector<std::string> prompts;
  std::vector<api::Datum> answer_batch;  // prompt (weight 0) + " N" (weight 1)
};

EvalSet prepare_eval(EZTinkerClient& client, const std::string& run_id, const GSM8KDataset& eval) {
  EvalSet set;
  set.data = &eval;
  for (size_t i = 0; i < eval.size(); ++i) {
    GSM8KQuestion q = eval.get_example_question(i);
    // Tokenized separately, exactly as the server's text form does for training.
    api::TokenIds prompt = client.tokenize(q.prompt, run_id);
    api::TokenIds answer = client.tokenize(" " + q.answer, run_id);
    api::Datum d;
    d.input_ids = prompt;
    d.input_ids.insert(d.input_ids.end(), answer.begin(), answer.end());
    std::vector<float> w(prompt.size(), 0.0f);
    w.resize(d.input_ids.size(), 1.0f);
    d.weights = std::move(w);
    set.answer_batch.push_back(std::move(d));
    set.prompts.push_back(std::move(q.prompt));
  }
  return set;
}

api::SampleRequest sample_request(const std::string& run_id, const std::string& prompt,
                                  const DemoOptions& o, int num_samples, double temperature,
                                  uint64_t seed) {
  api::SampleRequest r;
  r.form = api::PromptForm::kText;
  r.prompt = prompt;
  r.run_id = run_id;
  r.params.num_samples = num_samples;
  r.params.temperature = temperature;
  r.params.do_sample = temperature > 0;
  r.params.max_new_tokens = o.max_new_tokens;
  r.params.top_k = o.top_k;
  r.params.stop = o.stop;
  r.params.seed = seed;
  return r;
}

// reward, greedy accuracy and gold-answer loss on the held-out set. Every job is submitted
// before any is awaited: the run's jobs execute in order on the server anyway, and this saves
// a round trip per job. greedy_out receives the greedy completions.
DemoEvaluation evaluate(EZTinkerClient& client, const std::string& run_id, const EvalSet& set,
                        const DemoOptions& o, int epoch, std::vector<std::string>* greedy_out) {
  const size_t n = set.prompts.size();
  std::vector<JobFuture<api::SampleResult>> sampled;
  std::vector<JobFuture<api::SampleResult>> greedy;
  for (size_t i = 0; i < n; ++i) {
    sampled.push_back(client.submit_sample(sample_request(
        run_id, set.prompts[i], o, o.num_candidates, o.temperature, mix_seed(o.seed, 1, i))));
    greedy.push_back(client.submit_sample(
        sample_request(run_id, set.prompts[i], o, 1, 0.0, mix_seed(o.seed, 2, i))));
  }
  auto loss_job = client.submit_forward(run_id, make_batch_request(set.answer_batch));

  Progress bar(o.log, o.progress_bars, "  eval ", n);
  size_t correct_samples = 0;
  size_t total_samples = 0;
  size_t correct_greedy = 0;
  if (greedy_out) greedy_out->clear();
  for (size_t i = 0; i < n; ++i) {
    const GSM8KExample& ex = set.data->example(i);
    for (const auto& s : sampled[i].get().samples) {
      ++total_samples;
      if (evaluate_answer(s.text, ex.answer, ex.question).is_correct) ++correct_samples;
    }
    api::SampleResult g = greedy[i].get();
    std::string text = g.samples.empty() ? std::string() : g.samples.front().text;
    if (evaluate_answer(text, ex.answer, ex.question).is_correct) ++correct_greedy;
    if (greedy_out) greedy_out->push_back(text);
    bar.update(i + 1, "");
  }
  bar.finish();
  DemoEvaluation e;
  e.epoch = epoch;
  e.reward = total_samples ? static_cast<double>(correct_samples) / total_samples : 0.0;
  e.accuracy = n ? static_cast<double>(correct_greedy) / n : 0.0;
  e.answer_loss = loss_job.get().loss;
  return e;
}

void log_line(const DemoOptions& o, const std::string& line) {
  if (o.log) *o.log << line << std::endl;
}

std::string describe(const DemoEvaluation& e) {
  std::string s = "reward " + fixed(e.reward) + "  accuracy " + fixed(e.accuracy) +
                  "  answer_loss " + fixed(e.answer_loss);
  if (e.train_reward) s += "  train_reward " + fixed(*e.train_reward);
  if (e.train_loss) s += "  train_loss " + fixed(*e.train_loss);
  if (e.epoch > 0) s += "  trained " + std::to_string(e.trained_examples);
  return s;
}

std::string xml_escape(std::string_view in) {
  std::string out;
  for (char c : in) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

std::string progress_bar(size_t done, size_t total, size_t width) {
  size_t filled = total == 0 ? width : std::min(width, done * width / total);
  std::string bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
  char count[48];
  std::snprintf(count, sizeof(count), " %zu/%zu", done, total);
  return bar + count;
}

void write_demo_tokenizer(const std::filesystem::path& dir, int num_merges) {
  tokenizer::write_trained_bpe_tokenizer(dir, arithmetic_tokenizer_corpus(), num_merges);
}

DemoSummary run_gsm8k_demo(EZTinkerClient& client, const DemoOptions& options) {
  validate(options);
  const auto start = Clock::now();
  DemoOptions o = options;
  if (o.lora_alpha <= 0) o.lora_alpha = o.lora_rank;

  DemoData data = load_data(o);
  DemoSummary summary;
  summary.model = o.model;
  summary.dataset = data.kind;
  summary.data_source = data.source;
  summary.train_size = data.train.size();
  summary.eval_size = data.eval.size();
  summary.options = o;

  api::CreateRunRequest create;
  create.base_model = o.model;
  create.lora_config.r = o.lora_rank;
  create.lora_config.lora_alpha = o.lora_alpha;
  create.run_id = o.run_id;
  create.seed = o.seed;
  summary.run_id = client.create_run(create).run_id;
  log_line(o, "demo: run " + summary.run_id + " on " + o.model + " (LoRA r=" +
                  std::to_string(o.lora_rank) + ", alpha=" + std::to_string(o.lora_alpha) + "), " +
                  data.kind + " from " + data.source + ": " + std::to_string(summary.train_size) +
                  " train / " + std::to_string(summary.eval_size) + " held-out problems");

  EvalSet eval_set = prepare_eval(client, summary.run_id, data.eval);
  std::vector<std::string> greedy_before;
  auto t0 = Clock::now();
  DemoEvaluation before = evaluate(client, summary.run_id, eval_set, o, 0, &greedy_before);
  before.seconds = seconds_since(t0);
  summary.evaluations.push_back(before);
  log_line(o, "epoch 0 (before training): " + describe(before));

  if (!data.warmup.empty() && o.warmup_epochs > 0) {
    const auto warm_start = Clock::now();
    const size_t batch = std::max<size_t>(1, o.warmup_batch);
    size_t total = data.warmup.size() * static_cast<size_t>(o.warmup_epochs);
    Progress bar(o.log, o.progress_bars, "warm-up", total);
    double loss_sum = 0.0;
    size_t done = 0;
    std::vector<JobFuture<api::ForwardBackwardResult>> pending;
    auto step = [&] {
      api::AdamParams adam;
      adam.learning_rate = o.warmup_learning_rate > 0 ? o.warmup_learning_rate : o.learning_rate;
      auto s = client.submit_optim_step(summary.run_id, adam);
      for (auto& f : pending) loss_sum += f.get().loss;
      pending.clear();
      s.get();
    };
    for (int ep = 0; ep < o.warmup_epochs; ++ep) {
      for (const GSM8KExample& ex : data.warmup) {
        // The canonical short answer: the number, then the stop token.
        pending.push_back(client.submit_forward_backward(
            summary.run_id,
            make_text_request(format_gsm8k_prompt(ex.question), " " + ex.answer + o.completion_suffix)));
        ++done;
        if (pending.size() >= batch) step();
        bar.update(done, "");
      }
    }
    if (!pending.empty()) step();
    bar.finish();
    DemoEvaluation e = evaluate(client, summary.run_id, eval_set, o, 0, nullptr);
    e.phase = "sft";
    e.train_loss = loss_sum / static_cast<double>(total);
    e.trained_examples = total;
    e.seconds = seconds_since(warm_start);
    summary.evaluations.push_back(e);
    log_line(o, "after SFT warm-up on " + std::to_string(data.warmup.size()) + " labelled problems: " +
                    describe(e));
  }
  const DemoEvaluation before_rft = summary.evaluations.back();

  SelectOptions select;
  select.max_train_candidates = o.max_train_candidates;
  select.truncate_after_answer = o.truncate_after_answer;
  select.completion_suffix = o.completion_suffix;
  CandidateOptions cand;
  cand.top_k = o.top_k;
  cand.stop = o.stop;

  std::vector<size_t> order(data.train.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::vector<std::string> greedy_after = greedy_before;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    // A new seeded order each epoch (modulo Fisher-Yates: same order on every platform).
    std::mt19937_64 gen(mix_seed(o.seed, 3, static_cast<uint64_t>(epoch)));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[gen() % i]);

    Progress bar(o.log, o.progress_bars, "epoch " + std::to_string(epoch), order.size());
    size_t correct = 0, sampled = 0, trained = 0, with_correct = 0, done = 0;
    double loss_sum = 0.0;
    size_t loss_count = 0;
    for (size_t idx : order) {
      GSM8KQuestion q = data.train.get_example_question(idx);
      cand.seed = mix_seed(o.seed, 4 + static_cast<uint64_t>(epoch), idx);
      std::vector<std::string> candidates =
          generate_candidates(client, summary.run_id, q.prompt, o.num_candidates, o.temperature,
                              o.max_new_tokens, cand);
      SelectionResult r = select_best_candidate_and_train(client, summary.run_id, q.prompt,
                                                          candidates, q.answer, q.question,
                                                          &data.train, o.learning_rate, select);
      sampled += candidates.size();
      correct += r.num_correct;
      if (r.num_correct > 0) ++with_correct;
      trained += r.num_trained;
      if (r.loss) {
        loss_sum += *r.loss;
        ++loss_count;
      }
      ++done;
      bar.update(done, "reward " + fixed(sampled ? double(correct) / sampled : 0.0) +
                           " trained " + std::to_string(trained));
    }
    bar.finish();

    DemoEvaluation e = evaluate(client, summary.run_id, eval_set, o, epoch, &greedy_after);
    e.phase = "rft";
    e.train_reward = sampled ? double(correct) / sampled : 0.0;
    if (loss_count) e.train_loss = loss_sum / loss_count;
    e.trained_examples = trained;
    e.problems_with_correct = with_correct;
    if (o.save_checkpoints) {
      std::string name = o.checkpoint_prefix + "-epoch" + std::to_string(epoch);
      e.checkpoint = client.save_checkpoint(summary.run_id, name).path;
    }
    e.seconds = seconds_since(epoch_start);
    summary.evaluations.push_back(e);
    log_line(o, "epoch " + std::to_string(epoch) + ": " + describe(e) + "  (" +
                    fixed(e.seconds, 1) + " s)");
  }
  if (o.save_checkpoints) {
    client.save_checkpoint(summary.run_id, o.checkpoint_prefix + "-final");
  }

  for (size_t i = 0; i < std::min(o.num_examples_in_summary, data.eval.size()); ++i) {
    const GSM8KExample& ex = data.eval.example(i);
    summary.examples.push_back({ex.question, ex.answer, greedy_before[i], greedy_after[i]});
  }
  const DemoEvaluation& first = summary.evaluations.front();
  const DemoEvaluation& last = summary.evaluations.back();
  summary.reward_gain = last.reward - first.reward;
  summary.accuracy_gain = last.accuracy - first.accuracy;
  summary.answer_loss_drop = first.answer_loss - last.answer_loss;
  summary.rft_reward_gain = last.reward - before_rft.reward;
  summary.rft_accuracy_gain = last.accuracy - before_rft.accuracy;
  summary.improved =
      summary.reward_gain > 0 || summary.accuracy_gain > 0 || summary.answer_loss_drop > 0;
  summary.seconds = seconds_since(start);

  if (!o.output_dir.empty()) {
    std::error_code ec;
    fs::create_directories(o.output_dir, ec);
    if (ec) throw DatasetError("demo: cannot create " + o.output_dir.string() + ": " + ec.message());
    summary.summary_path = o.output_dir / "summary.json";
    summary.plot_path = o.output_dir / "plot.svg";
    detail::write_text_file_atomic(summary.plot_path, demo_plot_svg(summary));
    detail::write_text_file_atomic(summary.summary_path, demo_summary_json(summary) + "\n");
  }
  log_line(o, "demo: reward " + fixed(first.reward) + " -> " + fixed(last.reward) +
                  ", accuracy " + fixed(first.accuracy) + " -> " + fixed(last.accuracy) +
                  ", answer_loss " + fixed(first.answer_loss) + " -> " +
                  fixed(last.answer_loss) + " in " + fixed(summary.seconds, 1) + " s" +
                  (summary.summary_path.empty() ? std::string()
                                                : "; wrote " + summary.summary_path.string() +
                                                      " and " + summary.plot_path.string()));
  return summary;
}

std::string demo_summary_json(const DemoSummary& s) {
  using nlohmann::json;
  json evals = json::array();
  for (const auto& e : s.evaluations) {
    json j = {{"epoch", e.epoch},
              {"phase", e.phase},
              {"reward", e.reward},
              {"accuracy", e.accuracy},
              {"answer_loss", e.answer_loss},
              {"trained_examples", e.trained_examples},
              {"problems_with_correct", e.problems_with_correct},
              {"seconds", e.seconds}};
    j["train_reward"] = e.train_reward ? json(*e.train_reward) : json(nullptr);
    j["train_loss"] = e.train_loss ? json(*e.train_loss) : json(nullptr);
    if (!e.checkpoint.empty()) j["checkpoint"] = e.checkpoint;
    evals.push_back(std::move(j));
  }
  json examples = json::array();
  for (const auto& ex : s.examples) {
    examples.push_back({{"question", ex.question},
                        {"answer", ex.answer},
                        {"before", ex.before},
                        {"after", ex.after}});
  }
  const DemoOptions& o = s.options;
  json j = {
      {"run_id", s.run_id},
      {"model", s.model},
      {"dataset", s.dataset},
      {"data_source", s.data_source},
      {"train_size", s.train_size},
      {"eval_size", s.eval_size},
      {"options",
       {{"epochs", o.epochs},
        {"num_candidates", o.num_candidates},
        {"temperature", o.temperature},
        {"top_k", o.top_k},
        {"max_new_tokens", o.max_new_tokens},
        {"learning_rate", o.learning_rate},
        {"lora_rank", o.lora_rank},
        {"lora_alpha", o.lora_alpha},
        {"max_train_candidates", o.max_train_candidates},
        {"warmup_examples", o.warmup_examples},
        {"warmup_epochs", o.warmup_epochs},
        {"warmup_learning_rate", o.warmup_learning_rate},
        {"truncate_after_answer", o.truncate_after_answer},
        {"completion_suffix", o.completion_suffix},
        {"seed", o.seed}}},
      {"evaluations", evals},
      {"examples", examples},
      {"reward_before", s.evaluations.empty() ? 0.0 : s.evaluations.front().reward},
      {"reward_after", s.evaluations.empty() ? 0.0 : s.evaluations.back().reward},
      {"accuracy_before", s.evaluations.empty() ? 0.0 : s.evaluations.front().accuracy},
      {"accuracy_after", s.evaluations.empty() ? 0.0 : s.evaluations.back().accuracy},
      {"answer_loss_before", s.evaluations.empty() ? 0.0 : s.evaluations.front().answer_loss},
      {"answer_loss_after", s.evaluations.empty() ? 0.0 : s.evaluations.back().answer_loss},
      {"reward_gain", s.reward_gain},
      {"accuracy_gain", s.accuracy_gain},
      {"answer_loss_drop", s.answer_loss_drop},
      {"rft_reward_gain", s.rft_reward_gain},
      {"rft_accuracy_gain", s.rft_accuracy_gain},
      {"improved", s.improved},
      {"seconds", s.seconds},
  };
  return j.dump(2, ' ', false, json::error_handler_t::replace);
}

std::string demo_plot_svg(const DemoSummary& s) {
  // 720 x 400 canvas; plot area x in [70, 650], y in [40, 330].
  const double x0 = 70, x1 = 650, y0 = 40, y1 = 330;
  const size_t n = s.evaluations.size();
  double loss_max = 0.0;
  for (const auto& e : s.evaluations) {
    loss_max = std::max(loss_max, e.answer_loss);
    if (e.train_loss) loss_max = std::max(loss_max, *e.train_loss);
  }
  loss_max = loss_max > 0 ? loss_max * 1.1 : 1.0;
  // Left axis: 0..1 scaled down to the data (tiny models live near 0.1), in steps of 0.1.
  double unit_max = 0.0;
  for (const auto& e : s.evaluations) unit_max = std::max({unit_max, e.reward, e.accuracy});
  unit_max = std::clamp(std::ceil(unit_max * 1.2 * 10.0) / 10.0, 0.2, 1.0);
  auto px = [&](size_t i) { return n <= 1 ? (x0 + x1) / 2 : x0 + (x1 - x0) * i / (n - 1.0); };
  auto py_unit = [&](double v) { return y1 - (y1 - y0) * std::clamp(v / unit_max, 0.0, 1.0); };
  auto py_loss = [&](double v) { return y1 - (y1 - y0) * std::clamp(v / loss_max, 0.0, 1.0); };

  std::ostringstream svg;
  svg << R"(<svg xmlns="http://www.w3.org/2000/svg" width="720" height="400" font-family="sans-serif" font-size="12">)"
      << "\n<rect width=\"720\" height=\"400\" fill=\"white\"/>\n";
  svg << "<text x=\"360\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Rejection-sampling SFT: "
      << xml_escape(s.dataset) << " on " << xml_escape(s.model) << "</text>\n";
  // Axes and grid.
  svg << "<g stroke=\"#999\" stroke-width=\"1\">\n";
  svg << "<line x1=\"" << x0 << "\" y1=\"" << y1 << "\" x2=\"" << x1 << "\" y2=\"" << y1 << "\"/>\n";
  svg << "<line x1=\"" << x0 << "\" y1=\"" << y0 << "\" x2=\"" << x0 << "\" y2=\"" << y1 << "\"/>\n";
  svg << "<line x1=\"" << x1 << "\" y1=\"" << y0 << "\" x2=\"" << x1 << "\" y2=\"" << y1 << "\"/>\n";
  svg << "</g>\n";
  for (int k = 0; k <= 4; ++k) {
    double v = k / 4.0;
    double y = py_unit(v * unit_max);
    svg << "<line x1=\"" << x0 << "\" y1=\"" << y << "\" x2=\"" << x1 << "\" y2=\"" << y
        << "\" stroke=\"#eee\"/>\n";
    svg << "<text x=\"" << x0 - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">" << fixed(v * unit_max, 2)
        << "</text>\n";
    svg << "<text x=\"" << x1 + 6 << "\" y=\"" << y + 4 << "\">" << fixed(v * loss_max, 2)
        << "</text>\n";
  }
  for (size_t i = 0; i < n; ++i) {
    svg << "<text x=\"" << px(i) << "\" y=\"" << y1 + 18 << "\" text-anchor=\"middle\">"
        << (s.evaluations[i].phase == "sft" ? std::string("SFT") : std::to_string(s.evaluations[i].epoch))
        << "</text>\n";
  }
  svg << "<text x=\"360\" y=\"" << y1 + 36 << "\" text-anchor=\"middle\">epoch (0 = before training, SFT = after the warm-up)</text>\n";
  svg << "<text x=\"18\" y=\"185\" transform=\"rotate(-90 18 185)\" text-anchor=\"middle\">reward / accuracy</text>\n";
  svg << "<text x=\"705\" y=\"185\" transform=\"rotate(90 705 185)\" text-anchor=\"middle\">loss (nats/token)</text>\n";

  struct Series {
    const char* name;
    const char* color;
    bool loss_axis;
    std::function<std::optional<double>(const DemoEvaluation&)> get;
  };
  const std::vector<Series> series = {
      {"held-out reward", "#1f77b4", false, [](const DemoEvaluation& e) { return std::optional<double>(e.reward); }},
      {"held-out greedy accuracy", "#2ca02c", false, [](const DemoEvaluation& e) { return std::optional<double>(e.accuracy); }},
      {"held-out answer loss", "#d62728", true, [](const DemoEvaluation& e) { return std::optional<double>(e.answer_loss); }},
      {"train loss", "#ff7f0e", true, [](const DemoEvaluation& e) { return e.train_loss; }},
  };
  double legend_y = y1 + 56;
  double legend_x = x0;
  for (const auto& se : series) {
    std::ostringstream points;
    std::ostringstream dots;
    for (size_t i = 0; i < n; ++i) {
      auto v = se.get(s.evaluations[i]);
      if (!v) continue;
      double y = se.loss_axis ? py_loss(*v) : py_unit(*v);
      points << px(i) << "," << y << " ";
      dots << "<circle cx=\"" << px(i) << "\" cy=\"" << y << "\" r=\"3\" fill=\"" << se.color
           << "\"/>\n";
    }
    svg << "<polyline fill=\"none\" stroke=\"" << se.color << "\" stroke-width=\"2\""
        << (se.loss_axis ? " stroke-dasharray=\"6 3\"" : "") << " points=\"" << points.str()
        << "\"/>\n"
        << dots.str();
    svg << "<line x1=\"" << legend_x << "\" y1=\"" << legend_y - 4 << "\" x2=\"" << legend_x + 22
        << "\" y2=\"" << legend_y - 4 << "\" stroke=\"" << se.color << "\" stroke-width=\"2\""
        << (se.loss_axis ? " stroke-dasharray=\"6 3\"" : "") << "/>\n";
    svg << "<text x=\"" << legend_x + 28 << "\" y=\"" << legend_y << "\">" << se.name << "</text>\n";
    legend_x += 150;
  }
  svg << "</svg>\n";
  return svg.str();
}

DemoOptions builtin_demo_options() {
  DemoOptions o;
  o.dataset = "arithmetic";
  o.max_samples = 64;
  o.eval_size = 32;
  o.epochs = 4;
  o.num_candidates = 16;
  o.temperature = 1.0;
  o.max_new_tokens = 6;
  o.warmup_examples = 32;
  o.warmup_epochs = 2;
  o.warmup_learning_rate = 1e-2;
  o.learning_rate = 1e-3;
  o.lora_rank = 8;
  o.lora_alpha = 16;
  o.max_train_candidates = 2;
  o.truncate_after_answer = true;
  return o;
}

}  // namespace eztinker::recipes
