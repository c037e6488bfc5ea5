// Model resolution: a directory path, an alias, <models-dir>/<org>/<name>, the HF cache layout,
// a download from a local HF-like server on 127.0.0.1 (LFS redirect, sha256 verification, a
// resumed partial download, a corrupt partial), and the not-found message listing every place.
#include "model/model_resolver.h"

#include "model/random_model.h"
#include "model/weights.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <fstream>
#include <thread>

namespace eztinker::model {
namespace {

namespace fs = std::filesystem;
using eztinker::testing::TempDir;

constexpr const char* kCommit = "0123456789abcdef0123456789abcdef01234567";

void copy_model_files(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from)) fs::copy_file(e.path(), to / e.path().filename());
}

ResolveOptions isolated(const TempDir& home) {
  ResolveOptions o;
  o.hf_home = home / "hf";
  o.models_dir = home / "models";
  o.hf_endpoint = "http://127.0.0.1:9";  // never reached unless downloads are enabled
  o.progress = false;
  o.timeout_seconds = 5;
  return o;
}

class ModelResolverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = new TempDir("eztinker-resolver-model");
    RandomModelOptions opt;
    opt.preset = "tiny";
    opt.out_dir = model_dir_->path();
    opt.seed = 3;
    write_random_model(opt);
  }
  static void TearDownTestSuite() {
    delete model_dir_;
    model_dir_ = nullptr;
  }
  static TempDir* model_dir_;
};
TempDir* ModelResolverTest::model_dir_ = nullptr;

TEST_F(ModelResolverTest, DirectoryPathAndAlias) {
  TempDir home;
  auto o = isolated(home);
  EXPECT_EQ(resolve_model(model_dir_->path().string(), o), model_dir_->path());
  o.aliases["tiny"] = model_dir_->path();
  EXPECT_EQ(resolve_model("tiny", o), model_dir_->path());
}

TEST_F(ModelResolverTest, ModelsDir) {
  TempDir home;
  auto o = isolated(home);
  copy_model_files(model_dir_->path(), o.models_dir / "Org" / "Tiny");
  EXPECT_EQ(resolve_model("Org/Tiny", o), o.models_dir / "Org" / "Tiny");
  // From the environment when the option is empty.
  ResolveOptions env_opt = o;
  env_opt.models_dir.clear();
  ::setenv("EZTINKER_MODELS_DIR", o.models_dir.c_str(), 1);
  EXPECT_EQ(resolve_model("Org/Tiny", env_opt), o.models_dir / "Org" / "Tiny");
  ::unsetenv("EZTINKER_MODELS_DIR");
}

TEST_F(ModelResolverTest, HfCacheLayout) {
  TempDir home;
  auto o = isolated(home);
  const fs::path repo = o.hf_home / "hub" / "models--Qwen--Qwen2-0.5B-Instruct";
  EXPECT_EQ(hf_cache_repo_dir("Qwen/Qwen2-0.5B-Instruct", o), repo);
  copy_model_files(model_dir_->path(), repo / "snapshots" / "aaaa");
  copy_model_files(model_dir_->path(), repo / "snapshots" / "bbbb");
  fs::create_directories(repo / "snapshots" / "cccc");  // incomplete: ignored
  std::ofstream(repo / "snapshots" / "cccc" / "config.json") << "{}";
  fs::create_directories(repo / "refs");
  std::ofstream(repo / "refs" / "main") << "aaaa\n";
  EXPECT_EQ(resolve_model("Qwen/Qwen2-0.5B-Instruct", o), repo / "snapshots" / "aaaa");
  // Without refs/main: the newest complete snapshot.
  fs::remove(repo / "refs" / "main");
  fs::last_write_time(repo / "snapshots" / "bbbb",
                      fs::last_write_time(repo / "snapshots" / "aaaa") + std::chrono::hours(1));
  EXPECT_EQ(resolve_model("Qwen/Qwen2-0.5B-Instruct", o), repo / "snapshots" / "bbbb");
  // HF_HOME from the environment.
  ResolveOptions env_opt = o;
  env_opt.hf_home.clear();
  ::setenv("HF_HOME", o.hf_home.c_str(), 1);
  EXPECT_EQ(resolve_model("Qwen/Qwen2-0.5B-Instruct", env_opt), repo / "snapshots" / "bbbb");
  ::unsetenv("HF_HOME");
}

TEST_F(ModelResolverTest, NotFoundListsEveryPlace) {
  TempDir home;
  auto o = isolated(home);
  try {
    resolve_model("Nobody/NoModel", o);
    FAIL();
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("Nobody/NoModel"), std::string::npos) << msg;
    EXPECT_NE(msg.find("directory Nobody/NoModel"), std::string::npos) << msg;
    EXPECT_NE(msg.find((o.models_dir / "Nobody" / "NoModel").string()), std::string::npos) << msg;
    EXPECT_NE(msg.find((o.hf_home / "hub" / "models--Nobody--NoModel").string()), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("--allow-download"), std::string::npos) << msg;
  }
}

// A local stand-in for the hub: /<org>/<name>/resolve/<rev>/<file>; model.safetensors answers
// like an LFS file (302 to /cdn/<sha256> with X-Linked-Etag / X-Linked-Size), other files
// directly with a non-sha256 ETag (as the hub's git-sha1 etags).
class FakeHub {
 public:
  explicit FakeHub(fs::path root) : root_(std::move(root)) {
    server_.Get(R"(/Org/Tiny/resolve/([^/]+)/([^/]+))", [this](const httplib::Request& req,
                                                                httplib::Response& res) {
      const fs::path file = root_ / req.matches[2].str();
      res.set_header("X-Repo-Commit", kCommit);
      if (!fs::exists(file)) {
        res.status = 404;
        return;
      }
      const std::string sha = detail::sha256_file(file);
      if (file.extension() == ".safetensors") {
        res.status = 302;
        res.set_header("Location", "/cdn/" + sha);
        res.set_header("X-Linked-Etag", "\"" + sha + "\"");
        res.set_header("X-Linked-Size", std::to_string(fs::file_size(file)));
        return;
      }
      res.set_header("ETag", "\"" + sha.substr(0, 40) + "\"");
      res.set_content(eztinker::testing::read_file(file), "application/octet-stream");
    });
    server_.Get(R"(/cdn/([0-9a-f]+))", [this](const httplib::Request& req, httplib::Response& res) {
      for (const auto& e : fs::directory_iterator(root_)) {
        if (e.path().extension() == ".safetensors" &&
            detail::sha256_file(e.path()) == req.matches[1].str()) {
          if (req.has_header("Range")) ++range_requests;
          ++blob_requests;
          res.set_content(corrupt_blob ? std::string(fs::file_size(e.path()), 'x')
                                       : eztinker::testing::read_file(e.path()),
                          "application/octet-stream");
          return;
        }
      }
      res.status = 404;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // 0.11.4 has no wait_until_ready: poll is_running, bounded at 5 s.
    for (int i = 0; i < 5000 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ~FakeHub() {
    server_.stop();
    thread_.join();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::atomic<int> range_requests{0};
  std::atomic<int> blob_requests{0};
  std::atomic<bool> corrupt_blob{false};

 private:
  fs::path root_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

TEST_F(ModelResolverTest, DownloadsIntoHfCacheAndResumes) {
  TempDir home;
  FakeHub hub(model_dir_->path());
  auto o = isolated(home);
  o.hf_endpoint = hub.endpoint();

  // Disabled by default: not found, mentioning the endpoint.
  try {
    resolve_model("Org/Tiny", o);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(hub.endpoint()), std::string::npos) << e.what();
  }

  // A partial download left behind: the first half of model.safetensors.
  const fs::path snapshot = o.hf_home / "hub" / "models--Org--Tiny" / "snapshots" / kCommit;
  const std::string weights = eztinker::testing::read_file(model_dir_->path() / "model.safetensors");
  fs::create_directories(snapshot);
  eztinker::testing::write_file(snapshot / "model.safetensors.incomplete",
                                weights.substr(0, weights.size() / 2));

  o.allow_download = true;
  const fs::path got = resolve_model("Org/Tiny", o);
  EXPECT_EQ(got, snapshot);
  EXPECT_EQ(hub.range_requests.load(), 1);  // resumed, not restarted
  EXPECT_EQ(eztinker::testing::read_file(got / "model.safetensors"), weights);
  EXPECT_FALSE(fs::exists(got / "model.safetensors.incomplete"));
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.json",
                        "tokenizer_config.json"}) {
    EXPECT_EQ(eztinker::testing::read_file(got / f),
              eztinker::testing::read_file(model_dir_->path() / f))
        << f;
  }
  EXPECT_EQ(eztinker::testing::read_file(o.hf_home / "hub" / "models--Org--Tiny" / "refs" / "main"),
            kCommit);
  // The downloaded model loads and matches the original.
  auto a = load_model(got, torch::kFloat32, torch::kCPU);
  auto b = load_model(model_dir_->path(), torch::kFloat32, torch::kCPU);
  torch::Tensor ids = torch::arange(8, torch::kInt64).unsqueeze(0);
  EXPECT_TRUE(torch::equal(a->forward(ids), b->forward(ids)));

  // Now cached: no further requests.
  const int before = hub.blob_requests.load();
  EXPECT_EQ(resolve_model("Org/Tiny", o), snapshot);
  EXPECT_EQ(hub.blob_requests.load(), before);
}

TEST_F(ModelResolverTest, CorruptDownloadIsRejected) {
  TempDir home;
  FakeHub hub(model_dir_->path());
  hub.corrupt_blob = true;
  auto o = isolated(home);
  o.hf_endpoint = hub.endpoint();
  o.allow_download = true;
  try {
    resolve_model("Org/Tiny", o);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("sha256 mismatch"), std::string::npos) << e.what();
  }
  const fs::path snapshot = o.hf_home / "hub" / "models--Org--Tiny" / "snapshots" / kCommit;
  EXPECT_FALSE(fs::exists(snapshot / "model.safetensors"));
  EXPECT_FALSE(fs::exists(snapshot / "model.safetensors.incomplete"));
  // The server recovers: a retry succeeds.
  hub.corrupt_blob = false;
  EXPECT_EQ(resolve_model("Org/Tiny", o), snapshot);
}

TEST(ModelResolverSha256, KnownVectors) {
  TempDir dir;
  eztinker::testing::write_file(dir / "empty", "");
  eztinker::testing::write_file(dir / "abc", "abc");
  EXPECT_EQ(detail::sha256_file(dir / "empty"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(detail::sha256_file(dir / "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  eztinker::testing::write_file(dir / "long", std::string(1000000, 'a'));
  EXPECT_EQ(detail::sha256_file(dir / "long"),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

}  // namespace
}  // namespace eztinker::model
