// See weight_arena.h.
#include "model/weight_arena.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace eztinker::model {
namespace {

constexpr int64_t kHugePage = int64_t(2) << 20;
constexpr int64_t kTensorAlignment = 64;  // one cache line, the AVX-512 vector width

int64_t round_up(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// An anonymous mapping whose usable start is 2 MiB aligned (so that every 2 MiB of it can be
// one huge page); unmapped when the last tensor holding it is freed.
class Mapping {
 public:
  explicit Mapping(int64_t bytes) : length_(static_cast<size_t>(bytes + kHugePage)) {
    raw_ = ::mmap(nullptr, length_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw_ == MAP_FAILED) {
      throw std::runtime_error("weight arena: mmap of " + std::to_string(length_) +
                               " bytes failed: " + std::strerror(errno));
    }
    const auto address = reinterpret_cast<uintptr_t>(raw_);
    start_ = reinterpret_cast<char*>(round_up(static_cast<int64_t>(address), kHugePage));
#ifdef MADV_HUGEPAGE
    advised_ = ::madvise(start_, static_cast<size_t>(bytes), MADV_HUGEPAGE) == 0;
#endif
  }
  ~Mapping() { ::munmap(raw_, length_); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  char* start() const { return start_; }
  bool advised() const { return advised_; }

 private:
  size_t length_;
  void* raw_ = nullptr;
  char* start_ = nullptr;
  bool advised_ = false;
};

}  // namespace

WeightArenaStats move_parameters_to_weight_arena(torch::nn::Module& module, ArenaValues values) {
  return move_to_weight_arena(module.parameters(/*recurse=*/true), values);
}

WeightArenaStats move_to_weight_arena(const std::vector<torch::Tensor>& tensors,
                                      ArenaValues values) {
  std::vector<torch::Tensor> params;
  std::vector<int64_t> offsets;
  int64_t total = 0;
  for (const torch::Tensor& p : tensors) {
    if (!p.device().is_cpu() || p.numel() == 0) continue;
    offsets.push_back(total);
    params.push_back(p);
    total = round_up(total + p.numel() * static_cast<int64_t>(p.element_size()), kTensorAlignment);
  }
  WeightArenaStats stats;
  if (params.empty()) return stats;
  auto mapping = std::make_shared<Mapping>(total);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    torch::Tensor& p = params[i];
    torch::Tensor slot = torch::from_blob(
        mapping->start() + offsets[i], p.sizes(), [mapping](void*) {},  // keeps the mapping alive
        p.options().requires_grad(false));                                // [shape], contiguous
    // A fresh anonymous mapping reads as zeros; copying would make every page resident now.
    if (values == ArenaValues::kCopy) slot.copy_(p);
    p.set_data(slot);
  }
  stats.tensors = static_cast<int64_t>(params.size());
  stats.bytes = total;
  stats.advised = mapping->advised();
  return stats;
}

}  // namespace eztinker::model
