// Helpers shared by every test executable: where the shared real data lives, and a scoped
// temporary directory. No libtorch here (light test executables include it too).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace eztinker::testing {

// ../shared/data (GSM8K, Qwen2 tokenizer files, ShareGPT samples, tokenizer vectors): the
// EZTINKER_SHARED_DATA_DIR environment variable when set, else the configured CMake cache path.
std::filesystem::path shared_data_dir();
// "" when shared_data_dir() / relative exists, else why the test cannot run (names the path).
std::string missing_shared_data(const std::string& relative);
// tests/data in the source tree (small committed fixtures).
std::filesystem::path test_data_dir();
// The build directory (where the `eztinker` executable lives).
std::filesystem::path binary_dir();
std::filesystem::path source_dir();

// A fresh directory under the system temp dir, removed (recursively) on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "eztinker-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Reads a whole file as bytes; throws std::runtime_error naming the path when it cannot.
std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& bytes);

}  // namespace eztinker::testing

// Skips the current test (GTEST_SKIP returns from the calling function, so use it in the test
// body or a fixture's SetUp) when shared_data_dir() / relative is absent: the shared real data
// is a separate checkout, and a clone without it should report skips, not failures.
#define EZTINKER_REQUIRE_SHARED_DATA(relative)                                       \
  do {                                                                               \
    const std::string eztinker_missing_ = ::eztinker::testing::missing_shared_data(relative); \
    if (!eztinker_missing_.empty()) GTEST_SKIP() << eztinker_missing_;               \
  } while (0)
