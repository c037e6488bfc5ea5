// Installs the client package to a temp prefix (`cmake --install`) and builds the examples out
// of tree against it with find_package(eztinker) and with pkg-config: proves a user needs only
// the installed headers/libs plus nlohmann-json and cpp-httplib (no libtorch, no source tree).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "test_support.h"

namespace eztinker {
namespace {

int run(const std::string& command) {
  int rc = std::system((command + " > /dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(InstallTest, OutOfTreeBuildAgainstInstalledPackage) {
  testing::TempDir tmp("eztinker-install");
  const std::string prefix = (tmp / "prefix").string();
  const std::string build = (tmp / "build").string();
  const std::string src = testing::source_dir().string();
  ASSERT_EQ(run("cmake --install " + testing::binary_dir().string() + " --prefix " + prefix), 0);
  EXPECT_TRUE(std::filesystem::exists(tmp / "prefix/include/eztinker/client.h"));
  EXPECT_TRUE(std::filesystem::exists(tmp / "prefix/lib/cmake/eztinker/eztinkerConfig.cmake"));
  EXPECT_FALSE(std::filesystem::exists(tmp / "prefix/include/torch"));

  ASSERT_EQ(run("cmake -S " + src + "/examples/out_of_tree -B " + build +
                " -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=" + prefix),
            0);
  ASSERT_EQ(run("cmake --build " + build + " -j2"), 0);
  EXPECT_TRUE(std::filesystem::exists(tmp / "build/my_training"));
  EXPECT_TRUE(std::filesystem::exists(tmp / "build/example_client_api"));

  // The pkg-config file is relocatable: it works from the temp prefix.
  const std::string pc = "PKG_CONFIG_PATH=" + prefix + "/lib/pkgconfig";
  EXPECT_EQ(run("g++ -std=c++17 " + src + "/examples/my_training.cpp -o " + build +
                "/my_training_pc $(" + pc + " pkg-config --cflags --libs eztinker)"),
            0);
}

}  // namespace
}  // namespace eztinker
