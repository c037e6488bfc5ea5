// Model name -> local Hugging Face model directory. Looks, in order, at: an alias, the name as a
// directory path, <models-dir>/<org>/<name>, the Hugging Face cache
// ($HF_HOME/hub/models--Org--Name/snapshots/<rev>/, rev from refs/main else the newest complete
// snapshot), and finally, only when allowed, downloads from $HF_ENDPOINT into that cache the
// way huggingface_hub lays it out (resumable via <file>.incomplete + Range, verified by size and
// by sha256 when the server's X-Linked-Etag / ETag is one). Mirrors huggingface_hub's
// hf_hub_download / snapshot_download for the files a Qwen2 model needs.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace eztinker::model {

struct ResolveOptions {
  // <models-dir>/<org>/<name> is tried before the HF cache. Empty = env EZTINKER_MODELS_DIR
  // (unset = skipped).
  std::filesystem::path models_dir;
  // NAME -> directory; checked first (--alias NAME=DIR).
  std::map<std::string, std::filesystem::path> aliases;
  // Download unknown models from hf_endpoint into the cache. Off by default: nothing touches the
  // network unless asked.
  bool allow_download = false;
  // Empty = env HF_HOME, else ~/.cache/huggingface. The hub cache is <hf_home>/hub.
  std::filesystem::path hf_home;
  // Empty = env HF_ENDPOINT, else https://huggingface.co.
  std::string hf_endpoint;
  std::string revision = "main";  // branch, tag or commit to download
  // Bearer token for gated repos. Empty = env HF_TOKEN (unset = anonymous).
  std::string hf_token;
  bool progress = true;            // download progress on stderr
  int timeout_seconds = 60;        // connect/read timeout per request
};

// Returns an existing directory holding config.json. Throws std::runtime_error listing every
// place that was tried (and why each failed) when the model cannot be found or downloaded.
std::filesystem::path resolve_model(const std::string& name, const ResolveOptions& options = {});

// "Org/Name" -> "<hf_home>/hub/models--Org--Name" (hf_home resolved as in ResolveOptions).
std::filesystem::path hf_cache_repo_dir(const std::string& name, const ResolveOptions& options);

// True when `dir` has config.json and complete safetensors weights (the single file, or the
// index and every shard it names).
bool is_complete_model_dir(const std::filesystem::path& dir);

// Downloads `name` into the HF cache and returns the snapshot directory (resolve_model does
// this as its last step when allow_download is set). Throws std::runtime_error on failure.
std::filesystem::path download_model(const std::string& name, const ResolveOptions& options);

namespace detail {
// Lowercase hex SHA-256 of a file (for download verification and tests).
std::string sha256_file(const std::filesystem::path& path);
}  // namespace detail

}  // namespace eztinker::model
