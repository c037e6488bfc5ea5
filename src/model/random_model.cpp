// Random Qwen2 model directories (see random_model.h). Init mirrors HF `_init_weights`
// (normal(0, initializer_range)) except that biases are random too.
#include "model/random_model.h"

#include "model/dtype.h"
#include "model/weights.h"

#include <eztinker/tokenizer.h>

#include <ATen/CPUGeneratorImpl.h>

#include <fstream>
#include <stdexcept>

namespace eztinker::model {
namespace {

constexpr int kTinyTokenizerMerges = 250;

int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

}  // namespace

const std::string& tiny_tokenizer_training_text() {
  static const std::string kText =
      "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun.\n"
      "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\n"
      "Answer: 3 + 4 = 7. He has 7 apples.\n#### 7\n"
      "Question: A box holds 12 pencils. How many pencils are in 5 boxes?\n"
      "Answer: 12 * 5 = 60. There are 60 pencils.\n#### 60\n"
      "Question: Sara reads 20 pages a day for 6 days. How many pages does she read?\n"
      "Answer: 20 * 6 = 120. She reads 120 pages.\n#### 120\n"
      "Question: There are 45 birds on a tree and 18 fly away. How many are left?\n"
      "Answer: 45 - 18 = 27. There are 27 birds left.\n#### 27\n"
      "Question: What is 144 divided by 12?\nAnswer: 144 / 12 = 12.\n#### 12\n"
      "Hello! How are you today? I am fine, thank you. What would you like to learn?\n"
      "You are a helpful assistant. Please answer the question step by step.\n"
      "The number of students in the class is 30, and half of them are girls.\n"
      "If a train travels 60 miles per hour for 2 hours, it travels 120 miles.\n"
      "Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 100 1000.\n"
      "The answer is 42. The total cost is $15. Each ticket costs $5, so 3 tickets cost $15.\n"
      "She has twice as many books as he does, and together they have 36 books.\n"
      "def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n";
  return kText;
}

Qwen2Config random_model_preset(const std::string& preset) {
  Qwen2Config c;
  if (preset == "tiny") {
    c.vocab_size = 256;
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 2048;
    c.rope_theta = 1000000.0;
    c.tie_word_embeddings = true;
  } else if (preset == "qwen2-0.5b") {
    c.vocab_size = 151936;
    c.hidden_size = 896;
    c.intermediate_size = 4864;
    c.num_hidden_layers = 24;
    c.num_attention_heads = 14;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 32768;
    c.rope_theta = 1000000.0;
    c.tie_word_embeddings = true;
  } else {
    std::string list;
    for (const auto& p : kRandomModelPresets) list += (list.empty() ? "" : ", ") + p;
    throw std::invalid_argument("unknown model preset \"" + preset + "\"; expected one of " + list);
  }
  c.rms_norm_eps = 1e-6;
  c.initializer_range = 0.02;
  return c;
}

void init_random_weights(Qwen2ForCausalLMImpl& model, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double std = model.config().initializer_range;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    torch::Tensor p = item.value();
    const std::string& name = item.key();
    const bool is_norm = name.find("norm.weight") != std::string::npos;
    if (is_norm) {
      p.fill_(1.0);
      continue;
    }
    torch::Tensor values = torch::empty(p.sizes(), torch::kFloat32).normal_(0.0, std, gen);  // [shape]
    p.copy_(values);
  }
}

Qwen2Config write_random_model(const RandomModelOptions& options) {
  namespace fs = std::filesystem;
  if (options.out_dir.empty()) throw std::invalid_argument("make-model: --out is required");
  Qwen2Config config = random_model_preset(options.preset);
  const torch::Dtype dtype = resolve_dtype(options.dtype, torch::Device(torch::kCPU));
  fs::create_directories(options.out_dir);

  // Tokenizer first: the tiny preset sizes its vocabulary from it.
  if (options.tokenizer_from.empty()) {
    tokenizer::write_trained_bpe_tokenizer(options.out_dir, tiny_tokenizer_training_text(),
                                           kTinyTokenizerMerges);
  } else {
    tokenizer::copy_tokenizer_files(options.tokenizer_from, options.out_dir);
  }
  const auto tok = tokenizer::Tokenizer::load(options.out_dir);
  const int64_t tok_vocab = tok->vocab_size();
  if (options.preset == "tiny") {
    config.vocab_size = std::max(config.vocab_size, round_up(tok_vocab, 64));
  } else if (tok_vocab > config.vocab_size) {
    throw std::runtime_error("tokenizer in " + options.tokenizer_from.string() + " has " +
                             std::to_string(tok_vocab) + " tokens, more than the preset's " +
                             std::to_string(config.vocab_size));
  }
  const std::vector<int32_t> eos = tok->eos_token_ids();
  for (int32_t id : eos) config.eos_token_ids.push_back(id);
  std::optional<int32_t> pad = tok->pad_token_id();
  if (auto bos = tok->token_to_id("<|endoftext|>")) config.bos_token_id = *bos;
  config.torch_dtype = hf_dtype_name(dtype);

  Qwen2ForCausalLM model(config, dtype, torch::Device(torch::kCPU));
  init_random_weights(*model, options.seed);
  save_model(*model, options.out_dir);

  nlohmann::json gen = {{"do_sample", false}};
  if (config.bos_token_id) gen["bos_token_id"] = *config.bos_token_id;
  if (!eos.empty()) gen["eos_token_id"] = eos;
  if (pad) gen["pad_token_id"] = *pad;
  {
    std::ofstream out(options.out_dir / "generation_config.json");
    out << gen.dump(2) << "\n";
    if (!out) throw std::runtime_error((options.out_dir / "generation_config.json").string() +
                                       ": cannot write");
  }
  return config;
}

void write_demo_model(const std::filesystem::path& out_dir,
                      const std::filesystem::path& tokenizer_dir, uint64_t seed) {
  RandomModelOptions m;
  m.preset = "tiny";
  m.out_dir = out_dir;
  m.seed = seed;
  m.dtype = "fp32";
  m.tokenizer_from = tokenizer_dir;
  write_random_model(m);  // config + tokenizer files; the weights are rewritten below
  torch::NoGradGuard no_grad;
  Qwen2Config config = load_qwen2_config(out_dir / "config.json");
  config.tie_word_embeddings = false;
  Qwen2ForCausalLM net(config, torch::kFloat32, torch::Device(torch::kCPU));
  init_random_weights(*net, seed);
  for (auto& item : net->named_parameters(/*recurse=*/true)) {
    if (item.key() == "lm_head.weight") item.value().mul_(kDemoLmHeadStd / config.initializer_range);
  }
  save_model(*net, out_dir);
}

}  // namespace eztinker::model
