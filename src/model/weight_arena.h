// One memory block for a model's frozen weights, advised for transparent huge pages.
//
// Batch-1 decoding streams every weight byte once per token. On 4 KiB pages that is a TLB miss
// every 4 KiB, and in a virtual machine each miss is a two-level page walk: a plain AVX-512 read
// of 1 GiB measured 25 GB/s on 4 KiB pages and 35 GB/s on 2 MiB pages on the 2-core VM (issue 7).
// Debian's default THP mode is `madvise`, so libtorch's own allocations never get huge pages.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace eztinker::model {

struct WeightArenaStats {
  int64_t tensors = 0;   // parameters moved into the arena
  int64_t bytes = 0;     // bytes of the block they occupy (each padded to a multiple of 64)
  bool advised = false;  // madvise(MADV_HUGEPAGE) accepted (false where THP is unavailable)
};

// What the arena slots hold after the move.
enum class ArenaValues {
  kCopy,   // the tensors' current values
  kZeros,  // zeros, without touching the memory: for freshly constructed, still unloaded
           // parameters, whose pages then become resident only when the weights are read in
};

// Rebinds every CPU parameter of `module` to a slice of one anonymous mapping advised with
// MADV_HUGEPAGE, keeping shapes, dtypes and requires_grad (values per `values`). Parameters on
// other devices are left alone; nothing happens where there is no CPU parameter. The mapping
// lives until the last tensor using it is freed. Throws std::runtime_error when the mapping
// cannot be created (the parameters are then unchanged).
WeightArenaStats move_parameters_to_weight_arena(torch::nn::Module& module,
                                                 ArenaValues values = ArenaValues::kCopy);

// The same for a list of tensors (each rebound in place with set_data, so every handle to the
// same tensor sees the arena storage); non-CPU and empty tensors are skipped.
WeightArenaStats move_to_weight_arena(const std::vector<torch::Tensor>& tensors,
                                      ArenaValues values = ArenaValues::kCopy);

}  // namespace eztinker::model
