// Strict HF checkpoint loading into named_parameters() (keys are the HF names, so loading is a
// dictionary walk) and saving back in the same layout.
#include "model/weights.h"

#include "model/cpu_runtime.h"
#include "model/dtype.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

namespace eztinker::model {
namespace {

std::string shape_string(c10::IntArrayRef shape) {
  std::ostringstream s;
  s << shape;
  return s.str();
}

void write_json_atomic(const std::filesystem::path& path, const nlohmann::json& j) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out) throw std::runtime_error(tmp.string() + ": cannot write");
  }
  std::filesystem::rename(tmp, path);
}

// The `model` logger when the server registered one, else spdlog's default logger.
std::shared_ptr<spdlog::logger> model_logger() {
  auto logger = spdlog::get("model");
  return logger ? logger : spdlog::default_logger();
}

// One debug line per load stage with the process's RSS, to see where loading holds memory.
void log_load_stage(const std::filesystem::path& dir, const char* stage) {
  const auto logger = model_logger();
  if (!logger->should_log(spdlog::level::debug)) return;
  const ResidentMemory m = resident_memory();
  logger->debug("load {}: {}: rss {} MiB (peak {} MiB)",
                dir.string(),
                stage,
                m.rss_bytes >> 20,
                m.peak_bytes >> 20);
}

}  // namespace

bool is_ignored_checkpoint_key(const std::string& key, const Qwen2Config& config) {
  static const std::regex kInvFreq(R"(model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq)");
  if (std::regex_match(key, kInvFreq)) return true;
  return config.tie_word_embeddings && key == "lm_head.weight";
}

void load_weights(Qwen2ForCausalLMImpl& model, const SafetensorsCheckpoint& checkpoint) {
  torch::NoGradGuard no_grad;
  const auto params = model.named_parameters(/*recurse=*/true);
  std::vector<std::string> missing;
  for (const auto& item : params) {
    const std::string& key = item.key();
    torch::Tensor param = item.value();
    if (!checkpoint.contains(key)) {
      missing.push_back(key);
      continue;
    }
    const SafetensorsTensorInfo& info = checkpoint.info(key);
    if (c10::IntArrayRef(info.shape) != param.sizes()) {
      throw std::runtime_error(checkpoint.file_of(key).string() + ": tensor `" + key +
                               "` has shape " + shape_string(info.shape) + " but the model (" +
                               "from config.json) expects " + shape_string(param.sizes()) +
                               "; does config.json belong to these weights?");
    }
    // pread, not the mapping: mapped file pages would count in RSS (see read_into).
    checkpoint.read_into(key, param);  // converts dtype and device
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 5; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 5) list += ", ...";
    std::string hint;
    if (missing.size() == 1 && missing[0] == "lm_head.weight") {
      hint = " (hint: set tie_word_embeddings=true in config.json if the model ties lm_head)";
    }
    throw std::runtime_error(checkpoint.source().string() + ": " + std::to_string(missing.size()) +
                             " parameter(s) missing from the checkpoint: " + list + hint);
  }
  std::set<std::string> known;
  for (const auto& item : params) known.insert(item.key());
  for (const std::string& key : checkpoint.names()) {
    if (known.count(key) || is_ignored_checkpoint_key(key, model.config())) continue;
    throw std::runtime_error(checkpoint.file_of(key).string() + ": unexpected tensor `" + key +
                             "` (not a Qwen2ForCausalLM parameter for this config.json)");
  }
}

Qwen2ForCausalLM load_model(const std::filesystem::path& dir, torch::Dtype dtype,
                            torch::Device device) {
  log_load_stage(dir, "start");
  const Qwen2Config config = load_qwen2_config(dir);
  Qwen2ForCausalLM model(config, dtype, device);
  log_load_stage(dir, "constructed");
  {
    // Scoped: the files are unmapped and closed before the stage line below.
    const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir);
    load_weights(*model, checkpoint);
    log_load_stage(dir, "weights copied");
  }
  // Conversion buffers and the thread pool's start-up leave free heap that the tuned allocator
  // would otherwise keep.
  release_free_heap();
  log_load_stage(dir, "checkpoint closed");
  return model;
}

NamedTensors model_state(const Qwen2ForCausalLMImpl& model, std::optional<torch::Dtype> dtype) {
  NamedTensors out;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    torch::Tensor t = item.value().detach();  // [shape]
    out.emplace_back(item.key(), dtype ? t.to(*dtype) : t);
  }
  return out;
}

void save_model_tensors(const Qwen2Config& config,
                        const NamedTensors& tensors,
                        const std::filesystem::path& dir,
                        int64_t max_shard_bytes) {
  std::filesystem::create_directories(dir);
  Qwen2Config c = config;
  if (!tensors.empty()) c.torch_dtype = hf_dtype_name(tensors.front().second.scalar_type());
  save_safetensors_checkpoint(dir, tensors, max_shard_bytes);
  write_json_atomic(dir / "config.json", to_json(c));
}

void save_model(const Qwen2ForCausalLMImpl& model,
                const std::filesystem::path& dir,
                std::optional<torch::Dtype> dtype,
                int64_t max_shard_bytes) {
  save_model_tensors(model.config(), model_state(model, dtype), dir, max_shard_bytes);
}

}  // namespace eztinker::model
