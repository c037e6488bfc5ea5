// Tokenizer::load dispatch, Utf8StreamDecoder and copy_tokenizer_files. Layout detection
// follows transformers' AutoTokenizer preference: tokenizer.json (fast) before the slow
// vocab.json + merges.txt files, and SentencePiece's tokenizer.model last.
#include "eztinker/tokenizer.h"

#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer/unicode_util.h"

#include <stdexcept>

namespace eztinker::tokenizer {

namespace fs = std::filesystem;

Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const fs::path& dir) {
  if (!fs::is_directory(dir)) {
    throw std::runtime_error(dir.string() + ": tokenizer directory does not exist");
  }
  if (fs::exists(dir / "tokenizer.json")) return detail::load_bpe_tokenizer_json(dir);
  const bool has_vocab = fs::exists(dir / "vocab.json");
  const bool has_merges = fs::exists(dir / "merges.txt");
  if (has_vocab && has_merges) return detail::load_bpe_vocab_merges(dir);
  if (fs::exists(dir / "tokenizer.model")) return detail::load_sentencepiece(dir);
  if (has_vocab != has_merges) {
    throw std::runtime_error((dir / (has_vocab ? "merges.txt" : "vocab.json")).string() +
                             ": missing (vocab.json and merges.txt go together)");
  }
  throw std::runtime_error(dir.string() +
                           ": no tokenizer found (looked for tokenizer.json, vocab.json + "
                           "merges.txt, tokenizer.model)");
}

std::string Utf8StreamDecoder::push(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const size_t n = detail::utf8_valid_len(pending_, i);
    if (n != 0) {
      out.append(pending_, i, n);
      i += n;
      continue;
    }
    const size_t bad = detail::utf8_invalid_len(pending_, i);
    if (i + bad == pending_.size()) break;  // a valid prefix cut short: wait for more bytes
    out.append("\xEF\xBF\xBD");
    i += bad;
  }
  pending_.erase(0, i);
  return out;
}

std::string Utf8StreamDecoder::flush() {
  std::string out = detail::sanitize_utf8(pending_);
  pending_.clear();
  return out;
}

void copy_tokenizer_files(const fs::path& src_dir, const fs::path& dst_dir) {
  static const char* const kFiles[] = {"tokenizer.json",
                                       "tokenizer_config.json",
                                       "vocab.json",
                                       "merges.txt",
                                       "added_tokens.json",
                                       "special_tokens_map.json",
                                       "tokenizer.model",
                                       "chat_template.jinja"};
  const bool loadable =
      fs::exists(src_dir / "tokenizer.json") ||
      (fs::exists(src_dir / "vocab.json") && fs::exists(src_dir / "merges.txt")) ||
      fs::exists(src_dir / "tokenizer.model");
  if (!loadable) {
    throw std::runtime_error(src_dir.string() +
                             ": no tokenizer files to copy (need tokenizer.json, vocab.json + "
                             "merges.txt, or tokenizer.model)");
  }
  std::error_code ec;
  fs::create_directories(dst_dir, ec);
  if (ec) throw std::runtime_error(dst_dir.string() + ": cannot create directory: " + ec.message());
  for (const char* name : kFiles) {
    if (!fs::exists(src_dir / name)) continue;
    fs::copy_file(src_dir / name, dst_dir / name, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      throw std::runtime_error((dst_dir / name).string() + ": cannot copy from " +
                               (src_dir / name).string() + ": " + ec.message());
    }
  }
}

}  // namespace eztinker::tokenizer
