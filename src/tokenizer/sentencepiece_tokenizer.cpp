// SentencePiece tokenizer (see sentencepiece_tokenizer.h). Text between control symbols
// (<s>, </s>, ...) is encoded by the SentencePiece processor as is; with parse_special the
// control symbols written in text become their ids, as HF's LlamaTokenizer does. Decoding
// hands runs of ordinary ids to the processor and writes control symbols as their piece text.
#include "tokenizer/sentencepiece_tokenizer.h"

#include "tokenizer/added_tokens.h"
#include "tokenizer/tokenizer_config.h"
#include "tokenizer/unicode_util.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <stdexcept>

namespace eztinker::tokenizer::detail {

namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& dir) {
    const std::filesystem::path path = dir / "tokenizer.model";
    const auto status = sp_.Load(path.string());
    if (!status.ok()) throw std::runtime_error(path.string() + ": " + status.ToString());
    const TokenizerConfig cfg = read_tokenizer_config(dir);
    chat_template_ = cfg.chat_template;

    std::vector<AddedToken> controls;
    for (int id = 0; id < sp_.GetPieceSize(); ++id) {
      if (!sp_.IsControl(id)) continue;
      AddedToken t;
      t.id = id;
      t.content = sp_.IdToPiece(id);
      controls.push_back(t);
    }
    controls_ = AddedTokenMatcher(controls);

    auto add_eos = [&](int id) {
      if (id >= 0 && std::find(eos_.begin(), eos_.end(), id) == eos_.end()) eos_.push_back(id);
    };
    if (cfg.eos_token) {
      if (auto id = token_to_id(*cfg.eos_token)) add_eos(*id);
    }
    add_eos(sp_.eos_id());
    for (const char* name : {"<|endoftext|>", "<|im_end|>"}) {
      if (auto id = token_to_id(name)) add_eos(*id);
    }
    if (cfg.pad_token) pad_ = token_to_id(*cfg.pad_token);
    if (!pad_ && sp_.pad_id() >= 0) pad_ = sp_.pad_id();
  }

  std::vector<int32_t> encode(std::string_view text, bool parse_special) const override {
    std::string sanitized;
    if (!is_valid_utf8(text)) {
      sanitized = sanitize_utf8(text);
      text = sanitized;
    }
    std::vector<Segment> segments;
    if (parse_special)
      controls_.split(text, segments);
    else
      segments.push_back({0, text.size(), -1});
    std::vector<int32_t> out;
    std::vector<int> ids;
    for (const Segment& seg : segments) {
      if (seg.id >= 0) {
        out.push_back(seg.id);
        continue;
      }
      if (seg.end == seg.begin) continue;
      ids.clear();
      const auto status = sp_.Encode(text.substr(seg.begin, seg.end - seg.begin), &ids);
      if (!status.ok())
        throw std::runtime_error("sentencepiece encode failed: " + status.ToString());
      out.insert(out.end(), ids.begin(), ids.end());
    }
    return out;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override {
    std::string out;
    std::vector<int> run;
    auto flush = [&] {
      if (!run.empty()) out += sp_.DecodeIds(run);
      run.clear();
    };
    for (int32_t id : ids) {
      check_id(id);
      if (sp_.IsControl(id)) {
        flush();
        if (!skip_special_tokens) out += sp_.IdToPiece(id);
        continue;
      }
      run.push_back(id);
    }
    flush();
    return is_valid_utf8(out) ? out : sanitize_utf8(out);
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    const std::string& piece = sp_.IdToPiece(id);
    if (sp_.IsByte(id)) {  // "<0xAB>"
      return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
    }
    if (sp_.IsControl(id)) return piece;
    if (sp_.IsUnknown(id)) return " \xE2\x81\x87 ";  // SentencePiece's " ⁇ " for unknowns
    std::string out;
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {  // U+2581 "▁" stands for a space
        out.push_back(' ');
        i += 3;
      } else {
        out.push_back(piece[i++]);
      }
    }
    return out;
  }

  int32_t vocab_size() const override { return sp_.GetPieceSize(); }

  std::optional<int32_t> token_to_id(std::string_view token) const override {
    const int id = sp_.PieceToId(token);
    if (id < 0 || sp_.IdToPiece(id) != token) return std::nullopt;
    return id;
  }

  std::string id_to_token(int32_t id) const override {
    check_id(id);
    return sp_.IdToPiece(id);
  }

  bool is_special(int32_t id) const override {
    return id >= 0 && id < vocab_size() && sp_.IsControl(id);
  }
  std::vector<int32_t> eos_token_ids() const override { return eos_; }
  std::optional<int32_t> pad_token_id() const override { return pad_; }

 private:
  void check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size()) {
      throw std::out_of_range("token id " + std::to_string(id) +
                              " is not in the vocabulary (size " + std::to_string(vocab_size()) +
                              ")");
    }
  }

  sentencepiece::SentencePieceProcessor sp_;
  AddedTokenMatcher controls_;
  std::vector<int32_t> eos_;
  std::optional<int32_t> pad_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& dir) {
  return std::make_unique<SentencePieceTokenizer>(dir);
}

}  // namespace eztinker::tokenizer::detail
