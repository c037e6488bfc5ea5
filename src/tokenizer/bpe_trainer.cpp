// write_trained_bpe_tokenizer: a plain greedy byte-level BPE trainer (Sennrich et al. 2016 on
// GPT-2's byte alphabet) that writes a HF tokenizer.json + tokenizer_config.json shaped like
// Qwen2-Instruct's, so tiny test models get a real, loadable tokenizer. Pair counts are kept
// incrementally (only words containing the merged pair are revisited) with a lazy max-heap.
#include "eztinker/tokenizer.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/unicode_util.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <queue>
#include <stdexcept>
#include <unordered_map>

namespace eztinker::tokenizer {

namespace {

namespace fs = std::filesystem;
using detail::byte_to_codepoint;

constexpr const char* kQwen2ChatTemplate =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' "
    "+ message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
constexpr const char* kSpecials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

uint64_t key_of(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

void write_json(const fs::path& path, const nlohmann::ordered_json& j) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(path.string() + ": cannot open for writing");
  out << j.dump(2, ' ', false) << '\n';
  if (!out) throw std::runtime_error(path.string() + ": write failed");
}

nlohmann::ordered_json byte_level_step() {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", false},
          {"use_regex", false}};
}

}  // namespace

void write_trained_bpe_tokenizer(const fs::path& dir,
                                 std::string_view training_text,
                                 int num_merges) {
  // Byte tokens take ids 0..255 in GPT-2 order (printable bytes first), like Qwen2's vocab.
  std::vector<std::string> forms;  // id -> vocab form
  std::array<int32_t, 256> byte_id{};
  {
    std::vector<int> order(256);
    for (int b = 0; b < 256; ++b) order[b] = b;
    const auto& cp = byte_to_codepoint();
    std::sort(order.begin(), order.end(), [&](int a, int b) { return cp[a] < cp[b]; });
    for (int b : order) {
      byte_id[b] = static_cast<int32_t>(forms.size());
      std::string f;
      detail::append_utf8(f, cp[b]);
      forms.push_back(f);
    }
  }

  // Unique pre-tokenizer words with their counts, as symbol id sequences.
  const std::string text = detail::nfc(detail::sanitize_utf8(training_text));
  std::unordered_map<std::string, int64_t> word_counts;
  detail::RegexSplitter splitter(detail::kQwen2SplitRegex);
  splitter.split(text, [&](size_t b, size_t e) { ++word_counts[text.substr(b, e - b)]; });
  std::vector<std::pair<std::string, int64_t>> sorted_words(word_counts.begin(), word_counts.end());
  std::sort(sorted_words.begin(), sorted_words.end());  // deterministic order
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> freq;
  for (const auto& [w, c] : sorted_words) {
    std::vector<int32_t> syms;
    for (unsigned char ch : w) syms.push_back(byte_id[ch]);
    words.push_back(std::move(syms));
    freq.push_back(c);
  }

  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> pair_words;
  // Max-heap on (count, then smaller key); entries are re-checked against pair_count on pop.
  using Entry = std::pair<int64_t, uint64_t>;
  auto cmp = [](const Entry& x, const Entry& y) {
    return x.first != y.first ? x.first < y.first : x.second > y.second;
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(cmp)> heap(cmp);
  auto add_pairs = [&](uint32_t w, int64_t sign) {
    const auto& s = words[w];
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t k = key_of(s[i], s[i + 1]);
      int64_t& c = pair_count[k];
      c += sign * freq[w];
      if (sign > 0) pair_words[k].push_back(w);
      if (c > 0) heap.push({c, k});
    }
  };
  for (uint32_t w = 0; w < words.size(); ++w) add_pairs(w, +1);

  std::unordered_map<std::string, int32_t> form_to_id;
  for (int32_t id = 0; id < static_cast<int32_t>(forms.size()); ++id) form_to_id[forms[id]] = id;
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<uint32_t> last_visit(words.size(), UINT32_MAX);
  while (static_cast<int>(merges.size()) < num_merges && !heap.empty()) {
    const auto [count, k] = heap.top();
    heap.pop();
    auto it = pair_count.find(k);
    if (it == pair_count.end() || it->second != count || count <= 0) continue;  // stale
    const auto a = static_cast<int32_t>(k >> 32);
    const auto b = static_cast<int32_t>(k & 0xFFFFFFFFu);
    const std::string merged = forms[a] + forms[b];
    int32_t new_id;
    if (auto f = form_to_id.find(merged); f != form_to_id.end()) {
      new_id = f->second;  // the same string reached by another split: reuse its id
    } else {
      new_id = static_cast<int32_t>(forms.size());
      forms.push_back(merged);
      form_to_id.emplace(merged, new_id);
    }
    const auto merge_index = static_cast<uint32_t>(merges.size());
    merges.emplace_back(forms[a], forms[b]);
    const std::vector<uint32_t> affected = std::move(pair_words[k]);
    pair_words.erase(k);
    for (uint32_t w : affected) {
      if (last_visit[w] == merge_index) continue;
      last_visit[w] = merge_index;
      add_pairs(w, -1);
      auto& s = words[w];
      std::vector<int32_t> next;
      next.reserve(s.size());
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          next.push_back(new_id);
          ++i;
        } else {
          next.push_back(s[i]);
        }
      }
      s = std::move(next);
      add_pairs(w, +1);
    }
    pair_count.erase(k);
  }

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(dir.string() + ": cannot create directory: " + ec.message());

  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t id = 0; id < forms.size(); ++id) vocab[forms[id]] = id;
  nlohmann::ordered_json merges_json = nlohmann::ordered_json::array();
  for (const auto& [l, r] : merges) merges_json.push_back(l + " " + r);
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  nlohmann::ordered_json added_decoder = nlohmann::ordered_json::object();
  for (size_t i = 0; i < std::size(kSpecials); ++i) {
    const size_t id = forms.size() + i;
    nlohmann::ordered_json flags = {{"content", kSpecials[i]},
                                    {"lstrip", false},
                                    {"normalized", false},
                                    {"rstrip", false},
                                    {"single_word", false},
                                    {"special", true}};
    added_decoder[std::to_string(id)] = flags;
    nlohmann::ordered_json entry = {{"id", id}};
    entry.update(flags);
    added.push_back(entry);
  }

  nlohmann::ordered_json tok = {{"version", "1.0"},
                                {"truncation", nullptr},
                                {"padding", nullptr},
                                {"added_tokens", added},
                                {"normalizer", {{"type", "NFC"}}},
                                {"pre_tokenizer",
                                 {{"type", "Sequence"},
                                  {"pretokenizers",
                                   {{{"type", "Split"},
                                     {"pattern", {{"Regex", detail::kQwen2SplitRegex}}},
                                     {"behavior", "Isolated"},
                                     {"invert", false}},
                                    byte_level_step()}}}},
                                {"post_processor", byte_level_step()},
                                {"decoder", byte_level_step()},
                                {"model",
                                 {{"type", "BPE"},
                                  {"dropout", nullptr},
                                  {"unk_token", nullptr},
                                  {"continuing_subword_prefix", ""},
                                  {"end_of_word_suffix", ""},
                                  {"fuse_unk", false},
                                  {"byte_fallback", false},
                                  {"vocab", vocab},
                                  {"merges", merges_json}}}};
  write_json(dir / "tokenizer.json", tok);

  nlohmann::ordered_json cfg = {{"add_prefix_space", false},
                                {"added_tokens_decoder", added_decoder},
                                {"additional_special_tokens", {"<|im_start|>", "<|im_end|>"}},
                                {"bos_token", nullptr},
                                {"chat_template", kQwen2ChatTemplate},
                                {"clean_up_tokenization_spaces", false},
                                {"eos_token", "<|im_end|>"},
                                {"errors", "replace"},
                                {"model_max_length", 32768},
                                {"pad_token", "<|endoftext|>"},
                                {"split_special_tokens", false},
                                {"tokenizer_class", "Qwen2Tokenizer"},
                                {"unk_token", nullptr}};
  write_json(dir / "tokenizer_config.json", cfg);
}

}  // namespace eztinker::tokenizer
