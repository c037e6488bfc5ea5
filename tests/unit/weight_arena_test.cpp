// model::move_to_weight_arena / move_parameters_to_weight_arena: parameters keep their values,
// shapes, dtypes and requires_grad; they share one aligned block; it outlives the module.
#include "model/weight_arena.h"

#include "model/qwen2.h"
#include "model/random_model.h"
#include "model/safetensors.h"
#include "model/weights.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>

namespace eztinker::model {
namespace {

struct Holder : torch::nn::Module {
  Holder() {
    a = register_parameter("a", torch::randn({3, 5}), false);                        // [3, 5]
    b = register_parameter("b", torch::randn({7}).to(torch::kBFloat16), false);      // [7]
    c = register_parameter("c", torch::randn({2, 2, 3}), true);                      // [2, 2, 3]
    empty = register_parameter("empty", torch::empty({0, 4}), false);                // [0, 4]
  }
  torch::Tensor a, b, c, empty;
};

TEST(WeightArena, KeepsValuesShapesAndGradFlagsInOneAlignedBlock) {
  torch::manual_seed(31);
  Holder h;
  const torch::Tensor a0 = h.a.clone(), b0 = h.b.clone(), c0 = h.c.clone();
  const auto* old_a = h.a.data_ptr();
  const WeightArenaStats stats = move_parameters_to_weight_arena(h);
  EXPECT_EQ(stats.tensors, 3);  // the empty one is skipped
  // 60 + 14 + 48 bytes, each padded to a multiple of 64 so that the next starts aligned.
  EXPECT_EQ(stats.bytes, 64 + 64 + 64);
  EXPECT_NE(h.a.data_ptr(), old_a);
  EXPECT_TRUE(torch::equal(h.a, a0));
  EXPECT_TRUE(torch::equal(h.b, b0));
  EXPECT_TRUE(torch::equal(h.c, c0));
  EXPECT_EQ(h.b.scalar_type(), torch::kBFloat16);
  EXPECT_FALSE(h.a.requires_grad());
  EXPECT_TRUE(h.c.requires_grad());
  // The module's own handles see the new storage (set_data, not a new tensor).
  EXPECT_EQ(h.named_parameters()["a"].data_ptr(), h.a.data_ptr());
  const auto base = reinterpret_cast<uintptr_t>(h.a.data_ptr());
  EXPECT_EQ(base % (2u << 20), 0u);  // the block starts on a huge-page boundary
  EXPECT_EQ(reinterpret_cast<uintptr_t>(h.b.data_ptr()), base + 64);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(h.c.data_ptr()), base + 128);
  // Autograd still flows into a trainable parameter that lives in the arena.
  (h.c * 2.0).sum().backward();
  EXPECT_TRUE(torch::equal(h.c.grad(), torch::full({2, 2, 3}, 2.0)));
  // In-place writes land in the arena and are visible through every handle.
  {
    torch::NoGradGuard no_grad;
    h.a.fill_(1.5);
  }
  EXPECT_EQ(h.named_parameters()["a"].sum().item<double>(), 1.5 * 15);
}

TEST(WeightArena, ZerosLeaveTheValuesBehind) {
  Holder h;
  const WeightArenaStats stats = move_parameters_to_weight_arena(h, ArenaValues::kZeros);
  EXPECT_EQ(stats.tensors, 3);
  EXPECT_EQ(h.a.count_nonzero().item<int64_t>(), 0);
  EXPECT_EQ(h.b.count_nonzero().item<int64_t>(), 0);
  EXPECT_EQ(h.c.count_nonzero().item<int64_t>(), 0);
  EXPECT_EQ(h.b.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(h.c.requires_grad());
}

TEST(WeightArena, BlockOutlivesTheModuleWhileATensorUsesIt) {
  torch::Tensor kept;
  torch::Tensor expected;
  {
    Holder h;
    move_parameters_to_weight_arena(h);
    kept = h.a;
    expected = h.a.clone();
  }
  // The module is gone; the tensor still reads its values (the deleter holds the mapping).
  EXPECT_TRUE(torch::equal(kept, expected));
}

TEST(WeightArena, ModuleWithoutCpuParametersIsLeftAlone) {
  torch::nn::Module none;
  const WeightArenaStats stats = move_parameters_to_weight_arena(none);
  EXPECT_EQ(stats.tensors, 0);
  EXPECT_EQ(stats.bytes, 0);
}

TEST(WeightArena, Qwen2ModelLoadsIntoTheArenaWithTheCheckpointValues) {
  // A loaded model's parameters sit in one block (contiguous, in construction order) and hold
  // exactly the checkpoint's values: reading into the arena changed nothing but the address.
  const auto dir = std::filesystem::temp_directory_path() / "eztinker-weight-arena-test";
  std::filesystem::remove_all(dir);
  RandomModelOptions options;
  options.out_dir = dir;
  write_random_model(options);
  Qwen2ForCausalLM m = load_model(dir, torch::kFloat32, torch::kCPU);
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  int64_t bytes = 0;
  for (const auto& item : m->named_parameters()) {
    const torch::Tensor& p = item.value();
    const auto start = reinterpret_cast<uintptr_t>(p.data_ptr());
    lo = std::min(lo, start);
    hi = std::max(hi, start + static_cast<uintptr_t>(p.nbytes()));
    bytes += static_cast<int64_t>(p.nbytes());
    EXPECT_EQ(start % 64, 0u) << item.key();
    torch::Tensor stored = torch::empty_like(p);
    ck.read_into(item.key(), stored);
    EXPECT_TRUE(torch::equal(p, stored)) << item.key();
  }
  EXPECT_EQ(lo % (2u << 20), 0u);
  // One block: the span is the sum of the sizes plus at most 63 bytes of padding per tensor.
  EXPECT_LE(static_cast<int64_t>(hi - lo), bytes + 64 * static_cast<int64_t>(m->parameters().size()));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace eztinker::model
