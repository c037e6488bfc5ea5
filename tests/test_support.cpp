// Implementation of tests/test_support.h.
#include "test_support.h"

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace eztinker::testing {

std::filesystem::path shared_data_dir() {
  if (const char* env = std::getenv("EZTINKER_SHARED_DATA_DIR"); env && *env) return env;
  return EZTINKER_SHARED_DATA_DIR;
}

std::string missing_shared_data(const std::string& relative) {
  const std::filesystem::path path = shared_data_dir() / relative;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return "";
  return "shared test data not found: " + path.string() +
         " (check out ../shared/data, or set EZTINKER_SHARED_DATA_DIR)";
}
std::filesystem::path test_data_dir() { return EZTINKER_TEST_DATA_DIR; }
std::filesystem::path binary_dir() { return EZTINKER_BINARY_DIR; }
std::filesystem::path source_dir() { return EZTINKER_SOURCE_DIR; }

TempDir::TempDir(const std::string& prefix) {
  std::random_device rd;
  std::mt19937_64 gen(rd());
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::ostringstream name;
    name << prefix << "-" << std::hex << gen();
    auto candidate = std::filesystem::temp_directory_path() / name.str();
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("TempDir: could not create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path.string());
  out << bytes;
}

}  // namespace eztinker::testing
