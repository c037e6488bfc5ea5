// Installs the client package to a temp prefix (`cmake --install`) and builds the examples out
// of tree against it with find_package(eztinker) and with pkg-config: proves a user needs only
// the installed headers/libs (client, tokenizer, datasets, recipes) plus nlohmann-json,
// cpp-httplib, PCRE2 and utf8proc (no libtorch, no source tree).
// The out-of-tree example_client_api then runs against a real server (tiny model) and exits 0.
// Also checks the install carries the SentencePiece shim the `eztinker` binary dlopens.
// Every command runs under `timeout`; its output goes to a log printed on failure.
#include "e2e_fixture.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/wait.h>

namespace eztinker::e2e {
namespace {

class InstallE2E : public E2EServerTest {
 protected:
  // Runs `command` through the shell, bounded by `timeout_s`; returns its exit status (124 on
  // timeout, -1 when it did not exit). Output goes to `log_` (printed by `log()`).
  int sh(const std::string& command, int timeout_s = 300) {
    const std::string full = "timeout -k 5 " + std::to_string(timeout_s) + " sh -c '" + command + "' > " +
                             log_.string() + " 2>&1";
    last_ = command;
    int rc = std::system(full.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  std::string log() const {
    std::string text = std::filesystem::exists(log_) ? testing::read_file(log_) : "";
    if (text.size() > 8000) text = "..." + text.substr(text.size() - 8000);
    return "$ " + last_ + "\n" + text;
  }

  testing::TempDir tmp_{"eztinker-install"};
  std::filesystem::path log_ = tmp_ / "command.log";
  std::string last_;
};

TEST_F(InstallE2E, OutOfTreeBuildAgainstInstalledPackage) {
  const std::string prefix = (tmp_ / "prefix").string();
  const std::string build = (tmp_ / "build").string();
  const std::string src = testing::source_dir().string();
  const auto installed = tmp_ / "prefix";

  ASSERT_EQ(sh("cmake --install " + testing::binary_dir().string() + " --prefix " + prefix, 120), 0) << log();
  EXPECT_TRUE(std::filesystem::exists(installed / "include/eztinker/client.h"));
  EXPECT_TRUE(std::filesystem::exists(installed / "include/eztinker/error.h"));
  EXPECT_TRUE(std::filesystem::exists(installed / "include/eztinker/version.h"));
  EXPECT_TRUE(std::filesystem::exists(installed / "lib/cmake/eztinker/eztinkerConfig.cmake"));
  EXPECT_TRUE(std::filesystem::exists(installed / "lib/pkgconfig/eztinker.pc"));
  // The datasets and recipes libraries with their headers, and the tokenizer their headers use.
  for (const char* header : {"tokenizer.h", "datasets/gsm8k.h", "datasets/answer_verifier.h",
                             "datasets/sharegpt.h", "datasets/arithmetic.h",
                             "datasets/dataset_error.h", "recipes/rejection_sampling.h",
                             "recipes/demo.h"}) {
    EXPECT_TRUE(std::filesystem::exists(installed / "include/eztinker" / header)) << header;
  }
  for (const char* lib : {"libeztinker_api.a", "libeztinker_client.a", "libeztinker_tokenizer.a",
                          "libeztinker_datasets.a", "libeztinker_recipes.a"}) {
    EXPECT_TRUE(std::filesystem::is_regular_file(installed / "lib" / lib)) << lib;
  }
  // The installed `eztinker` dlopens the SentencePiece shim from <bindir>/../<libdir>/eztinker/
  // (src/tokenizer/sentencepiece_tokenizer.cpp); without it SentencePiece models cannot load.
  // note: a runtime check would pass anyway (the binary falls back to the build-tree shim).
  const auto shim = installed / "lib/eztinker/eztinker_sentencepiece_shim.so";
  EXPECT_TRUE(std::filesystem::is_regular_file(installed / "bin/eztinker"));
  ASSERT_TRUE(std::filesystem::is_regular_file(shim)) << shim << " not installed (cmake/CMakeLists.txt)";
  ASSERT_EQ(sh("nm -D --defined-only " + shim.string(), 30), 0) << log();
  const std::string shim_symbols = testing::read_file(log_);
  EXPECT_NE(shim_symbols.find(" ezt_spm_abi_version"), std::string::npos) << shim_symbols;
  EXPECT_NE(shim_symbols.find(" ezt_spm_load"), std::string::npos) << shim_symbols;
  // No engine / server / torch headers in the client package.
  EXPECT_FALSE(std::filesystem::exists(installed / "include/torch"));
  EXPECT_FALSE(std::filesystem::exists(installed / "include/eztinker/datasets/io_util.h"));

  ASSERT_EQ(sh("cmake -S " + src + "/examples/out_of_tree -B " + build +
                   " -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=" + prefix,
               120),
            0)
      << log();
  // Through find_package: the client example, and the datasets (GSM8K loader) and recipes ones;
  // my_training is also built through pkg-config below. Each compile of cpp-httplib costs ~20 s
  // of CPU, so the test builds example_client_api once.
  ASSERT_EQ(sh("cmake --build " + build + " -j2 --target example_client_api my_training rejection_sft_demo", 300),
            0)
      << log();
  const auto example = tmp_ / "build/example_client_api";
  ASSERT_TRUE(std::filesystem::exists(example));
  // Links nothing from the build tree or libtorch.
  ASSERT_EQ(sh("ldd " + example.string(), 30), 0) << log();
  const std::string ldd = testing::read_file(log_);
  EXPECT_EQ(ldd.find("libtorch"), std::string::npos) << ldd;
  EXPECT_EQ(ldd.find(testing::binary_dir().string()), std::string::npos) << ldd;

  // The out-of-tree example works against a real server: client tour + raw HTTP, exit 0.
  start();
  ASSERT_EQ(sh("EZTINKER_BASE_URL=" + url() + " " + example.string() + " " + tiny_model_dir(), 120), 0)
      << log();
  const std::string out = testing::read_file(log_);
  EXPECT_NE(out.find("health: ok"), std::string::npos) << out;
  EXPECT_NE(out.find("saved "), std::string::npos) << out;
  EXPECT_NE(out.find("== raw HTTP"), std::string::npos) << out;
  EXPECT_NE(out.find(" completed: "), std::string::npos) << out;
  // my_training (the GSM8K loader) reads its data before it creates a run: a missing file fails
  // naming the file and leaves no run behind; the small fixture trains and saves a checkpoint.
  const auto my_training = tmp_ / "build/my_training";
  EZTinkerClient runs_client = client();
  const size_t runs_before = runs_client.list_runs().size();
  const std::string missing = (tmp_ / "missing.jsonl").string();
  EXPECT_EQ(sh("EZTINKER_BASE_URL=" + url() + " " + my_training.string() + " " + missing + " " + tiny_model_dir(), 60),
            1)
      << log();
  EXPECT_NE(testing::read_file(log_).find("missing.jsonl"), std::string::npos) << log();
  EXPECT_EQ(runs_client.list_runs().size(), runs_before);
  const std::string small = (testing::test_data_dir() / "gsm8k/small.jsonl").string();
  EXPECT_EQ(sh("EZTINKER_BASE_URL=" + url() + " " + my_training.string() + " " + small + " " + tiny_model_dir(), 120),
            0)
      << log();
  EXPECT_NE(testing::read_file(log_).find("saved "), std::string::npos) << log();

  // With no server it fails cleanly with the connection exit code (3).
  stop();
  EXPECT_EQ(sh("EZTINKER_BASE_URL=http://127.0.0.1:" + std::to_string(free_port()) + " " + example.string(), 60), 3)
      << log();

  // The pkg-config file is relocatable: it works from the temp prefix.
  const std::string pc = "PKG_CONFIG_PATH=" + prefix + "/lib/pkgconfig";
  EXPECT_EQ(sh("g++ -std=c++17 -O0 " + src + "/examples/my_training.cpp -o " + build + "/my_training_pc $(" + pc +
                   " pkg-config --cflags --libs eztinker)",
               300),
            0)
      << log();
  EXPECT_TRUE(std::filesystem::exists(tmp_ / "build/my_training_pc"));
}

}  // namespace
}  // namespace eztinker::e2e
