// The Python EZTinker README's training loop in C++: read GSM8K questions with the datasets
// library's loader, tokenize them with the server's tokenizer, forward_backward + optim_step per
// example, save a checkpoint. Uses the client and datasets libraries (builds in-tree and against
// the installed package).
//
//   eztinker server --model Qwen/Qwen2-0.5B-Instruct &        # or a tiny model dir
//   ./my_training [gsm8k.jsonl] [base_model]
//     default file: ../shared/data/gsm8k/train.jsonl; server: EZTINKER_BASE_URL or localhost:8000
//
// The data file is read before the run is created, and a run whose set-up or training fails
// before its checkpoint is saved is deleted again, so a failed start leaves no run behind.
#include "eztinker/client.h"
#include "eztinker/datasets/gsm8k.h"

#include <cstdio>
#include <iostream>
#include <optional>
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

  // --- data first: a missing or malformed file is reported before any run exists ---
  std::optional<eztinker::datasets::GSM8KDataset> dataset;
  try {
    dataset.emplace(data_path, max_samples);  // throws DatasetError naming file, line and field
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << " (pass a GSM8K jsonl file)\n";
    return 1;
  }
  std::printf("%zu examples from %s\n", dataset->size(), dataset->source().c_str());

  std::string run_id;
  try {
    eztinker::EZTinkerClient client;  // RAII: closed when it goes out of scope
    run_id = client.create_run(base_model, lora);
    std::printf("run %s on %s (%s)\n", run_id.c_str(), base_model.c_str(), client.base_url().c_str());
    try {
      for (size_t step = 0; step < dataset->size(); ++step) {
        const eztinker::datasets::GSM8KExample& row = dataset->example(step);
        std::string text = "Question: " + row.question + "\nAnswer: " + row.solution;
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
      }
      auto saved = client.save_checkpoint(run_id, "checkpoint_final");
      std::printf("saved %s\n", saved.adapter_path.c_str());
    } catch (...) {
      // Nothing was saved: delete the run rather than leave an orphan on the server.
      try {
        client.delete_run(run_id);
        std::cerr << "deleted run " << run_id << "\n";
      } catch (const std::exception& e) {
        std::cerr << "warning: could not delete run " << run_id << ": " << e.what() << "\n";
      }
      throw;
    }
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
