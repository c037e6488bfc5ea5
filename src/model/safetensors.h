// safetensors reader and writer (https://github.com/huggingface/safetensors format): 8-byte
// little-endian header length N, N bytes of JSON header {name: {dtype, shape, data_offsets}},
// then the raw little-endian data. Reading memory-maps the file and validates the header as
// strictly as the reference Rust implementation (offsets contiguous, in bounds, matching
// dtype x shape, buffer fully covered); every error is a std::runtime_error naming the file and,
// where it applies, the tensor. Bulk loads (model weights) go through read_into(), which reads
// with pread instead of the mapping. Sharded checkpoints (model.safetensors.index.json) are read
// through SafetensorsCheckpoint. Writing is atomic (temp file + rename).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace eztinker::model {

// "F32" <-> torch::kFloat32 etc. Supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
// Throws std::runtime_error for an unknown string / unsupported dtype.
torch::Dtype safetensors_dtype_from_string(const std::string& dtype);
std::string safetensors_dtype_to_string(torch::Dtype dtype);

struct SafetensorsTensorInfo {
  std::string dtype;             // as written in the header ("BF16")
  std::vector<int64_t> shape;
  int64_t data_begin = 0;        // byte offsets into the data section (after the header)
  int64_t data_end = 0;
};

// One memory-mapped, validated .safetensors file. Immutable and thread-safe after open().
// Tensors returned by get() are zero-copy views of the private (copy-on-write) mapping and keep
// the mapping alive through their deleter, so they stay valid after the file object is dropped.
// The file descriptor stays open with the object, so read_into() reads the file that was
// validated even when the path is replaced (renamed over) meanwhile.
class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws naming the file and tensor when absent.
  const SafetensorsTensorInfo& info(const std::string& name) const;
  // The tensor in its stored dtype, on CPU (a view of the mapping; cloned only when misaligned).
  torch::Tensor get(const std::string& name) const;
  // Copies tensor `name` into `dst` (same shape; any dtype, converted; any device) with pread,
  // never touching the mapping. note: touched pages of a file mapping count in this process's
  // RSS until unmapped, so copying a whole checkpoint through get() peaks at parameters + file
  // size; this peaks at parameters + one read chunk (kReadChunkBytes, only when converting
  // dtype or device, or into a non-contiguous dst). Throws naming the file and tensor on a shape
  // mismatch or a failed/short read (file truncated underneath).
  void read_into(const std::string& name, torch::Tensor dst) const;
  static constexpr int64_t kReadChunkBytes = int64_t{8} << 20;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  // Reads exactly `bytes` at `offset` of the data section into `out`.
  void pread_data(void* out, int64_t bytes, int64_t offset, const std::string& name) const;
  std::filesystem::path path_;
  int fd_ = -1;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  int64_t data_offset_ = 0;        // its offset in the file
  std::map<std::string, SafetensorsTensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint directory: model.safetensors, or model.safetensors.index.json + shards (every
// weight_map entry must exist in its shard). Also accepts a path to a single .safetensors file.
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open(const std::filesystem::path& dir_or_file);

  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  const SafetensorsTensorInfo& info(const std::string& name) const;
  torch::Tensor get(const std::string& name) const;
  // SafetensorsFile::read_into on the shard holding `name`.
  void read_into(const std::string& name, torch::Tensor dst) const;
  // The file holding `name` (for messages).
  std::filesystem::path file_of(const std::string& name) const;
  const std::filesystem::path& source() const { return source_; }

 private:
  std::filesystem::path source_;  // the .safetensors file or the index
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // name -> index into files_
};

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Writes `tensors` (any device; copied to CPU, contiguous) in the given order to `path`
// atomically: a temp file in the same directory, then rename. Duplicate or empty names and
// unsupported dtypes throw std::runtime_error. The header is padded to a multiple of 8 bytes.
void save_safetensors(const std::filesystem::path& path,
                      const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Writes `tensors` into dir as model.safetensors when the data fits in max_shard_bytes, else as
// model-0000K-of-0000N.safetensors shards plus model.safetensors.index.json (HF layout).
void save_safetensors_checkpoint(const std::filesystem::path& dir,
                                 const NamedTensors& tensors,
                                 int64_t max_shard_bytes = int64_t{5} << 30);

}  // namespace eztinker::model
