// The Python EZTinker README's training loop in C++: read GSM8K questions, tokenize them with
// the server's tokenizer, forward_backward + optim_step per example, save a checkpoint.
// Uses only the client library (builds in-tree and against the installed package).
//
//   eztinker server --model Qwen/Qwen2-0.5B-Instruct &        # or a tiny model dir
//   ./my_training [gsm8k.jsonl] [base_model]
//     default file: ../shared/data/gsm8k/train.jsonl; server: EZTINKER_BASE_URL or localhost:8000
#include "eztinker/client.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  // --- config (the README's values) ---
  const std::string data_path = argc > 1 ? argv[1] : "../shared/data/gsm8k/train.jsonl";
  const std::string base_model = argc > 2 ? argv[2] : "Qwen/Qwen2-0.5B-Instruct";
  const size_t max_samples = 100;     // GSM8KDataset(split="train", max_samples=100)
  const double learning_rate = 2e-4;  // client.optim_step(run_id, learning_rate=2e-4)
  eztinker::api::LoraConfig lora;
  lora.r = 1;  // create_run(..., lora_rank=1, lora_alpha=2)
  lora.lora_alpha = 2;

  try {
    eztinker::EZTinkerClient client;  // RAII: closed when it goes out of scope
    std::string run_id = client.create_run(base_model, lora);
    std::printf("run %s on %s (%s)\n", run_id.c_str(), base_model.c_str(), client.base_url().c_str());

    std::ifstream in(data_path);
    if (!in) {
      std::cerr << "error: cannot open " << data_path << " (pass a GSM8K jsonl file)\n";
      return 1;
    }
    std::string line;
    size_t step = 0;
    while (step < max_samples && std::getline(in, line)) {
      if (line.empty()) continue;
      auto row = nlohmann::json::parse(line);
      std::string text = "Question: " + row.at("question").get<std::string>() + "\nAnswer: " +
                         row.at("answer").get<std::string>();
      eztinker::api::TokenIds input_ids = client.tokenize(text, run_id);
      // Submit both jobs back to back (the server keeps their order), then wait for both.
      auto fb = client.submit_forward_backward(run_id, input_ids);
      eztinker::api::AdamParams adam;
      adam.learning_rate = learning_rate;
      auto opt = client.submit_optim_step(run_id, adam);
      double loss = fb.get().loss;
      auto stepped = opt.get();
      std::printf("step %3lld  loss %.4f  grad_norm %.4f  tokens %zu\n",
                  static_cast<long long>(stepped.step), loss, stepped.grad_norm, input_ids.size());
      ++step;
    }
    auto saved = client.save_checkpoint(run_id, "checkpoint_final");
    std::printf("saved %s\n", saved.adapter_path.c_str());
  } catch (const eztinker::ConnectionError& e) {
    std::cerr << "error: " << e.what() << " (start `eztinker server` first)\n";
    return 3;
  } catch (const eztinker::ApiError& e) {
    std::cerr << "error: " << e.message() << " (HTTP " << e.http_status() << ")\n";
    return 1;
  }
  return 0;
}
