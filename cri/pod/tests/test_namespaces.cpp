// Pinned pod namespaces on the real kernel (root). The test binary enters a private mount
// namespace when it is loaded, before main() and before any thread exists (unshare of a
// mount namespace is refused once a process has threads): every pin and tmpfs the tests
// make lives and dies there, and a crashed test cannot leave a mount on the host. Tests
// that mount skip when that was not possible (not root).
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"
#include "cri/pod/namespaces.hpp"
#include "tests/support/temp_dir.hpp"

namespace berth::cri::pod_test {

// "" when this process is in a private mount namespace of its own, else why not.
const std::string& private_mount_ns_error() {
  static const std::string error = []() -> std::string {
    if (::geteuid() != 0) return "not root";
    if (::unshare(CLONE_NEWNS) < 0) return std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
      return std::string("make / rprivate: ") + std::strerror(errno);
    return "";
  }();
  return error;
}

namespace {
[[maybe_unused]] const bool kEnteredAtLoad = (private_mount_ns_error(), true);
}

// Runs a shell command, returns its stdout; status gets the exit status.
std::string run_command(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

// Lines of /proc/self/mountinfo whose mount point is path or below it.
std::vector<std::string> mounts_under(const std::string& path) {
  std::vector<std::string> out;
  for (auto& line : split(read_file("/proc/self/mountinfo"), '\n')) {
    auto f = split(line, ' ');
    if (f.size() > 4 && (f[4] == path || starts_with(f[4], path + "/"))) out.push_back(line);
  }
  return out;
}

} // namespace berth::cri::pod_test

namespace berth::cri {
namespace {

using berth::test_support::TempDir;
using pod_test::mounts_under;
using pod_test::run_command;

#define REQUIRE_ROOT_AND_PRIVATE_MOUNTS()                                                                   \
  do {                                                                                                      \
    if (!pod_test::private_mount_ns_error().empty())                                                        \
      GTEST_SKIP() << "needs root in a private mount namespace: " << pod_test::private_mount_ns_error();    \
  } while (0)

ino_t inode_of(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) return 0;
  return st.st_ino;
}

std::string trimmed(const std::string& s) { return std::string(trim(s)); }

// What /proc/sys holds for this (the main) thread, that is the node's namespaces.
std::string node_sysctl(const std::string& path) { return trimmed(read_file("/proc/sys/" + path)); }

template <typename Fn>
Error expect_error(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return Error(0, "");
}

// ---- names -----------------------------------------------------------------------------

TEST(SysctlNames, MapToProcSysPathsAndNamespaces) {
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(sysctl_path_and_namespace("net.ipv4.ip_unprivileged_port_start"),
            P("net/ipv4/ip_unprivileged_port_start", "net"));
  EXPECT_EQ(sysctl_path_and_namespace("net/ipv4/ip_unprivileged_port_start"),
            P("net/ipv4/ip_unprivileged_port_start", "net"));
  // '/' separators keep dots inside components (a VLAN interface), both spellings.
  EXPECT_EQ(sysctl_path_and_namespace("net/ipv4/conf/eno2.100/rp_filter"), P("net/ipv4/conf/eno2.100/rp_filter", "net"));
  EXPECT_EQ(sysctl_path_and_namespace("net.ipv4.conf.eno2/100.rp_filter"), P("net/ipv4/conf/eno2.100/rp_filter", "net"));
  EXPECT_EQ(sysctl_path_and_namespace("kernel.shm_rmid_forced"), P("kernel/shm_rmid_forced", "ipc"));
  EXPECT_EQ(sysctl_path_and_namespace("kernel/shmmax"), P("kernel/shmmax", "ipc"));
  EXPECT_EQ(sysctl_path_and_namespace("kernel.msgmnb"), P("kernel/msgmnb", "ipc"));
  EXPECT_EQ(sysctl_path_and_namespace("kernel.sem"), P("kernel/sem", "ipc"));
  EXPECT_EQ(sysctl_path_and_namespace("fs.mqueue.msg_max"), P("fs/mqueue/msg_max", "ipc"));
  EXPECT_EQ(sysctl_path_and_namespace("kernel.domainname"), P("kernel/domainname", "uts"));
}

TEST(SysctlNames, RefuseWhatIsNotNamespacedOrNotAName) {
  for (std::string name : {"kernel.panic", "vm.swappiness", "fs.file-max", "kernel.sem_next_id", "kernel.hostname",
                           "net.core.rmem_max", "net.netfilter.nf_conntrack_max", "", "net", "net.", ".net.ipv4.x",
                           "net..ipv4.x", "net/../../kernel/panic", "net.ipv4/../../kernel/panic", "net.ipv4.conf./.x",
                           "net.ipv4.conf.a b.rp_filter", "net.ipv4.ip_forward\n", "net.ipv4.conf.*.rp_filter",
                           "net.ipv4.conf.all.rp_filter;x", "NET.ipv4.ip_forward", "kernel.shm\\x"}) {
    auto e = expect_error([&] { sysctl_path_and_namespace(name); });
    EXPECT_EQ(e.code(), EINVAL) << name;
    EXPECT_NE(e.message().find("sysctl \""), std::string::npos) << e.what();
  }
  EXPECT_EQ(expect_error([] { sysctl_path_and_namespace(std::string("net.ipv4\0.x", 11)); }).code(), EINVAL);
  EXPECT_EQ(expect_error([] { sysctl_path_and_namespace("net." + std::string(300, 'a')); }).code(), EINVAL);
  auto e = expect_error([] { sysctl_path_and_namespace("kernel.panic"); });
  EXPECT_NE(e.message().find("\"kernel.panic\""), std::string::npos) << e.what();
}

TEST(PodHostname, Validated) {
  validate_pod_hostname("");
  validate_pod_hostname("pod-a.example_1");
  validate_pod_hostname(std::string(64, 'h'));
  for (std::string bad : {std::string(65, 'h'), std::string("a b"), std::string("a\nb"), std::string("a/b"),
                          std::string("a\0b", 3)}) {
    auto e = expect_error([&] { validate_pod_hostname(bad); });
    EXPECT_EQ(e.code(), EINVAL);
    EXPECT_TRUE(starts_with(e.message(), "hostname ")) << e.what();
  }
}

// ---- pins ------------------------------------------------------------------------------

class Pins : public ::testing::Test {
protected:
  void SetUp() override {
    REQUIRE_ROOT_AND_PRIVATE_MOUNTS();
    mounts_before_ = read_file("/proc/self/mountinfo");
  }
  void TearDown() override {
    if (!pod_test::private_mount_ns_error().empty()) return;
    EXPECT_TRUE(mounts_under(tmp_.path()).empty()) << "mounts left under " << tmp_.path();
  }
  std::string dir() const { return tmp_.file("pod/ns"); }

  TempDir tmp_{"berth-pins"};
  std::string mounts_before_;
};

TEST_F(Pins, AllThreeSurviveTheThreadAndAreJoinedByPath) {
  PinRequest req;
  req.dir = dir();
  req.net = req.ipc = req.uts = true;
  req.hostname = "pod-a";
  req.sysctls = {{"net.ipv4.ip_unprivileged_port_start", "100"},
                 {"net/ipv4/ping_group_range", "0 2147483647"},
                 {"kernel.shm_rmid_forced", "1"},
                 {"kernel.msgmax", "4321"},
                 {"kernel.sem", "250\t32000\t32\t129"},
                 {"fs.mqueue.msg_max", "77"},
                 {"kernel.domainname", "pod.example"}};
  std::map<std::string, std::string> node;
  for (auto p : {"net/ipv4/ip_unprivileged_port_start", "net/ipv4/ping_group_range", "kernel/shm_rmid_forced",
                 "kernel/msgmax", "kernel/sem", "fs/mqueue/msg_max", "kernel/domainname"})
    node[p] = node_sysctl(p);
  struct utsname before;
  ::uname(&before);
  ino_t own_net = inode_of("/proc/thread-self/ns/net");

  PinnedNamespaces pins = pin_namespaces(req);
  EXPECT_EQ(pins.net, dir() + "/net");
  EXPECT_EQ(pins.ipc, dir() + "/ipc");
  EXPECT_EQ(pins.uts, dir() + "/uts");
  struct stat st;
  ASSERT_EQ(::stat(dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  for (auto [pin, type] : {std::pair{pins.net, "net"}, {pins.ipc, "ipc"}, {pins.uts, "uts"}}) {
    EXPECT_TRUE(is_pinned_namespace(pin)) << pin;
    EXPECT_NE(inode_of(pin), inode_of(std::string("/proc/self/ns/") + type)) << type;
    EXPECT_NE(inode_of(pin), 0u);
  }
  EXPECT_EQ(mounts_under(dir()).size(), 3u);

  // The caller stayed where it was, and so did the node's values.
  EXPECT_EQ(inode_of("/proc/thread-self/ns/net"), own_net);
  struct utsname after;
  ::uname(&after);
  EXPECT_STREQ(after.nodename, before.nodename);
  for (auto& [path, value] : node) EXPECT_EQ(node_sysctl(path), value) << "node's " << path << " changed";

  // A process that joins the pins by path (as the OCI runtime does) sees the pod's.
  int status = 0;
  std::string out = run_command(
      fmt::format("nsenter --net={} --ipc={} --uts={} sh -c 'hostname; cd /proc/sys; cat "
                  "net/ipv4/ip_unprivileged_port_start net/ipv4/ping_group_range kernel/shm_rmid_forced "
                  "kernel/msgmax kernel/sem fs/mqueue/msg_max kernel/domainname; ip -o link show lo' 2>&1",
                  pins.net, pins.ipc, pins.uts),
      &status);
  ASSERT_EQ(status, 0) << out;
  auto lines = split(out, '\n');
  ASSERT_GE(lines.size(), 9u) << out;
  EXPECT_EQ(lines[0], "pod-a");
  EXPECT_EQ(lines[1], "100");
  EXPECT_EQ(lines[2], "0\t2147483647");
  EXPECT_EQ(lines[3], "1");
  EXPECT_EQ(lines[4], "4321");
  EXPECT_EQ(lines[5], "250\t32000\t32\t129");
  EXPECT_EQ(lines[6], "77");
  EXPECT_EQ(lines[7], "pod.example");
  EXPECT_NE(lines[8].find("<LOOPBACK,UP,LOWER_UP>"), std::string::npos) << lines[8];

  // And so does a thread that joins the network pin with setns(2).
  bool lo_up = false;
  std::thread([&] {
    UniqueFd ns(::open(pins.net.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns || ::setns(ns.get(), CLONE_NEWNET) < 0) return;
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    lo_up = ::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP);
  }).join();
  EXPECT_TRUE(lo_up);

  unpin_namespaces(dir());
  EXPECT_TRUE(mounts_under(dir()).empty());
  EXPECT_FALSE(path_exists(pins.net));
  EXPECT_FALSE(path_exists(dir()));
  EXPECT_EQ(read_file("/proc/self/mountinfo"), mounts_before_);
  unpin_namespaces(dir());  // idempotent
  EXPECT_FALSE(is_pinned_namespace(pins.net));
}

TEST_F(Pins, OnlyWhatIsAsked) {
  PinRequest req;
  req.dir = dir();
  req.net = true;
  req.hostname = "ignored without uts";
  PinnedNamespaces pins = pin_namespaces(req);
  EXPECT_EQ(pins.net, dir() + "/net");
  EXPECT_TRUE(pins.ipc.empty());
  EXPECT_TRUE(pins.uts.empty());
  EXPECT_FALSE(path_exists(dir() + "/ipc"));
  EXPECT_FALSE(path_exists(dir() + "/uts"));
  EXPECT_EQ(mounts_under(dir()).size(), 1u);
  EXPECT_TRUE(is_pinned_namespace(pins.net));
  unpin_namespaces(dir());
  EXPECT_FALSE(path_exists(dir()));

  // Nothing asked: nothing made.
  PinnedNamespaces none = pin_namespaces(PinRequest{dir(), false, false, false, "", {}});
  EXPECT_TRUE(none.net.empty() && none.ipc.empty() && none.uts.empty());
  EXPECT_FALSE(path_exists(dir()));
}

TEST_F(Pins, RefusedRequestsLeaveNothing) {
  auto refuse = [&](PinRequest req, std::string_view named) {
    req.dir = dir();
    auto e = expect_error([&] { pin_namespaces(req); });
    EXPECT_EQ(e.code(), EINVAL) << e.what();
    EXPECT_NE(e.message().find(named), std::string::npos) << e.what() << " does not name " << named;
    EXPECT_FALSE(path_exists(dir())) << "after " << e.what();
    EXPECT_EQ(read_file("/proc/self/mountinfo"), mounts_before_) << "after " << e.what();
  };
  PinRequest all{"", true, true, true, "pod", {}};
  auto with = [&](PinRequest r, std::string name, std::string value) {
    r.sysctls = {{"net.ipv4.ip_unprivileged_port_start", "100"}, {name, value}};
    return r;
  };
  refuse(with(all, "kernel.panic", "1"), "\"kernel.panic\"");
  refuse(with(all, "vm.overcommit_memory", "1"), "\"vm.overcommit_memory\"");
  refuse(with(all, "net/../../kernel/panic", "1"), "\"net/../../kernel/panic\"");
  refuse(with(all, "kernel.shmmax", "1\n2"), "\"kernel.shmmax\"");
  refuse(with(all, "kernel.shmmax", std::string("1\0" "2", 3)), "\"kernel.shmmax\"");
  refuse(with(all, "kernel.shmmax", ""), "\"kernel.shmmax\"");
  refuse(with(all, "kernel.shmmax", std::string(5000, '1')), "\"kernel.shmmax\"");
  // Namespaced, but the pod does not get a namespace of that kind.
  refuse(with(PinRequest{"", true, false, true, "pod", {}}, "kernel.msgmax", "4321"), "IPC");
  refuse(with(PinRequest{"", true, true, false, "pod", {}}, "kernel.domainname", "x"), "UTS");
  PinRequest no_net{"", false, true, true, "pod", {{"net.ipv4.ip_forward", "1"}}};
  refuse(no_net, "\"net.ipv4.ip_forward\"");
  refuse(PinRequest{"", true, true, true, "bad host name", {}}, "hostname");
}

TEST_F(Pins, KernelRefusalsUndoEverything) {
  // These pass validation and fail inside the new namespaces, after the unshare: the pins
  // made so far, the files and the directory go again.
  auto refuse = [&](const std::string& name, const std::string& value, std::string_view why) {
    PinRequest req{dir(), true, true, true, "pod", {{"kernel.msgmax", "4321"}, {name, value}}};
    auto e = expect_error([&] { pin_namespaces(req); });
    EXPECT_EQ(e.code(), EINVAL) << e.what();
    EXPECT_NE(e.message().find("\"" + name + "\""), std::string::npos) << e.what();
    EXPECT_NE(e.message().find(why), std::string::npos) << e.what();
    EXPECT_FALSE(path_exists(dir())) << e.what();
    EXPECT_EQ(read_file("/proc/self/mountinfo"), mounts_before_);
  };
  refuse("net.ipv4.tcp_mem", "1 2 3", "does not exist");  // a node-only sysctl absent from new namespaces
  refuse("net.ipv4.no_such_sysctl", "1", "does not exist");
  refuse("net.ipv4.ip_unprivileged_port_start", "abc", "refused the value");
  refuse("kernel.shmmni", "-5", "refused the value");

  // A directory that was there stays, with what it held; only the pins go.
  mkdir_p(dir());
  write_file(dir() + "/keep", "x");
  PinRequest req{dir(), true, true, true, "pod", {{"net.ipv4.ip_unprivileged_port_start", "abc"}}};
  EXPECT_THROW(pin_namespaces(req), Error);
  EXPECT_TRUE(path_exists(dir() + "/keep"));
  for (auto t : {"net", "ipc", "uts"}) EXPECT_FALSE(path_exists(dir() + "/" + t)) << t;
  EXPECT_TRUE(mounts_under(dir()).empty());
}

TEST_F(Pins, AnExistingPinIsNeverReplaced) {
  PinRequest req{dir(), true, false, false, "", {}};
  PinnedNamespaces first = pin_namespaces(req);
  ino_t ino = inode_of(first.net);
  auto e = expect_error([&] { pin_namespaces(PinRequest{dir(), true, true, false, "", {}}); });
  EXPECT_EQ(e.code(), EEXIST) << e.what();
  EXPECT_EQ(inode_of(first.net), ino);
  EXPECT_TRUE(is_pinned_namespace(first.net));
  EXPECT_FALSE(path_exists(dir() + "/ipc"));
  EXPECT_EQ(mounts_under(dir()).size(), 1u);
  unpin_namespaces(dir());

  // An empty file left by an interrupted pin is reused.
  mkdir_p(dir());
  write_file(dir() + "/net", "");
  PinnedNamespaces again = pin_namespaces(req);
  EXPECT_TRUE(is_pinned_namespace(again.net));
  unpin_namespaces(dir());
  EXPECT_FALSE(path_exists(dir()));
}

TEST_F(Pins, IsPinnedNamespace) {
  EXPECT_FALSE(is_pinned_namespace(tmp_ / "missing"));
  tmp_.put("plain", "");
  EXPECT_FALSE(is_pinned_namespace(tmp_ / "plain"));
  EXPECT_FALSE(is_pinned_namespace(tmp_.path()));
  ASSERT_EQ(::symlink("/proc/self/ns/net", (tmp_ / "link").c_str()), 0);
  EXPECT_FALSE(is_pinned_namespace(tmp_ / "link"));  // a symlink to a namespace is not a pin
}

TEST_F(Pins, UnpinRemovesOnlyPins) {
  // Files that are not what a pin leaves, and mounts of another kind, stay.
  mkdir_p(dir());
  write_file(dir() + "/net", "data");
  mkdir_p(dir() + "/uts");
  auto e = expect_error([&] { unpin_namespaces(dir()); });
  EXPECT_EQ(e.code(), EINVAL) << e.what();
  EXPECT_EQ(read_file(dir() + "/net"), "data");
  ::unlink((dir() + "/net").c_str());
  ASSERT_EQ(::mount("tmpfs", (dir() + "/uts").c_str(), "tmpfs", 0, "size=1m"), 0);
  EXPECT_THROW(unpin_namespaces(dir()), Error);
  EXPECT_EQ(mounts_under(dir() + "/uts").size(), 1u);
  ASSERT_EQ(::umount2((dir() + "/uts").c_str(), MNT_DETACH), 0);
  ::rmdir((dir() + "/uts").c_str());
  unpin_namespaces(dir());
  EXPECT_FALSE(path_exists(dir()));
  EXPECT_EQ(expect_error([] { unpin_namespaces(""); }).code(), EINVAL);
  EXPECT_EQ(expect_error([] { unpin_namespaces("relative/dir"); }).code(), EINVAL);
}

TEST_F(Pins, ConcurrentPodsGetTheirOwn) {
  constexpr int kPods = 6;
  std::vector<PinnedNamespaces> pins(kPods);
  std::vector<std::string> errors(kPods);
  std::vector<std::thread> threads;
  for (int i = 0; i < kPods; ++i)
    threads.emplace_back([&, i] {
      try {
        pins[i] = pin_namespaces(PinRequest{tmp_ / fmt::format("pod{}", i), true, true, true, fmt::format("pod{}", i),
                                            {{"kernel.msgmax", std::to_string(1000 + i)}}});
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  std::set<ino_t> nets;
  for (int i = 0; i < kPods; ++i) {
    ASSERT_EQ(errors[i], "");
    nets.insert(inode_of(pins[i].net));
    int status = 0;
    std::string out =
        run_command(fmt::format("nsenter --ipc={} --uts={} sh -c 'hostname; cat /proc/sys/kernel/msgmax'", pins[i].ipc,
                                pins[i].uts),
                    &status);
    EXPECT_EQ(out, fmt::format("pod{}\n{}\n", i, 1000 + i));
  }
  EXPECT_EQ(nets.size(), static_cast<size_t>(kPods));
  for (int i = 0; i < kPods; ++i) unpin_namespaces(tmp_ / fmt::format("pod{}", i));
}

} // namespace
} // namespace berth::cri
