// safetensors reader/writer. Validation mirrors the reference implementation's
// `Metadata::validate` (huggingface/safetensors): offsets must tile the data section exactly,
// in header order sorted by offset, with end - begin == numel * element size.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>

namespace eztinker::model {
namespace {

// A header larger than this is corrupt (the reference implementation uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& message) {
  throw std::runtime_error(file.string() + ": " + message);
}

[[noreturn]] void fail_tensor(const std::filesystem::path& file,
                              const std::string& tensor,
                              const std::string& message) {
  throw std::runtime_error(file.string() + ": tensor `" + tensor + "`: " + message);
}

int64_t element_size(const std::string& dtype) {
  return static_cast<int64_t>(c10::elementSize(safetensors_dtype_from_string(dtype)));
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

torch::Dtype safetensors_dtype_from_string(const std::string& dtype) {
  static const std::map<std::string, torch::Dtype> kTable = {
      {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16},
      {"BF16", torch::kBFloat16}, {"I64", torch::kInt64}, {"I32", torch::kInt32},
      {"I16", torch::kInt16}, {"I8", torch::kInt8}, {"U8", torch::kUInt8},
      {"BOOL", torch::kBool}};
  auto it = kTable.find(dtype);
  if (it == kTable.end()) throw std::runtime_error("unsupported safetensors dtype \"" + dtype + "\"");
  return it->second;
}

std::string safetensors_dtype_to_string(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat64: return "F64";
    case torch::kFloat32: return "F32";
    case torch::kFloat16: return "F16";
    case torch::kBFloat16: return "BF16";
    case torch::kInt64: return "I64";
    case torch::kInt32: return "I32";
    case torch::kInt16: return "I16";
    case torch::kInt8: return "I8";
    case torch::kUInt8: return "U8";
    case torch::kBool: return "BOOL";
    default:
      throw std::runtime_error(std::string("dtype ") + c10::toString(dtype) +
                               " cannot be stored in safetensors");
  }
}

// ---------------------------------------------------------------------------------------------
// SafetensorsFile

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;

  // From here on, `f`'s destructor closes the descriptor and unmaps on every error path.
  f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->fd_ < 0) {
    const int err = errno;
    fail(path, std::string("cannot open: ") + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(f->fd_, &st) != 0) {
    const int err = errno;
    fail(path, std::string("cannot stat: ") + std::strerror(err));
  }
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    fail(path, "truncated: " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  }
  // MAP_PRIVATE + PROT_WRITE: copy-on-write, so a caller writing into a returned view can
  // neither crash nor modify the file.
  void* map = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, f->fd_, 0);
  if (map == MAP_FAILED) {
    const int err = errno;
    fail(path, std::string("mmap failed: ") + std::strerror(err));
  }
  f->map_ = map;
  f->map_size_ = file_size;
  const auto* bytes = static_cast<const uint8_t*>(map);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];  // little endian
  if (header_len > kMaxHeaderBytes) {
    fail(path, "corrupt: header length " + std::to_string(header_len) + " exceeds the 100 MB limit");
  }
  if (8 + header_len > file_size) {
    fail(path, "truncated: header length " + std::to_string(header_len) + " but the file has " +
                   std::to_string(file_size) + " bytes");
  }
  if (header_len == 0 || bytes[8] != '{') fail(path, "corrupt: header does not start with '{'");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("corrupt: header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "corrupt: header is not a JSON object");

  const uint64_t data_size = file_size - 8 - header_len;
  f->data_ = bytes + 8 + header_len;
  f->data_offset_ = static_cast<int64_t>(8 + header_len);

  std::vector<std::pair<int64_t, std::string>> by_offset;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(path, "`__metadata__` must be an object of strings");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) fail(path, "`__metadata__." + k + "` must be a string");
        f->metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) fail_tensor(path, name, "header entry is not an object");
    SafetensorsTensorInfo info;
    auto dt = entry.find("dtype");
    if (dt == entry.end() || !dt->is_string()) fail_tensor(path, name, "missing `dtype`");
    info.dtype = dt->get<std::string>();
    int64_t esize = 0;
    try {
      esize = element_size(info.dtype);
    } catch (const std::runtime_error& e) {
      fail_tensor(path, name, e.what());
    }
    auto sh = entry.find("shape");
    if (sh == entry.end() || !sh->is_array()) fail_tensor(path, name, "missing `shape`");
    // numel in 128-bit-safe steps: refuse shapes whose byte size would overflow.
    uint64_t numel = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0)) {
        fail_tensor(path, name, "shape entries must be non-negative integers, got " + sh->dump());
      }
      const auto dim = d.get<uint64_t>();
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / dim) {
        fail_tensor(path, name, "shape " + sh->dump() + " is impossibly large");
      }
      numel *= dim;
      info.shape.push_back(static_cast<int64_t>(dim));
    }
    auto off = entry.find("data_offsets");
    if (off == entry.end() || !off->is_array() || off->size() != 2 ||
        !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned()) {
      fail_tensor(path, name, "`data_offsets` must be [begin, end] with non-negative integers");
    }
    const auto begin = (*off)[0].get<uint64_t>();
    const auto end = (*off)[1].get<uint64_t>();
    if (begin > end) {
      fail_tensor(path, name, "data_offsets [" + std::to_string(begin) + ", " +
                                  std::to_string(end) + "] have begin > end");
    }
    if (end > data_size) {
      fail_tensor(path, name, "data_offsets end " + std::to_string(end) +
                                  " is past the data section (" + std::to_string(data_size) +
                                  " bytes; truncated file?)");
    }
    const uint64_t expected = numel * static_cast<uint64_t>(esize);
    if (end - begin != expected) {
      fail_tensor(path, name, "data_offsets span " + std::to_string(end - begin) + " bytes but " +
                                  info.dtype + " " + shape_string(info.shape) + " needs " +
                                  std::to_string(expected));
    }
    info.data_begin = static_cast<int64_t>(begin);
    info.data_end = static_cast<int64_t>(end);
    by_offset.emplace_back(info.data_begin, name);
    f->tensors_.emplace(name, std::move(info));
  }

  // The tensors must tile the data section: no overlap, no hole, nothing after the last one.
  std::sort(by_offset.begin(), by_offset.end(), [&](const auto& a, const auto& b) {
    const auto& ia = f->tensors_.at(a.second);
    const auto& ib = f->tensors_.at(b.second);
    return std::tie(ia.data_begin, ia.data_end) < std::tie(ib.data_begin, ib.data_end);
  });
  int64_t cursor = 0;
  for (const auto& [begin, name] : by_offset) {
    const auto& info = f->tensors_.at(name);
    if (begin < cursor) {
      fail_tensor(path, name, "data_offsets [" + std::to_string(info.data_begin) + ", " +
                                  std::to_string(info.data_end) +
                                  ") overlap the previous tensor (which ends at " +
                                  std::to_string(cursor) + ")");
    }
    if (begin > cursor) {
      fail_tensor(path, name, "data_offsets begin " + std::to_string(begin) +
                                  " leaves a hole after byte " + std::to_string(cursor));
    }
    cursor = info.data_end;
  }
  if (static_cast<uint64_t>(cursor) != data_size) {
    fail(path, "corrupt: tensors cover " + std::to_string(cursor) + " data bytes but the file has " +
                   std::to_string(data_size));
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
  if (fd_ >= 0) ::close(fd_);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, info] : tensors_) out.push_back(name);
  return out;
}

const SafetensorsTensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail_tensor(path_, name, "not found in this file");
  return it->second;
}

torch::Tensor SafetensorsFile::get(const std::string& name) const {
  const SafetensorsTensorInfo& meta = info(name);
  const torch::Dtype dtype = safetensors_dtype_from_string(meta.dtype);
  const auto options = torch::TensorOptions().dtype(dtype).device(torch::kCPU);
  if (meta.data_end == meta.data_begin) return torch::empty(meta.shape, options);  // [shape], numel 0
  auto* ptr = const_cast<uint8_t*>(data_ + meta.data_begin);
  const auto esize = static_cast<uintptr_t>(c10::elementSize(dtype));
  if (reinterpret_cast<uintptr_t>(ptr) % esize != 0) {
    // Misaligned (a header length not padded to 8): copy into an aligned tensor.
    torch::Tensor out = torch::empty(meta.shape, options);  // [shape]
    std::memcpy(out.data_ptr(), ptr, static_cast<size_t>(meta.data_end - meta.data_begin));
    return out;
  }
  // The deleter owns a reference to this file, so the mapping outlives every view.
  auto keep_alive = shared_from_this();
  return torch::from_blob(
      ptr, meta.shape, [keep_alive](void*) mutable { keep_alive.reset(); }, options);  // [shape]
}

void SafetensorsFile::pread_data(void* out,
                                 int64_t bytes,
                                 int64_t offset,
                                 const std::string& name) const {
  auto* dst = static_cast<char*>(out);
  int64_t done = 0;
  while (done < bytes) {
    const ssize_t n = ::pread(fd_,
                              dst + done,
                              static_cast<size_t>(bytes - done),
                              static_cast<off_t>(data_offset_ + offset + done));
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      fail_tensor(path_, name, std::string("read failed: ") + std::strerror(err));
    }
    if (n == 0) fail_tensor(path_, name, "read past the end of the file (truncated since open?)");
    done += n;
  }
}

void SafetensorsFile::read_into(const std::string& name, torch::Tensor dst) const {
  const SafetensorsTensorInfo& meta = info(name);
  if (dst.sizes() != c10::IntArrayRef(meta.shape)) {
    std::ostringstream got;
    got << dst.sizes();
    fail_tensor(path_,
                name,
                "has shape " + shape_string(meta.shape) + " but the destination is " + got.str());
  }
  const torch::Dtype dtype = safetensors_dtype_from_string(meta.dtype);
  const int64_t bytes = meta.data_end - meta.data_begin;
  if (bytes == 0) return;
  torch::NoGradGuard no_grad;
  if (dst.device().is_cpu() && dst.scalar_type() == dtype && dst.is_contiguous()) {
    pread_data(dst.data_ptr(), bytes, meta.data_begin, name);  // straight into the destination
    return;
  }
  // Convert through one bounded bounce buffer; a non-contiguous dst is filled via a contiguous
  // staging tensor of its own dtype (whole tensor; no parameter is non-contiguous in practice).
  // target: [shape], flat: [numel]
  torch::Tensor target =
      dst.is_contiguous() ? dst : torch::empty_like(dst, at::MemoryFormat::Contiguous);
  torch::Tensor flat = target.view({-1});
  const int64_t esize = static_cast<int64_t>(c10::elementSize(dtype));
  const int64_t numel = flat.numel();
  const int64_t chunk = std::min(numel, std::max<int64_t>(1, kReadChunkBytes / esize));
  torch::Tensor bounce = torch::empty({chunk}, torch::TensorOptions().dtype(dtype));  // [chunk]
  for (int64_t begin = 0; begin < numel; begin += chunk) {
    const int64_t n = std::min(chunk, numel - begin);
    pread_data(bounce.data_ptr(), n * esize, meta.data_begin + begin * esize, name);
    flat.slice(0, begin, begin + n).copy_(bounce.slice(0, 0, n));  // [n], converts
  }
  if (!dst.is_same(target)) dst.copy_(target);
}

// ---------------------------------------------------------------------------------------------
// SafetensorsCheckpoint

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::filesystem::path& dir_or_file) {
  namespace fs = std::filesystem;
  SafetensorsCheckpoint ckpt;
  if (fs::is_regular_file(dir_or_file) && dir_or_file.extension() == ".safetensors") {
    ckpt.source_ = dir_or_file;
    ckpt.files_.push_back(SafetensorsFile::open(dir_or_file));
    for (const auto& name : ckpt.files_[0]->names()) ckpt.where_[name] = 0;
    return ckpt;
  }
  const fs::path single = dir_or_file / "model.safetensors";
  const fs::path index = dir_or_file / "model.safetensors.index.json";
  if (fs::exists(single)) return open(single);
  if (!fs::exists(index)) {
    throw std::runtime_error(dir_or_file.string() +
                             ": no model.safetensors or model.safetensors.index.json "
                             "(only safetensors checkpoints are supported, not .bin)");
  }
  ckpt.source_ = index;
  nlohmann::json j;
  {
    std::ifstream in(index);
    if (!in) fail(index, "cannot open");
    try {
      in >> j;
    } catch (const nlohmann::json::exception& e) {
      fail(index, std::string("invalid JSON: ") + e.what());
    }
  }
  auto wm = j.find("weight_map");
  if (!j.is_object() || wm == j.end() || !wm->is_object()) fail(index, "missing `weight_map` object");
  std::map<std::string, size_t> file_index;
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string()) fail(index, "weight_map[`" + name + "`] must be a file name");
    const std::string shard_name = shard.get<std::string>();
    if (shard_name.find('/') != std::string::npos || shard_name == "..") {
      fail(index, "weight_map[`" + name + "`] = \"" + shard_name + "\" is not a plain file name");
    }
    auto [it, inserted] = file_index.emplace(shard_name, ckpt.files_.size());
    if (inserted) {
      const fs::path shard_path = dir_or_file / shard_name;
      if (!fs::exists(shard_path)) {
        fail(index, "tensor `" + name + "` maps to missing shard " + shard_path.string());
      }
      ckpt.files_.push_back(SafetensorsFile::open(shard_path));
    }
    if (!ckpt.files_[it->second]->contains(name)) {
      fail(index, "tensor `" + name + "` is listed in shard " + shard_name +
                      " but that file does not contain it");
    }
    ckpt.where_[name] = it->second;
  }
  return ckpt;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, idx] : where_) out.push_back(name);
  return out;
}

const SafetensorsTensorInfo& SafetensorsCheckpoint::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail_tensor(source_, name, "missing from the checkpoint");
  return files_[it->second]->info(name);
}

torch::Tensor SafetensorsCheckpoint::get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail_tensor(source_, name, "missing from the checkpoint");
  return files_[it->second]->get(name);
}

void SafetensorsCheckpoint::read_into(const std::string& name, torch::Tensor dst) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail_tensor(source_, name, "missing from the checkpoint");
  files_[it->second]->read_into(name, std::move(dst));
}

std::filesystem::path SafetensorsCheckpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? source_ : files_[it->second]->path();
}

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

void write_all(int fd, const void* data, size_t size, const std::filesystem::path& tmp) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(tmp, std::string("write failed: ") + std::strerror(errno));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

void save_safetensors(const std::filesystem::path& path,
                      const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> cpu;
  cpu.reserve(tensors.size());
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__") fail(path, "invalid tensor name \"" + name + "\"");
    if (!seen.insert(name).second) fail_tensor(path, name, "duplicate tensor name");
    if (!t.defined()) fail_tensor(path, name, "undefined tensor");
    std::string dtype;
    try {
      dtype = safetensors_dtype_to_string(t.scalar_type());
    } catch (const std::runtime_error& e) {
      fail_tensor(path, name, e.what());
    }
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();  // [shape]
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    header[name] = {{"dtype", dtype},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    cpu.push_back(std::move(c));
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned

  std::filesystem::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(tmp, std::string("cannot create: ") + std::strerror(errno));
  try {
    uint8_t len[8];
    uint64_t n = header_text.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
    write_all(fd, len, 8, tmp);
    write_all(fd, header_text.data(), header_text.size(), tmp);
    for (const auto& c : cpu) {
      write_all(fd, c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size(), tmp);
    }
    if (::fsync(fd) != 0) fail(tmp, std::string("fsync failed: ") + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    std::filesystem::remove(tmp);
    throw;
  }
  ::close(fd);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    fail(path, "cannot rename temp file into place: " + ec.message());
  }
}

void save_safetensors_checkpoint(const std::filesystem::path& dir,
                                 const NamedTensors& tensors,
                                 int64_t max_shard_bytes) {
  std::filesystem::create_directories(dir);
  std::vector<NamedTensors> shards(1);
  int64_t total = 0;
  int64_t current = 0;
  for (const auto& nt : tensors) {
    const int64_t nbytes = nt.second.numel() * static_cast<int64_t>(nt.second.element_size());
    if (current > 0 && current + nbytes > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(nt);
    current += nbytes;
    total += nbytes;
  }
  if (shards.size() == 1) {
    save_safetensors(dir / "model.safetensors", tensors);
    std::filesystem::remove(dir / "model.safetensors.index.json");
    return;
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  char buf[64];
  for (size_t i = 0; i < shards.size(); ++i) {
    std::snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    save_safetensors(dir / buf, shards[i]);
    for (const auto& nt : shards[i]) weight_map[nt.first] = buf;
  }
  index["weight_map"] = weight_map;
  std::filesystem::remove(dir / "model.safetensors");  // the index must win on reload
  const std::filesystem::path index_path = dir / "model.safetensors.index.json";
  std::filesystem::path tmp = index_path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp);
    out << index.dump(2) << "\n";
    if (!out) fail(tmp, "cannot write");
  }
  std::filesystem::rename(tmp, index_path);
}

}  // namespace eztinker::model
