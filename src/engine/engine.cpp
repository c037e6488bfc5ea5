// Engine implementation (see engine.h): a registry of shared, frozen base models keyed by
// (resolved directory, dtype, device), a registry of runs (LoRA adapter + AdamW each), the
// training / sampling entry points, and checkpoints on disk:
//   <checkpoints_dir>/runs.json                     runs known to this directory (metadata)
//   <checkpoints_dir>/<run_id>/<name>/              one checkpoint, swapped in atomically
//       adapter_config.json, adapter_model.safetensors   (PEFT layout)
//       optimizer.safetensors                             (AdamW moments, PEFT-keyed)
//       checkpoint.json                                   (step, tokens, base model, created_at,
//                                                          the caller's attributes)
#include "engine/engine.h"

#include "engine/test_hooks.h"
#include "lora/adapter_io.h"
#include "model/dtype.h"
#include "model/model_resolver.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "sampling/generate.h"
#include "train/adamw.h"
#include "train/losses.h"

#include <eztinker/error.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

namespace eztinker::engine {

namespace fs = std::filesystem;

namespace testing {
namespace {
std::function<void(const std::string&)>& save_hook() {
  static std::function<void(const std::string&)> hook;
  return hook;
}
}  // namespace
void set_checkpoint_save_hook(std::function<void(const std::string& stage)> hook) {
  save_hook() = std::move(hook);
}
}  // namespace testing

namespace {

constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kCheckpointMetaFile = "checkpoint.json";
constexpr const char* kRunsFile = "runs.json";
constexpr size_t kMaxNameLength = 128;

void hook(const std::string& stage) {
  auto& h = testing::save_hook();
  if (h) {
    h(stage);
  }
}

[[noreturn]] void validation_error(const std::string& message) {
  throw ApiError(ErrorType::kValidation, message);
}

[[noreturn]] void run_not_found(const std::string& run_id) {
  throw ApiError(ErrorType::kNotFound, "Run ID " + run_id + " not found");
}

std::string now_iso8601() {
  const auto now = std::chrono::system_clock::now();
  const auto secs = std::chrono::system_clock::to_time_t(now);
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
      1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::ostringstream out;
  out << std::put_time(&tm, "%Y-%m-%dT%H:%M:%S") << "." << std::setw(6) << std::setfill('0')
      << micros << "Z";
  return out.str();
}

std::string random_hex(int digits) {
  static std::mutex mutex;
  static std::mt19937_64 gen(std::random_device{}());
  std::lock_guard<std::mutex> lock(mutex);
  std::ostringstream out;
  for (int i = 0; i < digits; ++i) {
    out << "0123456789abcdef"[gen() % 16];
  }
  return out.str();
}

// Names that become directory components: no '/', no "..", no NUL, not empty, bounded, and not
// hidden (a leading '.' is reserved for in-progress temp dirs).
void validate_path_component(const std::string& value, const std::string& what) {
  if (value.empty()) {
    validation_error(what + " must not be empty");
  }
  if (value.size() > kMaxNameLength) {
    validation_error(what + " is " + std::to_string(value.size()) + " characters, at most " +
                     std::to_string(kMaxNameLength) + " allowed");
  }
  if (value.find('/') != std::string::npos || value.find('\\') != std::string::npos) {
    validation_error(what + " \"" + value + "\" must not contain '/' or '\\'");
  }
  if (value.find('\0') != std::string::npos) {
    validation_error(what + " must not contain NUL");
  }
  if (value.find("..") != std::string::npos) {
    validation_error(what + " \"" + value + "\" must not contain \"..\"");
  }
  if (value.front() == '.') {
    validation_error(what + " \"" + value + "\" must not start with '.'");
  }
}

void fsync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_json_file(const fs::path& path, const nlohmann::json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  out.close();
  if (!out) {
    throw ApiError(ErrorType::kInternal, "cannot write " + path.string());
  }
}

nlohmann::json read_json_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error("cannot read " + path.string());
  }
  return nlohmann::json::parse(in);
}

int64_t directory_size(const fs::path& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(dir, ec)) {
    if (entry.is_regular_file(ec)) {
      total += static_cast<int64_t>(entry.file_size(ec));
    }
  }
  return total;
}

// The optimizer tensor names, keyed like the adapter so a checkpoint is self-describing.
std::string moment_key(const std::string& kind, const std::string& module_path, bool lora_a) {
  return kind + "." + lora::peft_key(module_path, lora_a);
}

}  // namespace

// ----------------------------------------------------------------------------------------------
// Registries

struct BaseModel {
  std::string name;  // the name the first caller used
  fs::path path;     // resolved model directory
  torch::Dtype dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
  model::Qwen2ForCausalLM model{nullptr};
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;  // null when the dir has none
  std::vector<int32_t> eos_ids;
  int64_t parameters = 0;
  int64_t bytes = 0;
  bool pinned = false;  // loaded explicitly (load_base_model): kept without runs
};

struct Run {
  std::string id;
  std::string base_model;  // as requested
  std::shared_ptr<BaseModel> base;
  lora::LoraAdapter adapter;
  train::AdamW optimizer;
  int64_t tokens_trained = 0;
  std::optional<double> last_loss;
  std::string created_at;
  std::mutex mutex;  // callers serialise a run's jobs; this makes misuse safe, not concurrent
};

struct Engine::Impl {
  EngineOptions options;
  mutable std::mutex mutex;  // guards bases and runs (the maps, not the objects)
  std::map<std::tuple<std::string, int, std::string>, std::shared_ptr<BaseModel>> bases;
  std::map<std::string, std::shared_ptr<Run>> runs;

  std::shared_ptr<Run> find_run(const std::string& run_id) const {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = runs.find(run_id);
    if (it == runs.end()) {
      run_not_found(run_id);
    }
    return it->second;
  }

  fs::path resolve_model_dir(const std::string& name) const;
  std::shared_ptr<BaseModel> acquire_base(const std::string& name, bool pin);
  void release_unused_bases_locked();
  void persist_runs_locked() const;
  RunInfo run_info(const Run& run) const;
};

fs::path Engine::Impl::resolve_model_dir(const std::string& name) const {
  if (name.empty()) {
    throw ApiError(ErrorType::kBadRequest, "base_model must not be empty");
  }
  model::ResolveOptions ro;
  ro.models_dir = options.models_dir;
  ro.aliases = options.aliases;
  ro.allow_download = options.allow_download;
  ro.progress = false;
  try {
    return fs::weakly_canonical(model::resolve_model(name, ro));
  } catch (const std::exception& e) {
    throw ApiError(ErrorType::kBadRequest, "Model " + name + " cannot be loaded: " + e.what());
  }
}

std::shared_ptr<BaseModel> Engine::Impl::acquire_base(const std::string& name, bool pin) {
  const fs::path dir = resolve_model_dir(name);
  torch::Device device(options.device);
  torch::Dtype dtype;
  try {
    dtype = model::resolve_dtype(options.dtype, device);
  } catch (const std::exception& e) {
    throw ApiError(ErrorType::kBadRequest, e.what());
  }
  const auto key = std::make_tuple(dir.string(), static_cast<int>(dtype), device.str());
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = bases.find(key); it != bases.end()) {
      it->second->pinned = it->second->pinned || pin;
      return it->second;
    }
  }
  // Load outside the lock (seconds for a real model); a concurrent loader of the same model may
  // race us, in which case the first one registered wins and ours is dropped.
  auto base = std::make_shared<BaseModel>();
  base->name = name;
  base->path = dir;
  base->dtype = dtype;
  base->device = device;
  try {
    base->model = model::load_model(dir, dtype, device);
  } catch (const ApiError&) {
    throw;
  } catch (const std::exception& e) {
    throw ApiError(ErrorType::kBadRequest, "Model " + name + " cannot be loaded: " + e.what());
  }
  base->model->eval();
  for (const auto& p : base->model->parameters()) {
    base->parameters += p.numel();
    base->bytes += p.numel() * static_cast<int64_t>(p.element_size());
  }
  std::error_code ec;
  if (fs::exists(dir / "tokenizer.json", ec) || fs::exists(dir / "vocab.json", ec) ||
      fs::exists(dir / "tokenizer.model", ec)) {
    try {
      base->tokenizer = tokenizer::Tokenizer::load(dir);
    } catch (const std::exception& e) {
      throw ApiError(ErrorType::kBadRequest,
                     "Model " + name + " has an unreadable tokenizer: " + e.what());
    }
  }
  std::set<int32_t> eos;
  for (auto id : base->model->config().eos_token_ids) {
    eos.insert(static_cast<int32_t>(id));
  }
  if (base->tokenizer) {
    for (auto id : base->tokenizer->eos_token_ids()) {
      eos.insert(id);
    }
  }
  base->eos_ids.assign(eos.begin(), eos.end());
  base->pinned = pin;
  std::lock_guard<std::mutex> lock(mutex);
  auto [it, inserted] = bases.emplace(key, base);
  it->second->pinned = it->second->pinned || pin;
  return it->second;
}

void Engine::Impl::release_unused_bases_locked() {
  for (auto it = bases.begin(); it != bases.end();) {
    // use_count 1 = only this registry holds it (no run, no in-flight job).
    if (!it->second->pinned && it->second.use_count() == 1) {
      it = bases.erase(it);
    } else {
      ++it;
    }
  }
}

void Engine::Impl::persist_runs_locked() const {
  // Best effort: the metadata lets a restarted server show which runs its checkpoints came
  // from; a failure to write it must not fail the run operation.
  try {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [id, run] : runs) {
      j[id] = {{"base_model", run->base_model},
               {"created_at", run->created_at},
               {"lora_config", lora::adapter_config_to_json(run->adapter.config, run->base_model)}};
    }
    fs::create_directories(options.checkpoints_dir);
    const fs::path tmp = options.checkpoints_dir / (".runs.json.tmp-" + random_hex(8));
    write_json_file(tmp, j);
    fs::rename(tmp, options.checkpoints_dir / kRunsFile);
  } catch (const std::exception&) {
  }
}

RunInfo Engine::Impl::run_info(const Run& run) const {
  RunInfo info;
  info.run_id = run.id;
  info.base_model = run.base_model;
  info.device = run.base->device.str();
  info.dtype = model::dtype_name(run.base->dtype);
  info.lora_config = run.adapter.config;
  info.trainable_parameters = run.adapter.num_parameters();
  info.step = run.optimizer.step_count();
  info.tokens_trained = run.tokens_trained;
  info.last_loss = run.last_loss;
  info.created_at = run.created_at;
  return info;
}

namespace {
void load_checkpoint_into(Run& run, const fs::path& dir, bool load_optimizer);
}  // namespace

// ----------------------------------------------------------------------------------------------
// Engine

Engine::Engine(EngineOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  if (impl_->options.threads > 0) {
    torch::set_num_threads(impl_->options.threads);
  }
}

Engine::~Engine() = default;

const EngineOptions& Engine::options() const { return impl_->options; }

namespace {
BaseModelInfo base_info(const BaseModel& base, int64_t runs) {
  BaseModelInfo info;
  info.name = base.name;
  info.path = base.path.string();
  info.dtype = model::dtype_name(base.dtype);
  info.device = base.device.str();
  info.parameters = base.parameters;
  info.bytes = base.bytes;
  info.runs = runs;
  return info;
}
}  // namespace

BaseModelInfo Engine::load_base_model(const std::string& name) {
  auto base = impl_->acquire_base(name, /*pin=*/true);
  return base_info(*base, 0);
}

std::vector<BaseModelInfo> Engine::base_models() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::vector<BaseModelInfo> out;
  for (const auto& [key, base] : impl_->bases) {
    int64_t runs = 0;
    for (const auto& [id, run] : impl_->runs) {
      runs += run->base == base ? 1 : 0;
    }
    out.push_back(base_info(*base, runs));
  }
  return out;
}

RunInfo Engine::create_run(const CreateRunSpec& spec) {
  std::string run_id = spec.run_id.value_or("");
  if (spec.run_id) {
    validate_path_component(run_id, "run_id");
  }
  const auto& lc = spec.lora_config;
  if (lc.r < 1) {
    validation_error("lora_config.r must be >= 1, got " + std::to_string(lc.r));
  }
  if (!std::isfinite(lc.lora_alpha) || lc.lora_alpha <= 0.0) {
    validation_error("lora_config.lora_alpha must be > 0");
  }
  if (!(lc.lora_dropout >= 0.0 && lc.lora_dropout < 1.0)) {
    validation_error("lora_config.lora_dropout must be in [0, 1)");
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (spec.run_id && impl_->runs.count(run_id)) {
      throw ApiError(ErrorType::kConflict, "Run ID " + run_id + " already exists");
    }
  }
  auto base = impl_->acquire_base(spec.base_model, /*pin=*/false);
  auto run = std::make_shared<Run>();
  run->base_model = spec.base_model;
  run->base = base;
  run->created_at = now_iso8601();
  try {
    run->adapter = lora::create_lora_adapter(
        lc, *base->model, spec.seed.value_or(std::random_device{}()));
  } catch (const std::invalid_argument& e) {
    validation_error(std::string("lora_config: ") + e.what());
  }
  run->optimizer = train::AdamW(run->adapter.parameters());
  if (spec.from_checkpoint) {
    // Loaded into the fresh run before it is registered, so a bad path creates nothing.
    const fs::path dir = *spec.from_checkpoint;
    if (!fs::is_directory(dir)) {
      throw ApiError(ErrorType::kNotFound,
                     "Checkpoint directory " + dir.string() + " not found");
    }
    load_checkpoint_into(*run, dir, /*load_optimizer=*/true);
  }
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (!spec.run_id) {
    do {
      run_id = "run_" + random_hex(8);
    } while (impl_->runs.count(run_id));
  } else if (impl_->runs.count(run_id)) {
    throw ApiError(ErrorType::kConflict, "Run ID " + run_id + " already exists");
  }
  run->id = run_id;
  impl_->runs.emplace(run_id, run);
  impl_->persist_runs_locked();
  return impl_->run_info(*run);
}

void Engine::delete_run(const std::string& run_id) {
  std::shared_ptr<Run> run;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    auto it = impl_->runs.find(run_id);
    if (it == impl_->runs.end()) {
      run_not_found(run_id);
    }
    run = it->second;
    impl_->runs.erase(it);
  }
  // Drop our reference to the base outside the map before checking what is unused; a job
  // still running on this run keeps its own reference and the base lives until it ends.
  {
    std::lock_guard<std::mutex> run_lock(run->mutex);
    run->base.reset();
  }
  run.reset();
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->release_unused_bases_locked();
  impl_->persist_runs_locked();
}

std::vector<RunInfo> Engine::list_runs() const {
  std::vector<std::shared_ptr<Run>> runs;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    for (const auto& [id, run] : impl_->runs) {
      runs.push_back(run);
    }
  }
  std::vector<RunInfo> out;
  for (const auto& run : runs) {
    out.push_back(impl_->run_info(*run));
  }
  return out;
}

RunInfo Engine::get_run(const std::string& run_id) const {
  return impl_->run_info(*impl_->find_run(run_id));
}

bool Engine::has_run(const std::string& run_id) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->runs.count(run_id) != 0;
}

std::shared_ptr<const tokenizer::Tokenizer> Engine::run_tokenizer(const std::string& run_id) const {
  auto run = impl_->find_run(run_id);
  if (!run->base->tokenizer) {
    throw ApiError(ErrorType::kBadRequest,
                   "Model " + run->base_model + " has no tokenizer files in " +
                       run->base->path.string());
  }
  return run->base->tokenizer;
}

std::shared_ptr<const tokenizer::Tokenizer> Engine::model_tokenizer(const std::string& base_model) {
  auto base = impl_->acquire_base(base_model, /*pin=*/true);
  if (!base->tokenizer) {
    throw ApiError(ErrorType::kBadRequest, "Model " + base_model + " has no tokenizer files in " +
                                               base->path.string());
  }
  return base->tokenizer;
}

int64_t Engine::run_max_positions(const std::string& run_id) const {
  return impl_->find_run(run_id)->base->model->config().max_position_embeddings;
}

int64_t Engine::run_vocab_size(const std::string& run_id) const {
  return impl_->find_run(run_id)->base->model->config().vocab_size;
}

// ----------------------------------------------------------------------------------------------
// forward / forward_backward

namespace {

bool is_rl(LossFn fn) { return fn == LossFn::kImportanceSampling || fn == LossFn::kPpo; }

// Checks one batch against the model; every message names the example and the field.
void validate_batch(const std::vector<TrainExample>& batch, const LossSpec& loss,
                    const model::Qwen2Config& config) {
  if (batch.empty()) {
    validation_error("batch is empty: expected at least one example");
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& ex = batch[i];
    const std::string where = batch.size() == 1 ? "" : "examples[" + std::to_string(i) + "].";
    const size_t n = ex.input_ids.size();
    if (n == 0) {
      validation_error(where + "input_ids is empty: expected at least one token");
    }
    if (static_cast<int64_t>(n) > config.max_position_embeddings) {
      validation_error(where + "input_ids has " + std::to_string(n) +
                       " tokens, longer than the model's max_position_embeddings " +
                       std::to_string(config.max_position_embeddings));
    }
    for (size_t t = 0; t < n; ++t) {
      if (ex.input_ids[t] < 0 || ex.input_ids[t] >= config.vocab_size) {
        validation_error(where + "input_ids[" + std::to_string(t) + "] = " +
                         std::to_string(ex.input_ids[t]) + " is outside the vocabulary [0, " +
                         std::to_string(config.vocab_size) + ")");
      }
    }
    if (!ex.target_ids.empty()) {
      if (ex.target_ids.size() != n) {
        validation_error(where + "target_ids has " + std::to_string(ex.target_ids.size()) +
                         " entries, expected " + std::to_string(n) +
                         " (one per input_ids entry; not pre-shifted)");
      }
      for (size_t t = 0; t < n; ++t) {
        const int32_t y = ex.target_ids[t];
        if (y != loss.ignore_index && (y < 0 || y >= config.vocab_size)) {
          validation_error(where + "target_ids[" + std::to_string(t) + "] = " +
                           std::to_string(y) + " is outside the vocabulary [0, " +
                           std::to_string(config.vocab_size) + ") and is not ignore_index " +
                           std::to_string(loss.ignore_index));
        }
      }
    }
    auto check_per_position = [&](const std::vector<float>& v, const char* field, bool required) {
      if (v.empty() && !required) {
        return;
      }
      if (v.size() != n) {
        validation_error(where + field + " has " + std::to_string(v.size()) +
                         " entries, expected " + std::to_string(n) +
                         " (one per input_ids entry)");
      }
      for (size_t t = 0; t < n; ++t) {
        if (!std::isfinite(v[t])) {
          validation_error(where + field + "[" + std::to_string(t) + "] is not finite");
        }
      }
    };
    check_per_position(ex.weights, "weights", false);
    check_per_position(ex.advantages, "advantages", is_rl(loss.fn));
    check_per_position(ex.sampler_logprobs, "logprobs", is_rl(loss.fn));
  }
  if (loss.fn == LossFn::kFocal && (!(loss.focal_gamma >= 0.0) || !std::isfinite(loss.focal_alpha))) {
    validation_error("focal_gamma must be >= 0 and focal_alpha finite");
  }
  if (loss.fn == LossFn::kPpo && !(loss.clip_low <= 1.0 && loss.clip_high >= 1.0)) {
    validation_error("ppo needs clip_low <= 1 <= clip_high");
  }
}

// The padded batch and the flattened predicted positions.
struct PackedBatch {
  torch::Tensor input_ids;       // [B, T] int64, right-padded with 0
  torch::Tensor attention_mask;  // [B, T] int64, undefined when no example is padded
  torch::Tensor rows;            // [N] int64 flat index b * T + t of the predicting position
  torch::Tensor targets;         // [N] int64 (ignored targets replaced by 0)
  train::LossInputs loss;        // weights / mask / advantages / sampler logprobs, [N] each
  std::vector<int64_t> example_offset;  // start of example i's positions in [0, N)
};

PackedBatch pack_batch(const std::vector<TrainExample>& batch, const LossSpec& loss) {
  PackedBatch p;
  const int64_t b = static_cast<int64_t>(batch.size());
  int64_t t_max = 0;
  bool ragged = false;
  for (const auto& ex : batch) {
    const auto n = static_cast<int64_t>(ex.input_ids.size());
    ragged = ragged || (t_max != 0 && n != t_max);
    t_max = std::max(t_max, n);
  }
  std::vector<int64_t> ids(static_cast<size_t>(b * t_max), 0);
  std::vector<int64_t> mask(static_cast<size_t>(b * t_max), 0);
  std::vector<int64_t> rows;
  std::vector<int64_t> targets;
  std::vector<float> weights;
  std::vector<uint8_t> keep;
  std::vector<float> advantages;
  std::vector<float> sampler_lp;
  const bool rl = is_rl(loss.fn);
  for (int64_t i = 0; i < b; ++i) {
    const auto& ex = batch[static_cast<size_t>(i)];
    const auto n = static_cast<int64_t>(ex.input_ids.size());
    const auto& tgt = ex.target_ids.empty() ? ex.input_ids : ex.target_ids;
    p.example_offset.push_back(static_cast<int64_t>(rows.size()));
    for (int64_t t = 0; t < n; ++t) {
      ids[static_cast<size_t>(i * t_max + t)] = ex.input_ids[static_cast<size_t>(t)];
      mask[static_cast<size_t>(i * t_max + t)] = 1;
    }
    // Position t predicts target_ids[t + 1] (EZTinker alignment: shifted here, not by callers).
    for (int64_t t = 0; t + 1 < n; ++t) {
      const auto next = static_cast<size_t>(t + 1);
      const int32_t y = tgt[next];
      const bool ignored = y == loss.ignore_index;
      rows.push_back(i * t_max + t);
      targets.push_back(ignored ? 0 : y);
      keep.push_back(ignored ? 0 : 1);
      weights.push_back(ignored ? 0.0F : (ex.weights.empty() ? 1.0F : ex.weights[next]));
      if (rl) {
        advantages.push_back(ex.advantages[next]);
        sampler_lp.push_back(ex.sampler_logprobs[next]);
      }
    }
  }
  p.example_offset.push_back(static_cast<int64_t>(rows.size()));
  p.input_ids = torch::tensor(ids, torch::kLong).view({b, t_max});  // [B, T]
  if (ragged) {
    p.attention_mask = torch::tensor(mask, torch::kLong).view({b, t_max});  // [B, T]
  }
  p.rows = torch::tensor(rows, torch::kLong);        // [N]
  p.targets = torch::tensor(targets, torch::kLong);  // [N]
  p.loss.weights = torch::tensor(weights, torch::kFloat32);                          // [N]
  p.loss.mask = torch::tensor(std::vector<int64_t>(keep.begin(), keep.end())).to(torch::kBool);  // [N]
  if (rl) {
    p.loss.advantages = torch::tensor(advantages, torch::kFloat32);        // [N]
    p.loss.sampler_logprobs = torch::tensor(sampler_lp, torch::kFloat32);  // [N]
  }
  return p;
}

train::LossOptions to_loss_options(const LossSpec& spec) {
  train::LossOptions o;
  switch (spec.fn) {
    case LossFn::kCrossEntropy:
    case LossFn::kWeightedCrossEntropy: o.kind = train::LossKind::kCrossEntropy; break;
    case LossFn::kFocal: o.kind = train::LossKind::kFocal; break;
    case LossFn::kImportanceSampling: o.kind = train::LossKind::kImportanceSampling; break;
    case LossFn::kPpo: o.kind = train::LossKind::kPpo; break;
  }
  o.reduction_sum = spec.reduction_sum;
  o.focal_alpha = spec.focal_alpha;
  o.focal_gamma = spec.focal_gamma;
  o.clip_low = spec.clip_low;
  o.clip_high = spec.clip_high;
  return o;
}

// Runs the model and the loss; backward() when asked. The adapter may be null (bare base).
ForwardResult run_forward(model::Qwen2ForCausalLMImpl& model, lora::LoraAdapter* adapter,
                          const std::vector<TrainExample>& batch, const LossSpec& loss,
                          bool backward) {
  PackedBatch p = pack_batch(batch, loss);
  const auto device = model.device();
  std::optional<torch::NoGradGuard> no_grad;
  if (!backward) {
    no_grad.emplace();
  }
  if (adapter != nullptr) {
    adapter->training = backward;  // dropout only while training
  }
  model::ForwardOptions options;
  options.adapter = adapter;
  if (p.attention_mask.defined()) {
    options.attention_mask = p.attention_mask.to(device);
  }
  ForwardResult result;
  torch::Tensor loss_value;
  try {
    auto hidden = model.forward_hidden(p.input_ids.to(device), options);  // [B, T, H]
    auto flat = hidden.reshape({-1, hidden.size(-1)});                     // [B*T, H]
    auto selected = flat.index_select(0, p.rows.to(device));               // [N, H]
    p.loss.logprobs = train::target_logprobs(selected, model.lm_head_weight(),
                                             p.targets.to(device));        // [N] fp32
    auto inputs = p.loss;
    inputs.weights = inputs.weights.to(device);
    inputs.mask = inputs.mask.to(device);
    if (inputs.advantages.defined()) {
      inputs.advantages = inputs.advantages.to(device);
      inputs.sampler_logprobs = inputs.sampler_logprobs.to(device);
    }
    loss_value = train::reduce_loss(inputs, to_loss_options(loss));  // []
    if (backward && loss_value.requires_grad()) {
      loss_value.backward();
    }
  } catch (...) {
    if (adapter != nullptr) {
      adapter->training = false;
    }
    throw;
  }
  if (adapter != nullptr) {
    adapter->training = false;
  }
  result.loss = loss_value.item<double>();
  auto lp = p.loss.logprobs.detach().to(torch::kCPU).contiguous();  // [N]
  auto keep = p.loss.mask.to(torch::kCPU).contiguous();              // [N]
  auto w = p.loss.weights;                                           // [N]
  result.num_tokens = (keep & (w != 0)).sum().item<int64_t>();
  const float* lpp = lp.data_ptr<float>();
  const bool* kp = keep.data_ptr<bool>();
  for (size_t i = 0; i + 1 < p.example_offset.size(); ++i) {
    std::vector<std::optional<float>> row;
    for (int64_t j = p.example_offset[i]; j < p.example_offset[i + 1]; ++j) {
      row.push_back(kp[j] ? std::optional<float>(lpp[j]) : std::nullopt);
    }
    result.logprobs.push_back(std::move(row));
  }
  result.batches = 1;
  return result;
}

}  // namespace

ForwardResult Engine::forward(const std::string& run_id, const std::vector<TrainExample>& batch,
                              const LossSpec& loss, bool backward) {
  auto run = impl_->find_run(run_id);
  std::lock_guard<std::mutex> lock(run->mutex);
  validate_batch(batch, loss, run->base->model->config());
  auto result = run_forward(*run->base->model, &run->adapter, batch, loss, backward);
  if (backward) {
    run->tokens_trained += result.num_tokens;
    run->last_loss = result.loss;
  }
  return result;
}

OptimResult Engine::optim_step(const std::string& run_id, const AdamParams& params) {
  auto run = impl_->find_run(run_id);
  auto finite_at_least = [](double v, double lo) { return std::isfinite(v) && v >= lo; };
  if (!std::isfinite(params.learning_rate) || params.learning_rate <= 0.0) {
    validation_error("learning_rate must be a finite number > 0, got " +
                     std::to_string(params.learning_rate));
  }
  if (!finite_at_least(params.weight_decay, 0.0)) {
    validation_error("weight_decay must be a finite number >= 0");
  }
  if (!(params.beta1 >= 0.0 && params.beta1 < 1.0) || !(params.beta2 >= 0.0 && params.beta2 < 1.0)) {
    validation_error("betas must each be in [0, 1)");
  }
  if (!std::isfinite(params.eps) || params.eps <= 0.0) {
    validation_error("eps must be a finite number > 0");
  }
  if (!finite_at_least(params.grad_clip_norm, 0.0)) {
    validation_error("grad_clip_norm must be a finite number >= 0 (0 = off)");
  }
  std::lock_guard<std::mutex> lock(run->mutex);
  train::AdamWHyper h;
  h.learning_rate = params.learning_rate;
  h.weight_decay = params.weight_decay;
  h.beta1 = params.beta1;
  h.beta2 = params.beta2;
  h.eps = params.eps;
  h.grad_clip_norm = params.grad_clip_norm;
  auto r = run->optimizer.step(h);
  OptimResult out;
  out.step = r.step;
  out.grad_norm = r.grad_norm;
  return out;
}

// ----------------------------------------------------------------------------------------------
// sample / evaluate

SampleResult Engine::sample(const SampleSpec& spec) {
  std::shared_ptr<Run> run;
  std::shared_ptr<BaseModel> base;
  if (spec.run_id) {
    run = impl_->find_run(*spec.run_id);
    base = run->base;
  } else if (spec.base_model) {
    base = impl_->acquire_base(*spec.base_model, /*pin=*/true);
  } else {
    throw ApiError(ErrorType::kBadRequest, "sample needs run_id or base_model");
  }
  const auto& config = base->model->config();
  if (spec.prompt_ids.empty()) {
    validation_error("prompt is empty: expected at least one token");
  }
  for (size_t t = 0; t < spec.prompt_ids.size(); ++t) {
    if (spec.prompt_ids[t] < 0 || spec.prompt_ids[t] >= config.vocab_size) {
      validation_error("prompt_ids[" + std::to_string(t) + "] = " +
                       std::to_string(spec.prompt_ids[t]) + " is outside the vocabulary [0, " +
                       std::to_string(config.vocab_size) + ")");
    }
  }
  const auto prompt_len = static_cast<int64_t>(spec.prompt_ids.size());
  if (prompt_len >= config.max_position_embeddings) {
    validation_error("prompt has " + std::to_string(prompt_len) +
                     " tokens; the model's max_position_embeddings is " +
                     std::to_string(config.max_position_embeddings));
  }
  if (spec.max_new_tokens < 1) {
    validation_error("max_new_tokens must be >= 1");
  }
  if (spec.num_samples < 1) {
    validation_error("num_samples must be >= 1");
  }
  if (!(spec.temperature >= 0.0) || !std::isfinite(spec.temperature)) {
    validation_error("temperature must be a finite number >= 0");
  }
  if (!(spec.top_p >= 0.0 && spec.top_p <= 1.0)) {
    validation_error("top_p must be in [0, 1]");
  }
  if (spec.top_k < 0) {
    validation_error("top_k must be >= 0 (0 = off)");
  }
  sampling::GenerateRequest req;
  req.prompt_ids = spec.prompt_ids;
  req.params.temperature = spec.temperature;
  req.params.top_p = spec.top_p;
  req.params.top_k = spec.top_k;
  req.num_samples = spec.num_samples;
  req.seed = spec.seed;
  // Positions beyond the context are never produced: a long request ends with "length" there.
  req.stop.max_new_tokens =
      std::min(spec.max_new_tokens, config.max_position_embeddings - prompt_len);
  req.stop.stop_strings = spec.stop;
  req.stop.stop_token_ids = spec.stop_token_ids.value_or(base->eos_ids);
  auto tok = base->tokenizer;
  if (tok) {
    // The embedding is often larger than the tokenizer (Qwen2: 151936 rows, 151646 tokens);
    // ids past the tokenizer have no text, so they decode to nothing rather than throwing.
    const int32_t tok_vocab = tok->vocab_size();
    req.stop.decode = [tok, tok_vocab](const std::vector<int32_t>& ids) {
      std::vector<int32_t> known;
      known.reserve(ids.size());
      for (auto id : ids) {
        if (id >= 0 && id < tok_vocab) {
          known.push_back(id);
        }
      }
      return tok->decode(known, /*skip_special_tokens=*/true);
    };
  } else if (!spec.stop.empty()) {
    throw ApiError(ErrorType::kBadRequest, "stop strings need a tokenizer; model " +
                                               base->name + " has none");
  }
  std::vector<sampling::SequenceState> states;
  if (run) {
    std::lock_guard<std::mutex> lock(run->mutex);
    states = sampling::generate(*base->model, &run->adapter, req);
  } else {
    states = sampling::generate(*base->model, nullptr, req);
  }
  SampleResult result;
  for (auto& s : states) {
    SampleOutput out;
    out.token_ids = std::move(s.token_ids);
    out.text = std::move(s.text);
    if (spec.return_logprobs) {
      out.logprobs = std::move(s.logprobs);
    }
    out.finish_reason = s.finish_reason;
    result.samples.push_back(std::move(out));
  }
  return result;
}

EvaluateResult Engine::evaluate(const std::string& run_id,
                                const std::vector<EvaluateBatch>& batches) {
  auto run = impl_->find_run(run_id);
  std::lock_guard<std::mutex> lock(run->mutex);
  LossSpec loss;
  EvaluateResult out;
  for (const auto& b : batches) {
    std::vector<TrainExample> one(1);
    one[0].input_ids = b.input_ids;
    one[0].target_ids = b.target_ids;
    validate_batch(one, loss, run->base->model->config());
  }
  for (const auto& b : batches) {
    std::vector<TrainExample> one(1);
    one[0].input_ids = b.input_ids;
    one[0].target_ids = b.target_ids;
    auto r = run_forward(*run->base->model, &run->adapter, one, loss, /*backward=*/false);
    double sum = 0.0;
    int64_t n = 0;
    for (const auto& v : r.logprobs[0]) {
      if (v) {
        sum += *v;
        ++n;
      }
    }
    out.scores.push_back(r.loss);
    out.log_probs.push_back(n > 0 ? sum / static_cast<double>(n) : 0.0);
  }
  return out;
}

// ----------------------------------------------------------------------------------------------
// checkpoints

namespace {

CheckpointInfo read_checkpoint_info(const fs::path& dir, const std::string& run_id) {
  CheckpointInfo info;
  info.name = dir.filename().string();
  info.run_id = run_id;
  info.adapter_path = dir.string();
  if (fs::exists(dir / kOptimizerFile)) {
    info.optimizer_path = (dir / kOptimizerFile).string();
  }
  info.size_bytes = directory_size(dir);
  try {
    auto j = read_json_file(dir / kCheckpointMetaFile);
    info.created_at = j.value("created_at", "");
    info.is_sampler = j.value("is_sampler", false);
  } catch (const std::exception&) {
    // A PEFT directory copied in by hand: no metadata; use the directory's mtime.
    std::error_code ec;
    auto t = fs::last_write_time(dir, ec);
    (void)t;
  }
  return info;
}

}  // namespace

CheckpointInfo Engine::save_checkpoint(const std::string& run_id, const std::string& name,
                                       const nlohmann::json& attributes) {
  if (!attributes.is_object()) {
    throw ApiError(ErrorType::kBadRequest, "checkpoint attributes must be a JSON object");
  }
  validate_path_component(name, "checkpoint name");
  auto run = impl_->find_run(run_id);
  std::lock_guard<std::mutex> lock(run->mutex);
  const fs::path run_dir = impl_->options.checkpoints_dir / run_id;
  const fs::path final_dir = run_dir / name;
  const fs::path tmp_dir = run_dir / (".tmp-" + name + "-" + random_hex(8));
  try {
    fs::create_directories(tmp_dir);
    hook("tmp_dir_created");
    lora::save_adapter(tmp_dir, run->adapter, run->base_model);
    hook("adapter_written");
    model::NamedTensors moments;
    const auto& params = run->optimizer.params();
    size_t i = 0;
    for (const auto& [path, pair] : run->adapter.modules) {
      for (bool is_a : {true, false}) {
        TORCH_CHECK(i < params.size(), "optimizer/adapter size mismatch");
        moments.emplace_back(moment_key("exp_avg", path, is_a), run->optimizer.exp_avg()[i]);
        moments.emplace_back(moment_key("exp_avg_sq", path, is_a),
                             run->optimizer.exp_avg_sq()[i]);
        ++i;
      }
    }
    model::save_safetensors(tmp_dir / kOptimizerFile, moments,
                            {{"format", "pt"},
                             {"step", std::to_string(run->optimizer.step_count())}});
    hook("optimizer_written");
    const std::string created_at = now_iso8601();
    write_json_file(tmp_dir / kCheckpointMetaFile,
                    {{"name", name},
                     {"run_id", run_id},
                     {"base_model", run->base_model},
                     {"created_at", created_at},
                     {"step", run->optimizer.step_count()},
                     {"tokens_trained", run->tokens_trained},
                     {"is_sampler", false},
                     {"format", 1},
                     {"attributes", attributes}});
    for (const char* f : {lora::kAdapterConfigFile, lora::kAdapterWeightsFile, kOptimizerFile,
                          kCheckpointMetaFile}) {
      fsync_path(tmp_dir / f, false);
    }
    fsync_path(tmp_dir, true);
    hook("metadata_written");
    hook("before_rename");
    // Atomic publish: rename into place, or swap with an existing checkpoint of that name in
    // one step (renameat2 RENAME_EXCHANGE), so a reader or a crash never sees neither.
    if (fs::exists(final_dir)) {
      if (::renameat2(AT_FDCWD, tmp_dir.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) !=
          0) {
        throw std::runtime_error("cannot replace " + final_dir.string() + ": " +
                                 std::strerror(errno));
      }
      fsync_path(run_dir, true);
      hook("renamed");
      fs::remove_all(tmp_dir);  // now holds the previous checkpoint
    } else {
      fs::rename(tmp_dir, final_dir);
      fsync_path(run_dir, true);
      hook("renamed");
    }
  } catch (const ApiError&) {
    std::error_code ec;
    fs::remove_all(tmp_dir, ec);
    throw;
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove_all(tmp_dir, ec);
    throw ApiError(ErrorType::kInternal, "saving checkpoint " + name + " failed: " + e.what());
  }
  return read_checkpoint_info(final_dir, run_id);
}

namespace {

// Builds the adapter (and optimizer) of `dir` for `run`'s base completely, then swaps them in:
// on any error the run is unchanged.
void load_checkpoint_into(Run& run, const fs::path& dir, bool load_optimizer) {
  lora::LoraAdapter adapter;
  try {
    adapter = lora::load_adapter(dir, run.base->model->config(), run.base->device);
  } catch (const std::exception& e) {
    throw ApiError(ErrorType::kBadRequest, std::string("cannot load adapter: ") + e.what());
  }
  train::AdamW optimizer(adapter.parameters());
  int64_t tokens_trained = 0;
  if (fs::exists(dir / kCheckpointMetaFile)) {
    try {
      tokens_trained = read_json_file(dir / kCheckpointMetaFile).value("tokens_trained", 0);
    } catch (const std::exception&) {
    }
  }
  if (load_optimizer && fs::exists(dir / kOptimizerFile)) {
    try {
      auto file = model::SafetensorsFile::open(dir / kOptimizerFile);
      std::vector<torch::Tensor> m;
      std::vector<torch::Tensor> v;
      for (const auto& [path, pair] : adapter.modules) {
        for (bool is_a : {true, false}) {
          m.push_back(file->get(moment_key("exp_avg", path, is_a)));
          v.push_back(file->get(moment_key("exp_avg_sq", path, is_a)));
        }
      }
      const auto& meta = file->metadata();
      auto it = meta.find("step");
      const int64_t step = it == meta.end() ? 0 : std::stoll(it->second);
      optimizer.set_state(step, std::move(m), std::move(v));
    } catch (const std::exception& e) {
      throw ApiError(ErrorType::kBadRequest,
                     "cannot load optimizer state from " + dir.string() + ": " + e.what());
    }
  }
  run.adapter = std::move(adapter);
  run.optimizer = std::move(optimizer);
  run.tokens_trained = tokens_trained;
}

}  // namespace

void Engine::load_checkpoint(const std::string& run_id, const std::string& name_or_path,
                             bool load_optimizer) {
  auto run = impl_->find_run(run_id);
  fs::path dir;
  const bool looks_like_path = name_or_path.find('/') != std::string::npos;
  if (!looks_like_path) {
    validate_path_component(name_or_path, "checkpoint name");
    dir = impl_->options.checkpoints_dir / run_id / name_or_path;
    if (!fs::is_directory(dir)) {
      throw ApiError(ErrorType::kNotFound,
                     "Checkpoint " + name_or_path + " not found for run " + run_id);
    }
  } else {
    dir = name_or_path;
    if (!fs::is_directory(dir)) {
      throw ApiError(ErrorType::kNotFound, "Checkpoint directory " + name_or_path + " not found");
    }
  }
  std::lock_guard<std::mutex> lock(run->mutex);
  load_checkpoint_into(*run, dir, load_optimizer);
}

std::vector<CheckpointInfo> Engine::list_checkpoints(const std::optional<std::string>& run_id) const {
  std::vector<CheckpointInfo> out;
  const fs::path root = impl_->options.checkpoints_dir;
  std::error_code ec;
  auto scan_run = [&](const fs::path& run_dir, const std::string& id) {
    for (const auto& entry : fs::directory_iterator(run_dir, ec)) {
      const auto name = entry.path().filename().string();
      if (!entry.is_directory(ec) || name.empty() || name.front() == '.') {
        continue;  // skip in-progress / abandoned temp dirs
      }
      if (!fs::exists(entry.path() / lora::kAdapterConfigFile)) {
        continue;
      }
      out.push_back(read_checkpoint_info(entry.path(), id));
    }
  };
  if (run_id) {
    validate_path_component(*run_id, "run_id");
    if (fs::is_directory(root / *run_id, ec)) {
      scan_run(root / *run_id, *run_id);
    }
  } else if (fs::is_directory(root, ec)) {
    for (const auto& entry : fs::directory_iterator(root, ec)) {
      const auto id = entry.path().filename().string();
      if (entry.is_directory(ec) && !id.empty() && id.front() != '.') {
        scan_run(entry.path(), id);
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const CheckpointInfo& a, const CheckpointInfo& b) {
    return std::tie(a.created_at, a.name) > std::tie(b.created_at, b.name);
  });
  return out;
}

void Engine::delete_checkpoint(const std::string& run_id, const std::string& name) {
  validate_path_component(run_id, "run_id");
  validate_path_component(name, "checkpoint name");
  const fs::path dir = impl_->options.checkpoints_dir / run_id / name;
  if (!fs::is_directory(dir)) {
    throw ApiError(ErrorType::kNotFound, "Checkpoint " + name + " not found for run " + run_id);
  }
  // Rename first so a concurrent lister never sees a half-deleted directory.
  const fs::path doomed = dir.parent_path() / (".deleting-" + name + "-" + random_hex(8));
  fs::rename(dir, doomed);
  fs::remove_all(doomed);
}

void Engine::export_merged(const std::string& run_id, const fs::path& out_dir) {
  auto run = impl_->find_run(run_id);
  std::lock_guard<std::mutex> lock(run->mutex);
  auto& model = *run->base->model;
  torch::NoGradGuard no_grad;
  const double scaling = run->adapter.config.scaling();
  model::NamedTensors tensors = model::model_state(model);
  for (auto& [name, tensor] : tensors) {
    const std::string suffix = ".weight";
    if (name.size() <= suffix.size()) {
      continue;
    }
    const std::string path = name.substr(0, name.size() - suffix.size());
    const auto* pair = run->adapter.find(path);
    if (pair == nullptr || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    // W' = W + scaling * B @ A, in fp32, written as a NEW tensor (the shared base is untouched).
    auto merged = tensor.to(torch::kFloat32) +
                  torch::matmul(pair->b.detach(), pair->a.detach()) * scaling;  // [out, in]
    tensor = merged.to(tensor.scalar_type());
  }
  try {
    model::save_model_tensors(model.config(), tensors, out_dir);
    if (run->base->tokenizer) {
      tokenizer::copy_tokenizer_files(run->base->path, out_dir);
    }
    std::error_code ec;
    if (fs::exists(run->base->path / "generation_config.json", ec)) {
      fs::copy_file(run->base->path / "generation_config.json", out_dir / "generation_config.json",
                    fs::copy_options::overwrite_existing, ec);
    }
  } catch (const std::exception& e) {
    throw ApiError(ErrorType::kInternal, std::string("export failed: ") + e.what());
  }
}

}  // namespace eztinker::engine
