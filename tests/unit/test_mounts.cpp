// Mount option parsing, and the rootfs on a real kernel. Every test that mounts
// runs in a forked child with its own private mount namespace; the parent then
// checks that its mount table did not change.
#include <fcntl.h>
#include <ftw.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <tuple>

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"
#include "runtime/lib/mount_util.hpp"
#include "runtime/lib/rootfs.hpp"
#include "tests/support/temp_dir.hpp"

using namespace berth;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<MountSpec> mounts_from(const std::string& text, const std::string& bundle = "/bundle") {
  json doc = json::parse(text);
  return parse_mounts(JsonView(doc, "mounts"), bundle);
}

std::vector<DeviceSpec> devices_from(const std::string& text) {
  json doc = json::parse(text);
  return parse_devices(JsonView(doc, "linux.devices"));
}

// ---- scratch directories and the forked child ----------------------------------

using berth::test_support::TempDir;

constexpr long kMqueueMagic = 0x19800202; // not in <linux/magic.h>

enum class Outcome { passed, failed, skipped };

// Runs fn in a child that has its own mount namespace with / made rprivate, so
// nothing it mounts can reach this process or the host.
Outcome run_in_mount_ns(const std::function<void()>& fn) {
  std::string before = read_file("/proc/self/mountinfo");
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) < 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) {
      std::perror("unshare");
      ::_exit(3);
    }
    try {
      fn();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "exception: " << e.what();
    }
    std::fflush(nullptr);
    ::_exit(::testing::Test::HasFailure() ? 1 : ::testing::Test::IsSkipped() ? 77 : 0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_EQ(read_file("/proc/self/mountinfo"), before) << "the host mount table changed";
  if (!WIFEXITED(status)) {
    ADD_FAILURE() << "child died with status " << status;
    return Outcome::failed;
  }
  if (WEXITSTATUS(status) == 77) return Outcome::skipped;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failures in the child, see above";
  return WEXITSTATUS(status) == 0 ? Outcome::passed : Outcome::failed;
}

#define IN_MOUNT_NS(...)                                                                                     \
  do {                                                                                                       \
    if (run_in_mount_ns(__VA_ARGS__) == Outcome::skipped) GTEST_SKIP() << "skipped in the child";            \
  } while (0)

void write(const std::string& path, std::string_view text, mode_t mode = 0644) {
  write_file(path, text, true, mode);
}

struct stat stat_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) ADD_FAILURE() << "lstat " << path << ": " << std::strerror(errno);
  return st;
}

long fs_type(const std::string& path) {
  struct statfs st {};
  if (::statfs(path.c_str(), &st) < 0) return -1;
  return st.f_type;
}

bool is_mount_point(const std::string& path) {
  struct statx stx {};
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) < 0) return false;
  return stx.stx_attributes & STATX_ATTR_MOUNT_ROOT;
}

int errno_of_create(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ::close(fd);
    ::unlink(path.c_str());
    return 0;
  }
  return errno;
}

std::string link_of(const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

// A small image: a few directories and files.
struct Bundle {
  TempDir dir;
  std::string rootfs = dir / "rootfs";
  std::string host = dir / "host"; // bind sources on the "host"

  Bundle() {
    for (const char* d : {"rootfs", "rootfs/etc", "rootfs/proc", "rootfs/dev", "rootfs/sys", "rootfs/tmp",
                          "rootfs/run", "host", "host/sub"})
      mkdir_p(dir / d);
    write(rootfs + "/marker", "root");
    write(rootfs + "/etc/hostname", "image");
    write(host + "/hello", "hello");
    write(host + "/file", "a file");
  }

  RootfsConfig config(const std::string& mounts_json) const {
    RootfsConfig cfg;
    cfg.rootfs = rootfs;
    cfg.mounts = mounts_from(mounts_json, dir.path());
    return cfg;
  }
};

enum class Api { modern, legacy };

class RootfsApiTest : public ::testing::TestWithParam<Api> {
protected:
  // In the child: take the fallbacks when testing them.
  void select_api() const {
    if (GetParam() == Api::legacy) mnt::kernel_apis() = {false, false};
  }
};

const char* kStandardMounts = R"([
  {"destination": "/proc", "type": "proc", "source": "proc"},
  {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
   "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
  {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
   "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
  {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "nodev", "mode=1777"]},
  {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
  {"destination": "/data", "source": "host", "options": ["rbind", "ro", "rprivate"]},
  {"destination": "/etc/hostname", "type": "bind", "source": "host/file", "options": ["ro"]},
  {"destination": "/new/dir/file", "type": "bind", "source": "host/hello"}
])";

} // namespace

// ---- parsing -------------------------------------------------------------------

TEST(MountParse, FlagsDataAndPropagation) {
  auto m = mounts_from(R"([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
    "options": ["nosuid", "noexec", "nodev", "ro", "mode=755", "size=65536k", "rprivate", "strictatime"]}])");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].type, "tmpfs");
  EXPECT_EQ(m[0].flags, MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY | MS_STRICTATIME);
  EXPECT_EQ(m[0].clear_flags, 0u);
  EXPECT_EQ(m[0].data, "mode=755,size=65536k");
  EXPECT_EQ(m[0].propagation, MS_PRIVATE | MS_REC);
  EXPECT_FALSE(m[0].recursive);
}

TEST(MountParse, LaterOptionsWinAndClearFlags) {
  auto m = mounts_from(R"([{"destination": "/a", "type": "tmpfs", "options": ["ro", "rw", "nosuid", "suid",
    "exec", "shared", "rslave", "sync", "async", "remount", "defaults"]}])");
  EXPECT_EQ(m[0].flags, static_cast<unsigned long>(MS_REMOUNT));
  EXPECT_EQ(m[0].clear_flags, MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_SYNCHRONOUS);
  EXPECT_EQ(m[0].propagation, MS_SLAVE | MS_REC);
  EXPECT_EQ(m[0].data, "");
}

TEST(MountParse, BindsAndRelativeSources) {
  auto m = mounts_from(R"([
    {"destination": "/a", "source": "data", "options": ["rbind", "ro"]},
    {"destination": "/b", "type": "none", "source": "/abs", "options": ["bind"]},
    {"destination": "/c", "type": "bind", "source": "../up"}])",
                       "/b/bundle");
  EXPECT_EQ(m[0].type, "bind");
  EXPECT_EQ(m[0].source, "/b/bundle/data");
  EXPECT_TRUE(m[0].recursive);
  EXPECT_EQ(m[0].flags, static_cast<unsigned long>(MS_RDONLY));
  EXPECT_EQ(m[1].type, "bind"); // the type is meaningless for a bind
  EXPECT_EQ(m[1].source, "/abs");
  EXPECT_FALSE(m[1].recursive);
  EXPECT_EQ(m[2].source, "/b/bundle/../up");
  EXPECT_TRUE(m[2].is_bind());
}

TEST(MountParse, RecursiveAttributes) {
  auto m = mounts_from(R"([
    {"destination": "/a", "source": "/x", "options": ["rbind", "rro", "rnosuid", "rnodev", "rnoexec", "rnoatime"]},
    {"destination": "/b", "source": "/x", "options": ["rbind", "rstrictatime", "rnoatime", "rrw", "rsuid"]},
    {"destination": "/c", "source": "/x", "options": ["rbind", "rrelatime", "rnosymfollow"]}])");
  EXPECT_EQ(m[0].rec_attr_set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |
                                   MOUNT_ATTR_NOATIME);
  EXPECT_EQ(m[0].rec_attr_clr, static_cast<uint64_t>(MOUNT_ATTR__ATIME));
  EXPECT_EQ(m[0].flags, 0u); // recursive attributes are not top-level flags
  EXPECT_EQ(m[1].rec_attr_set, static_cast<uint64_t>(MOUNT_ATTR_NOATIME)); // the atime enum: last wins
  EXPECT_EQ(m[1].rec_attr_clr, MOUNT_ATTR__ATIME | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID);
  EXPECT_EQ(m[2].rec_attr_set, static_cast<uint64_t>(MOUNT_ATTR_NOSYMFOLLOW));
  EXPECT_EQ(m[2].rec_attr_clr, static_cast<uint64_t>(MOUNT_ATTR__ATIME));
}

TEST(MountParse, ExtensionsAndIdmap) {
  auto m = mounts_from(R"([
    {"destination": "/t", "type": "tmpfs", "options": ["tmpcopyup", "size=1m"]},
    {"destination": "/i", "source": "/x", "options": ["bind", "idmap"],
     "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
     "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 1000}]},
    {"destination": "/r", "source": "/x", "options": ["rbind", "ridmap"]},
    {"destination": "/m", "type": "bind", "source": "/x",
     "uidMappings": [{"containerID": 1, "hostID": 2, "size": 3}], "gidMappings": []}])");
  EXPECT_TRUE(m[0].tmpcopyup);
  EXPECT_EQ(m[0].data, "size=1m");
  EXPECT_TRUE(m[1].idmap);
  EXPECT_FALSE(m[1].recursive_idmap);
  ASSERT_EQ(m[1].uid_mappings.size(), 1u);
  EXPECT_EQ(m[1].uid_mappings[0].host_id, 100000u);
  EXPECT_EQ(m[1].uid_mappings[0].size, 65536u);
  EXPECT_EQ(m[1].gid_mappings[0].host_id, 200000u);
  EXPECT_TRUE(m[2].idmap);
  EXPECT_TRUE(m[2].recursive_idmap);
  EXPECT_TRUE(m[2].uid_mappings.empty()); // the container's mappings apply
  EXPECT_TRUE(m[3].idmap);                // mappings alone mean idmap
}

TEST(MountParse, DestinationsAreCleanedAndMadeAbsolute) {
  auto m = mounts_from(R"([
    {"destination": "data/x/", "type": "tmpfs"},
    {"destination": "/../../../tmp/x", "type": "tmpfs"},
    {"destination": "/etc/./a//b/..", "type": "tmpfs"}])");
  EXPECT_EQ(m[0].destination, "/data/x");
  EXPECT_EQ(m[1].destination, "/tmp/x");
  EXPECT_EQ(m[2].destination, "/etc/a");
}

TEST(MountParse, CgroupKeepsItsType) {
  auto m = mounts_from(R"([{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
    "options": ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"]}])");
  EXPECT_EQ(m[0].type, "cgroup");
  EXPECT_EQ(m[0].flags, MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY);
}

TEST(MountParse, ErrorsNameTheField) {
  EXPECT_EQ(error_of([] { mounts_from(R"([{"type": "tmpfs", "destination": "/a"}, {"type": "tmpfs"}])"); }),
            "mounts[1].destination: required");
  EXPECT_EQ(error_of([] { mounts_from(R"([{"destination": 3}])"); }),
            "mounts[0].destination: expected a string, got number");
  EXPECT_EQ(
      error_of([] { mounts_from(R"([{"destination": "/a", "type": "tmpfs", "options": ["ro", 1]}])"); }),
      "mounts[0].options[1]: expected a string, got number");
  EXPECT_EQ(error_of([] { mounts_from(R"([{"destination": "/a"}])"); }),
            "mounts[0].type: required for a mount that is not a bind mount");
  EXPECT_EQ(error_of([] { mounts_from(R"([{"destination": "/a", "options": ["rbind"]}])"); }),
            "mounts[0].source: required for a bind mount");
  EXPECT_EQ(error_of([] {
              mounts_from(R"([{"destination": "/a", "type": "bind", "source": "/x",
                "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}])");
            }),
            "mounts[0].gidMappings: required when uidMappings or gidMappings is set");
  EXPECT_EQ(error_of([] {
              mounts_from(R"([{"destination": "/a", "type": "bind", "source": "/x",
                "uidMappings": [{"containerID": 0, "size": 1}], "gidMappings": []}])");
            }),
            "mounts[0].uidMappings[0].hostID: required");
  EXPECT_EQ(
      error_of([] { mounts_from(R"([{"destination": "/a", "type": "tmpfs", "options": ["idmap"]}])"); }),
      "mounts[0].options: idmapped mounts must be bind mounts");
  EXPECT_EQ(error_of([] { mounts_from(R"({"destination": "/a"})"); }),
            "mounts: expected an array, got object");
}

TEST(MountParse, KnownOptionsListEverything) {
  auto names = known_mount_options();
  for (const char* n :
       {"ro", "rbind", "rprivate", "rro", "rnoatime", "tmpcopyup", "idmap", "ridmap", "nosymfollow"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

TEST(MountAttrs, FromMsFlags) {
  auto a = mnt::attrs_from_ms(MS_RDONLY | MS_NOSUID | MS_NOATIME, MS_NODEV);
  EXPECT_EQ(a.set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME);
  EXPECT_EQ(a.clr, MOUNT_ATTR_NODEV | MOUNT_ATTR__ATIME);
  auto b = mnt::attrs_from_ms(MS_RELATIME | MS_STRICTATIME, MS_RDONLY); // strictatime wins, as in mount(2)
  EXPECT_EQ(b.set, static_cast<uint64_t>(MOUNT_ATTR_STRICTATIME));
  EXPECT_EQ(b.clr, MOUNT_ATTR_RDONLY | MOUNT_ATTR__ATIME);
  EXPECT_TRUE(mnt::attrs_from_ms(0, 0).empty());
}

TEST(DeviceParse, ValidDevices) {
  auto d = devices_from(R"([
    {"path": "/dev/myzero", "type": "c", "major": 1, "minor": 5, "fileMode": 8630, "uid": 0, "gid": 5},
    {"path": "/dev/fifo", "type": "p"},
    {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}])");
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].type, 'c');
  EXPECT_EQ(d[0].major, 1);
  EXPECT_EQ(d[0].minor, 5);
  EXPECT_EQ(d[0].file_mode, 8630u);
  EXPECT_EQ(d[0].gid, 5u);
  EXPECT_EQ(d[1].type, 'p');
  EXPECT_FALSE(d[1].file_mode);
  EXPECT_EQ(d[2].type, 'b');
}

TEST(DeviceParse, ErrorsNameTheField) {
  EXPECT_EQ(error_of([] { devices_from(R"([{"path": "dev/x", "type": "c", "major": 1, "minor": 1}])"); }),
            "linux.devices[0].path: must be an absolute path, got \"dev/x\"");
  EXPECT_EQ(error_of([] { devices_from(R"([{"path": "/dev/x", "type": "x"}])"); }),
            "linux.devices[0].type: must be one of \"c\", \"b\", \"u\", \"p\", got \"x\"");
  EXPECT_EQ(error_of([] { devices_from(R"([{"path": "/dev/x", "major": 1, "minor": 1}])"); }),
            "linux.devices[0].type: required");
  EXPECT_EQ(error_of([] { devices_from(R"([{"path": "/dev/x", "type": "c", "minor": 1}])"); }),
            "linux.devices[0].major: required for a 'c' device");
  EXPECT_EQ(error_of([] { devices_from(R"([{"path": "/dev/x", "type": "b", "major": 1, "minor": -1}])"); }),
            "linux.devices[0].minor: -1 is out of range (0 to 1048575)");
  EXPECT_EQ(error_of([] {
              devices_from(R"([{"path": "/dev/x", "type": "u", "major": 1, "minor": 1, "uid": -1}])");
            }),
            "linux.devices[0].uid: expected a non-negative integer, got -1");
}

// ---- path resolution -------------------------------------------------------------

TEST_P(RootfsApiTest, ResolverStaysInsideAndCreates) {
  TempDir tmp;
  std::string root = tmp / "root", outside = tmp / "outside";
  mkdir_p(root + "/etc");
  mkdir_p(outside);
  ASSERT_EQ(::symlink(("/../../../../../../../../" + outside).c_str(), (root + "/abs").c_str()), 0);
  ASSERT_EQ(::symlink("../../../../../../../../../..", (root + "/etc/up").c_str()), 0);
  ASSERT_EQ(::symlink("/nowhere/deep", (root + "/dangling").c_str()), 0);
  ASSERT_EQ(::symlink("loop", (root + "/loop").c_str()), 0);
  UniqueFd root_fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (GetParam() == Api::legacy) mnt::kernel_apis().openat2 = false;

  auto r = mnt::open_in_root(root_fd.get(), "/abs/x", mnt::Create::directory);
  EXPECT_FALSE(r.existed);
  EXPECT_TRUE(S_ISDIR(stat_of(root + outside + "/x").st_mode)); // created under the rootfs
  EXPECT_EQ(::access((outside + "/x").c_str(), F_OK), -1);      // not outside

  r = mnt::open_in_root(root_fd.get(), "/etc/up/etc/up/made", mnt::Create::file);
  EXPECT_TRUE(S_ISREG(stat_of(root + "/made").st_mode));
  EXPECT_FALSE(r.existed);

  mnt::open_in_root(root_fd.get(), "/dangling/file", mnt::Create::file);
  EXPECT_TRUE(S_ISREG(stat_of(root + "/nowhere/deep/file").st_mode));

  r = mnt::open_in_root(root_fd.get(), "/etc", mnt::Create::no);
  EXPECT_TRUE(r.existed);
  EXPECT_EQ(stat_of(root + "/etc").st_ino, [&] {
    struct stat st;
    ::fstat(r.fd.get(), &st);
    return st.st_ino;
  }());

  EXPECT_NE(
      error_of([&] { mnt::open_in_root(root_fd.get(), "/missing", mnt::Create::no); }).find("no such file"),
      std::string::npos);
  EXPECT_NE(error_of([&] { mnt::open_in_root(root_fd.get(), "/loop/x", mnt::Create::directory); }), "");
  EXPECT_NE(error_of([&] { mnt::open_in_root(root_fd.get(), "/abs", mnt::Create::no, -1, true); }), "");
  mnt::kernel_apis().openat2 = true;
  auto entries = 0;
  for (auto& e : std::filesystem::directory_iterator(outside)) (void)e, entries++;
  EXPECT_EQ(entries, 0);
}

// The two resolvers keep the same rules: openat2(RESOLVE_IN_ROOT) where the kernel has it
// (5.6), the userspace walk where it answers ENOSYS (legacy: forced through kernel_apis(),
// as the ENOSYS answer does). ".." in the path itself stops at the root, links are expanded
// before a ".." that follows them, and a lookup follows at most 40 links (the kernel's
// MAXSYMLINKS): a chain of 40 resolves, one of 41 is ELOOP.
TEST_P(RootfsApiTest, ResolverStopsDotDotAtTheRootAndBoundsLinks) {
  struct Restore {
    ~Restore() { mnt::kernel_apis().openat2 = true; }
  } restore;
  TempDir tmp;
  std::string root = tmp / "root", outside = tmp / "outside";
  mkdir_p(root + "/a/b");
  mkdir_p(root + "/x");
  mkdir_p(outside);
  ASSERT_EQ(::symlink("/a", (root + "/l40").c_str()), 0);  // l1 -> l2 -> ... -> l40 -> /a
  for (int i = 39; i >= 0; --i) {
    std::string target = std::to_string(i + 1), link = root + "/l" + std::to_string(i);
    target.insert(0, 1, 'l');  // not "l" + ...: a false -Wrestrict of GCC 12
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  }
  ASSERT_EQ(::symlink("/a", (root + "/a/b/abs").c_str()), 0);
  ASSERT_EQ(::symlink("../../../../../../../../..", (root + "/a/b/up").c_str()), 0);
  UniqueFd root_fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (GetParam() == Api::legacy) mnt::kernel_apis().openat2 = false;
  auto ino = [](const mnt::Resolved& r) {
    struct stat st {};
    ::fstat(r.fd.get(), &st);
    return st.st_ino;
  };
  auto code_of = [&](const std::string& path) {
    try {
      mnt::open_in_root(root_fd.get(), path, mnt::Create::no);
    } catch (const Error& e) {
      return e.code();
    }
    return 0;
  };

  // ".." above the root, in the path and through a relative link.
  auto r = mnt::open_in_root(root_fd.get(), "/../../../../../.." + outside + "/f", mnt::Create::file);
  EXPECT_FALSE(r.existed);
  EXPECT_TRUE(S_ISREG(stat_of(root + outside + "/f").st_mode));
  EXPECT_EQ(ino(mnt::open_in_root(root_fd.get(), "a/b/../../../../..", mnt::Create::no)), stat_of(root).st_ino);
  EXPECT_EQ(ino(mnt::open_in_root(root_fd.get(), "/a/b/up/x", mnt::Create::no)), stat_of(root + "/x").st_ino);
  // "abs/.." is the parent of /a (the root), not /a/b: the link is followed first.
  EXPECT_EQ(ino(mnt::open_in_root(root_fd.get(), "/a/b/abs/../x", mnt::Create::no)), stat_of(root + "/x").st_ino);

  // 40 links are followed, the 41st is refused, as by the kernel.
  EXPECT_EQ(ino(mnt::open_in_root(root_fd.get(), "/l1/b", mnt::Create::no)), stat_of(root + "/a/b").st_ino);
  EXPECT_EQ(code_of("/l0/b"), ELOOP);
  EXPECT_EQ(code_of("/l0"), ELOOP);

  // The modern variant did use openat2: no ENOSYS switched it to the walk on this kernel.
  EXPECT_EQ(mnt::kernel_apis().openat2, GetParam() == Api::modern);
  EXPECT_TRUE(std::filesystem::is_empty(outside));
}

// ---- mounting ---------------------------------------------------------------------

TEST_P(RootfsApiTest, PreparesMountsDevicesAndLinks) {
  Bundle b;
  IN_MOUNT_NS([&] {
    select_api();
    RootfsConfig cfg = b.config(kStandardMounts);
    cfg.devices = devices_from(R"([
      {"path": "/dev/myzero", "type": "c", "major": 1, "minor": 5, "fileMode": 8608, "uid": 1000, "gid": 1001},
      {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200},
      {"path": "/dev/fifo", "type": "p", "fileMode": 384},
      {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "gid": 7}])");
    prepare_rootfs(cfg);
    const std::string& r = b.rootfs;

    EXPECT_EQ(fs_type(r + "/proc"), PROC_SUPER_MAGIC);
    EXPECT_EQ(::access((r + "/proc/self/status").c_str(), R_OK), 0);
    EXPECT_EQ(fs_type(r + "/dev"), TMPFS_MAGIC);
    EXPECT_EQ(stat_of(r + "/dev").st_mode & 07777, 0755u);
    EXPECT_EQ(fs_type(r + "/dev/pts"), DEVPTS_SUPER_MAGIC);
    EXPECT_EQ(stat_of(r + "/dev/shm").st_mode & 07777, 01777u);
    EXPECT_EQ(fs_type(r + "/dev/mqueue"), kMqueueMagic);

    // Default devices: c, 0666, right numbers; configured ones keep their mode and owner.
    for (auto [name, major, minor] : {std::tuple{"null", 1u, 3u},
                                      {"zero", 1u, 5u},
                                      {"full", 1u, 7u},
                                      {"random", 1u, 8u},
                                      {"urandom", 1u, 9u},
                                      {"tty", 5u, 0u}}) {
      auto st = stat_of(r + "/dev/" + name);
      EXPECT_TRUE(S_ISCHR(st.st_mode)) << name;
      EXPECT_EQ(st.st_mode & 07777, 0666u) << name;
      EXPECT_EQ(major(st.st_rdev), major) << name;
      EXPECT_EQ(minor(st.st_rdev), minor) << name;
    }
    EXPECT_EQ(stat_of(r + "/dev/null").st_gid, 7u);
    auto myzero = stat_of(r + "/dev/myzero");
    EXPECT_TRUE(S_ISCHR(myzero.st_mode));
    EXPECT_EQ(myzero.st_mode & 07777, 0640u);
    EXPECT_EQ(myzero.st_rdev, makedev(1, 5));
    EXPECT_EQ(myzero.st_uid, 1000u);
    EXPECT_EQ(myzero.st_gid, 1001u);
    EXPECT_EQ(stat_of(r + "/dev/net/tun").st_rdev, makedev(10, 200));
    EXPECT_TRUE(S_ISFIFO(stat_of(r + "/dev/fifo").st_mode));
    EXPECT_EQ(stat_of(r + "/dev/fifo").st_mode & 07777, 0600u);

    EXPECT_EQ(link_of(r + "/dev/fd"), "/proc/self/fd");
    EXPECT_EQ(link_of(r + "/dev/stdin"), "/proc/self/fd/0");
    EXPECT_EQ(link_of(r + "/dev/stdout"), "/proc/self/fd/1");
    EXPECT_EQ(link_of(r + "/dev/stderr"), "/proc/self/fd/2");
    EXPECT_EQ(link_of(r + "/dev/ptmx"), "pts/ptmx");
    if (::access("/proc/kcore", F_OK) == 0) {
      EXPECT_EQ(link_of(r + "/dev/core"), "/proc/kcore");
    }

    // Read-only recursive bind of a host directory.
    EXPECT_EQ(read_file(r + "/data/hello"), "hello");
    EXPECT_TRUE(S_ISDIR(stat_of(r + "/data/sub").st_mode));
    EXPECT_EQ(errno_of_create(r + "/data/new"), EROFS);
    EXPECT_EQ(errno_of_create(b.host + "/new"), 0); // the source itself stays writable
    // File binds: over an existing file, and onto a created one.
    EXPECT_EQ(read_file(r + "/etc/hostname"), "a file");
    EXPECT_EQ(::open((r + "/etc/hostname").c_str(), O_WRONLY | O_CLOEXEC), -1);
    EXPECT_EQ(errno, EROFS);
    EXPECT_EQ(read_file(r + "/new/dir/file"), "hello");
    EXPECT_TRUE(is_mount_point(r + "/new/dir/file"));
  });
}

TEST_P(RootfsApiTest, SymlinkEscapesStayInsideTheRootfs) {
  Bundle b;
  std::string outside = b.dir / "outside";
  mkdir_p(outside);
  // Absolute and relative links that climb out, and a destination full of "..".
  ASSERT_EQ(::symlink(("/../../../../../../../.." + outside).c_str(), (b.rootfs + "/evil").c_str()), 0);
  ASSERT_EQ(::symlink("../../../../../../../../../../../../..", (b.rootfs + "/etc/up").c_str()), 0);
  std::string rel_outside = outside.substr(1);
  IN_MOUNT_NS([&] {
    select_api();
    RootfsConfig cfg = b.config(R"([
      {"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"},
      {"destination": "/etc/up/)" +
                                rel_outside + R"(/y", "type": "tmpfs", "source": "tmpfs"},
      {"destination": "/../../../../../../)" +
                                rel_outside + R"(/z", "type": "bind", "source": "host"}])");
    prepare_rootfs(cfg);
    for (const char* name : {"x", "y", "z"}) {
      EXPECT_EQ(::access((outside + "/" + name).c_str(), F_OK), -1) << name << " was created outside";
      EXPECT_TRUE(is_mount_point(b.rootfs + outside + "/" + name)) << name << " is not mounted inside";
    }
    EXPECT_EQ(fs_type(b.rootfs + outside + "/x"), TMPFS_MAGIC);
    EXPECT_EQ(read_file(b.rootfs + outside + "/z/hello"), "hello");
    std::string table = read_file("/proc/self/mountinfo");
    EXPECT_EQ(table.find(" " + outside + "/"), std::string::npos) << table;
  });
  EXPECT_TRUE(std::filesystem::is_empty(outside));
}

TEST_P(RootfsApiTest, TmpcopyupCopiesTheImageContent) {
  Bundle b;
  std::string app = b.rootfs + "/opt/app";
  mkdir_p(app + "/sub");
  write(app + "/run.sh", "#!/bin/sh\n", 0750);
  ASSERT_EQ(::chown((app + "/run.sh").c_str(), 123, 456), 0);
  ASSERT_EQ(::chmod((app + "/run.sh").c_str(), 04750), 0); // after chown, which clears set-id bits
  write(app + "/sub/data", std::string(100000, 'x'));
  ASSERT_EQ(::symlink("sub/data", (app + "/link").c_str()), 0);
  ASSERT_EQ(::chmod(app.c_str(), 0710), 0);
  ASSERT_EQ(::mkfifo((app + "/pipe").c_str(), 0600), 0);
  ::setxattr((app + "/sub/data").c_str(), "user.berth", "v", 1, 0);
  IN_MOUNT_NS([&] {
    select_api();
    prepare_rootfs(b.config(R"([
      {"destination": "/opt/app", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "nosuid"]},
      {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}])"));
    EXPECT_EQ(fs_type(app), TMPFS_MAGIC);
    EXPECT_EQ(stat_of(app).st_mode & 07777, 0710u); // the tmpfs takes the directory's mode
    auto run = stat_of(app + "/run.sh");
    EXPECT_EQ(run.st_mode & 07777, 04750u);
    EXPECT_EQ(run.st_uid, 123u);
    EXPECT_EQ(run.st_gid, 456u);
    EXPECT_EQ(read_file(app + "/run.sh"), "#!/bin/sh\n");
    EXPECT_EQ(read_file(app + "/sub/data").size(), 100000u);
    EXPECT_EQ(link_of(app + "/link"), "sub/data");
    EXPECT_TRUE(S_ISFIFO(stat_of(app + "/pipe").st_mode));
    char value[8] = {};
    if (::getxattr((b.rootfs + "/opt/app/sub/data").c_str(), "user.berth", value, sizeof value) > 0) {
      EXPECT_STREQ(value, "v");
    }
    // Writes go to the tmpfs, not to the image.
    write(app + "/new", "n");
    EXPECT_EQ(fs_type(b.rootfs + "/tmp"), TMPFS_MAGIC);
  });
  EXPECT_FALSE(path_exists(app + "/new"));
}

TEST_P(RootfsApiTest, EntersAndFinalizes) {
  Bundle b;
  mkdir_p(b.rootfs + "/etc/secretdir");
  write(b.rootfs + "/etc/secretdir/key", "secret");
  write(b.rootfs + "/etc/secret", "secret");
  mkdir_p(b.rootfs + "/etc/ro");
  std::string rootfs = b.rootfs;
  IN_MOUNT_NS([&] {
    select_api();
    RootfsConfig cfg = b.config(R"([
      {"destination": "/proc", "type": "proc", "source": "proc"},
      {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "ro"]},
      {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "nodev"]}])");
    cfg.masked_paths = {"/etc/secret", "/etc/secretdir", "/proc/kcore", "/etc/missing", "/proc/acpi"};
    cfg.readonly_paths = {"/etc/ro", "/proc/sys", "/etc/missing"};
    cfg.readonly = true;
    prepare_rootfs(cfg);
    // Read-only tmpfs mounts stay writable until finalize_rootfs (hooks, /dev nodes).
    EXPECT_EQ(errno_of_create(rootfs + "/run/x"), 0);
    EXPECT_TRUE(S_ISCHR(stat_of(rootfs + "/dev/null").st_mode));

    enter_rootfs(cfg);
    char cwd[PATH_MAX];
    ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
    EXPECT_STREQ(cwd, "/");
    EXPECT_EQ(read_file("/marker"), "root");
    EXPECT_EQ(::access(rootfs.c_str(), F_OK), -1); // the host is gone
    for (const auto& line : split(read_file("/proc/self/mountinfo"), '\n')) {
      auto fields = split(line, ' ');
      ASSERT_GT(fields.size(), 4u);
      EXPECT_FALSE(starts_with(fields[4], b.dir.path())) << "a host mount point is left: " << line;
    }

    finalize_rootfs(cfg);
    EXPECT_EQ(read_file("/etc/secret"), "");
    EXPECT_TRUE(std::filesystem::is_empty("/etc/secretdir"));
    EXPECT_EQ(errno_of_create("/etc/secretdir/x"), EROFS);
    if (path_exists("/proc/kcore")) {
      EXPECT_EQ(read_file("/proc/kcore"), "");
    }
    EXPECT_EQ(errno_of_create("/etc/ro/x"), EROFS);
    EXPECT_EQ(::open("/proc/sys/kernel/hostname", O_WRONLY | O_CLOEXEC), -1);
    EXPECT_EQ(errno, EROFS);
    EXPECT_EQ(errno_of_create("/run/x"), EROFS);
    EXPECT_EQ(errno_of_create("/dev/x"), EROFS);
    EXPECT_EQ(errno_of_create("/newfile"), EROFS);
    // The flags of the underlying mounts survive the read-only remounts.
    struct statvfs st;
    ASSERT_EQ(::statvfs("/run", &st), 0);
    EXPECT_TRUE(st.f_flag & ST_NODEV);
    ASSERT_EQ(::statvfs("/dev", &st), 0);
    EXPECT_TRUE(st.f_flag & ST_NOSUID);
  });
}

TEST_P(RootfsApiTest, NoPivotMovesTheRoot) {
  Bundle b;
  IN_MOUNT_NS([&] {
    select_api();
    RootfsConfig cfg = b.config(R"([{"destination": "/proc", "type": "proc", "source": "proc"}])");
    cfg.no_pivot = true;
    prepare_rootfs(cfg);
    enter_rootfs(cfg);
    char cwd[PATH_MAX];
    ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
    EXPECT_STREQ(cwd, "/");
    EXPECT_EQ(read_file("/marker"), "root");
    // Only the container's procfs is left in the namespace.
    std::string table = read_file("/proc/self/mountinfo");
    for (const auto& line : split(table, '\n')) {
      if (line.find(" - proc ") != std::string::npos) {
        EXPECT_NE(line.find(" /proc "), std::string::npos) << line;
      }
    }
  });
}

TEST_P(RootfsApiTest, SharedRootfsPropagation) {
  Bundle b;
  IN_MOUNT_NS([&] {
    select_api();
    RootfsConfig cfg = b.config(R"([{"destination": "/proc", "type": "proc", "source": "proc"}])");
    cfg.rootfs_propagation = MS_SHARED | MS_REC;
    prepare_rootfs(cfg);
    enter_rootfs(cfg);
    std::string table = read_file("/proc/self/mountinfo");
    for (const auto& line : split(table, '\n')) {
      auto fields = split(line, ' ');
      if (fields.size() > 6 && fields[4] == "/") {
        EXPECT_NE(line.find("shared:"), std::string::npos) << line;
      }
    }
  });
}

TEST_P(RootfsApiTest, PropagationOptionsApply) {
  Bundle b;
  IN_MOUNT_NS([&] {
    select_api();
    prepare_rootfs(b.config(R"([
      {"destination": "/shared", "type": "tmpfs", "source": "tmpfs", "options": ["rshared"]},
      {"destination": "/shared/private", "type": "tmpfs", "source": "tmpfs", "options": ["rprivate"]},
      {"destination": "/shared/inherits", "type": "bind", "source": "host"},
      {"destination": "/unbindable", "source": "host", "options": ["rbind", "runbindable"]}])"));
    auto line_of = [&](const std::string& dest) {
      for (const auto& line : split(read_file("/proc/self/mountinfo"), '\n'))
        if (split(line, ' ')[4] == b.rootfs + dest) return line;
      return std::string();
    };
    EXPECT_NE(line_of("/shared").find(" shared:"), std::string::npos) << line_of("/shared");
    EXPECT_EQ(line_of("/shared/private").find(" shared:"), std::string::npos) << line_of("/shared/private");
    // Attached under a shared parent, a new mount joins the propagation.
    EXPECT_NE(line_of("/shared/inherits").find(" shared:"), std::string::npos) << line_of("/shared/inherits");
    EXPECT_NE(line_of("/unbindable").find(" unbindable"), std::string::npos) << line_of("/unbindable");
  });
}

TEST_P(RootfsApiTest, UserNamespaceBindsDevices) {
  Bundle b;
  IN_MOUNT_NS([&] {
    select_api();
    RootfsConfig cfg = b.config(R"([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}])");
    cfg.user_namespace = true;
    prepare_rootfs(cfg);
    auto null = stat_of(b.rootfs + "/dev/null");
    EXPECT_TRUE(S_ISCHR(null.st_mode));
    EXPECT_EQ(null.st_rdev, makedev(1, 3));
    EXPECT_TRUE(is_mount_point(b.rootfs + "/dev/null")); // a bind of the host's node
    EXPECT_NE(null.st_dev, stat_of(b.rootfs + "/dev").st_dev);
  });
}

TEST_P(RootfsApiTest, SysfsAndCgroup) {
  Bundle b;
  IN_MOUNT_NS([&] {
    select_api();
    prepare_rootfs(b.config(R"([
      {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
      {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
       "options": ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"]}])"));
    EXPECT_EQ(fs_type(b.rootfs + "/sys"), SYSFS_MAGIC);
    EXPECT_EQ(fs_type(b.rootfs + "/sys/fs/cgroup"), CGROUP2_SUPER_MAGIC);
    EXPECT_EQ(::access((b.rootfs + "/sys/fs/cgroup/cgroup.procs").c_str(), F_OK), 0);
    EXPECT_EQ(::mkdir((b.rootfs + "/sys/fs/cgroup/x").c_str(), 0755), -1);
    EXPECT_EQ(errno, EROFS);
  });
}

TEST_P(RootfsApiTest, IdmappedBindShowsMappedOwners) {
  Bundle b;
  write(b.host + "/owned", "x");
  ASSERT_EQ(::chown((b.host + "/owned").c_str(), 0, 0), 0);
  IN_MOUNT_NS([&] {
    select_api();
    RootfsConfig cfg = b.config(R"([{"destination": "/idm", "type": "bind", "source": "host",
      "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
      "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 10}]}])");
    if (GetParam() == Api::legacy) {
      EXPECT_NE(error_of([&] { prepare_rootfs(cfg); }).find("idmapped mounts need mount_setattr"),
                std::string::npos);
      return;
    }
    try {
      prepare_rootfs(cfg);
    } catch (const Error& e) {
      if (e.code() == EINVAL || e.code() == ENOSYS || e.code() == EPERM) GTEST_SKIP() << e.what();
      throw;
    }
    auto st = stat_of(b.rootfs + "/idm/owned");
    EXPECT_EQ(st.st_uid, 1000u);
    EXPECT_EQ(st.st_gid, 2000u);
    EXPECT_EQ(stat_of(b.host + "/owned").st_uid, 0u);
  });
}

TEST_P(RootfsApiTest, ErrorsNameTheMount) {
  Bundle b;
  ASSERT_EQ(::symlink("/etc", (b.rootfs + "/fakeproc").c_str()), 0);
  IN_MOUNT_NS([&] {
    select_api();
    auto attempt = [&](const std::string& mounts) {
      return error_of([&] { prepare_rootfs(b.config(mounts)); });
    };
    std::string in = " (in rootfs " + b.rootfs + "): ";
    EXPECT_EQ(attempt(R"([{"destination": "/x", "type": "bind", "source": "/nonexistent"}])"),
              "mount /nonexistent to /x" + in + "open bind source: no such file or directory");
    EXPECT_NE(attempt(R"([{"destination": "/x", "type": "nosuchfs", "source": "none"}])")
                  .find("mount none to /x" + in),
              std::string::npos);
    EXPECT_NE(attempt(R"([{"destination": "/fakeproc", "type": "proc", "source": "proc"}])")
                  .find("mount proc to /fakeproc" + in),
              std::string::npos);
    // The new mount API names the rejected option; mount(2) cannot.
    std::string bad_option =
        GetParam() == Api::modern ? "option size=lots: tmpfs: Bad value for 'size': " : "";
    EXPECT_EQ(
        attempt(R"([{"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["size=lots"]}])"),
        "mount tmpfs to /t" + in + bad_option + "invalid argument");
    // Binding a directory over a file: the mount call itself fails.
    std::string dir_over_file = attempt(R"([{"destination": "/marker", "type": "bind", "source": "host"}])");
    std::string prefix = "mount " + b.host + " to /marker" + in;
    EXPECT_TRUE(dir_over_file == prefix + "not a directory" || dir_over_file == prefix + "invalid argument")
        << dir_over_file;
    EXPECT_EQ(attempt(R"([{"destination": "/", "type": "tmpfs", "source": "tmpfs"}])"),
              "mount tmpfs to /" + in + "cannot mount over the container's root directory");
  });
}

INSTANTIATE_TEST_SUITE_P(Rootfs, RootfsApiTest, ::testing::Values(Api::modern, Api::legacy),
                         [](const auto& info) { return info.param == Api::modern ? "modern" : "legacy"; });
