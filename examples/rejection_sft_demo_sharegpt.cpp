// Rejection-sampling fine-tuning on chat data (ShareGPT, either dialect, .json or .jsonl) or on
// GSM8K, against a running EZTinker server: the C++ port of the Python EZTinker
// rejection_sft_demo_sharegpt.py.
//
//   eztinker server --alias Qwen/Qwen2-0.5B-Instruct=/models/qwen2-0.5b-instruct &
//   build/examples/rejection_sft_demo_sharegpt --dataset-type sharegpt \
//       --data-path conversations.json --max-samples 50 --epochs 3
//   build/examples/rejection_sft_demo_sharegpt --dataset-type gsm8k --max-samples 50 --epochs 3
//
// ShareGPT has no verifiable answer, so the "verifier" here is similarity to the reference
// reply (token F1): per conversation, candidates for the last assistant turn are sampled in one
// job (chat form: the server applies the chat template); the best one is trained on when its F1
// reaches --accept-f1, otherwise the reference reply is (plain SFT fallback). Loss covers the
// last assistant turn only. Each epoch reports mean best F1, the acceptance rate and the held-out
// loss of the reference replies; summary.json and plot.svg go to --output-dir.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include "eztinker/client.h"
#include "eztinker/datasets/sharegpt.h"
#include "eztinker/recipes/demo.h"
#include "eztinker/recipes/rejection_sampling.h"

namespace ezd = eztinker::datasets;
namespace ezr = eztinker::recipes;
namespace api = eztinker::api;

// Token F1 over lower-cased whitespace words (SQuAD's answer-overlap metric).
double token_f1(const std::string& candidate, const std::string& reference) {
  auto words = [](const std::string& s) {
    std::map<std::string, int> counts;
    std::istringstream in(s);
    std::string w;
    while (in >> w) {
      std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return std::tolower(c); });
      ++counts[w];
    }
    return counts;
  };
  auto a = words(candidate);
  auto b = words(reference);
  int common = 0, na = 0, nb = 0;
  for (auto& [w, n] : a) {
    na += n;
    auto it = b.find(w);
    if (it != b.end()) common += std::min(n, it->second);
  }
  for (auto& [w, n] : b) nb += n;
  if (common == 0) return 0.0;
  double p = double(common) / na, r = double(common) / nb;
  return 2 * p * r / (p + r);
}

std::vector<api::ChatMessage> to_api(const std::vector<eztinker::tokenizer::ChatMessage>& in) {
  std::vector<api::ChatMessage> out;
  for (const auto& m : in) out.push_back({m.role, m.content});
  return out;
}

int main(int argc, char** argv) {
  // --- config ---
  std::string dataset_type = "sharegpt";  // sharegpt | gsm8k
  std::string data_path;                  // ShareGPT file (required for sharegpt)
  std::string model = "Qwen/Qwen2-0.5B-Instruct";
  std::string output_dir = "demo_output_sharegpt";
  size_t max_samples = 50;
  int epochs = 3;
  int num_candidates = 4;
  double temperature = 0.8;
  int max_new_tokens = 128;
  double learning_rate = 2e-4;
  double accept_f1 = 0.5;
  double eval_fraction = 0.1;  // held out from the end of the file

  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "error: " << flag << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (flag == "--dataset-type") dataset_type = value();
    else if (flag == "--data-path") data_path = value();
    else if (flag == "--max-samples") max_samples = std::stoul(value());
    else if (flag == "--epochs") epochs = std::stoi(value());
    else if (flag == "--model") model = value();
    else if (flag == "--output-dir") output_dir = value();
    else if (flag == "--num-candidates") num_candidates = std::stoi(value());
    else if (flag == "--learning-rate") learning_rate = std::stod(value());
    else if (flag == "--accept-f1") accept_f1 = std::stod(value());
    else if (flag == "--help" || flag == "-h") {
      std::cout << "usage: rejection_sft_demo_sharegpt --dataset-type gsm8k|sharegpt [--data-path FILE]\n"
                   "  [--max-samples N] [--epochs N] [--model NAME] [--output-dir DIR]\n"
                   "  [--num-candidates N] [--learning-rate LR] [--accept-f1 F]\n";
      return 0;
    } else {
      std::cerr << "error: unknown flag " << flag << " (see --help)\n";
      return 2;
    }
  }

  std::optional<eztinker::EZTinkerClient> holder;  // outlives the try, to clean up after it
  std::string run_id;                             // set once the run exists
  bool saved_checkpoint = false;  // until then a failure deletes the run (no orphan runs)
  try {
    eztinker::EZTinkerClient& client = holder.emplace();  // EZTINKER_BASE_URL or localhost:8000
    if (dataset_type == "gsm8k") {
      ezr::DemoOptions o;
      o.model = model;
      o.dataset = "auto";
      o.data_path = data_path;
      o.max_samples = max_samples;
      o.epochs = epochs;
      o.num_candidates = num_candidates;
      o.learning_rate = learning_rate;
      o.output_dir = output_dir;
      o.log = &std::cout;
      ezr::run_gsm8k_demo(client, o);
      return 0;
    }
    if (dataset_type != "sharegpt") {
      std::cerr << "error: --dataset-type must be gsm8k or sharegpt\n";
      return 2;
    }
    if (data_path.empty()) {
      std::cerr << "error: --data-path is required for --dataset-type sharegpt\n";
      return 2;
    }

    // --- data: training conversations first, the held-out tail after them ---
    size_t eval_count = std::max<size_t>(1, static_cast<size_t>(max_samples * eval_fraction));
    ezd::ShareGPTDataset data(data_path, nullptr, max_samples + eval_count, /*strict=*/false);
    const auto& st = data.stats();
    std::cout << "loaded " << st.valid_conversations << " conversations (" << st.invalid_conversations
              << " skipped; from_value " << st.dialect_counts.from_value << ", role_content "
              << st.dialect_counts.role_content << ", mixed " << st.dialect_counts.mixed << ")\n";
    if (data.size() < 2) throw std::runtime_error("need at least 2 valid conversations");
    size_t n_train = data.size() > eval_count ? data.size() - eval_count : data.size() - 1;

    run_id = ezr::create_training_run(client, model, /*lora_rank=*/1);
    std::cout << "run " << run_id << " on " << model << "\n";

    auto held_out_loss = [&] {
      double sum = 0;
      for (size_t i = n_train; i < data.size(); ++i) {
        sum += client.forward(run_id, eztinker::make_chat_request(to_api(data.conversation(i).messages),
                                                                  "last_assistant")).loss;
      }
      return sum / double(data.size() - n_train);
    };

    ezr::DemoSummary summary;  // reuses the GSM8K demo's report: reward = mean best F1,
    summary.run_id = run_id;   // accuracy = acceptance rate, answer_loss = held-out loss
    summary.model = model;
    summary.dataset = "sharegpt";
    summary.data_source = data_path;
    summary.train_size = n_train;
    summary.eval_size = data.size() - n_train;
    ezr::DemoEvaluation e0;
    e0.answer_loss = held_out_loss();
    summary.evaluations.push_back(e0);
    std::cout << "epoch 0: held-out loss " << e0.answer_loss << "\n";

    for (int epoch = 1; epoch <= epochs; ++epoch) {
      double f1_sum = 0, loss_sum = 0;
      size_t accepted = 0;
      for (size_t i = 0; i < n_train; ++i) {
        auto prompt = to_api(data.prompt_messages(i));
        const std::string& reference = data.last_assistant_reply(i);
        api::SampleRequest req;
        req.form = api::PromptForm::kChat;
        req.messages = prompt;
        req.run_id = run_id;
        req.params.num_samples = num_candidates;
        req.params.temperature = temperature;
        req.params.max_new_tokens = max_new_tokens;
        double best_f1 = -1;
        std::string best;
        for (const auto& s : client.sample(req).samples) {
          double f1 = token_f1(s.text, reference);
          if (f1 > best_f1) best_f1 = f1, best = s.text;
        }
        bool accept = best_f1 >= accept_f1;
        accepted += accept;
        f1_sum += std::max(0.0, best_f1);
        auto messages = prompt;
        messages.push_back({"assistant", accept ? best : reference});
        loss_sum += client.forward_backward_chat(run_id, messages, "last_assistant").loss;
        api::AdamParams adam;
        adam.learning_rate = learning_rate;
        client.optim_step(run_id, adam);
        std::cout << "\repoch " << epoch << " " << ezr::progress_bar(i + 1, n_train) << std::flush;
      }
      ezr::DemoEvaluation e;
      e.epoch = epoch;
      e.reward = f1_sum / n_train;
      e.accuracy = double(accepted) / n_train;
      e.train_loss = loss_sum / n_train;
      e.trained_examples = n_train;
      e.answer_loss = held_out_loss();
      e.checkpoint = client.save_checkpoint(run_id, "sharegpt-epoch" + std::to_string(epoch)).path;
      saved_checkpoint = true;
      summary.evaluations.push_back(e);
      std::cout << "\repoch " << epoch << ": mean best F1 " << e.reward << ", accepted " << e.accuracy
                << ", train loss " << *e.train_loss << ", held-out loss " << e.answer_loss << "\n";
    }
    summary.answer_loss_drop = summary.evaluations.front().answer_loss - summary.evaluations.back().answer_loss;
    summary.improved = summary.answer_loss_drop > 0;
    std::filesystem::create_directories(output_dir);
    std::ofstream(std::filesystem::path(output_dir) / "summary.json") << ezr::demo_summary_json(summary) << "\n";
    std::ofstream(std::filesystem::path(output_dir) / "plot.svg") << ezr::demo_plot_svg(summary);
    std::cout << "wrote " << output_dir << "/summary.json and plot.svg\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    if (!run_id.empty() && !saved_checkpoint) {
      try {
        holder->delete_run(run_id);
        std::cerr << "deleted run " << run_id << " (nothing was saved)\n";
      } catch (const std::exception& d) {
        std::cerr << "warning: could not delete run " << run_id << ": " << d.what() << "\n";
      }
    }
    return 1;
  }
  return 0;
}
