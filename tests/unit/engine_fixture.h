// Shared setup for the engine-level tests (engine_test, checkpoint_test, lora_grad_test): a tiny
// random Qwen2 directory written once per test binary, engines over temp checkpoint dirs, and
// helpers that turn ForwardResult log-probs into plain numbers.
#pragma once

#include "engine/engine.h"
#include "model/random_model.h"
#include "test_support.h"

#include <eztinker/error.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

namespace eztinker::engine::test {

// The tiny model directory (fp32 weights), created on first use and kept for the binary's life.
inline const std::filesystem::path& tiny_model_dir() {
  static std::unique_ptr<eztinker::testing::TempDir> dir;
  if (!dir) {
    dir = std::make_unique<eztinker::testing::TempDir>("eztinker-engine-model");
    model::RandomModelOptions options;
    options.preset = "tiny";
    options.out_dir = dir->path() / "tiny";
    options.seed = 1234;
    options.dtype = "fp32";
    model::write_random_model(options);
  }
  static const std::filesystem::path path = dir->path() / "tiny";
  return path;
}

inline EngineOptions engine_options(const std::filesystem::path& checkpoints,
                                    const std::string& dtype = "fp32") {
  EngineOptions o;
  o.checkpoints_dir = checkpoints;
  o.dtype = dtype;
  o.aliases["tiny"] = tiny_model_dir();
  return o;
}

// LoRA without dropout, so training is deterministic.
inline CreateRunSpec run_spec(uint64_t seed, const std::string& run_id = "") {
  CreateRunSpec spec;
  spec.base_model = "tiny";
  spec.lora_config.r = 4;
  spec.lora_config.lora_alpha = 8;
  spec.lora_config.lora_dropout = 0.0;
  spec.seed = seed;
  if (!run_id.empty()) {
    spec.run_id = run_id;
  }
  return spec;
}

inline TrainExample example(std::vector<int32_t> ids) {
  TrainExample ex;
  ex.input_ids = std::move(ids);
  return ex;
}

// A deterministic pseudo-random token sequence in [first, first + span).
inline std::vector<int32_t> tokens(int n, int salt, int first = 3, int span = 200) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(first + (i * 37 + salt * 11 + (i * i) % 7) % span);
  }
  return out;
}

// Flattens the non-null logprobs of a result (ignored positions skipped).
inline std::vector<float> flat_logprobs(const ForwardResult& r) {
  std::vector<float> out;
  for (const auto& row : r.logprobs) {
    for (const auto& v : row) {
      if (v) {
        out.push_back(*v);
      }
    }
  }
  return out;
}

// Runs `fn` and returns the ApiError type it threw; fails the test if it threw nothing else.
template <typename Fn>
ErrorType error_type_of(Fn&& fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    EXPECT_FALSE(e.message().empty());
    return e.type();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected ApiError, got std::exception: " << e.what();
    return ErrorType::kInternal;
  }
  ADD_FAILURE() << "expected ApiError, nothing thrown";
  return ErrorType::kInternal;
}

}  // namespace eztinker::engine::test
