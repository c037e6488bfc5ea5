// Tokenizer throughput benchmark (not a test): encodes every question and answer of a GSM8K
// jsonl file on one thread and reports MB/s and tokens/s, cold (first pass, empty word cache)
// and warm (best of the following passes). Usage:
//   eztinker_tokenizer_bench <tokenizer-dir> <gsm8k train.jsonl> [passes=5]
#include "eztinker/tokenizer.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <tokenizer-dir> <train.jsonl> [passes=5]\n", argv[0]);
    return 2;
  }
  const int passes = argc > 3 ? std::max(2, std::atoi(argv[3])) : 5;
  try {
    const auto t_load = std::chrono::steady_clock::now();
    const auto tok = eztinker::tokenizer::Tokenizer::load(argv[1]);
    const double load_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();

    std::ifstream in(argv[2]);
    if (!in) throw std::runtime_error(std::string(argv[2]) + ": cannot open");
    std::vector<std::string> texts;
    size_t bytes = 0;
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const auto j = nlohmann::json::parse(line);
      for (const char* key : {"question", "answer"}) {
        texts.push_back(j.at(key).get<std::string>());
        bytes += texts.back().size();
      }
    }

    double cold_s = 0, best_s = 1e30;
    size_t tokens = 0;
    for (int pass = 0; pass < passes; ++pass) {
      size_t n = 0;
      const auto t0 = std::chrono::steady_clock::now();
      for (const auto& t : texts) n += tok->encode(t).size();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (pass == 0)
        cold_s = s;
      else
        best_s = std::min(best_s, s);
      tokens = n;
    }
    const double mb = static_cast<double>(bytes) / 1e6;
    std::printf("load: %.3f s\n", load_s);
    std::printf("texts: %zu  bytes: %zu  tokens: %zu  (%.2f bytes/token)\n",
                texts.size(),
                bytes,
                tokens,
                static_cast<double>(bytes) / static_cast<double>(tokens));
    std::printf("cold (pass 1): %.3f s  %.2f MB/s  %.0f tokens/s\n",
                cold_s,
                mb / cold_s,
                static_cast<double>(tokens) / cold_s);
    std::printf("warm (best of %d): %.3f s  %.2f MB/s  %.0f tokens/s\n",
                passes - 1,
                best_s,
                mb / best_s,
                static_cast<double>(tokens) / best_s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
