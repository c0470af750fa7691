// Pod directories on the node against hostile input: UIDs that are paths, symlinks and
// deep trees planted by containers in their volumes, mounts inside volumes, subPaths
// swapped after they were checked. Mounts need root; those tests run in a private mount
// namespace of this test process and are skipped without root.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "agent/lib/manifest.hpp"
#include "agent/lib/volumes.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "tests/support/temp_dir.hpp"

using namespace berth::agent;
using berth::test_support::TempDir;
namespace fs = std::filesystem;

namespace {

bool exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

// Mount tests: root, in a mount namespace of our own so that nothing can leak to the host.
bool private_mounts() {
  static int state = -1;
  if (state < 0) {
    state = ::geteuid() == 0 && ::unshare(CLONE_NEWNS) == 0 &&
            ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
  }
  return state == 1;
}

int mounts_under(const std::string& dir) {
  int n = 0;
  auto info = berth::read_file("/proc/self/mountinfo");
  for (auto& line : berth::split(info, '\n')) {
    auto f = berth::split(line, ' ');
    if (f.size() > 4 && (f[4] == dir || f[4].starts_with(dir + "/"))) n++;
  }
  return n;
}

bool mounted_under(const std::string& dir) { return mounts_under(dir) > 0; }

struct Node {
  TempDir dir{"berthlet-vol"};
  Config cfg;
  Node() { cfg.root_dir = dir / "lib"; }
  std::string pods() const { return cfg.root_dir + "/pods"; }
};

Pod pod_from(const std::string& yaml) { return manifest_from_text("/m/p.yaml", yaml, "n").pod; }

const char* kSubPathPod = R"(
kind: Pod
metadata: {name: p, uid: 11111111-2222-3333-4444-555555555555}
spec:
  containers:
  - name: app
    image: i
    volumeMounts: [{name: data, mountPath: /data, subPath: SUBPATH}]
  volumes: [{name: data, emptyDir: {}}]
)";

Pod subpath_pod(const std::string& sub) {
  std::string text = kSubPathPod;
  text.replace(text.find("SUBPATH"), 7, sub);
  return pod_from(text);
}

} // namespace

TEST(PodTeardown, UidOutsideTheRootRemovesNothing) {
  Node n;
  berth::mkdir_p(n.pods());
  berth::mkdir_p(n.dir / "victim");
  n.dir.put("victim/precious", "data");
  // <root>/lib/pods/../../victim is <root>/victim
  try {
    teardown_volumes(n.cfg, "../../victim");
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not valid"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(exists(n.dir / "victim/precious"));
}

TEST(PodTeardown, SymlinksInTheTreeAreNeverFollowed) {
  Node n;
  berth::mkdir_p(n.dir / "outside/dir");
  n.dir.put("outside/file", "keep");
  n.dir.put("outside/dir/inner", "keep");
  auto vol = n.pods() + "/u1/volumes/kubernetes.io~empty-dir/v";
  berth::mkdir_p(vol + "/sub");
  ASSERT_EQ(::symlink((n.dir / "outside").c_str(), (vol + "/to-dir").c_str()), 0);
  ASSERT_EQ(::symlink((n.dir / "outside/file").c_str(), (vol + "/sub/to-file").c_str()), 0);
  ASSERT_EQ(::symlink("/", (vol + "/to-root").c_str()), 0);
  teardown_volumes(n.cfg, "u1");
  EXPECT_FALSE(exists(n.pods() + "/u1"));
  EXPECT_TRUE(exists(n.dir / "outside/file"));
  EXPECT_TRUE(exists(n.dir / "outside/dir/inner"));
}

TEST(PodTeardown, PodDirectoryThatIsASymlinkOnlyLosesTheLink) {
  Node n;
  berth::mkdir_p(n.pods());
  berth::mkdir_p(n.dir / "outside");
  n.dir.put("outside/file", "keep");
  ASSERT_EQ(::symlink((n.dir / "outside").c_str(), (n.pods() + "/u2").c_str()), 0);
  teardown_volumes(n.cfg, "u2");
  EXPECT_FALSE(exists(n.pods() + "/u2"));
  EXPECT_TRUE(exists(n.dir / "outside/file"));
}

TEST(PodTeardown, TreeOfAnyDepthGoesWithAFewFds) {
  // A container can nest directories far deeper than PATH_MAX inside its emptyDir.
  Node n;
  auto vol = n.pods() + "/u3/volumes/kubernetes.io~empty-dir/v";
  berth::mkdir_p(vol);
  int fd = ::open(vol.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 3000; i++) {
    ASSERT_EQ(::mkdirat(fd, "d", 0755), 0);
    int sub = ::openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ::close(fd);
    ASSERT_GE(sub, 0);
    fd = sub;
    if (i % 500 == 0) ::close(::openat(fd, "f", O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  }
  ::close(fd);
  struct rlimit old, low;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  low = old;
  low.rlim_cur = 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  try {
    teardown_volumes(n.cfg, "u3");
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
  }
  ::setrlimit(RLIMIT_NOFILE, &old);
  EXPECT_FALSE(exists(n.pods() + "/u3"));
}

TEST(PodTeardown, MountInsideAVolumeIsDetachedNeverEmptied) {
  if (!private_mounts()) GTEST_SKIP() << "needs root (mounts)";
  Node n;
  berth::mkdir_p(n.dir / "host");
  n.dir.put("host/precious", "keep");
  auto inner = n.pods() + "/u4/volumes/kubernetes.io~empty-dir/v/deeper/inner";
  berth::mkdir_p(inner);
  ASSERT_EQ(::mount((n.dir / "host").c_str(), inner.c_str(), nullptr, MS_BIND, nullptr), 0);
  teardown_volumes(n.cfg, "u4");
  EXPECT_TRUE(exists(n.dir / "host/precious"));
  EXPECT_FALSE(exists(n.pods() + "/u4"));
  EXPECT_FALSE(mounted_under(n.pods()));
}

TEST(SubPath, SymlinkPlantedInTheVolumeIsNotFollowed) {
  if (!private_mounts()) GTEST_SKIP() << "needs root (mounts)";
  Node n;
  auto pod = subpath_pod("evil/sub");
  setup_volumes(n.cfg, pod);
  berth::mkdir_p(n.dir / "outside");
  auto vol = empty_dir_path(n.cfg, pod.uid, "data");
  // What a container can do in its emptyDir: a symlink to a host path.
  ASSERT_EQ(::symlink((n.dir / "outside").c_str(), (vol + "/evil").c_str()), 0);
  try {
    container_mounts(n.cfg, pod, pod.spec.containers[0]);
    ADD_FAILURE() << "a subPath through a symlink was accepted";
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find("container \"app\": subPath \"evil/sub\" of volume \"data\""), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("\"evil\" is a symlink"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists(n.dir / "outside/sub")) << "berthlet created a directory outside the volume";
  teardown_volumes(n.cfg, pod.uid);
  EXPECT_FALSE(mounted_under(n.pods()));
}

TEST(SubPath, TheRuntimeGetsABindThatCannotBeSwapped) {
  if (!private_mounts()) GTEST_SKIP() << "needs root (mounts)";
  Node n;
  auto pod = subpath_pod("a/b");
  setup_volumes(n.cfg, pod);
  auto vol = empty_dir_path(n.cfg, pod.uid, "data");
  berth::mkdir_p(vol + "/a/b");
  berth::write_file(vol + "/a/b/marker", "inside");
  berth::mkdir_p(n.dir / "outside/b");
  n.dir.put("outside/b/secret", "host");
  auto mounts = container_mounts(n.cfg, pod, pod.spec.containers[0]);
  ASSERT_EQ(mounts.size(), 1u);
  auto host = mounts[0].host_path();
  EXPECT_EQ(host.rfind(n.pods() + "/" + pod.uid + "/", 0), 0u) << host;
  // The container swaps a/ for a symlink to the host after berthlet checked the path.
  ASSERT_EQ(::rename((vol + "/a").c_str(), (vol + "/a.old").c_str()), 0);
  ASSERT_EQ(::symlink((n.dir / "outside").c_str(), (vol + "/a").c_str()), 0);
  EXPECT_TRUE(exists(host + "/marker"));
  EXPECT_FALSE(exists(host + "/secret"));
  // The container's next instance: a/ is a symlink now, so its subPath is refused.
  EXPECT_THROW(container_mounts(n.cfg, pod, pod.spec.containers[0]), berth::Error);
  teardown_volumes(n.cfg, pod.uid);
  EXPECT_FALSE(mounted_under(n.pods()));
  EXPECT_FALSE(exists(n.pods() + "/" + pod.uid));
  EXPECT_TRUE(exists(n.dir / "outside/b/secret"));
}

TEST(SubPath, MissingDirectoriesAreMadeAndHostPathContentSurvivesTeardown) {
  if (!private_mounts()) GTEST_SKIP() << "needs root (mounts)";
  Node n;
  berth::mkdir_p(n.dir / "host");
  auto pod = pod_from(fmt::format(R"(
kind: Pod
metadata: {{name: p}}
spec:
  containers:
  - name: app
    image: i
    volumeMounts:
    - {{name: h, mountPath: /h, subPath: x/y}}
    - {{name: e, mountPath: /e, subPath: deep/dir}}
    - {{name: e, mountPath: /e2}}
  volumes:
  - {{name: h, hostPath: {{path: {}}}}}
  - {{name: e, emptyDir: {{}}}}
)", n.dir / "host"));
  setup_volumes(n.cfg, pod);
  auto mounts = container_mounts(n.cfg, pod, pod.spec.containers[0]);
  ASSERT_EQ(mounts.size(), 3u);
  berth::write_file(mounts[0].host_path() + "/through-bind", "1");
  EXPECT_TRUE(exists(n.dir / "host/x/y/through-bind"));
  berth::write_file(mounts[1].host_path() + "/f", "2");
  EXPECT_TRUE(exists(empty_dir_path(n.cfg, pod.uid, "e") + "/deep/dir/f"));
  EXPECT_EQ(mounts[2].host_path(), empty_dir_path(n.cfg, pod.uid, "e"));
  // The container's next instance gets a fresh bind in the same place, not a stack.
  auto again = container_mounts(n.cfg, pod, pod.spec.containers[0]);
  EXPECT_EQ(again[0].host_path(), mounts[0].host_path());
  EXPECT_EQ(mounts_under(n.pods()), 2);
  release_container_mounts(n.cfg, pod, pod.spec.containers[0]);
  EXPECT_FALSE(mounted_under(n.pods()));
  container_mounts(n.cfg, pod, pod.spec.containers[0]);
  teardown_volumes(n.cfg, pod.uid);
  EXPECT_FALSE(mounted_under(n.pods()));
  EXPECT_TRUE(exists(n.dir / "host/x/y/through-bind"));
}
