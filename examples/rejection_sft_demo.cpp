// Rejection-sampling fine-tuning on GSM8K against a running EZTinker server (the C++ port of
// the Python EZTinker rejection_sft_demo.py). For each training problem: sample candidates in
// one job, verify their final answers, train on the verified-correct ones (loss on the
// completion only); after each epoch measure held-out reward, greedy accuracy and gold-answer
// loss, save a checkpoint; finally write summary.json and plot.svg.
//
//   eztinker server --alias Qwen/Qwen2-0.5B-Instruct=/models/qwen2-0.5b-instruct &
//   EZTINKER_DATA_DIR=/data build/examples/rejection_sft_demo \
//       --max-samples 50 --num-candidates 4 --epochs 3 --eval-size 20 --output-dir demo_output
//
// Without GSM8K files (EZTINKER_DATA_DIR, --data-path, ~/.cache/eztinker/data/gsm8k) it uses
// the built-in arithmetic problems. The model is --model, default Qwen/Qwen2-0.5B-Instruct; when
// the server cannot load that, the program stops with a message naming --model (it has no
// built-in model of its own: writing one needs the engine). For a model-free start, use
// `eztinker demo`, which runs the same loop and falls back to its built-in tiny model, or:
//   eztinker make-model --preset tiny --out /tmp/tiny && eztinker server --alias tiny=/tmp/tiny &
//   build/examples/rejection_sft_demo --model tiny --dataset arithmetic
#include <cstdlib>
#include <iostream>
#include <string>

#include "eztinker/client.h"
#include "eztinker/recipes/demo.h"

namespace ezr = eztinker::recipes;

constexpr const char* kDefaultModel = "Qwen/Qwen2-0.5B-Instruct";

// True when the server can load `model`: creates a throwaway run and deletes it again.
bool server_can_load(eztinker::EZTinkerClient& client, const std::string& model, std::string& why) {
  try {
    client.delete_run(client.create_run(model));
    return true;
  } catch (const eztinker::ConnectionError&) {
    throw;  // no server at all: reported as such by main
  } catch (const eztinker::ApiError& e) {
    why = e.message();
    return false;
  }
}

int main(int argc, char** argv) {
  // --- config (defaults = the Python demo's) ---
  ezr::DemoOptions o;
  o.model = kDefaultModel;
  bool model_given = false;
  o.max_samples = 50;
  o.num_candidates = 4;
  o.epochs = 3;
  o.learning_rate = 2e-4;
  o.temperature = 0.8;
  o.eval_size = 20;
  o.max_new_tokens = 256;
  o.output_dir = "demo_output";
  o.checkpoint_prefix = "rejection-sft";
  o.log = &std::cout;

  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "error: " << flag << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (flag == "--max-samples") o.max_samples = std::stoul(value());
    else if (flag == "--num-candidates") o.num_candidates = std::stoi(value());
    else if (flag == "--epochs") o.epochs = std::stoi(value());
    else if (flag == "--learning-rate") o.learning_rate = std::stod(value());
    else if (flag == "--temperature") o.temperature = std::stod(value());
    else if (flag == "--eval-size") o.eval_size = std::stoul(value());
    else if (flag == "--max-new-tokens") o.max_new_tokens = std::stoi(value());
    else if (flag == "--checkpoint") {
      // Checkpoint name prefix; "none" saves nothing.
      o.checkpoint_prefix = value();
      o.save_checkpoints = o.checkpoint_prefix != "none";
    }
    else if (flag == "--output-dir") o.output_dir = value();
    else if (flag == "--model") {
      o.model = value();
      model_given = true;
    }
    else if (flag == "--dataset") o.dataset = value();
    else if (flag == "--data-path") o.data_path = value();
    else if (flag == "--lora-rank") o.lora_rank = std::stoi(value());
    else if (flag == "--seed") o.seed = std::stoull(value());
    else if (flag == "--help" || flag == "-h") {
      std::cout << "usage: rejection_sft_demo [--max-samples N] [--num-candidates N] [--epochs N]\n"
                   "  [--learning-rate LR] [--temperature T] [--eval-size N] [--max-new-tokens N]\n"
                   "  [--checkpoint PREFIX|none] [--output-dir DIR]\n"
                   "  [--model NAME (default: Qwen/Qwen2-0.5B-Instruct)]\n"
                   "  [--dataset auto|gsm8k|arithmetic] [--data-path FILE|DIR] [--lora-rank R] [--seed S]\n"
                   "server: EZTINKER_BASE_URL (default http://localhost:8000)\n";
      return 0;
    } else {
      std::cerr << "error: unknown flag " << flag << " (see --help)\n";
      return 2;
    }
  }

  try {
    eztinker::EZTinkerClient client;  // EZTINKER_BASE_URL or http://localhost:8000
    std::string why;
    if (!model_given && !server_can_load(client, o.model, why)) {
      std::cerr << "error: the server cannot load the default model " << o.model << " (" << why
                << "); pass --model NAME with a model it has (see the header of this file)\n";
      return 2;
    }
    ezr::DemoSummary s = ezr::run_gsm8k_demo(client, o);
    std::cout << "reward " << s.evaluations.front().reward << " -> " << s.evaluations.back().reward
              << ", accuracy " << s.evaluations.front().accuracy << " -> "
              << s.evaluations.back().accuracy << ", answer loss "
              << s.evaluations.front().answer_loss << " -> " << s.evaluations.back().answer_loss
              << "\n";
  } catch (const eztinker::ConnectionError& e) {
    std::cerr << "error: " << e.what() << " (start `eztinker server` first)\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
