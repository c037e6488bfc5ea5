// safetensors reader/writer: round trip per dtype, zero-copy lifetime, sharded checkpoints, and
// each malformed-file case producing an error that names the file and tensor.
#include "model/safetensors.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

namespace eztinker::model {
namespace {

using eztinker::testing::TempDir;

// Writes a safetensors file with an arbitrary (possibly lying) header and data section.
void write_raw(const std::filesystem::path& path, const std::string& header,
               const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << data;
}

std::string open_error(const std::filesystem::path& path) {
  try {
    SafetensorsFile::open(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, RoundTripEveryDtype) {
  torch::manual_seed(0);
  TempDir dir;
  const auto path = dir / "t.safetensors";
  NamedTensors tensors = {
      {"f32", torch::randn({3, 5})},
      {"f16", torch::randn({4, 2}).to(torch::kFloat16)},
      {"bf16", torch::randn({7}).to(torch::kBFloat16)},
      {"i64", torch::randint(-1000, 1000, {2, 3, 2}, torch::kInt64)},
      {"i32", torch::randint(-1000, 1000, {6}, torch::kInt32)},
      {"f64", torch::randn({2, 2}, torch::kFloat64)},
      {"u8", torch::randint(0, 255, {5}, torch::kUInt8)},
      {"bool", torch::randint(0, 2, {3}, torch::kInt64).to(torch::kBool)},
      {"scalar", torch::tensor(3.5f)},
      {"empty", torch::empty({0, 4})},
      {"noncontig", torch::randn({4, 6}).t()},
  };
  save_safetensors(path, tensors, {{"format", "pt"}, {"note", "x"}});
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->metadata().at("note"), "x");
  EXPECT_EQ(f->names().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    torch::Tensor back = f->get(name);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(back.sizes(), t.sizes()) << name;
    EXPECT_TRUE(torch::equal(back, t)) << name;
  }
  EXPECT_EQ(f->info("bf16").dtype, "BF16");
  EXPECT_EQ(f->info("i32").dtype, "I32");
  // No temp file is left behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(Safetensors, ViewsOutliveTheFileObject) {
  TempDir dir;
  const auto path = dir / "t.safetensors";
  torch::Tensor t = torch::arange(1000, torch::kFloat32);
  save_safetensors(path, {{"x", t}});
  torch::Tensor view;
  {
    auto f = SafetensorsFile::open(path);
    view = f->get("x");
  }
  EXPECT_TRUE(torch::equal(view, t));
  view.add_(1);  // copy-on-write mapping: writable, the file is untouched
  EXPECT_TRUE(torch::equal(SafetensorsFile::open(path)->get("x"), t));
}

TEST(Safetensors, HeaderIsPaddedSoDataIsAligned) {
  TempDir dir;
  const auto path = dir / "t.safetensors";
  save_safetensors(path, {{"a", torch::ones({3})}});
  const std::string bytes = eztinker::testing::read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, ShardedCheckpoint) {
  torch::manual_seed(1);
  TempDir dir;
  NamedTensors tensors;
  for (int i = 0; i < 5; ++i) tensors.emplace_back("w" + std::to_string(i), torch::randn({16, 16}));
  save_safetensors_checkpoint(dir.path(), tensors, /*max_shard_bytes=*/2000);
  EXPECT_TRUE(std::filesystem::exists(dir / "model.safetensors.index.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "model-00001-of-00005.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir / "model.safetensors"));
  auto ckpt = SafetensorsCheckpoint::open(dir.path());
  ASSERT_EQ(ckpt.names().size(), 5u);
  for (const auto& [name, t] : tensors) EXPECT_TRUE(torch::equal(ckpt.get(name), t)) << name;
  EXPECT_EQ(ckpt.file_of("w2").filename(), "model-00003-of-00005.safetensors");

  // Small enough for one file: model.safetensors, and the stale index is gone.
  save_safetensors_checkpoint(dir.path(), tensors);
  EXPECT_TRUE(std::filesystem::exists(dir / "model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir / "model.safetensors.index.json"));
  EXPECT_TRUE(torch::equal(SafetensorsCheckpoint::open(dir.path()).get("w4"), tensors[4].second));
}

TEST(Safetensors, ShardedIndexErrors) {
  TempDir dir;
  save_safetensors(dir / "a.safetensors", {{"x", torch::ones({2})}});
  auto write_index = [&](const nlohmann::json& wm) {
    std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{{"weight_map", wm}}.dump();
  };
  write_index({{"x", "a.safetensors"}, {"y", "a.safetensors"}});
  try {
    SafetensorsCheckpoint::open(dir.path());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("`y`"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("index.json"), std::string::npos) << e.what();
  }
  write_index({{"x", "missing.safetensors"}});
  EXPECT_THROW(SafetensorsCheckpoint::open(dir.path()), std::runtime_error);
  write_index({{"x", "../a.safetensors"}});
  EXPECT_THROW(SafetensorsCheckpoint::open(dir.path()), std::runtime_error);
  std::filesystem::remove(dir / "model.safetensors.index.json");
  try {
    SafetensorsCheckpoint::open(dir.path());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no model.safetensors"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, ReadIntoMatchesGetAndConverts) {
  torch::manual_seed(2);
  TempDir dir;
  const auto path = dir / "t.safetensors";
  // "big" spans two read chunks in F32 (kReadChunkBytes / 4 elements each) plus a partial third.
  const int64_t big_numel = 2 * SafetensorsFile::kReadChunkBytes / 4 + 1000;
  NamedTensors tensors = {{"w", torch::randn({33, 17})},
                          {"h", torch::randn({5, 7}).to(torch::kBFloat16)},
                          {"big", torch::randn({big_numel})},
                          {"empty", torch::empty({0, 3})}};
  save_safetensors(path, tensors);
  auto f = SafetensorsFile::open(path);
  for (const auto& [name, t] : tensors) {
    torch::Tensor same = torch::empty(t.sizes(), t.options());  // the direct pread path
    f->read_into(name, same);
    EXPECT_TRUE(torch::equal(same, t)) << name;
    torch::Tensor converted = torch::empty(t.sizes(), torch::kFloat64);  // chunked conversion
    f->read_into(name, converted);
    EXPECT_TRUE(torch::equal(converted, t.to(torch::kFloat64))) << name;
  }
  torch::Tensor transposed = torch::empty({17, 33}).t();  // non-contiguous [33, 17]
  f->read_into("w", transposed);
  EXPECT_TRUE(torch::equal(transposed, tensors[0].second));
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(path);
  torch::Tensor via_ckpt = torch::empty({5, 7}, torch::kFloat32);
  ckpt.read_into("h", via_ckpt);
  EXPECT_TRUE(torch::equal(via_ckpt, tensors[1].second.to(torch::kFloat32)));

  torch::Tensor wrong = torch::empty({17, 33});
  try {
    f->read_into("w", wrong);
    FAIL() << "expected a shape error";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("`w`"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[33, 17]"), std::string::npos) << msg;
  }
}

TEST(Safetensors, ReadIntoFailsCleanlyWhenTheFileShrinksUnderneath) {
  TempDir dir;
  const auto path = dir / "t.safetensors";
  save_safetensors(path, {{"a", torch::ones({64})}, {"b", torch::ones({64})}});
  auto f = SafetensorsFile::open(path);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 100);
  torch::Tensor out = torch::empty({64});
  try {
    f->read_into("b", out);  // a view from get() would SIGBUS here instead
    FAIL() << "expected a read error";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("`b`"), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  }
}

TEST(Safetensors, MissingTensorNamesFileAndTensor) {
  TempDir dir;
  const auto path = dir / "t.safetensors";
  save_safetensors(path, {{"a", torch::ones({2})}});
  auto f = SafetensorsFile::open(path);
  try {
    f->get("model.norm.weight");
    FAIL();
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.norm.weight"), std::string::npos) << msg;
  }
}

TEST(Safetensors, TruncatedFile) {
  TempDir dir;
  const auto path = dir / "t.safetensors";
  save_safetensors(path, {{"a", torch::ones({64})}, {"b", torch::ones({64})}});
  const std::string bytes = eztinker::testing::read_file(path);
  // Cut inside the data, inside the header, and inside the length prefix.
  for (size_t keep : {bytes.size() - 1, bytes.size() - 300, size_t{20}, size_t{5}, size_t{0}}) {
    eztinker::testing::write_file(path, bytes.substr(0, keep));
    const std::string msg = open_error(path);
    EXPECT_FALSE(msg.empty()) << "keep=" << keep;
    EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
  }
  eztinker::testing::write_file(path, bytes.substr(0, bytes.size() - 1));
  const std::string msg = open_error(path);
  EXPECT_NE(msg.find("`b`"), std::string::npos) << msg;  // the tensor that runs past the end
}

TEST(Safetensors, LyingHeaders) {
  TempDir dir;
  const auto path = dir / "bad.safetensors";
  const std::string data(32, '\0');
  struct Case {
    const char* what;
    std::string header;
    const char* expect;  // substring of the error
  };
  const std::vector<Case> cases = {
      {"not json", "{not json", "JSON"},
      {"not an object", "[1, 2]", "'{'"},
      {"span != dtype x shape",
       R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})",
       "`a`"},
      {"out of bounds", R"({"a":{"dtype":"F32","shape":[16],"data_offsets":[0,64]}})", "past the data"},
      {"overlap",
       R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[6],"data_offsets":[8,32]}})",
       "overlap"},
      {"hole",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})",
       "hole"},
      {"trailing bytes", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "cover 16"},
      {"begin > end", R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[16,8]}})", "begin > end"},
      {"unknown dtype", R"({"a":{"dtype":"F8_E4M3","shape":[32],"data_offsets":[0,32]}})", "F8_E4M3"},
      {"negative dim", R"({"a":{"dtype":"U8","shape":[-32],"data_offsets":[0,32]}})", "non-negative"},
      {"missing offsets", R"({"a":{"dtype":"U8","shape":[32]}})", "data_offsets"},
      {"huge shape",
       R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,32]}})", "`a`"},
  };
  for (const auto& c : cases) {
    write_raw(path, c.header, data);
    const std::string msg = open_error(path);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.what << ": " << msg;
    EXPECT_NE(msg.find(path.string()), std::string::npos) << c.what << ": " << msg;
  }
  // A header length far beyond the file.
  {
    std::ofstream out(path, std::ios::binary);
    const char len[8] = {0, 0, 0, 0, 1, 0, 0, 0};
    out.write(len, 8);
    out << "{}";
  }
  EXPECT_FALSE(open_error(path).empty());
}

TEST(Safetensors, WriterRejectsBadInput) {
  TempDir dir;
  EXPECT_THROW(save_safetensors(dir / "a.safetensors", {{"x", torch::ones({1})}, {"x", torch::ones({1})}}),
               std::runtime_error);
  EXPECT_THROW(save_safetensors(dir / "b.safetensors", {{"", torch::ones({1})}}), std::runtime_error);
  EXPECT_THROW(save_safetensors(dir / "c.safetensors",
                                {{"x", torch::ones({1}, torch::kComplexFloat)}}),
               std::runtime_error);
  EXPECT_FALSE(std::filesystem::exists(dir / "a.safetensors"));
}

}  // namespace
}  // namespace eztinker::model
