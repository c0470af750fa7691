// Registry-backed tests of ImageStore: Debian's docker-registry on 127.0.0.1 with
// fixture images built from busybox-static (tests/lib/oci_image.py). Run as root.
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <optional>
#include <thread>

#include "common/error.hpp"
#include "cri/image/image_store.hpp"
#include "cri/image/pull_libraries.hpp"
#include "cri/image/reference.hpp"
#include "registry_fixture.hpp"
#include "test_helpers.hpp"

namespace berth::image {
namespace {

using nlohmann::json;
using testing::exists_nofollow;
using testing::RegistryOptions;
using testing::RegistryServer;
using testing::TempDir;

// Files under `dir` (recursively) whose name ends with `suffix`.
void find_suffix(const std::string& dir, const std::string& suffix, std::vector<std::string>& out) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    std::string p = dir + "/" + n;
    if (n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) out.push_back(p);
    if (e->d_type == DT_DIR) find_suffix(p, suffix, out);
  }
  ::closedir(d);
}

size_t count_dir(const std::string& dir) {
  size_t n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}


// Mounts `m` on `target` in a child's private mount namespace and reports, for each path,
// its size ("-1" when missing) and whether it is executable ("x"), space-separated.
std::string probe_mount(const Mount& m, const std::string& target, const std::vector<std::string>& paths) {
  mkdir_p(target);
  std::string opts;
  for (auto& o : m.options) opts += (opts.empty() ? "" : ",") + o;
  int fds[2];
  if (::pipe(fds) < 0) throw std::runtime_error("pipe");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    if (::unshare(CLONE_NEWNS) < 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) _exit(10);
    unsigned long flags = m.type == "bind" ? MS_BIND | MS_REC : 0;
    if (::mount(m.source.c_str(), target.c_str(), m.type == "bind" ? nullptr : m.type.c_str(), flags,
                m.type == "bind" ? nullptr : opts.c_str()) < 0)
      _exit(11);
    std::string seen;
    for (auto& p : paths) {
      struct stat st;
      if (::lstat((target + "/" + p).c_str(), &st) < 0) {
        seen += p + "=-1 ";
        continue;
      }
      seen += p + "=" + std::to_string(st.st_size) + ((st.st_mode & 0111) && S_ISREG(st.st_mode) ? "x" : "") + " ";
    }
    write_all(fds[1], seen);
    _exit(0);
  }
  ::close(fds[1]);
  std::string seen;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) seen.append(buf, n);
  ::close(fds[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) throw std::runtime_error("mount probe failed: " + std::to_string(st));
  return seen;
}

class RegistryTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    registry_ = new RegistryServer();
    for (std::string c : {"gzip", "zstd", "none"})
      pushed_["busybox-" + c] = registry_->push("test/busybox:" + c, "busybox", c);
    pushed_["multilayer"] = registry_->push("test/multilayer:latest", "multilayer");
    pushed_["docker"] = registry_->push("test/docker:latest", "multilayer", "gzip", "docker");
    pushed_["whiteout"] = registry_->push("test/whiteout:latest", "whiteout", "zstd");
    pushed_["index"] = registry_->push("test/index:latest", "index");
    pushed_["library"] = registry_->push("library/busybox:latest", "busybox");
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }

  StoreOptions options() const {
    StoreOptions o;
    o.root = store_dir_.path() + "/store";
    o.retries = 1;
    return o;
  }
  std::string ref(const std::string& name) const { return registry_->addr() + "/" + name; }
  std::string root() const { return store_dir_.path() + "/store"; }

  static RegistryServer* registry_;
  static std::map<std::string, json> pushed_;
  TempDir store_dir_;
};
RegistryServer* RegistryTest::registry_ = nullptr;
std::map<std::string, json> RegistryTest::pushed_;

// Every fixture kind and compression pulls, and the record says what the registry holds.
TEST_F(RegistryTest, PullsEveryKind) {
  struct Case {
    std::string key, name;
  };
  for (Case c : std::vector<Case>{{"busybox-gzip", "test/busybox:gzip"},
                                  {"busybox-zstd", "test/busybox:zstd"},
                                  {"busybox-none", "test/busybox:none"},
                                  {"multilayer", "test/multilayer:latest"},
                                  {"docker", "test/docker:latest"},
                                  {"whiteout", "test/whiteout:latest"}}) {
    SCOPED_TRACE(c.key);
    // A store per case: the compressions share diff IDs, so one store would unpack once.
    StoreOptions o = options();
    o.root = store_dir_ / c.key;
    auto store = ImageStore::open(o);
    json& p = pushed_[c.key];
    std::vector<std::string> events;
    ImageRecord rec = store->pull(ref(c.name), {}, [&](std::string_view e) { events.emplace_back(e); });
    EXPECT_EQ(rec.id, p["image_id"]);
    EXPECT_EQ(rec.manifest_digest, p["manifest"]);
    EXPECT_EQ(rec.repo_tags, std::vector<std::string>{ref(c.name)});
    std::string repo = ref(c.name).substr(0, ref(c.name).rfind(':'));
    EXPECT_EQ(rec.repo_digests, std::vector<std::string>{repo + "@" + p["manifest"].get<std::string>()});
    EXPECT_EQ(rec.chain_ids.size(), p["layers"].size());
    EXPECT_EQ(rec.chain_ids.front(), p["diff_ids"][0]);
    EXPECT_GT(rec.size, 1000000u);  // busybox-static is > 1 MB
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.front(), "resolve " + ref(c.name));
    EXPECT_EQ(events.back(), "done " + rec.id);
    auto found = store->find(ref(c.name));
    ASSERT_TRUE(found);
    EXPECT_EQ(found->id, rec.id);
    // The bottom layer holds busybox itself, byte for byte, executable.
    auto v = store->snapshots().view("check", rec.chain_ids[0]);
    EXPECT_EQ(read_file(v[0].source + "/bin/busybox"), read_file("/bin/busybox"));
    struct stat st;
    ASSERT_EQ(::stat((v[0].source + "/bin/busybox").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    store->snapshots().remove("check");
  }
}

// Tags of one image in several compressions: one image, one unpack of the shared layer.
TEST_F(RegistryTest, SameImageUnderSeveralTagsIsStoredOnce) {
  auto store = ImageStore::open(options());
  std::vector<std::string> events;
  for (std::string c : {"gzip", "zstd", "none"})
    store->pull(ref("test/busybox:" + c), {}, [&](std::string_view e) { events.emplace_back(e); });
  auto all = store->list();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].repo_tags.size(), 3u);
  EXPECT_EQ(all[0].repo_digests.size(), 3u);  // one per manifest, as containerd's CRI lists them
  size_t unpacks = 0;
  for (auto& e : events) unpacks += e.rfind("unpack ", 0) == 0;
  EXPECT_EQ(unpacks, 1u);
}

TEST_F(RegistryTest, FindByIdPrefixDigestAndShortName) {
  auto store = ImageStore::open(options());
  ImageRecord rec = store->pull(ref("test/busybox:gzip"), {});
  std::string hex = rec.id.substr(7);
  EXPECT_EQ(store->find(rec.id)->id, rec.id);
  EXPECT_EQ(store->find(hex)->id, rec.id);
  EXPECT_EQ(store->find(hex.substr(0, 12))->id, rec.id);
  EXPECT_EQ(store->find(rec.repo_digests[0])->id, rec.id);
  EXPECT_FALSE(store->find("sha256:" + std::string(64, '0')));
  EXPECT_FALSE(store->find("no-such-image"));
  EXPECT_EQ(ImageRecord{}.username(), "");
  // Pull by digest: no tag recorded for it, the same image.
  std::string by_digest = ref("test/busybox") + "@" + pushed_["busybox-gzip"]["manifest"].get<std::string>();
  ImageRecord again = store->pull(by_digest, {});
  EXPECT_EQ(again.id, rec.id);
  EXPECT_EQ(store->list().size(), 1u);
}

TEST_F(RegistryTest, UnpackedFilesystemAndWhiteoutsThroughOverlay) {
  auto store = ImageStore::open(options());
  ImageRecord rec = store->pull(ref("test/whiteout:latest"), {});
  auto mounts = store->snapshots().prepare("container-1", rec.chain_ids.back());
  ASSERT_EQ(mounts.size(), 1u);
  ASSERT_EQ(mounts[0].type, "overlay");
  std::string seen = probe_mount(mounts[0], store_dir_ / "rootfs",
                                 {"bin/busybox", "data/a", "data/b", "data/c", "opq/x", "opq/y", "opq/z", "gone",
                                  "gone/f", "etc/passwd"});
  std::string busybox_size = std::to_string(read_file("/bin/busybox").size());
  EXPECT_EQ(seen, "bin/busybox=" + busybox_size +
                      "x data/a=-1 data/b=2 data/c=2 opq/x=-1 opq/y=-1 opq/z=2 gone=-1 gone/f=-1 etc/passwd=71 ");
  store->snapshots().remove("container-1");
}

TEST_F(RegistryTest, IndexSelectsThePlatform) {
  json& p = pushed_["index"];
  {
    auto store = ImageStore::open(options());
    ImageRecord rec = store->pull(ref("test/index:latest"), {});
    // The index's digest is the repo digest; the amd64 manifest is the one unpacked.
    EXPECT_EQ(rec.repo_digests[0], ref("test/index") + "@" + p["index"].get<std::string>());
    EXPECT_EQ(rec.id, p["image_id"]);
    EXPECT_EQ(rec.manifest_digest, p["platforms"]["linux/amd64"]);
  }
  StoreOptions o = options();
  o.root = store_dir_ / "arm";
  o.platform_arch = "arm64";
  auto arm = ImageStore::open(o);
  ImageRecord rec = arm->pull(ref("test/index:latest"), {});
  EXPECT_EQ(rec.manifest_digest, p["platforms"]["linux/arm64/v8"]);
  EXPECT_NE(rec.id, p["image_id"]);
  EXPECT_NE(rec.config_json.find("arm64"), std::string::npos);
  o.root = store_dir_ / "s390x";
  o.platform_arch = "s390x";
  auto none = ImageStore::open(o);
  try {
    none->pull(ref("test/index:latest"), {});
    ADD_FAILURE() << "s390x pulled";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no manifest for platform linux/s390x"), std::string::npos) << e.what();
  }
}

TEST_F(RegistryTest, HostileImagesAreRejectedOrContained) {
  auto store = ImageStore::open(options());
  struct Case {
    std::string kind;
    bool rejected;
  };
  for (Case c : std::vector<Case>{{"hostile-traversal", true},
                                  {"hostile-symlink", true},
                                  {"hostile-hardlink", true},
                                  {"hostile-absolute", false},
                                  {"hostile-devices", false}}) {
    SCOPED_TRACE(c.kind);
    registry_->push("hostile/" + c.kind + ":latest", c.kind);
    bool threw = false;
    try {
      store->pull(ref("hostile/" + c.kind + ":latest"), {});
    } catch (const Error& e) {
      threw = true;
      EXPECT_NE(std::string(e.what()).find("layer"), std::string::npos) << e.what();
    }
    EXPECT_EQ(threw, c.rejected);
  }
  for (auto p : {"/escape-absolute", "/escape-traversal", "/tmp/escape-symlink", "/tmp/escape-symlink-abs"})
    EXPECT_FALSE(exists_nofollow(p)) << p;
  std::vector<std::string> outside;
  find_suffix(store_dir_.path(), "escape-traversal", outside);
  EXPECT_TRUE(outside.empty());
  // Rejected layers leave no snapshot behind: only committed ones remain.
  for (auto& s : store->snapshots().list()) EXPECT_EQ(s.kind, SnapshotKind::committed) << s.key;
  auto abs = store->find(ref("hostile/hostile-absolute:latest"));
  ASSERT_TRUE(abs);
  auto mounts = store->snapshots().view("v-abs", abs->chain_ids.back());
  EXPECT_EQ(probe_mount(mounts[0], store_dir_ / "mnt", {"escape-absolute"}), "escape-absolute=27 ");
  store->snapshots().remove("v-abs");
  EXPECT_EQ(store->list().size(), 2u);
}

TEST_F(RegistryTest, RemoveCollectsUnreferencedBlobsAndSnapshots) {
  auto store = ImageStore::open(options());
  ImageRecord bb = store->pull(ref("library/busybox:latest"), {});
  ImageRecord ml = store->pull(ref("test/multilayer:latest"), {});
  EXPECT_EQ(bb.chain_ids[0], ml.chain_ids[0]);  // shared base layer
  size_t blobs_before = count_dir(root() + "/content/blobs/sha256");
  EXPECT_EQ(store->snapshots().list().size(), 3u);
  store->remove(ref("test/multilayer:latest"));
  EXPECT_FALSE(store->find(ref("test/multilayer:latest")));
  EXPECT_FALSE(store->find(ml.id));
  EXPECT_EQ(store->snapshots().list().size(), 1u);
  EXPECT_TRUE(store->snapshots().stat(bb.chain_ids[0]));
  EXPECT_LT(count_dir(root() + "/content/blobs/sha256"), blobs_before);
  EXPECT_EQ(count_dir(root() + "/snapshots"), 1u);
  try {
    store->remove(ref("test/multilayer:latest"));
    ADD_FAILURE() << "removed twice";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ENOENT);
  }
  store->remove(bb.id.substr(7, 12));
  EXPECT_TRUE(store->list().empty());
  EXPECT_EQ(count_dir(root() + "/content/blobs/sha256"), 0u);
  EXPECT_EQ(count_dir(root() + "/snapshots"), 0u);
  EXPECT_GT(store->usage().inodes_used, 0u);  // the snapshots directory itself
}

TEST_F(RegistryTest, ConcurrentPullsFetchEachBlobOnce) {
  json p = registry_->push("share/multilayer:latest", "multilayer", "zstd");
  auto store = ImageStore::open(options());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  std::vector<std::string> ids(4);
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      try {
        ids[i] = store->pull(ref("share/multilayer:latest"), {}).id;
        ++ok;
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
  for (auto& id : ids) EXPECT_EQ(id, p["image_id"]);
  for (auto& l : p["layers"]) EXPECT_EQ(registry_->blob_gets("share/multilayer", l.get<std::string>()), 1) << l;
  EXPECT_EQ(registry_->blob_gets("share/multilayer", p["config"].get<std::string>()), 1);
  EXPECT_EQ(store->list().size(), 1u);
}

TEST_F(RegistryTest, CorruptBlobIsRejectedAndLeavesNothing) {
  json p = registry_->push("corrupt/busybox:latest", "multilayer", "none");
  // Flip bytes of the top layer in the registry's storage (same size, wrong digest).
  std::string top = p["layers"].back().get<std::string>().substr(7);
  std::string data = registry_->storage() + "/docker/registry/v2/blobs/sha256/" + top.substr(0, 2) + "/" + top + "/data";
  std::string content = read_file(data);
  content[content.size() / 2] ^= 0x55;
  write_file(data, content);
  auto store = ImageStore::open(options());
  try {
    store->pull(ref("corrupt/busybox:latest"), {});
    ADD_FAILURE() << "corrupt blob accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sha256:" + top), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists_nofollow(root() + "/content/blobs/sha256/" + top));
  std::vector<std::string> tmp;
  find_suffix(root() + "/content/ingest", ".tmp", tmp);
  EXPECT_TRUE(tmp.empty());
  for (auto& s : store->snapshots().list()) EXPECT_EQ(s.kind, SnapshotKind::committed) << s.key;
  EXPECT_TRUE(store->list().empty());
}

TEST_F(RegistryTest, MirrorsFallBackInOrder) {
  StoreOptions o = options();
  // docker.io and registry.k8s.io served by the local registry; the first mirror is dead.
  o.registries.push_back({.host = "docker.io", .mirrors = {"http://127.0.0.1:1", "http://" + registry_->addr()}});
  o.registries.push_back({.host = "registry.k8s.io", .mirrors = {"http://" + registry_->addr() + "/v2"}});
  auto store = ImageStore::open(o);
  ImageRecord rec = store->pull("busybox", {});
  EXPECT_EQ(rec.repo_tags, std::vector<std::string>{"docker.io/library/busybox:latest"});
  EXPECT_EQ(rec.id, pushed_["library"]["image_id"]);
  EXPECT_EQ(store->find("busybox")->id, rec.id);
  EXPECT_EQ(store->find("docker.io/library/busybox")->id, rec.id);
  try {
    store->pull("registry.k8s.io/nosuch/image:1", {});
    ADD_FAILURE() << "pulled a missing image";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not found"), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), EIO) << "registry.k8s.io itself is unreachable here: not a definite 404";
  }
  try {
    store->pull(ref("nosuch/image:1"), {});
    ADD_FAILURE() << "pulled a missing image";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ENOENT) << e.what();
  }
}

// Through a proxy that fails the first manifest GET (503), redirects every blob GET and
// hangs up half-way through the first transfer of every blob.
TEST_F(RegistryTest, RetriesRedirectsAndResumesBlobs) {
  testing::FlakyProxy proxy(registry_->addr());
  StoreOptions o = options();
  o.retries = 3;
  o.registries.push_back({.host = "flaky.test", .mirrors = {"http://" + proxy.addr()}});
  auto store = ImageStore::open(o);
  ImageRecord rec = store->pull("flaky.test/test/multilayer:latest", {});
  EXPECT_EQ(rec.id, pushed_["multilayer"]["image_id"]);
  json stats = proxy.stats();
  EXPECT_EQ(stats.value("manifest /v2/test/multilayer/manifests/latest", 0), 2);  // 503, then the retry
  for (auto& l : pushed_["multilayer"]["layers"]) {
    std::string path = "/v2/test/multilayer/blobs/" + l.get<std::string>();
    EXPECT_GE(stats.value("redirect " + path, 0), 2) << path;     // first try and the resume
    EXPECT_EQ(stats.value("blob " + path, 0), 1) << path;         // cut half-way
    EXPECT_EQ(stats.value("blob " + path + " range", 0), 1) << path;  // resumed from the middle
  }
}

TEST_F(RegistryTest, PinnedAndUsage) {
  auto store = ImageStore::open(options());
  ImageRecord rec = store->pull(ref("library/busybox:latest"), {});
  EXPECT_FALSE(rec.pinned);
  FsUsage before = store->usage();
  EXPECT_GT(before.used_bytes, 1000000u);  // busybox-static unpacked
  EXPECT_GT(before.inodes_used, 20u);
  EXPECT_EQ(before.mountpoint, root() + "/snapshots");
  store->set_pinned(ref("library/busybox:latest"), true);
  EXPECT_TRUE(store->find(rec.id)->pinned);
  store->pull(ref("library/busybox:latest"), {});
  EXPECT_TRUE(store->find(rec.id)->pinned) << "a re-pull keeps the pin";
  EXPECT_EQ(store->usage().used_bytes, before.used_bytes);
  try {
    store->set_pinned("nosuch", true);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ENOENT);
  }
}

class AuthTest : public ::testing::Test {
protected:
  TempDir dir_;
  StoreOptions options(const std::string& sub) {
    StoreOptions o;
    o.root = dir_ / sub;
    o.retries = 1;
    return o;
  }
};

TEST_F(AuthTest, HtpasswdBasicAuth) {
  RegistryServer reg(RegistryOptions{.users = {"alice:s3cret"}});
  json p = reg.push("private/busybox:1", "busybox", "gzip", "oci", "alice:s3cret");
  std::string ref = reg.addr() + "/private/busybox:1";
  auto store = ImageStore::open(options("a"));
  try {
    store->pull(ref, {});
    ADD_FAILURE() << "pulled without credentials";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unauthorized"), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), EACCES);
  }
  try {
    store->pull(ref, {.username = "alice", .password = "wrong"});
    ADD_FAILURE() << "pulled with a wrong password";
  } catch (const Error&) {
  }
  EXPECT_EQ(store->pull(ref, {.username = "alice", .password = "s3cret"}).id, p["image_id"]);
  // CRI's "auth" field: base64(user:password).
  auto s2 = ImageStore::open(options("b"));
  EXPECT_EQ(s2->pull(ref, {.auth = "YWxpY2U6czNjcmV0"}).id, p["image_id"]);
  // Static credentials from the host's configuration.
  StoreOptions o = options("c");
  o.registries.push_back({.host = reg.addr(), .plain_http = true, .username = "alice", .password = "s3cret"});
  auto s3 = ImageStore::open(o);
  EXPECT_EQ(s3->pull(ref, {}).id, p["image_id"]);
}

TEST_F(AuthTest, BearerTokenFlow) {
  RegistryServer reg(RegistryOptions{.users = {"bob:tok3n"}, .token = true});
  json p = reg.push("tok/busybox:1", "multilayer", "gzip", "oci", "bob:tok3n");
  std::string ref = reg.addr() + "/tok/busybox:1";
  auto store = ImageStore::open(options("a"));
  try {
    store->pull(ref, {});  // anonymous token carries no pull right
    ADD_FAILURE() << "pulled anonymously";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unauthorized"), std::string::npos) << e.what();
  }
  try {
    store->pull(ref, {.username = "bob", .password = "bad"});
    ADD_FAILURE() << "pulled with bad credentials";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("credentials rejected"), std::string::npos) << e.what();
  }
  EXPECT_EQ(store->pull(ref, {.username = "bob", .password = "tok3n"}).id, p["image_id"]);

  // CRI's registry_token: a Bearer token obtained elsewhere, sent as it is.
  json tok = json::parse(testing::run({"curl", "-sf", "-u", "bob:tok3n",
                                       reg.token_url() + "?service=berth-test-registry&scope=repository:tok/busybox:pull"}));
  auto s3 = ImageStore::open(options("c"));
  EXPECT_EQ(s3->pull(ref, {.registry_token = tok["token"]}).id, p["image_id"]);

  RegistryServer anon(RegistryOptions{.users = {"bob:tok3n"}, .token = true, .anonymous_pull = true});
  json q = anon.push("pub/busybox:1", "busybox", "zstd", "oci", "bob:tok3n");
  auto s2 = ImageStore::open(options("b"));
  EXPECT_EQ(s2->pull(anon.addr() + "/pub/busybox:1", {}).id, q["image_id"]);
}

TEST_F(AuthTest, TlsWithCaFileOrSkipVerify) {
  RegistryServer reg(RegistryOptions{.tls = true});
  json p = reg.push("tls/busybox:1", "busybox");
  std::string ref = reg.addr() + "/tls/busybox:1";
  auto fails = [&](StoreOptions o, const std::string& what) {
    auto store = ImageStore::open(o);
    try {
      store->pull(ref, {});
      ADD_FAILURE() << what << ": pulled";
    } catch (const Error& e) {
      SUCCEED() << e.what();
    }
  };
  StoreOptions o = options("verify");
  o.registries.push_back({.host = reg.addr(), .plain_http = false});
  fails(o, "unknown CA");
  o.root = dir_ / "http";
  o.registries.clear();  // loopback default: plain http, which an HTTPS server refuses
  fails(o, "plain http");
  o.root = dir_ / "ca";
  o.registries = {{.host = reg.addr(), .ca_file = reg.ca_file()}};
  EXPECT_EQ(ImageStore::open(o)->pull(ref, {}).id, p["image_id"]);
  o.root = dir_ / "skip";
  o.registries = {{.host = reg.addr(), .skip_verify = true}};
  EXPECT_EQ(ImageStore::open(o)->pull(ref, {}).id, p["image_id"]);
  // A mirror inherits its host's TLS settings.
  o.root = dir_ / "mirror";
  o.registries = {{.host = "tls.mirror.test", .mirrors = {"https://" + reg.addr()}, .ca_file = reg.ca_file()}};
  EXPECT_EQ(ImageStore::open(o)->pull("tls.mirror.test/tls/busybox:1", {}).id, p["image_id"]);
}

// The ~100 MB image: four 25 MiB random layers over busybox, downloaded in parallel.
TEST_F(RegistryTest, BigImage) {
  json p = registry_->push("big/image:latest", "big", "gzip");
  auto store = ImageStore::open(options());
  auto t0 = std::chrono::steady_clock::now();
  ImageRecord rec = store->pull(ref("big/image:latest"), {});
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(rec.id, p["image_id"]);
  EXPECT_GT(rec.size, 100000000u);
  EXPECT_EQ(rec.chain_ids.size(), 5u);
  // Informational only (no timing assertions in tests): bench/ measures properly.
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  std::printf("[ info ] pulled %.1f MB in %.2f s; test process peak RSS %.1f MiB\n", rec.size / 1e6, secs,
              ru.ru_maxrss / 1024.0);
}

// SIGKILL at points of a pull, then reopen and pull again: the store opens cleanly, no
// temp files remain, and the image is whole.
class CrashTest : public RegistryTest, public ::testing::WithParamInterface<std::pair<const char*, int>> {};

TEST_P(CrashTest, KillDuringPullThenRetry) {
  static json p = registry_->push("crash/image:latest", "big", "zstd");
  auto [event, nth] = GetParam();
  StoreOptions o = options();
  pid_t pid = ::fork();
  if (pid == 0) {
    // The child never returns into gtest: any way out of here is an _exit.
    try {
    std::atomic<int> seen{0};
    std::string want = event;
    auto store = ImageStore::open(o);
    store->pull(ref("crash/image:latest"), {}, [&](std::string_view e) {
      std::string_view phase = e.substr(0, e.find(' '));
      bool match = phase == want;
      // "fetch" events with bytes done > 0: the middle of a download.
      if (match && want == "fetch") {
        auto parts = split(e, ' ');
        match = parts.size() == 4 && parts[2] != "0";
      }
      if (match && ++seen == nth) ::kill(::getpid(), SIGKILL);
    });
    } catch (const std::exception& e) {
      std::fprintf(stderr, "crash child: %s\n", e.what());
      _exit(4);
    }
    _exit(3);  // the kill point was never reached
  }
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(st)) << "child exited with " << WEXITSTATUS(st) << " instead of being killed";
  EXPECT_EQ(WTERMSIG(st), SIGKILL);

  auto store = ImageStore::open(o);
  std::vector<std::string> tmp;
  find_suffix(root() + "/content/ingest", ".tmp", tmp);
  EXPECT_TRUE(tmp.empty()) << "ingest leftovers after open";
  for (auto& s : store->snapshots().list()) EXPECT_EQ(s.kind, SnapshotKind::committed) << s.key;
  ImageRecord rec = store->pull(ref("crash/image:latest"), {});
  EXPECT_EQ(rec.id, p["image_id"]);
  EXPECT_EQ(store->list().size(), 1u);
  for (auto& c : rec.chain_ids) EXPECT_TRUE(store->snapshots().stat(c)) << c;
  // The top layer's files are whole: 5 files of 5 MiB.
  auto m = store->snapshots().view("check", rec.chain_ids.back());
  std::string want;
  std::vector<std::string> paths;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 5; ++j) {
      paths.push_back(fmt::format("data{}/blob{}", i, j));
      want += paths.back() + "=5242880 ";
    }
  EXPECT_EQ(probe_mount(m[0], store_dir_ / "mnt", paths), want);
  store->snapshots().remove("check");
  tmp.clear();
  find_suffix(root(), ".tmp", tmp);
  EXPECT_TRUE(tmp.empty());
  EXPECT_EQ(count_dir(root() + "/snapshots"), rec.chain_ids.size());
}

INSTANTIATE_TEST_SUITE_P(Points, CrashTest,
                         ::testing::Values(std::make_pair("manifest", 1), std::make_pair("fetch", 1),
                                           std::make_pair("fetch", 40), std::make_pair("fetched", 2),
                                           std::make_pair("unpack", 1), std::make_pair("unpack", 3),
                                           std::make_pair("unpacked", 2), std::make_pair("unpacked", 5),
                                           std::make_pair("done", 1)),
                         [](const ::testing::TestParamInfo<std::pair<const char*, int>>& i) {
                           return std::string(i.param.first) + "_" + std::to_string(i.param.second);
                         });

// ---- a hostile registry (cri/image/tests/hostile_registry.py) ---------------------------

size_t thread_count() {
  size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

class HostileTest : public ::testing::Test {
protected:
  StoreOptions options() const {
    StoreOptions o;
    o.root = dir_ / "store";
    o.retries = 1;
    return o;
  }
  // A pull returns at its deadline or cancel; its abandoned download notices from curl's
  // progress callback (at least once a second) and removes its temp file then.
  void expect_no_ingest_leftovers() {
    std::vector<std::string> tmp;
    for (int i = 0; i < 50; ++i) {
      tmp.clear();
      find_suffix(dir_ / "store/content/ingest", ".tmp", tmp);
      if (tmp.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(tmp.empty());
  }
  // The pull fails with ETIMEDOUT and `message` within `limit`, leaving no ingest file.
  void expect_pull_timeout(ImageStore& store, const std::string& ref, const std::string& message,
                           std::chrono::seconds limit) {
    auto t0 = std::chrono::steady_clock::now();
    try {
      store.pull(ref, {});
      ADD_FAILURE() << "pulled";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      EXPECT_EQ(e.code(), ETIMEDOUT) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, limit);
    expect_no_ingest_leftovers();
  }

  TempDir dir_;
};

// A blob trickling at 1 byte/s: the blob deadline ends the pull, nothing is left behind.
TEST_F(HostileTest, ASlowBlobHitsTheBlobDeadline) {
  testing::HostileServer reg("slow-blob");
  StoreOptions o = options();
  o.blob_timeout = std::chrono::seconds(2);
  auto store = ImageStore::open(o);
  expect_pull_timeout(*store, reg.addr() + "/slow/img:1", "blob deadline of 2 s exceeded", std::chrono::seconds(15));
  EXPECT_TRUE(store->list().empty());
}

TEST_F(HostileTest, APullHasAnOverallDeadline) {
  testing::HostileServer reg("slow-blob");
  StoreOptions o = options();
  o.blob_timeout = std::chrono::milliseconds(0);
  o.pull_timeout = std::chrono::seconds(2);
  auto store = ImageStore::open(o);
  expect_pull_timeout(*store, reg.addr() + "/slow/img:1", "pull deadline of 2 s", std::chrono::seconds(10));
}

// A process spawned while a download runs, as berthd runs CNI plugins and the OCI runtime
// while pulls go on; it lives until the end of the test.
class Bystander {
public:
  Bystander() {
    char* argv[] = {const_cast<char*>("/bin/sleep"), const_cast<char*>("60"), nullptr};
    if (::posix_spawn(&pid_, argv[0], nullptr, nullptr, argv, environ) != 0) pid_ = -1;
  }
  ~Bystander() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

private:
  pid_t pid_ = -1;
};

// The client goes away: the pull returns at once, and its downloads stop (the registry
// sees the transfer broken off; the download threads end).
TEST_F(HostileTest, CancellingAPullStopsItAndItsDownloads) {
  testing::HostileServer reg("slow-blob");
  std::string layer = reg.info()["layers"][0];
  std::string blob = "/v2/slow/img/blobs/" + layer;
  auto store = ImageStore::open(options());
  size_t threads_before = thread_count();
  std::atomic<bool> cancel{false}, flowing{false};
  std::optional<Bystander> bystander;
  std::thread canceller([&] {
    // The layer's first bytes have arrived ("fetch <digest> 1 <size>"): its connection is open.
    for (int i = 0; i < 500 && !flowing; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    bystander.emplace();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  try {
    store->pull(
        reg.addr() + "/slow/img:1", {},
        [&](std::string_view e) {
          if (e.starts_with("fetch " + layer + " ") && !e.starts_with("fetch " + layer + " 0 ")) flowing = true;
        },
        [&] { return cancel.load(); });
    ADD_FAILURE() << "pulled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ECANCELED) << e.what();
  }
  canceller.join();
  EXPECT_TRUE(flowing) << "the layer's download never started";
  ASSERT_GT(bystander->pid(), 0);
  auto returned = std::chrono::steady_clock::now();
  EXPECT_LT(returned - t0, std::chrono::seconds(4));
  // The registry's side: the blob's response ended because we closed the connection, long
  // before the blob was sent. The download notices the cancel within a second (curl's
  // progress callback) and hostile_registry.py polls for the close while it trickles. The
  // bystander must not hold the connection open: libcurl's sockets are made close-on-exec.
  // (The log is held in a variable: `for (auto& e : reg.log()["log"])` iterates an array of
  // a temporary already destroyed, C++20 extends only the outermost temporary's life. That
  // is why this check once never saw the entry.)
  nlohmann::json entry;
  for (int i = 0; i < 50 && entry.is_null(); ++i) {
    nlohmann::json log = reg.log();
    for (auto& e : log["log"])
      if (e["path"] == blob) entry = e;
    if (entry.is_null()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(entry.is_null()) << "the registry still sends the blob 5 s after the cancel";
  EXPECT_EQ(entry["end"], "peer closed") << entry.dump();
  EXPECT_LT(entry["sent"].get<uint64_t>(), entry["size"].get<uint64_t>()) << entry.dump();
  for (int i = 0; i < 50 && thread_count() > threads_before + 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_LE(thread_count(), threads_before + 1) << "download threads left (the library unloader may run)";
  expect_no_ingest_leftovers();
}

// Two pulls of one digest from the same host share the download; when it fails for the
// pull that started it (its repository answers 404), the other pull fetches it itself.
TEST_F(HostileTest, APullWhoseSharedDownloadFailsFetchesItItself) {
  testing::HostileServer reg("owner-404");
  auto store = ImageStore::open(options());
  std::string layer = "/v2/evil/x/blobs/" + reg.info()["layers"][0].get<std::string>();
  std::promise<std::string> evil_result;
  std::thread evil([&] {
    try {
      store->pull(reg.addr() + "/" + reg.info()["evil"].get<std::string>(), {});
      evil_result.set_value("pulled");
    } catch (const Error& e) {
      evil_result.set_value(e.what());
    }
  });
  for (int i = 0; i < 100; ++i) {
    bool started = false;
    nlohmann::json log = reg.log();  // not reg.log()["started"] in the loop: a dangling temporary
    for (auto& p : log["started"]) started |= p == layer;
    if (started) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ImageRecord rec = store->pull(reg.addr() + "/" + reg.info()["good"].get<std::string>(), {});
  EXPECT_EQ(rec.id, reg.info()["config"]);
  evil.join();
  EXPECT_NE(evil_result.get_future().get().find("404"), std::string::npos);
}

// Downloads are limited per pull: a pull whose registry never finishes its blobs does not
// hold the slots another pull needs (the process-wide pool used to run FIFO for all).
TEST_F(RegistryTest, ASlowPullDoesNotHoldAnotherPullsDownloadSlots) {
  testing::HostileServer slow("slow-blob");
  StoreOptions o = options();
  o.max_concurrent_downloads = 1;
  o.max_total_downloads = 2;
  auto store = ImageStore::open(o);
  std::atomic<bool> cancel{false};
  std::thread attacker([&] {
    try {
      store->pull(slow.addr() + "/slow/img:1", {}, {}, [&] { return cancel.load(); });
    } catch (const Error&) {
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto t0 = std::chrono::steady_clock::now();
  ImageRecord rec = store->pull(ref("test/multilayer:latest"), {});
  EXPECT_EQ(rec.id, pushed_["multilayer"]["image_id"]);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
  cancel = true;
  attacker.join();
}

} // namespace
} // namespace berth::image
