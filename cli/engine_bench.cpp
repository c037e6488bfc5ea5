// `eztinker bench`: in-process engine benchmark (no HTTP) for the rows of issue 7 on any Qwen2
// model directory: forward_backward tokens/s (1x256, 4x128; LoRA r=8 all-linear), forward-only
// 1x256, optim_step ms, decode tokens/s at batch 1 and num_samples=4 (32-token prompt, 64 new
// tokens), RSS with 8 runs on one base, and peak RSS, for each base dtype. Medians and ranges
// over --repeats. With --reference (and /usr/bin/python3 that imports torch), it also runs
// bench/reference_pytorch.py (PyTorch eager + LoRA) on the same model, one of its repeats after
// each of ours (engine_bench_reference.h), and prints the ratios.
#include "cli_common.h"
#include "engine_bench_reference.h"

#include "engine/engine.h"
#include "lora/lora_kernels.h"
#include "model/attention_kernels.h"
#include "model/cpu_runtime.h"
#include "model/random_model.h"
#include "model/small_linear.h"
#include "model/weight_arena.h"
#include "train/losses.h"

#include <nlohmann/json.hpp>
#include <omp.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace eztinker::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string model;
  std::string preset;  // write this random preset into --model first when it is missing
  std::vector<std::string> dtypes = {"bf16", "fp32"};
  int threads = 0;
  int repeats = 5;
  bool reference = false;
  std::string reference_script;  // default: <source>/bench/reference_pytorch.py next to the binary
  std::string rows = "all";      // all | train | decode | kernels
  std::string profile;           // write a libtorch profiler trace of one fb 1x256 here
};

// Current and peak resident set size in bytes (VmRSS, VmHWM).
std::pair<int64_t, int64_t> rss_bytes() {
  const model::ResidentMemory m = model::resident_memory();
  return {m.rss_bytes, m.peak_bytes};
}

struct Stats {
  double median = 0.0;
  double min = 0.0;
  double max = 0.0;
};

Stats stats(std::vector<double> v) {
  Stats s;
  if (v.empty()) {
    return s;
  }
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return s;
}

template <typename Fn>
double seconds(Fn&& fn) {
  const auto t0 = Clock::now();
  fn();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<int32_t> bench_tokens(int n, int salt, int64_t vocab) {
  std::vector<int32_t> out;
  const int64_t span = std::min<int64_t>(vocab - 1, 50000);
  for (int i = 0; i < n; ++i) {
    out.push_back(static_cast<int32_t>(1 + (i * 7919 + salt * 104729) % span));
  }
  return out;
}

// The decode rows' request: 64 new tokens (no stop token) after a fixed 32-token prompt.
engine::SampleSpec decode_request(const std::string& run_id, int64_t vocab) {
  engine::SampleSpec s;
  s.run_id = run_id;
  s.prompt_ids = bench_tokens(32, 99, vocab);
  s.max_new_tokens = 64;
  s.stop_token_ids = std::vector<int32_t>{};  // always 64 new tokens
  return s;
}

nlohmann::json stat_json(const Stats& s) { return {{"median", s.median}, {"min", s.min}, {"max", s.max}}; }

// stat_json plus the repeats in order ("values"), for the rows the reference pairs with.
nlohmann::json repeats_json(const std::vector<double>& v) {
  nlohmann::json out = stat_json(stats(v));
  out["values"] = v;
  return out;
}

std::string fmt(const Stats& s, int precision = 1) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(precision) << s.median << " [" << s.min << "-" << s.max
      << "]";
  return out.str();
}

// GB/s of one plain read of `buffer` (int64 words summed, split over the intra-op threads):
// what the host's memory delivers right now, for comparison with the decode rows, which
// stream the weights once per token. The sums go into an atomic, so the reads stay.
double plain_read_gb_s(const torch::Tensor& buffer) {
  const int64_t* words = buffer.data_ptr<int64_t>();
  std::atomic<uint64_t> sink{0};
  const double s = seconds([&] {
    at::parallel_for(0, buffer.numel(), int64_t{1} << 16, [&](int64_t b, int64_t e) {
      uint64_t acc = 0;
      for (int64_t i = b; i < e; ++i) acc += static_cast<uint64_t>(words[i]);
      sink += acc;
    });
  });
  return static_cast<double>(buffer.nbytes()) / s / 1e9;
}

// All rows for one base dtype. Returns {row: {median, min, max}, ...}. With `reference`, one
// reference repeat of the train (decode) rows follows each of ours.
nlohmann::json bench_dtype(const BenchOptions& o, const std::string& dtype,
                           PairedReference* reference) {
  nlohmann::json result;
  model::reset_peak_resident_memory();
  const auto [rss_start, hwm_start] = rss_bytes();
  (void)hwm_start;
  engine::EngineOptions eo;
  eo.dtype = dtype;
  eo.threads = o.threads;
  eo.aliases["bench"] = o.model;
  eo.checkpoints_dir = fs::temp_directory_path() / "eztinker-bench-ck";
  engine::Engine engine(eo);
  auto base = engine.load_base_model("bench");
  const auto [rss_base, hwm_base] = rss_bytes();
  result["base_bytes"] = base.bytes;
  result["rss_after_load"] = rss_base;
  result["peak_rss_load"] = hwm_base;   // loading at its worst (file pages, temporaries)
  result["huge_page_bytes_after_load"] = model::huge_page_bytes();  // the weight arena's share
  model::reset_peak_resident_memory();  // so peak_rss_train is the training rows' own

  engine::CreateRunSpec spec;
  spec.base_model = "bench";
  spec.lora_config.r = 8;
  spec.lora_config.lora_alpha = 16;
  spec.lora_config.lora_dropout = 0.0;
  spec.seed = 1;
  auto run = engine.create_run(spec);
  const int64_t vocab = engine.run_vocab_size(run.run_id);
  engine::AdamParams adam;
  adam.learning_rate = 1e-5;
  const bool train_rows = o.rows == "all" || o.rows == "train";
  const bool decode_rows = o.rows == "all" || o.rows == "decode";

  if (train_rows) {
    std::vector<engine::TrainExample> one(1);
    one[0].input_ids = bench_tokens(256, 1, vocab);
    std::vector<engine::TrainExample> four(4);
    for (int i = 0; i < 4; ++i) {
      four[static_cast<size_t>(i)].input_ids = bench_tokens(128, 10 + i, vocab);
    }
    std::vector<double> fb1;
    std::vector<double> fb4;
    std::vector<double> fwd;
    std::vector<double> opt;
    for (int r = 0; r <= o.repeats; ++r) {  // r == 0 is the warm-up
      const double t1 = seconds([&] { engine.forward(run.run_id, one, {}, true); });
      if (r == 0) {
        // The first forward_backward after loading: its own peak (later rows reuse the heap
        // that this and the 4x128 row grew, so their peaks are cumulative).
        result["peak_rss_fb1x256"] = rss_bytes().second;
      }
      const double to = seconds([&] { engine.optim_step(run.run_id, adam); });
      const double t4 = seconds([&] { engine.forward(run.run_id, four, {}, true); });
      engine.optim_step(run.run_id, adam);
      const double tf = seconds([&] { engine.forward(run.run_id, one, {}, false); });
      if (r > 0) {
        fb1.push_back(256.0 / t1);
        fb4.push_back(512.0 / t4);
        fwd.push_back(256.0 / tf);
        opt.push_back(to * 1000.0);
      }
      std::cerr << "  [" << dtype << "] repeat " << r << ": fb1x256 " << 256.0 / t1
                << " tok/s, fb4x128 " << 512.0 / t4 << " tok/s, fwd " << 256.0 / tf
                << " tok/s, optim " << to * 1000.0 << " ms\n";
      if (reference != nullptr) reference->repeat("train", r > 0);
    }
    result["forward_backward_1x256_tok_s"] = repeats_json(fb1);
    result["forward_backward_4x128_tok_s"] = repeats_json(fb4);
    result["forward_1x256_tok_s"] = repeats_json(fwd);
    result["optim_step_ms"] = repeats_json(opt);
    if (!o.profile.empty()) {
      // One extra forward_backward 1x256 under the legacy autograd profiler (chrome://tracing
      // JSON): which ops take the time outside the GEMMs.
      {
        torch::autograd::profiler::RecordProfile guard(o.profile);
        engine.forward(run.run_id, one, {}, true);
      }
      engine.optim_step(run.run_id, adam);
      {
        torch::autograd::profiler::RecordProfile guard(o.profile + ".forward");
        engine.forward(run.run_id, one, {}, false);
      }
      std::cerr << "  wrote profiler traces of one fb1x256 to " << o.profile
                << " and of one forward 1x256 to " << o.profile << ".forward\n";
    }
    result["peak_rss_train"] = rss_bytes().second;
  }

  int64_t peak_before_read_probe = 0;
  if (decode_rows) {
    engine::SampleSpec s = decode_request(run.run_id, vocab);
    s.temperature = 0.0;
    std::vector<double> d1;
    std::vector<double> d4;
    std::vector<double> steps1;
    // Batch-1 decoding is bound by memory bandwidth, which this host switches between regimes
    // (issue 7): a plain read of 512 MiB on huge pages (the weights' page size) after each
    // repeat tells which regime the repeat ran in. Its memory is not counted in the peaks.
    peak_before_read_probe = rss_bytes().second;
    torch::Tensor probe = torch::ones({int64_t{1} << 26}, torch::kInt64);  // 512 MiB
    model::move_to_weight_arena({probe});
    std::vector<double> read_gb_s;
    std::vector<double> stream_gb_s;
    for (int r = 0; r <= o.repeats; ++r) {
      s.num_samples = 1;
      const double t1 = seconds([&] { engine.sample(s); });
      const double read = plain_read_gb_s(probe);  // right after the batch-1 request
      // The same request stopped after its first token (prefill + one sampling step): the 63
      // steps after it alone are what llama-bench's tg figure counts.
      s.max_new_tokens = 1;
      const double t_first = seconds([&] { engine.sample(s); });
      s.max_new_tokens = 64;
      s.num_samples = 4;
      s.temperature = 1.0;
      s.seed = static_cast<uint64_t>(r);
      const double t4 = seconds([&] { engine.sample(s); });
      s.temperature = 0.0;
      if (r > 0) {
        d1.push_back(64.0 / t1);
        d4.push_back(4 * 64.0 / t4);
        steps1.push_back(63.0 / (t1 - t_first));
        read_gb_s.push_back(read);
        // Each decode step streams every base weight once (the tied lm_head included).
        stream_gb_s.push_back(static_cast<double>(base.bytes) * 63.0 / (t1 - t_first) / 1e9);
      }
      std::cerr << "  [" << dtype << "] repeat " << r << ": decode b1 " << 64.0 / t1
                << " tok/s (steps after the first " << 63.0 / (t1 - t_first)
                << " tok/s), 4 samples " << 256.0 / t4 << " tok/s total; plain read " << read
                << " GB/s\n";
      if (reference != nullptr) reference->repeat("decode", r > 0);
    }
    result["sample_batch1_tok_s"] = repeats_json(d1);
    result["decode_steps_batch1_tok_s"] = repeats_json(steps1);
    result["sample_4_total_tok_s"] = repeats_json(d4);
    result["plain_read_GB_s"] = stat_json(stats(read_gb_s));
    result["decode_steps_batch1_weight_GB_s"] = stat_json(stats(stream_gb_s));
    probe = torch::Tensor();
    model::reset_peak_resident_memory();
    if (!o.profile.empty()) {
      s.num_samples = 1;
      const std::string path = o.profile + ".decode";
      {
        torch::autograd::profiler::RecordProfile guard(path);
        engine.sample(s);
      }
      s.num_samples = 4;
      s.temperature = 1.0;
      {
        torch::autograd::profiler::RecordProfile guard(path + "4");
        engine.sample(s);
      }
      std::cerr << "  wrote profiler traces of one batch-1 sample to " << path
                << " and of one num_samples=4 sample to " << path << "4\n";
    }
  }

  if (o.rows == "concurrency") {
    // Two runs training at once, as two server workers do: forward_backward 1x256 on each from
    // two threads, with every thread at the full intra-op thread count (OpenMP threads
    // oversubscribe the cores) or at its share, against the same four steps one after another.
    auto run2 = engine.create_run(spec);
    std::vector<engine::TrainExample> one(1);
    one[0].input_ids = bench_tokens(256, 1, vocab);
    const int total = o.threads > 0 ? o.threads : omp_get_max_threads();
    constexpr int kSteps = 2;  // per run
    // Each run gets kSteps forward_backward 1x256 (train) or kSteps batch-1 samples of 64 new
    // tokens after a 32-token prompt (decode); returns the wall time for both runs.
    auto both = [&](bool train, int threads_each, bool concurrent) {
      auto steps = [&](const std::string& id) {
        omp_set_num_threads(threads_each);  // this thread's OpenMP regions (libtorch's too)
        const engine::SampleSpec s = decode_request(id, vocab);
        for (int i = 0; i < kSteps; ++i) {
          if (train) {
            engine.forward(id, one, {}, true);
          } else {
            engine.sample(s);
          }
        }
      };
      return seconds([&] {
        if (!concurrent) {
          steps(run.run_id);
          steps(run2.run_id);
          return;
        }
        std::thread other(steps, run2.run_id);
        steps(run.run_id);
        other.join();
      });
    };
    for (const bool train : {true, false}) {
      both(train, total, false);  // warm-up
      const double tokens = 2.0 * kSteps * (train ? 256 : 64);
      std::vector<double> serial, oversubscribed, shared;
      for (int r = 0; r < o.repeats; ++r) {
        serial.push_back(tokens / both(train, total, false));
        oversubscribed.push_back(tokens / both(train, total, true));
        shared.push_back(tokens / both(train, std::max(1, total / 2), true));
      }
      const std::string row = train ? "concurrent_fb1x256" : "concurrent_sample_b1";
      result[row + "_serial_tok_s"] = stat_json(stats(serial));
      result[row + "_full_threads_tok_s"] = stat_json(stats(oversubscribed));
      result[row + "_shared_threads_tok_s"] = stat_json(stats(shared));
      std::cerr << "  [" << dtype << "] 2 runs x " << (train ? "fb1x256" : "sample b1")
                << " (tok/s total): one after another " << fmt(stats(serial), 1)
                << ", concurrent with " << total << " threads each " << fmt(stats(oversubscribed), 1)
                << ", concurrent with " << std::max(1, total / 2) << " each "
                << fmt(stats(shared), 1) << "\n";
    }
    omp_set_num_threads(total);
    engine.delete_run(run2.run_id);
    return result;
  }

  // 8 runs on one base: each gets gradients and optimizer moments (one step).
  {
    std::vector<std::string> ids;
    // Steady state, not the training rows' transient peaks: the heap they freed is handed back
    // first (glibc keeps it otherwise), here and after the 8 runs.
    model::release_free_heap();
    const auto [rss_before_runs, unused] = rss_bytes();
    (void)unused;
    std::vector<engine::TrainExample> small(1);
    small[0].input_ids = bench_tokens(16, 5, vocab);
    for (int i = 0; i < 8; ++i) {
      auto r = engine.create_run(spec);
      engine.forward(r.run_id, small, {}, true);
      engine.optim_step(r.run_id, adam);
      ids.push_back(r.run_id);
    }
    model::release_free_heap();
    const auto [rss_8, unused2] = rss_bytes();
    (void)unused2;
    const int64_t per_run_state = engine.get_run(ids[0]).trainable_parameters * 4 * 4;  // w, g, m, v fp32
    result["rss_8_runs"] = rss_8;
    result["rss_8_runs_delta"] = rss_8 - rss_before_runs;
    // Without the process's own RSS before loading (libtorch's code and allocator pools),
    // which the bound (base + runs' state + 15%) does not count.
    result["rss_8_runs_net"] = rss_8 - rss_start;
    result["per_run_state_bytes"] = per_run_state;
    result["rss_8_runs_bound"] =
        static_cast<int64_t>(1.15 * static_cast<double>(base.bytes + 9 * per_run_state));
    for (const auto& id : ids) {
      engine.delete_run(id);
    }
  }
  const auto [rss_end, hwm_end] = rss_bytes();
  (void)rss_end;
  result["peak_rss"] = std::max({hwm_base, hwm_end, peak_before_read_probe});
  result["rss_start"] = rss_start;
  return result;
}

// Runs `a` and `b` alternately, rounds + 1 times each (the first round warms up and is dropped):
// milliseconds per call of each, so both see the same drift of the host.
std::pair<std::vector<double>, std::vector<double>> alternate_ms(const std::function<void()>& a,
                                                                 const std::function<void()>& b,
                                                                 int rounds) {
  std::vector<double> a_ms;
  std::vector<double> b_ms;
  for (int r = 0; r <= rounds; ++r) {
    const double ta = seconds(a);
    const double tb = seconds(b);
    if (r > 0) {
      a_ms.push_back(ta * 1e3);
      b_ms.push_back(tb * 1e3);
    }
  }
  return {a_ms, b_ms};
}

// Decode-step linears at Qwen2-0.5B shapes, one row of x: libtorch's bf16 torch::linear vs the
// matrix-vector kernel (both read the weight once per call at best). GB/s of weight read.
nlohmann::json bench_kernels(const BenchOptions& o) {
  nlohmann::json out;
  if (o.threads > 0) {
    torch::set_num_threads(o.threads);
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, n, k] : std::vector<std::tuple<std::string, int64_t, int64_t>>{
           {"mlp_up_4864x896", 4864, 896}, {"lm_head_151936x896", 151936, 896}}) {
    auto w = torch::randn({n, k}).to(torch::kBFloat16);  // [N, K], libtorch's allocator
    auto w_arena = w.clone();                            // [N, K], moved to huge pages below
    const int64_t huge_before = model::huge_page_bytes();
    model::move_to_weight_arena({w_arena});
    std::cerr << "  " << name << ": " << (model::huge_page_bytes() - huge_before) / (1 << 20)
              << " of " << w_arena.nbytes() / (1 << 20) << " MiB of the arena copy on huge pages\n";
    auto x = torch::randn({1, k}).to(torch::kBFloat16);  // [1, K]
    const double bytes = static_cast<double>(n * k * 2);
    std::vector<double> lin;
    std::vector<double> ker;
    std::vector<double> ker_arena;
    for (int r = 0; r <= o.repeats * 4; ++r) {
      const double a = seconds([&] { torch::linear(x, w); });
      const double b = seconds([&] { kernels::small_linear(x, w, {}, torch::kBFloat16); });
      const double c = seconds([&] { kernels::small_linear(x, w_arena, {}, torch::kBFloat16); });
      if (r > 0) {
        lin.push_back(bytes / a / 1e9);
        ker.push_back(bytes / b / 1e9);
        ker_arena.push_back(bytes / c / 1e9);
      }
    }
    out[name] = {{"torch_linear_GB_s", stat_json(stats(lin))},
                 {"small_linear_GB_s", stat_json(stats(ker))},
                 {"small_linear_weight_arena_GB_s", stat_json(stats(ker_arena))}};
    std::cerr << "  " << name << ": torch::linear " << fmt(stats(lin), 2)
              << " GB/s, small_linear " << fmt(stats(ker), 2)
              << " GB/s, small_linear on the weight arena (huge pages) "
              << fmt(stats(ker_arena), 2) << " GB/s\n";
  }
  // The LoRA branch's skinny products at a 1x256 training step (r = 8, bf16 activations):
  // torch::mm on fp32 copies (what the branch did before) vs lora::kernels. Milliseconds.
  const int64_t rows = 256, rank = 8;
  for (const int64_t width : {int64_t{896}, int64_t{4864}}) {
    auto x = torch::randn({rows, width}).to(torch::kBFloat16);  // [N, L] activation / gradient
    auto p = torch::randn({rank, width});                       // [R, L] fp32 (A, or B^T)
    auto u = torch::randn({rows, rank});                        // [N, R] fp32
    auto y = torch::randn({rows, width}).to(torch::kBFloat16);  // [N, L] base output
    const std::vector<std::tuple<std::string, std::function<void()>, std::function<void()>>> ops = {
        {"rows_dot", [&] { torch::mm(x.to(torch::kFloat32), p.t()); },
         [&] { lora::kernels::rows_dot(x, p, 1.0); }},
        {"add_rows_times", [&] { y.add_(torch::mm(u, p)); },
         [&] { lora::kernels::add_rows_times(y, u, p); }},
        {"columns_dot", [&] { torch::mm(u.t(), x.to(torch::kFloat32)); },
         [&] { lora::kernels::columns_dot(u, x); }}};
    for (const auto& [op, with_mm, with_kernel] : ops) {
      const auto [mm_ms, kernel_ms] = alternate_ms(with_mm, with_kernel, o.repeats * 10);
      const std::string name = "lora_" + op + "_256x" + std::to_string(width) + "_r8";
      out[name] = {{"torch_mm_ms", stat_json(stats(mm_ms))},
                   {"lora_kernel_ms", stat_json(stats(kernel_ms))}};
      std::cerr << "  " << name << ": torch::mm " << fmt(stats(mm_ms), 3) << " ms, lora kernel "
                << fmt(stats(kernel_ms), 3) << " ms\n";
    }
  }
  // The forward's lm_head at 1x256 (256 x 896 x 151936, bf16): one GEMM call over the whole
  // vocabulary (oneDNN re-lays-out all 272 MB of weight per call) vs the vocabulary slices
  // target_logprobs runs (default_vocab_slice_rows, ~8 MiB of weight each) into one reused
  // buffer. GEMM only, alternated in this process. GFLOP/s.
  {
    const int64_t rows = 256, hidden = 896, vocab = 151936;
    auto h = torch::randn({rows, hidden}).to(torch::kBFloat16);        // [N, H]
    auto w = torch::randn({vocab, hidden}).mul_(0.05).to(torch::kBFloat16);  // [V, H]
    model::move_to_weight_arena({w});                                  // as the model's lm_head
    const int64_t slice = train::default_vocab_slice_rows(w);
    auto buffer = torch::empty({rows, slice}, h.options());           // [N, S]
    const double flop = 2.0 * rows * hidden * vocab;
    auto [one_call, sliced] = alternate_ms([&] { torch::linear(h, w); },
                                           [&] {
                                             for (int64_t s = 0; s < vocab; s += slice) {
                                               const int64_t width = std::min(slice, vocab - s);
                                               auto out_slice = buffer.narrow(1, 0, width);  // [N, width]
                                               torch::mm_out(out_slice, h, w.narrow(0, s, width).t());
                                             }
                                           },
                                           o.repeats * 2);
    for (auto* times : {&one_call, &sliced}) {
      for (double& t : *times) t = flop / (t * 1e-3) / 1e9;  // ms -> GFLOP/s
    }
    out["lm_head_gemm_256x896x151936"] = {{"one_call_GFLOP_s", stat_json(stats(one_call))},
                                          {"vocab_slices_GFLOP_s", stat_json(stats(sliced))},
                                          {"slice_rows", slice}};
    std::cerr << "  lm_head_gemm_256x896x151936: one call " << fmt(stats(one_call), 1)
              << " GFLOP/s, " << slice << "-row vocabulary slices " << fmt(stats(sliced), 1)
              << " GFLOP/s\n";
  }
  // Attention's softmax at a 1x256 step of Qwen2-0.5B (14 query heads over 2 kv heads, causal):
  // the op chain the layers ran before (fp32 copy, scale, a materialised causal bias, softmax,
  // bf16 copy; backward over fp32 copies) vs attention_kernels. Milliseconds per layer.
  {
    const int64_t kv = 2, g = 7, t = 256;
    const double scale = 0.125;
    auto scores = torch::randn({1, kv, g * t, t}).mul_(3.0).to(torch::kBFloat16);  // [1, KV, G*T, S]
    auto grad = torch::randn({1, kv, g * t, t}).to(torch::kBFloat16);              // [1, KV, G*T, S]
    auto chain_probs = [&] {
      auto x = (scores.to(torch::kFloat32) * scale).view({1, kv, g, t, t});
      x.add_(model::detail::attention_bias({}, 1, 0, t, torch::kCPU).unsqueeze(1));
      return torch::softmax(x, -1).view(scores.sizes());  // fp32
    };
    const std::vector<std::tuple<std::string, std::function<void()>, std::function<void()>>> ops = {
        {"softmax", [&] { chain_probs().to(torch::kBFloat16); },
         [&] { model::attention_kernels::softmax(scores, {}, t, scale, torch::kBFloat16); }},
        {"softmax_backward",
         [&] {
           auto p = chain_probs();
           auto gp = grad.to(torch::kFloat32);
           auto row_dot = (gp * p).sum(-1, true);
           gp.sub_(row_dot).mul_(p).mul_(scale).to(torch::kBFloat16);
         },
         [&] { model::attention_kernels::softmax_backward(grad, scores, {}, t, scale); }}};
    for (const auto& [op, with_chain, with_kernel] : ops) {
      const auto [chain_ms, kernel_ms] = alternate_ms(with_chain, with_kernel, o.repeats * 10);
      const std::string name = "attention_" + op + "_14x256x256";
      out[name] = {{"op_chain_ms", stat_json(stats(chain_ms))},
                   {"kernel_ms", stat_json(stats(kernel_ms))}};
      std::cerr << "  " << name << ": op chain " << fmt(stats(chain_ms), 3) << " ms, kernel "
                << fmt(stats(kernel_ms), 3) << " ms\n";
    }
  }
  return out;
}

void print_table(const nlohmann::json& all, const nlohmann::json& reference) {
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"forward_backward_1x256_tok_s", "forward_backward 1x256 (tok/s)"},
      {"forward_backward_4x128_tok_s", "forward_backward 4x128 (tok/s)"},
      {"forward_1x256_tok_s", "forward only 1x256 (tok/s)"},
      {"optim_step_ms", "optim_step (ms)"},
      {"sample_batch1_tok_s", "sample batch 1, 64 new (tok/s)"},
      {"decode_steps_batch1_tok_s", "  its 63 steps after the first token"},
      {"sample_4_total_tok_s", "sample num_samples=4 (tok/s total)"},
      {"concurrent_fb1x256_serial_tok_s", "2 runs fb 1x256, one after another"},
      {"concurrent_fb1x256_full_threads_tok_s", "2 runs at once, all threads each"},
      {"concurrent_fb1x256_shared_threads_tok_s", "2 runs at once, half the threads each"},
      {"concurrent_sample_b1_serial_tok_s", "2 runs sample b1, one after another"},
      {"concurrent_sample_b1_full_threads_tok_s", "2 runs at once, all threads each"},
      {"concurrent_sample_b1_shared_threads_tok_s", "2 runs at once, half the threads each"}};
  for (const auto& [dtype, r] : all.items()) {
    std::cout << "\n== base dtype " << dtype << " ==\n";
    for (const auto& [key, label] : rows) {
      if (!r.contains(key)) {
        continue;
      }
      Stats s{r[key]["median"], r[key]["min"], r[key]["max"]};
      std::cout << std::left << std::setw(38) << label << std::right << std::setw(22)
                << fmt(s, key == "optim_step_ms" ? 2 : 1);
      if (reference.contains(dtype) && reference[dtype].contains(key)) {
        const nlohmann::json& ref_row = reference[dtype][key];
        const double ref = ref_row["median"];
        const bool lower_is_better = key == "optim_step_ms";
        std::cout << "   pytorch eager " << std::fixed << std::setprecision(1) << ref
                  << "  ratio " << std::setprecision(2)
                  << (lower_is_better ? ref / s.median : s.median / ref);
        // Repeat i of each side ran back to back: the median of the per-pair ratios.
        if (r[key].contains("values") && ref_row.contains("values") &&
            r[key]["values"].size() == ref_row["values"].size()) {
          std::vector<double> pairs;
          for (size_t i = 0; i < ref_row["values"].size(); ++i) {
            const double ours = r[key]["values"][i], theirs = ref_row["values"][i];
            pairs.push_back(lower_is_better ? theirs / ours : ours / theirs);
          }
          std::cout << " (pairs " << fmt(stats(pairs), 2) << ")";
        }
      }
      std::cout << "\n";
    }
    if (r.contains("plain_read_GB_s")) {
      std::cout << std::fixed << std::setprecision(1) << "batch-1 decode steps stream the weights at "
                << r["decode_steps_batch1_weight_GB_s"]["median"].get<double>()
                << " GB/s; a plain read after each repeat "
                << fmt(Stats{r["plain_read_GB_s"]["median"], r["plain_read_GB_s"]["min"],
                             r["plain_read_GB_s"]["max"]})
                << " GB/s\n";
    }
    auto gb = [](const nlohmann::json& v) { return v.get<double>() / 1e9; };
    std::cout << std::fixed << std::setprecision(2) << "RSS after load " << gb(r["rss_after_load"])
              << " GB (peak while loading " << gb(r["peak_rss_load"]) << " GB, "
              << gb(r["huge_page_bytes_after_load"]) << " GB on huge pages)";
    if (r.contains("peak_rss_fb1x256")) {
      std::cout << "; peak RSS through fb 1x256 " << gb(r["peak_rss_fb1x256"]) << " GB";
    }
    if (r.contains("peak_rss_train")) {
      std::cout << "; peak RSS of the training rows " << gb(r["peak_rss_train"]) << " GB";
    }
    std::cout << "\n";
    if (!r.contains("peak_rss")) continue;  // --rows concurrency stops before the memory rows
    std::cout << std::fixed << std::setprecision(2) << "peak RSS " << gb(r["peak_rss"])
              << " GB; base " << gb(r["base_bytes"]) << " GB; 8 runs add "
              << gb(r["rss_8_runs_delta"]) << " GB (state " << gb(r["per_run_state_bytes"])
              << " GB/run); RSS with 8 runs " << gb(r["rss_8_runs"]) << " GB, "
              << gb(r["rss_8_runs_net"]) << " GB without the runtime's "
              << gb(r["rss_start"]) << " GB (bound " << gb(r["rss_8_runs_bound"]) << ")\n";
    if (reference.contains(dtype) && reference[dtype].contains("peak_rss")) {
      std::cout << "pytorch eager peak RSS " << gb(reference[dtype]["peak_rss"]) << " GB\n";
    }
  }
}

// The reference script: --reference-script, else bench/reference_pytorch.py from the working
// directory (a source checkout) or above the executable (build-dir/cli/); empty, with a message,
// when python3 with torch or the script is missing.
std::string find_reference_script(const BenchOptions& o) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
    std::cerr << "reference: /usr/bin/python3 cannot import torch; skipped\n";
    return {};
  }
  if (!o.reference_script.empty()) {
    if (!fs::exists(o.reference_script)) {
      throw CliExit(kExitUsage, "--reference-script: " + o.reference_script + " does not exist");
    }
    return o.reference_script;
  }
  std::error_code ec;
  const fs::path exe_dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
  for (const fs::path& p : {fs::path("bench/reference_pytorch.py"),
                            exe_dir / "../bench/reference_pytorch.py",
                            exe_dir / "../../bench/reference_pytorch.py"}) {
    if (fs::exists(p)) return p.string();
  }
  std::cerr << "reference: bench/reference_pytorch.py not found; pass --reference-script\n";
  return {};
}

}  // namespace

void register_bench_command(CLI::App& app, CliContext& ctx) {
  auto opts = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand(
      "bench", "Benchmark the engine in-process (training, sampling, memory) on a model directory");
  cmd->add_option("--model", opts->model, "Qwen2 model directory")->required();
  cmd->add_option("--preset", opts->preset,
                  "Write this random preset (tiny | qwen2-0.5b) into --model when it is missing");
  cmd->add_option("--dtype", opts->dtypes, "Base dtypes to measure (bf16, fp32)")->delimiter(',');
  cmd->add_option("--threads", opts->threads, "Intra-op threads (0 = libtorch default)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--repeats", opts->repeats, "Timed repeats per row (after one warm-up)")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--rows", opts->rows, "all | train | decode | kernels (decode matvec, LoRA, lm_head and attention-softmax micro-benches) | concurrency (two runs training at once)")
      ->check(CLI::IsMember({"all", "train", "decode", "kernels", "concurrency"}));
  cmd->add_option("--profile", opts->profile,
                  "Write a libtorch profiler trace (chrome://tracing JSON) of one extra "
                  "forward_backward 1x256 to this file and of one forward 1x256 to FILE.forward "
                  "(train rows), and of one batch-1 sample to "
                  "FILE.decode and of one num_samples=4 sample to FILE.decode4 (decode rows)");
  cmd->add_flag("--reference", opts->reference,
                "Also run bench/reference_pytorch.py (PyTorch eager + LoRA) and print ratios");
  cmd->add_option("--reference-script", opts->reference_script, "Path to reference_pytorch.py");
  cmd->callback([opts, &ctx] {
    if (!opts->profile.empty() && !std::ofstream(opts->profile)) {
      // Checked up front: the profiler would otherwise drop the trace silently after the run.
      throw CliExit(kExitUsage, "--profile: cannot write " + opts->profile);
    }
    if (!fs::exists(fs::path(opts->model) / "config.json")) {
      if (opts->preset.empty()) {
        throw CliExit(kExitUsage, opts->model + " has no config.json (pass --preset qwen2-0.5b "
                                                "to create a random model there)");
      }
      model::RandomModelOptions ro;
      ro.preset = opts->preset;
      ro.out_dir = opts->model;
      ro.dtype = "bf16";
      std::cerr << "writing random " << opts->preset << " model to " << opts->model << "\n";
      model::write_random_model(ro);
    }
    nlohmann::json all = nlohmann::json::object();
    if (opts->rows == "kernels") {
      std::cout << bench_kernels(*opts).dump(2) << "\n";
      return;
    }
    // The reference (its own process, so its peak RSS is its own) runs one repeat right after
    // each of ours: both sides of a ratio see the same stretch of the host's drifting speed.
    const std::string script = opts->reference ? find_reference_script(*opts) : std::string();
    nlohmann::json reference = nlohmann::json::object();
    for (const auto& dtype : opts->dtypes) {
      std::unique_ptr<PairedReference> paired;
      if (!script.empty() && (opts->rows == "all" || opts->rows == "train" ||
                              opts->rows == "decode")) {
        std::cerr << "reference: " << script << " --dtype " << dtype << " --serve\n";
        paired = std::make_unique<PairedReference>(script, opts->model, dtype, opts->threads);
      }
      std::cerr << "benchmarking base dtype " << dtype << "\n";
      all[dtype] = bench_dtype(*opts, dtype, paired.get());
      if (paired) {
        nlohmann::json r = nlohmann::json::object();
        for (const auto& [row, values] : paired->values()) {
          if (!values.empty()) r[row] = repeats_json(values);
        }
        r["peak_rss"] = paired->peak_rss();
        reference[dtype] = std::move(r);
      }
    }
    if (ctx.json) {
      std::cout << nlohmann::json{{"eztinker", all}, {"pytorch_eager", reference}}.dump(2) << "\n";
    } else {
      print_table(all, reference);
    }
  });
}

}  // namespace eztinker::cli
