// Model resolution and Hugging Face hub download (see model_resolver.h). The download follows
// huggingface_hub: a HEAD without redirects gives X-Repo-Commit and the blob's X-Linked-Etag /
// X-Linked-Size (or ETag / Content-Length for small files), then a GET (following redirects to
// the CDN) streams into <snapshot>/<file>.incomplete, resuming with Range when it exists.
#include "model/model_resolver.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace eztinker::model {
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), small and dependency-free: verification only, not a hot path.
namespace detail {
namespace {

class Sha256 {
 public:
  void update(const uint8_t* data, size_t n) {
    total_ += n;
    while (n > 0) {
      const size_t take = std::min(n, size_t{64} - used_);
      std::memcpy(block_.data() + used_, data, take);
      used_ += take;
      data += take;
      n -= take;
      if (used_ == 64) {
        compress(block_.data());
        used_ = 0;
      }
    }
  }
  std::string hex() {
    const uint64_t bits = total_ * 8;
    const uint8_t pad = 0x80;
    update(&pad, 1);
    const uint8_t zero = 0;
    while (used_ != 56) update(&zero, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
    update(len, 8);
    char out[65];
    for (int i = 0; i < 8; ++i) std::snprintf(out + 8 * i, 9, "%08x", h_[i]);
    return std::string(out, 64);
  }

 private:
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
  void compress(const uint8_t* p) {
    static constexpr uint32_t kK[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      w[i] = (uint32_t{p[4 * i]} << 24) | (uint32_t{p[4 * i + 1]} << 16) |
             (uint32_t{p[4 * i + 2]} << 8) | uint32_t{p[4 * i + 3]};
    }
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const uint32_t ch = (e & f) ^ (~e & g);
      const uint32_t t1 = h + s1 + ch + kK[i] + w[i];
      const uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      const uint32_t t2 = s0 + maj;
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h_[0] += a; h_[1] += b; h_[2] += c; h_[3] += d;
    h_[4] += e; h_[5] += f; h_[6] += g; h_[7] += h;
  }
  std::array<uint32_t, 8> h_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<uint8_t, 64> block_{};
  size_t used_ = 0;
  uint64_t total_ = 0;
};

}  // namespace

std::string sha256_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  Sha256 sha;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    sha.update(reinterpret_cast<const uint8_t*>(buf.data()), static_cast<size_t>(in.gcount()));
  }
  return sha.hex();
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Options and local lookup

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? std::string(v) : fallback;
}

fs::path effective_hf_home(const ResolveOptions& o) {
  if (!o.hf_home.empty()) return o.hf_home;
  const std::string env = env_or("HF_HOME", "");
  if (!env.empty()) return env;
  return fs::path(env_or("HOME", "/root")) / ".cache" / "huggingface";
}

fs::path effective_models_dir(const ResolveOptions& o) {
  if (!o.models_dir.empty()) return o.models_dir;
  return env_or("EZTINKER_MODELS_DIR", "");
}

std::string effective_endpoint(const ResolveOptions& o) {
  std::string e = !o.hf_endpoint.empty() ? o.hf_endpoint : env_or("HF_ENDPOINT", "https://huggingface.co");
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e;
}

// A hub repo id: "name" or "org/name" of [A-Za-z0-9._-], no "..".
bool is_repo_id(const std::string& name) {
  static const std::regex kRepo(R"(^([A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$)");
  return std::regex_match(name, kRepo) && name.find("..") == std::string::npos;
}

std::string read_trimmed(const fs::path& path) {
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// The snapshot refs/<revision> points at when complete, else the newest complete snapshot.
std::optional<fs::path> find_cached_snapshot(const fs::path& repo_dir, const std::string& revision,
                                             std::string* why) {
  const fs::path snapshots = repo_dir / "snapshots";
  if (!fs::is_directory(snapshots)) {
    *why = "no such directory";
    return std::nullopt;
  }
  const fs::path ref = repo_dir / "refs" / revision;
  if (fs::exists(ref)) {
    const fs::path snap = snapshots / read_trimmed(ref);
    if (is_complete_model_dir(snap)) return snap;
  }
  if (is_complete_model_dir(snapshots / revision)) return snapshots / revision;  // a commit id
  std::optional<fs::path> best;
  fs::file_time_type best_time;
  for (const auto& e : fs::directory_iterator(snapshots)) {
    if (!e.is_directory() || !is_complete_model_dir(e.path())) continue;
    const auto t = fs::last_write_time(e.path());
    if (!best || t > best_time) {
      best = e.path();
      best_time = t;
    }
  }
  if (!best) *why = "no complete snapshot (config.json + safetensors weights)";
  return best;
}

}  // namespace

bool is_complete_model_dir(const fs::path& dir) {
  if (!fs::is_regular_file(dir / "config.json")) return false;
  if (fs::is_regular_file(dir / "model.safetensors")) return true;
  const fs::path index = dir / "model.safetensors.index.json";
  if (!fs::is_regular_file(index)) return false;
  try {
    std::ifstream in(index);
    const nlohmann::json j = nlohmann::json::parse(in);
    for (const auto& [name, shard] : j.at("weight_map").items()) {
      if (!fs::is_regular_file(dir / shard.get<std::string>())) return false;
    }
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

fs::path hf_cache_repo_dir(const std::string& name, const ResolveOptions& options) {
  std::string folder = "models--" + name;
  for (size_t pos; (pos = folder.find('/')) != std::string::npos;) folder.replace(pos, 1, "--");
  return effective_hf_home(options) / "hub" / folder;
}

// ---------------------------------------------------------------------------------------------
// Download

namespace {

struct Url {
  std::string origin;  // scheme://host[:port]
  std::string path;    // /...
};

Url split_url(const std::string& url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) throw std::runtime_error("not an absolute URL: " + url);
  const size_t path_start = url.find('/', scheme_end + 3);
  if (path_start == std::string::npos) return {url, "/"};
  return {url.substr(0, path_start), url.substr(path_start)};
}

std::unique_ptr<httplib::Client> make_client(const std::string& origin, const ResolveOptions& o) {
  auto client = std::make_unique<httplib::Client>(origin);
  client->set_connection_timeout(o.timeout_seconds, 0);
  client->set_read_timeout(o.timeout_seconds, 0);
  client->set_follow_location(false);
  return client;
}

httplib::Headers auth_headers(const ResolveOptions& o) {
  httplib::Headers h = {{"User-Agent", "eztinker"}};
  const std::string token = !o.hf_token.empty() ? o.hf_token : env_or("HF_TOKEN", "");
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  return h;
}

// A 64-hex sha256 from an ETag value ("\"abc\"", W/"abc"), else "".
std::string sha256_from_etag(std::string etag) {
  if (etag.rfind("W/", 0) == 0) etag = etag.substr(2);
  etag.erase(std::remove(etag.begin(), etag.end(), '"'), etag.end());
  static const std::regex kHex("^[0-9a-fA-F]{64}$");
  if (!std::regex_match(etag, kHex)) return "";
  std::transform(etag.begin(), etag.end(), etag.begin(), ::tolower);
  return etag;
}

std::string human_mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

struct FileMeta {
  std::string commit;        // X-Repo-Commit, "" when absent
  std::string sha256;        // "" when the etag is not a sha256
  int64_t size = -1;         // -1 when unknown
  std::string download_url;  // absolute
};

// HEAD without redirects. Returns nullopt on 404; throws on other failures.
std::optional<FileMeta> head_file(const std::string& endpoint, const std::string& name,
                                  const std::string& revision, const std::string& file,
                                  const ResolveOptions& o) {
  const std::string url = endpoint + "/" + name + "/resolve/" + revision + "/" + file;
  Url u = split_url(url);
  auto client = make_client(u.origin, o);
  auto res = client->Head(u.path, auth_headers(o));
  if (!res) {
    throw std::runtime_error("cannot reach " + url + ": " + httplib::to_string(res.error()));
  }
  if (res->status == 404) return std::nullopt;
  if (res->status == 401 || res->status == 403) {
    throw std::runtime_error(url + ": HTTP " + std::to_string(res->status) +
                             " (gated or private repo? set HF_TOKEN)");
  }
  FileMeta meta;
  meta.commit = res->get_header_value("X-Repo-Commit");
  const std::string linked = res->get_header_value("X-Linked-Etag");
  meta.sha256 = sha256_from_etag(!linked.empty() ? linked : res->get_header_value("ETag"));
  const std::string linked_size = res->get_header_value("X-Linked-Size");
  const std::string length = res->get_header_value("Content-Length");
  if (res->status >= 300 && res->status < 400) {
    std::string location = res->get_header_value("Location");
    if (location.empty()) throw std::runtime_error(url + ": redirect without Location");
    meta.download_url = location.rfind("http", 0) == 0 ? location : u.origin + location;
    if (!linked_size.empty()) meta.size = std::stoll(linked_size);
  } else if (res->status == 200) {
    meta.download_url = url;
    if (!linked_size.empty()) {
      meta.size = std::stoll(linked_size);
    } else if (!length.empty()) {
      meta.size = std::stoll(length);
    }
  } else {
    throw std::runtime_error(url + ": HTTP " + std::to_string(res->status));
  }
  return meta;
}

// GET meta.download_url into dest (via dest.incomplete, resuming), then verify.
void fetch_file(const FileMeta& meta, const fs::path& dest, const std::string& label,
                const ResolveOptions& o) {
  const fs::path partial = fs::path(dest.string() + ".incomplete");
  uint64_t have = fs::exists(partial) ? fs::file_size(partial) : 0;
  if (meta.size >= 0 && have > static_cast<uint64_t>(meta.size)) {
    fs::remove(partial);  // longer than the file: not a prefix of it
    have = 0;
  }
  httplib::Headers headers = auth_headers(o);
  if (have > 0) headers.emplace("Range", "bytes=" + std::to_string(have) + "-");

  Url u = split_url(meta.download_url);
  auto client = make_client(u.origin, o);
  client->set_follow_location(true);
  std::ofstream out;
  int status = 0;
  uint64_t written = have;
  uint64_t total = meta.size >= 0 ? static_cast<uint64_t>(meta.size) : 0;
  auto last_report = std::chrono::steady_clock::now() - std::chrono::seconds(10);
  auto report = [&](bool final) {
    if (!o.progress) return;
    auto now = std::chrono::steady_clock::now();
    if (!final && now - last_report < std::chrono::milliseconds(500)) return;
    last_report = now;
    if (total > 0) {
      std::fprintf(stderr, "\rdownloading %s: %3d%% (%s / %s)%s", label.c_str(),
                   static_cast<int>(100.0 * static_cast<double>(written) / static_cast<double>(total)),
                   human_mb(written).c_str(), human_mb(total).c_str(), final ? "\n" : "");
    } else {
      std::fprintf(stderr, "\rdownloading %s: %s%s", label.c_str(), human_mb(written).c_str(),
                   final ? "\n" : "");
    }
  };
  auto res = client->Get(
      u.path, headers,
      [&](const httplib::Response& r) {
        status = r.status;
        if (status == 206) {
          out.open(partial, std::ios::binary | std::ios::app);  // the server honoured Range
        } else if (status == 200) {
          written = 0;  // full body: start over
          out.open(partial, std::ios::binary | std::ios::trunc);
        } else if (status == 416 && meta.size >= 0 && have == static_cast<uint64_t>(meta.size)) {
          return true;  // already complete
        } else {
          return true;  // error body: read and ignore, reported below
        }
        if (!out) throw std::runtime_error(partial.string() + ": cannot write");
        return true;
      },
      [&](const char* data, size_t n) {
        if (status != 200 && status != 206) return true;
        out.write(data, static_cast<std::streamsize>(n));
        written += n;
        report(false);
        return static_cast<bool>(out);
      });
  if (out.is_open()) out.close();
  if (!res) {
    throw std::runtime_error("download of " + meta.download_url + " failed after " +
                             human_mb(written) + ": " + httplib::to_string(res.error()) +
                             " (rerun to resume from " + partial.string() + ")");
  }
  if (status != 200 && status != 206 && status != 416) {
    throw std::runtime_error(meta.download_url + ": HTTP " + std::to_string(status));
  }
  report(true);
  const uint64_t size = fs::file_size(partial);
  if (meta.size >= 0 && size != static_cast<uint64_t>(meta.size)) {
    throw std::runtime_error(label + ": downloaded " + std::to_string(size) + " bytes, expected " +
                             std::to_string(meta.size) + " (rerun to resume)");
  }
  if (!meta.sha256.empty()) {
    const std::string got = detail::sha256_file(partial);
    if (got != meta.sha256) {
      fs::remove(partial);  // corrupt: a resume would keep the bad prefix
      throw std::runtime_error(label + ": sha256 mismatch (got " + got + ", expected " +
                               meta.sha256 + "); the partial file was removed, rerun to retry");
    }
  }
  fs::rename(partial, dest);
}

}  // namespace

fs::path download_model(const std::string& name, const ResolveOptions& options) {
  if (!is_repo_id(name)) {
    throw std::runtime_error("\"" + name + "\" is not a Hugging Face repo id (Org/Name)");
  }
  const std::string endpoint = effective_endpoint(options);
  const fs::path repo_dir = hf_cache_repo_dir(name, options);

  auto config = head_file(endpoint, name, options.revision, "config.json", options);
  if (!config) {
    throw std::runtime_error(endpoint + "/" + name + ": config.json not found (HTTP 404; wrong "
                             "name or revision?)");
  }
  const std::string commit = !config->commit.empty() ? config->commit : options.revision;
  if (commit.find('/') != std::string::npos || commit.find("..") != std::string::npos) {
    throw std::runtime_error(endpoint + ": unusable X-Repo-Commit \"" + commit + "\"");
  }
  const fs::path snapshot = repo_dir / "snapshots" / commit;
  fs::create_directories(snapshot);

  auto get = [&](const std::string& file, const std::optional<FileMeta>& known) -> bool {
    const fs::path dest = snapshot / file;
    if (fs::exists(dest)) return true;
    std::optional<FileMeta> meta = known ? known : head_file(endpoint, name, commit, file, options);
    if (!meta) return false;
    fetch_file(*meta, dest, name + "/" + file, options);
    return true;
  };

  get("config.json", config);
  const bool single = get("model.safetensors", std::nullopt);
  if (!single) {
    if (!get("model.safetensors.index.json", std::nullopt)) {
      throw std::runtime_error(endpoint + "/" + name +
                               ": neither model.safetensors nor model.safetensors.index.json "
                               "exists (only safetensors checkpoints are supported)");
    }
    std::ifstream in(snapshot / "model.safetensors.index.json");
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error((snapshot / "model.safetensors.index.json").string() +
                               ": invalid JSON: " + e.what());
    }
    std::vector<std::string> shards;
    for (const auto& [tensor, shard] : index.at("weight_map").items()) {
      const std::string s = shard.get<std::string>();
      if (!is_repo_id(s) || s.find('/') != std::string::npos) {
        throw std::runtime_error("index names an unusable shard file \"" + s + "\"");
      }
      if (std::find(shards.begin(), shards.end(), s) == shards.end()) shards.push_back(s);
    }
    for (const std::string& s : shards) {
      if (!get(s, std::nullopt)) throw std::runtime_error(endpoint + "/" + name + ": shard " + s + " is missing");
    }
  }
  for (const char* optional_file :
       {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json",
        "merges.txt", "special_tokens_map.json", "added_tokens.json", "tokenizer.model"}) {
    get(optional_file, std::nullopt);
  }
  // refs/<revision> last: a snapshot is only advertised once complete.
  fs::create_directories(repo_dir / "refs");
  if (commit != options.revision) {
    std::ofstream(repo_dir / "refs" / options.revision) << commit;
  }
  return snapshot;
}

fs::path resolve_model(const std::string& name, const ResolveOptions& options) {
  if (name.empty()) throw std::runtime_error("model name is empty");
  std::vector<std::string> looked;

  if (auto it = options.aliases.find(name); it != options.aliases.end()) {
    if (fs::is_regular_file(it->second / "config.json")) return it->second;
    looked.push_back("alias " + name + "=" + it->second.string() + " (no config.json there)");
  }
  if (fs::is_directory(name)) {
    if (fs::is_regular_file(fs::path(name) / "config.json")) return fs::path(name);
    looked.push_back("directory " + name + " (exists but has no config.json)");
  } else {
    looked.push_back("directory " + name + " (not a directory)");
  }
  const fs::path models_dir = effective_models_dir(options);
  if (models_dir.empty()) {
    looked.push_back("models dir (not set: --models-dir or EZTINKER_MODELS_DIR)");
  } else if (is_repo_id(name)) {
    const fs::path candidate = models_dir / name;
    if (fs::is_regular_file(candidate / "config.json")) return candidate;
    looked.push_back("models dir " + candidate.string() + " (no config.json)");
  }
  if (is_repo_id(name)) {
    const fs::path repo_dir = hf_cache_repo_dir(name, options);
    std::string why;
    if (auto snap = find_cached_snapshot(repo_dir, options.revision, &why)) return *snap;
    looked.push_back("HF cache " + (repo_dir / "snapshots").string() + " (" + why + ")");
    if (options.allow_download) {
      try {
        return download_model(name, options);
      } catch (const std::exception& e) {
        looked.push_back("download from " + effective_endpoint(options) + " (" + e.what() + ")");
      }
    } else {
      looked.push_back("download from " + effective_endpoint(options) +
                       " (disabled; enable with --allow-download)");
    }
  } else {
    looked.push_back("HF cache / hub (\"" + name + "\" is not an Org/Name repo id)");
  }
  std::string msg = "model \"" + name + "\" not found; looked in:";
  for (const auto& l : looked) msg += "\n  - " + l;
  throw std::runtime_error(msg);
}

}  // namespace eztinker::model
