// Byte-level BPE (see bpe_tokenizer.h). The merge loop mirrors HF tokenizers'
// models/bpe/word.rs merge_all: a min-heap of (rank, position) over a linked list of symbols,
// stale entries skipped. Words are cached (pre-tokenizer word -> ids) because natural text
// repeats words constantly; the cache is guarded by a mutex so const methods stay thread-safe.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/bpe_tokenizer.h"

#include "tokenizer/added_tokens.h"
#include "tokenizer/tokenizer_config.h"
#include "tokenizer/unicode_util.h"

#include <pcre2.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <queue>
#include <stdexcept>
#include <unordered_map>

namespace eztinker::tokenizer::detail {

namespace fs = std::filesystem;

const char* const kQwen2SplitRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kGpt2SplitRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// ---------------------------------------------------------------------------------------------
// RegexSplitter

namespace {
// One match-data block per thread: pcre2 match data is not shareable across threads, and
// allocating it per call would cost more than the match itself on short texts.
struct ThreadMatchData {
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  ~ThreadMatchData() { pcre2_match_data_free(md); }
};
}  // namespace

RegexSplitter::RegexSplitter(const std::string& pattern, bool allow_fast_path)
    : qwen2_fast_(allow_fast_path && pattern == kQwen2SplitRegex) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  auto* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()),
                             pattern.size(),
                             PCRE2_UTF | PCRE2_UCP,
                             &err,
                             &err_off,
                             nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    throw std::runtime_error("pre-tokenizer regex does not compile at offset " +
                             std::to_string(err_off) + ": " + reinterpret_cast<char*>(msg));
  }
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  code_ = code;
}

RegexSplitter::~RegexSplitter() {
  pcre2_code_free(static_cast<pcre2_code*>(code_));
}

bool RegexSplitter::is_ascii(std::string_view text) {
  for (unsigned char c : text) {
    if (c >= 0x80) return false;
  }
  return true;
}

namespace {
// ASCII classes of the Qwen2 regex under PCRE2 UTF+UCP (and Oniguruma): \s is [\t\n\v\f\r ],
// \p{L} is [A-Za-z], \p{N} is [0-9].
bool ascii_space(unsigned char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}
bool ascii_letter(unsigned char c) {
  return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}
bool ascii_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}
bool ascii_newline(unsigned char c) {
  return c == '\r' || c == '\n';
}
}  // namespace

size_t RegexSplitter::qwen2_ascii_match(std::string_view t, size_t i) {
  const size_t n = t.size();
  auto at = [&](size_t k) -> unsigned char { return k < n ? static_cast<unsigned char>(t[k]) : 0; };
  const unsigned char c = at(i);
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (c == '\'' && i + 1 < n) {
    const unsigned char a = at(i + 1) | 0x20, b = at(i + 2) | 0x20;
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if (i + 2 < n && ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))) {
      return i + 3;
    }
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  {
    size_t k = i;
    if (!ascii_letter(c) && !ascii_newline(c) && !ascii_digit(c) && ascii_letter(at(i + 1))) ++k;
    if (ascii_letter(at(k)) && k < n) {
      while (k < n && ascii_letter(at(k))) ++k;
      return k;
    }
  }
  // \p{N}
  if (ascii_digit(c)) return i + 1;
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  {
    size_t k = i + (c == ' ' ? 1 : 0);
    auto punct = [&](size_t p) {
      return p < n && !ascii_space(at(p)) && !ascii_letter(at(p)) && !ascii_digit(at(p));
    };
    if (punct(k)) {
      while (punct(k)) ++k;
      while (k < n && ascii_newline(at(k))) ++k;
      return k;
    }
  }
  // Whitespace run [i, j): \s*[\r\n]+ | \s+(?!\S) | \s+
  size_t j = i;
  while (j < n && ascii_space(at(j))) ++j;
  size_t last_newline = n;
  for (size_t k = i; k < j; ++k) {
    if (ascii_newline(at(k))) last_newline = k;
  }
  if (last_newline != n) return last_newline + 1;
  if (j == n || j - i == 1) return j;
  return j - 1;  // leave one space to prefix the next word
}

bool RegexSplitter::next_match(std::string_view text, size_t pos, size_t& s, size_t& e) const {
  thread_local ThreadMatchData tmd;
  auto* code = static_cast<pcre2_code*>(code_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  while (pos < text.size()) {
    const int rc =
        jit_ ? pcre2_jit_match(code, subject, text.size(), pos, 0, tmd.md, nullptr)
             : pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, tmd.md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0)
      throw std::runtime_error("pre-tokenizer regex match failed (" + std::to_string(rc) + ")");
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(tmd.md);
    if (ov[1] > ov[0]) {
      s = ov[0];
      e = ov[1];
      return true;
    }
    // Empty match: HF drops it; move on by one UTF-8 character.
    pos = ov[0] + 1;
    while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// BpeTokenizer

namespace {

struct BpeData {
  std::vector<std::string> vocab_forms;  // id -> token string as in vocab.json ("" = unused id)
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<AddedToken> added;
  bool nfc = true;
  std::string split_regex = kQwen2SplitRegex;
  bool use_split = true;
  bool add_prefix_space = false;
  bool ignore_merges = false;
  std::string source;  // file named in errors
};

struct MergeInfo {
  int32_t rank;
  int32_t new_id;
};

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(BpeData data, const TokenizerConfig& cfg)
      : nfc_(data.nfc),
        use_split_(data.use_split),
        add_prefix_space_(data.add_prefix_space),
        ignore_merges_(data.ignore_merges) {
    chat_template_ = cfg.chat_template;
    if (use_split_) splitter_ = std::make_unique<RegexSplitter>(data.split_regex);

    // Vocabulary: id -> vocab form and raw bytes.
    int32_t size = static_cast<int32_t>(data.vocab_forms.size());
    for (const auto& t : data.added) size = std::max(size, t.id + 1);
    vocab_forms_ = std::move(data.vocab_forms);
    vocab_forms_.resize(size);
    bytes_.resize(size);
    known_.assign(size, 0);
    special_.assign(size, 0);
    form_to_id_.reserve(vocab_forms_.size() * 2);
    for (int32_t id = 0; id < static_cast<int32_t>(vocab_forms_.size()); ++id) {
      if (vocab_forms_[id].empty()) continue;
      known_[id] = 1;
      bytes_[id] = unicode_string_to_bytes(vocab_forms_[id]);
      form_to_id_.emplace(vocab_forms_[id], id);
    }
    const auto& b2c = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) {
      std::string form;
      append_utf8(form, b2c[b]);
      auto it = form_to_id_.find(form);
      byte_ids_[b] = it == form_to_id_.end() ? -1 : it->second;
    }

    // Merges: (left id, right id) -> (rank, merged id).
    merges_.reserve(data.merges.size() * 2);
    for (size_t rank = 0; rank < data.merges.size(); ++rank) {
      const auto& [a, b] = data.merges[rank];
      auto ia = form_to_id_.find(a);
      auto ib = form_to_id_.find(b);
      auto im = form_to_id_.find(a + b);
      if (ia == form_to_id_.end() || ib == form_to_id_.end() || im == form_to_id_.end()) {
        throw std::runtime_error(data.source + ": merge #" + std::to_string(rank) + " \"" + a +
                                 " " + b + "\" uses a token missing from the vocabulary");
      }
      merges_.emplace(pair_key(ia->second, ib->second),
                      MergeInfo{static_cast<int32_t>(rank), im->second});
    }

    // Added tokens override vocab entries with the same id.
    std::vector<AddedToken> raw_match, normalized_match;
    for (const auto& t : data.added) {
      if (t.id < 0) throw std::runtime_error(data.source + ": negative added token id");
      known_[t.id] = 1;
      special_[t.id] = t.special ? 1 : 0;
      bytes_[t.id] = t.content;
      vocab_forms_[t.id] = t.content;
      form_to_id_[t.content] = t.id;
      (t.normalized && nfc_ ? normalized_match : raw_match).push_back(t);
    }
    std::vector<AddedToken> raw_nonspecial, norm_nonspecial;
    for (const auto& t : raw_match)
      if (!t.special) raw_nonspecial.push_back(t);
    for (const auto& t : normalized_match)
      if (!t.special) norm_nonspecial.push_back(t);
    raw_all_ = AddedTokenMatcher(raw_match);
    raw_nonspecial_ = AddedTokenMatcher(raw_nonspecial);
    norm_all_ = AddedTokenMatcher(normalized_match);
    norm_nonspecial_ = AddedTokenMatcher(norm_nonspecial);

    auto lookup = [&](const std::string& s) -> std::optional<int32_t> {
      auto it = form_to_id_.find(s);
      if (it == form_to_id_.end()) return std::nullopt;
      return it->second;
    };
    if (cfg.eos_token) {
      if (auto id = lookup(*cfg.eos_token)) eos_.push_back(*id);
    }
    for (const char* name : {"<|endoftext|>", "<|im_end|>"}) {
      if (auto id = lookup(name)) {
        if (std::find(eos_.begin(), eos_.end(), *id) == eos_.end()) eos_.push_back(*id);
      }
    }
    if (cfg.pad_token) pad_ = lookup(*cfg.pad_token);
  }

  std::vector<int32_t> encode(std::string_view text, bool parse_special) const override {
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    std::string sanitized;
    if (!is_valid_utf8(text)) {
      sanitized = sanitize_utf8(text);
      text = sanitized;
    }
    const AddedTokenMatcher& raw = parse_special ? raw_all_ : raw_nonspecial_;
    const AddedTokenMatcher& norm = parse_special ? norm_all_ : norm_nonspecial_;
    std::vector<Segment> segments;
    raw.split(text, segments);
    std::vector<Segment> inner;
    for (const Segment& seg : segments) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        continue;
      }
      std::string_view piece = text.substr(seg.begin, seg.end - seg.begin);
      if (piece.empty()) continue;
      if (!nfc_) {
        encode_plain(piece, ids);
        continue;
      }
      if (!nfc_may_change(piece)) {
        if (norm.empty()) {
          encode_plain(piece, ids);
          continue;
        }
      }
      const std::string normalized = nfc(piece);
      if (norm.empty()) {
        encode_plain(normalized, ids);
        continue;
      }
      inner.clear();
      norm.split(normalized, inner);
      for (const Segment& s : inner) {
        if (s.id >= 0)
          ids.push_back(s.id);
        else if (s.end > s.begin)
          encode_plain(std::string_view(normalized).substr(s.begin, s.end - s.begin), ids);
      }
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override {
    std::string bytes;
    for (int32_t id : ids) {
      check_id(id);
      if (skip_special_tokens && special_[id]) continue;
      bytes += bytes_[id];
    }
    return is_valid_utf8(bytes) ? bytes : sanitize_utf8(bytes);
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    return bytes_[id];
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(bytes_.size()); }

  std::optional<int32_t> token_to_id(std::string_view token) const override {
    auto it = form_to_id_.find(std::string(token));
    if (it == form_to_id_.end()) return std::nullopt;
    return it->second;
  }

  std::string id_to_token(int32_t id) const override {
    check_id(id);
    return vocab_forms_[id];
  }

  bool is_special(int32_t id) const override {
    return id >= 0 && id < vocab_size() && special_[id] != 0;
  }
  std::vector<int32_t> eos_token_ids() const override { return eos_; }
  std::optional<int32_t> pad_token_id() const override { return pad_; }

 private:
  void check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size() || !known_[id]) {
      throw std::out_of_range("token id " + std::to_string(id) +
                              " is not in the vocabulary (size " + std::to_string(vocab_size()) +
                              ")");
    }
  }

  // Normalized text without added tokens -> ids (pre-tokenizer + BPE).
  void encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
    std::string prefixed;
    if (add_prefix_space_ && text[0] != ' ') {
      prefixed = " " + std::string(text);
      text = prefixed;
    }
    if (!use_split_) {
      encode_word(text, ids);
      return;
    }
    splitter_->split(text, [&](size_t b, size_t e) { encode_word(text.substr(b, e - b), ids); });
  }

  void encode_word(std::string_view word, std::vector<int32_t>& ids) const {
    constexpr size_t kMaxCachedWordBytes = 64;
    constexpr size_t kMaxCacheEntries = 1 << 18;
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    std::string key;
    if (cacheable) {
      key.assign(word.data(), word.size());
      std::lock_guard<std::mutex> lock(cache_mutex_);
      auto it = cache_.find(key);
      if (it != cache_.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const size_t first = ids.size();
    bpe(word, ids);
    if (cacheable) {
      std::vector<int32_t> value(ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end());
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (cache_.size() >= kMaxCacheEntries) cache_.clear();
      cache_.emplace(std::move(key), std::move(value));
    }
  }

  // One pre-tokenizer word (raw bytes) -> ids.
  void bpe(std::string_view word, std::vector<int32_t>& ids) const {
    if (ignore_merges_) {
      auto it = form_to_id_.find(bytes_to_unicode_string(word));
      if (it != form_to_id_.end()) {
        ids.push_back(it->second);
        return;
      }
    }
    struct Symbol {
      int32_t id;
      int32_t prev;
      int32_t next;
      bool alive;
    };
    std::vector<Symbol> syms;
    syms.reserve(word.size());
    for (unsigned char c : word) {
      const int32_t id = byte_ids_[c];
      if (id < 0) continue;  // HF drops characters missing from the vocab when there is no unk
      const auto n = static_cast<int32_t>(syms.size());
      syms.push_back({id, n - 1, n + 1, true});
    }
    if (syms.empty()) return;
    syms.back().next = -1;

    struct Candidate {
      int32_t rank;
      int32_t pos;
      int32_t new_id;
      bool operator>(const Candidate& o) const {
        return rank != o.rank ? rank > o.rank : pos > o.pos;
      }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
    auto push_pair = [&](int32_t pos) {
      const int32_t nxt = syms[pos].next;
      if (nxt < 0) return;
      auto it = merges_.find(pair_key(syms[pos].id, syms[nxt].id));
      if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
    };
    for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) push_pair(i);
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& left = syms[top.pos];
      if (!left.alive || left.next < 0) continue;
      Symbol& right = syms[left.next];
      auto it = merges_.find(pair_key(left.id, right.id));
      if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale entry
      left.id = top.new_id;
      right.alive = false;
      left.next = right.next;
      if (left.next >= 0) syms[left.next].prev = top.pos;
      if (left.prev >= 0) push_pair(left.prev);
      push_pair(top.pos);
    }
    for (int32_t i = 0; i >= 0; i = syms[i].next) ids.push_back(syms[i].id);
  }

  bool nfc_;
  bool use_split_;
  bool add_prefix_space_;
  bool ignore_merges_;
  std::unique_ptr<RegexSplitter> splitter_;
  std::vector<std::string> vocab_forms_;
  std::vector<std::string> bytes_;
  std::vector<uint8_t> known_;
  std::vector<uint8_t> special_;
  std::unordered_map<std::string, int32_t> form_to_id_;
  std::unordered_map<uint64_t, MergeInfo> merges_;
  std::array<int32_t, 256> byte_ids_{};
  AddedTokenMatcher raw_all_, raw_nonspecial_, norm_all_, norm_nonspecial_;
  std::vector<int32_t> eos_;
  std::optional<int32_t> pad_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

void set_vocab(BpeData& data, const nlohmann::json& vocab, const std::string& where) {
  if (!vocab.is_object()) throw std::runtime_error(where + ": vocab is not a JSON object");
  for (const auto& [token, id_json] : vocab.items()) {
    if (!id_json.is_number_integer() || id_json.get<int64_t>() < 0 ||
        id_json.get<int64_t>() > (1 << 24)) {
      throw std::runtime_error(where + ": bad id for token \"" + token + "\"");
    }
    const auto id = id_json.get<size_t>();
    if (id >= data.vocab_forms.size()) data.vocab_forms.resize(id + 1);
    data.vocab_forms[id] = token;
  }
}

std::pair<std::string, std::string> split_merge_line(std::string_view line,
                                                     const std::string& where,
                                                     size_t index) {
  const size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0 || sp + 1 >= line.size()) {
    throw std::runtime_error(where + ": malformed merge #" + std::to_string(index) + ": \"" +
                             std::string(line) + "\"");
  }
  return {std::string(line.substr(0, sp)), std::string(line.substr(sp + 1))};
}

void apply_pre_tokenizer(BpeData& data, const nlohmann::json& pt, const std::string& where) {
  if (pt.is_null()) {
    data.use_split = false;
    return;
  }
  const std::string type = pt.value("type", "");
  if (type == "Sequence") {
    data.use_split = false;
    for (const auto& p : pt.at("pretokenizers")) apply_pre_tokenizer(data, p, where);
  } else if (type == "Split") {
    if (!pt.contains("pattern") || !pt["pattern"].contains("Regex") ||
        pt.value("behavior", "Isolated") != "Isolated" || pt.value("invert", false)) {
      throw std::runtime_error(where + ": only Split{Regex, Isolated, invert=false} is supported");
    }
    data.split_regex = pt["pattern"]["Regex"].get<std::string>();
    data.use_split = true;
  } else if (type == "ByteLevel") {
    data.add_prefix_space = pt.value("add_prefix_space", false);
    if (pt.value("use_regex", true)) {
      data.split_regex = kGpt2SplitRegex;
      data.use_split = true;
    }
  } else {
    throw std::runtime_error(where + ": unsupported pre_tokenizer type \"" + type + "\"");
  }
}

void apply_normalizer(BpeData& data, const nlohmann::json& n, const std::string& where) {
  if (n.is_null()) {
    data.nfc = false;
    return;
  }
  const std::string type = n.value("type", "");
  if (type == "NFC") {
    data.nfc = true;
  } else if (type == "Sequence") {
    data.nfc = false;
    for (const auto& inner : n.at("normalizers")) {
      if (inner.value("type", "") != "NFC") {
        throw std::runtime_error(where + ": unsupported normalizer \"" + inner.value("type", "") +
                                 "\"");
      }
      data.nfc = true;
    }
  } else {
    throw std::runtime_error(where + ": unsupported normalizer type \"" + type + "\"");
  }
}

}  // namespace

std::unique_ptr<Tokenizer> load_bpe_tokenizer_json(const fs::path& dir) {
  const fs::path path = dir / "tokenizer.json";
  const std::string where = path.string();
  const nlohmann::json j = read_json_file(path);
  BpeData data;
  data.source = where;
  try {
    const auto& model = j.at("model");
    const std::string type = model.value("type", "BPE");
    if (type != "BPE") throw std::runtime_error("unsupported model type \"" + type + "\"");
    if (model.value("byte_fallback", false))
      throw std::runtime_error("byte_fallback BPE is not supported");
    data.ignore_merges = model.value("ignore_merges", false);
    set_vocab(data, model.at("vocab"), where);
    const auto& merges = model.at("merges");
    if (!merges.is_array()) throw std::runtime_error("model.merges is not an array");
    data.merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      const auto& m = merges[i];
      if (m.is_string()) {
        data.merges.push_back(split_merge_line(m.get_ref<const std::string&>(), where, i));
      } else if (m.is_array() && m.size() == 2) {
        data.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        throw std::runtime_error("malformed merge #" + std::to_string(i));
      }
    }
    apply_normalizer(data, j.value("normalizer", nlohmann::json()), where);
    apply_pre_tokenizer(data, j.value("pre_tokenizer", nlohmann::json()), where);
    if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
      for (const auto& t : j["added_tokens"]) {
        data.added.push_back(parse_added_token(t, t.at("id").get<int32_t>(), false));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(where + ": bad or missing field: " + e.what());
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    if (msg.rfind(where, 0) == 0) throw;
    throw std::runtime_error(where + ": " + msg);
  }
  TokenizerConfig cfg = read_tokenizer_config(dir);
  return std::make_unique<BpeTokenizer>(std::move(data), cfg);
}

std::unique_ptr<Tokenizer> load_bpe_vocab_merges(const fs::path& dir) {
  const fs::path vocab_path = dir / "vocab.json";
  const fs::path merges_path = dir / "merges.txt";
  BpeData data;
  data.source = merges_path.string();
  set_vocab(data, read_json_file(vocab_path), vocab_path.string());
  const std::string text = read_text_file(merges_path);
  size_t pos = 0;
  size_t line_no = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++line_no;
    pos = eol + 1;
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    data.merges.push_back(split_merge_line(
        line, merges_path.string() + " line " + std::to_string(line_no), data.merges.size()));
  }
  TokenizerConfig cfg = read_tokenizer_config(dir);
  // note: the slow GPT2Tokenizer uses GPT-2's regex and no normalizer; Qwen2Tokenizer (and
  // anything unnamed, since this library targets Qwen) uses Qwen2's regex and NFC.
  if (cfg.tokenizer_class && *cfg.tokenizer_class == "GPT2Tokenizer") {
    data.nfc = false;
    data.split_regex = kGpt2SplitRegex;
  }
  data.added = cfg.added_tokens;
  return std::make_unique<BpeTokenizer>(std::move(data), cfg);
}

}  // namespace eztinker::tokenizer::detail
