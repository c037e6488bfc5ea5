// SentencePiece tokenizer (see sentencepiece_tokenizer.h). Text between control symbols
// (<s>, </s>, ...) is encoded by the SentencePiece processor as is; with parse_special the
// control symbols written in text become their ids, as HF's LlamaTokenizer does. Decoding
// hands runs of ordinary ids to the processor and writes control symbols as their piece text.
// The processor lives in eztinker_sentencepiece_shim.so, found and dlopened here once per
// process and never unloaded.
#include "tokenizer/sentencepiece_tokenizer.h"

#include "tokenizer/added_tokens.h"
#include "tokenizer/sentencepiece_shim/sentencepiece_shim.h"
#include "tokenizer/tokenizer_config.h"
#include "tokenizer/unicode_util.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <type_traits>

namespace eztinker::tokenizer::detail {

namespace {

namespace fs = std::filesystem;

constexpr const char* kShimFileName = "eztinker_sentencepiece_shim.so";
constexpr const char* kShimPathEnv = "EZTINKER_SENTENCEPIECE_SHIM";

// The shim's C functions, resolved with dlsym.
struct ShimApi {
  decltype(&ezt_spm_abi_version) abi_version = nullptr;
  decltype(&ezt_spm_load) load = nullptr;
  decltype(&ezt_spm_destroy) destroy = nullptr;
  decltype(&ezt_spm_encode) encode = nullptr;
  decltype(&ezt_spm_decode) decode = nullptr;
  decltype(&ezt_spm_piece_size) piece_size = nullptr;
  decltype(&ezt_spm_piece_to_id) piece_to_id = nullptr;
  decltype(&ezt_spm_id_to_piece) id_to_piece = nullptr;
  decltype(&ezt_spm_piece_flags) piece_flags = nullptr;
  decltype(&ezt_spm_bos_id) bos_id = nullptr;
  decltype(&ezt_spm_eos_id) eos_id = nullptr;
  decltype(&ezt_spm_pad_id) pad_id = nullptr;
  decltype(&ezt_spm_free) free = nullptr;
};

// dlopens `path` and resolves every function; on failure returns false with the reason.
bool open_shim(const std::string& path, ShimApi& api, std::string& why) {
  if (path.find('/') != std::string::npos) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      why = "no such file";
      return false;
    }
  }
  // note: RTLD_LOCAL keeps libsentencepiece's exported protobuf-lite out of the global scope
  // (where it would interpose libtorch's libprotobuf); RTLD_DEEPBIND makes the shim and
  // libsentencepiece resolve their own symbols first, so their protobuf calls stay inside
  // libsentencepiece even when libprotobuf is already loaded.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (!handle) {
    const char* err = dlerror();
    why = err ? err : "dlopen failed";
    return false;
  }
  bool missing = false;
  auto resolve = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(handle, name));
    if (!fn && !missing) {
      missing = true;
      why = std::string("does not export ") + name;
    }
  };
  resolve(api.abi_version, "ezt_spm_abi_version");
  resolve(api.load, "ezt_spm_load");
  resolve(api.destroy, "ezt_spm_destroy");
  resolve(api.encode, "ezt_spm_encode");
  resolve(api.decode, "ezt_spm_decode");
  resolve(api.piece_size, "ezt_spm_piece_size");
  resolve(api.piece_to_id, "ezt_spm_piece_to_id");
  resolve(api.id_to_piece, "ezt_spm_id_to_piece");
  resolve(api.piece_flags, "ezt_spm_piece_flags");
  resolve(api.bos_id, "ezt_spm_bos_id");
  resolve(api.eos_id, "ezt_spm_eos_id");
  resolve(api.pad_id, "ezt_spm_pad_id");
  resolve(api.free, "ezt_spm_free");
  if (!missing && api.abi_version() != EZT_SPM_ABI_VERSION) {
    missing = true;
    why = "ABI version " + std::to_string(api.abi_version()) + ", expected " +
          std::to_string(EZT_SPM_ABI_VERSION) + " (a shim from another EZTinker build)";
  }
  if (missing) {
    dlclose(handle);
    return false;
  }
  return true;  // note: never dlclosed; libsentencepiece's static state lives as long as we do
}

// Loads the first usable candidate into `api`; returns its path or throws naming each one.
std::string load_shim(const std::vector<std::string>& candidates, ShimApi& api) {
  std::string tried;
  for (const std::string& path : candidates) {
    std::string why;
    if (open_shim(path, api, why)) return path;
    tried += (tried.empty() ? " " : "; ") + path + " (" + why + ")";
  }
  throw std::runtime_error(std::string("SentencePiece is unavailable: cannot load ") +
                           kShimFileName + " (set " + kShimPathEnv +
                           " to its path); tried:" + tried);
}

// The process-wide shim, searched on first use. A failed search is repeated on the next call
// (it is cheap and only happens while loading a tokenizer).
const ShimApi& shim_api() {
  static std::mutex mutex;
  static ShimApi api;
  static bool loaded = false;
  std::lock_guard<std::mutex> lock(mutex);
  if (!loaded) {
    ShimApi fresh;
    load_shim(sentencepiece_shim_candidates(), fresh);
    api = fresh;
    loaded = true;
  }
  return api;
}

// Owns a shim-allocated buffer.
struct ShimFree {
  void (*free)(void*);
  void operator()(void* p) const { free(p); }
};
template <typename T>
using ShimBuffer = std::unique_ptr<T, ShimFree>;

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const ShimApi& api, const std::filesystem::path& dir) : api_(api) {
    const fs::path path = dir / "tokenizer.model";
    char* error = nullptr;
    EztSpm* spm = api_.load(path.c_str(), &error);
    if (!spm) {
      const ShimBuffer<char> owned(error, ShimFree{api_.free});
      throw std::runtime_error(path.string() + ": " + (error ? error : "cannot load"));
    }
    spm_.reset(spm);
    vocab_size_ = api_.piece_size(spm_.get());
    const TokenizerConfig cfg = read_tokenizer_config(dir);
    chat_template_ = cfg.chat_template;

    std::vector<AddedToken> controls;
    for (int32_t id = 0; id < vocab_size_; ++id) {
      if (!is_control(id)) continue;
      AddedToken t;
      t.id = id;
      t.content = std::string(piece(id));
      controls.push_back(t);
    }
    controls_ = AddedTokenMatcher(controls);

    auto add_eos = [&](int32_t id) {
      if (id >= 0 && std::find(eos_.begin(), eos_.end(), id) == eos_.end()) eos_.push_back(id);
    };
    if (cfg.eos_token) {
      if (auto id = token_to_id(*cfg.eos_token)) add_eos(*id);
    }
    add_eos(api_.eos_id(spm_.get()));
    for (const char* name : {"<|endoftext|>", "<|im_end|>"}) {
      if (auto id = token_to_id(name)) add_eos(*id);
    }
    if (cfg.pad_token) pad_ = token_to_id(*cfg.pad_token);
    if (!pad_ && api_.pad_id(spm_.get()) >= 0) pad_ = api_.pad_id(spm_.get());
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
    for (const Segment& seg : segments) {
      if (seg.id >= 0) {
        out.push_back(seg.id);
        continue;
      }
      if (seg.end == seg.begin) continue;
      int32_t* ids = nullptr;
      size_t n = 0;
      char* error = nullptr;
      const int rc =
          api_.encode(spm_.get(), text.data() + seg.begin, seg.end - seg.begin, &ids, &n, &error);
      const ShimBuffer<int32_t> owned_ids(ids, ShimFree{api_.free});
      const ShimBuffer<char> owned_error(error, ShimFree{api_.free});
      if (rc != 0) {
        throw std::runtime_error(std::string("sentencepiece encode failed: ") +
                                 (error ? error : "unknown error"));
      }
      out.insert(out.end(), ids, ids + n);
    }
    return out;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override {
    std::string out;
    std::vector<int32_t> run;
    auto flush = [&] {
      if (run.empty()) return;
      char* text = nullptr;
      size_t n = 0;
      char* error = nullptr;
      const int rc = api_.decode(spm_.get(), run.data(), run.size(), &text, &n, &error);
      const ShimBuffer<char> owned_text(text, ShimFree{api_.free});
      const ShimBuffer<char> owned_error(error, ShimFree{api_.free});
      if (rc != 0) {
        throw std::runtime_error(std::string("sentencepiece decode failed: ") +
                                 (error ? error : "unknown error"));
      }
      out.append(text, n);
      run.clear();
    };
    for (int32_t id : ids) {
      check_id(id);
      if (is_control(id)) {
        flush();
        if (!skip_special_tokens) out += piece(id);
        continue;
      }
      run.push_back(id);
    }
    flush();
    return is_valid_utf8(out) ? out : sanitize_utf8(out);
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    const std::string_view p = piece(id);
    const uint32_t flags = api_.piece_flags(spm_.get(), id);
    if (flags & EZT_SPM_BYTE) {  // "<0xAB>"
      return std::string(1, static_cast<char>(std::stoi(std::string(p.substr(3, 2)), nullptr, 16)));
    }
    if (flags & EZT_SPM_CONTROL) return std::string(p);
    if (flags & EZT_SPM_UNKNOWN) return " \xE2\x81\x87 ";  // SentencePiece's " ⁇ " for unknowns
    std::string out;
    for (size_t i = 0; i < p.size();) {
      if (p.compare(i, 3, "\xE2\x96\x81") == 0) {  // U+2581 "▁" stands for a space
        out.push_back(' ');
        i += 3;
      } else {
        out.push_back(p[i++]);
      }
    }
    return out;
  }

  int32_t vocab_size() const override { return vocab_size_; }

  std::optional<int32_t> token_to_id(std::string_view token) const override {
    const int32_t id = api_.piece_to_id(spm_.get(), token.data(), token.size());
    if (id < 0 || id >= vocab_size_ || piece(id) != token) return std::nullopt;
    return id;
  }

  std::string id_to_token(int32_t id) const override {
    check_id(id);
    return std::string(piece(id));
  }

  bool is_special(int32_t id) const override {
    return id >= 0 && id < vocab_size_ && is_control(id);
  }
  std::vector<int32_t> eos_token_ids() const override { return eos_; }
  std::optional<int32_t> pad_token_id() const override { return pad_; }

 private:
  struct Destroy {
    void (*destroy)(EztSpm*);
    void operator()(EztSpm* spm) const { destroy(spm); }
  };

  void check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size_) {
      throw std::out_of_range("token id " + std::to_string(id) +
                              " is not in the vocabulary (size " + std::to_string(vocab_size_) +
                              ")");
    }
  }
  // The piece text of a valid id; it points into the loaded model.
  std::string_view piece(int32_t id) const {
    size_t n = 0;
    const char* p = api_.id_to_piece(spm_.get(), id, &n);
    return {p, n};
  }
  bool is_control(int32_t id) const { return api_.piece_flags(spm_.get(), id) & EZT_SPM_CONTROL; }

  const ShimApi& api_;
  std::unique_ptr<EztSpm, Destroy> spm_{nullptr, Destroy{api_.destroy}};
  int32_t vocab_size_ = 0;
  AddedTokenMatcher controls_;
  std::vector<int32_t> eos_;
  std::optional<int32_t> pad_;
};

}  // namespace

std::vector<std::string> sentencepiece_shim_candidates() {
  if (const char* env = std::getenv(kShimPathEnv); env && *env) return {env};
  std::vector<std::string> out;
  auto add = [&](const std::string& path) {
    if (std::find(out.begin(), out.end(), path) == out.end()) out.push_back(path);
  };
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    add((exe.parent_path() / kShimFileName).string());
    add((exe.parent_path() / ".." / EZTINKER_INSTALL_LIBDIR / "eztinker" / kShimFileName)
            .lexically_normal()
            .string());
  }
#ifdef EZTINKER_SENTENCEPIECE_SHIM_BUILD_PATH
  add(EZTINKER_SENTENCEPIECE_SHIM_BUILD_PATH);
#endif
  add((fs::path(EZTINKER_INSTALL_FULL_LIBDIR) / "eztinker" / kShimFileName).string());
  add(kShimFileName);
  return out;
}

std::string find_sentencepiece_shim(const std::vector<std::string>& candidates) {
  ShimApi api;
  return load_shim(candidates, api);
}

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& dir) {
  const ShimApi* api = nullptr;
  try {
    api = &shim_api();
  } catch (const std::runtime_error& e) {
    throw std::runtime_error((dir / "tokenizer.model").string() + ": " + e.what());
  }
  return std::make_unique<SentencePieceTokenizer>(*api, dir);
}

}  // namespace eztinker::tokenizer::detail
