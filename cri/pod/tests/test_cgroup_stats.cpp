// Cgroup paths, cgroup usage and network counters. The real-kernel tests make their own
// cgroup under the v2 hierarchy (removed at the end, with the one process they put in
// it) and their own pinned network namespaces; they never touch anything else.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"
#include "cri/pod/cgroup_stats.hpp"
#include "cri/pod/namespaces.hpp"
#include "tests/support/temp_dir.hpp"

namespace berth::cri::pod_test {
const std::string& private_mount_ns_error();
std::vector<std::string> mounts_under(const std::string& path);
std::string run_command(const std::string& cmd, int* status);
} // namespace berth::cri::pod_test

namespace berth::cri {
namespace {

using berth::test_support::TempDir;
using namespace std::chrono_literals;

std::string root() { return cgroup2_mount(); }

// What the hierarchy root-relative path maps to: root + rel, or "" without a hierarchy.
std::string under_root(const std::string& rel) { return root().empty() ? "" : root() + rel; }

std::string own_parent() {
  std::string own = "/";
  for (auto& line : split(read_file("/proc/self/cgroup"), '\n'))
    if (starts_with(line, "0::")) own = line.substr(3);
  auto slash = own.rfind('/');
  return slash == std::string::npos || slash == 0 ? "" : own.substr(0, slash);
}

int error_code(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  }
  return 0;
}

TEST(CgroupPaths, Cgroupfs) {
  auto dir = [](const std::string& p) { return cgroup_dir(CgroupDriver::cgroupfs, p); };
  EXPECT_EQ(dir("/kubepods/besteffort/pod1/c1"), under_root("/kubepods/besteffort/pod1/c1"));
  EXPECT_EQ(dir("/a/./b//c/"), under_root("/a/b/c"));
  EXPECT_EQ(dir("/kubepods/../../../x"), under_root("/x"));  // never above the root
  // Relative: under the parent of the runtime's (this process's) own cgroup, as runc.
  EXPECT_EQ(dir("berth/c1"), under_root(own_parent() + "/berth/c1"));
  EXPECT_EQ(dir("../../x"), under_root(own_parent() + "/x"));
  EXPECT_EQ(error_code([&] { dir(""); }), EINVAL);
  EXPECT_EQ(error_code([&] { dir("system.slice:berth:abc"); }), EINVAL);

  EXPECT_EQ(cgroup_parent_dir(CgroupDriver::cgroupfs, "/kubepods/burstable/pod-uid"),
            under_root("/kubepods/burstable/pod-uid"));
  EXPECT_EQ(cgroup_parent_dir(CgroupDriver::cgroupfs, ""), "");
}

TEST(CgroupPaths, Systemd) {
  auto dir = [](const std::string& p) { return cgroup_dir(CgroupDriver::systemd, p); };
  EXPECT_EQ(dir("kubepods-besteffort-pod123.slice:cri-containerd:abc"),
            under_root("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice/"
                       "cri-containerd-abc.scope"));
  EXPECT_EQ(dir("kubepods-burstable-podx.slice:berth:abc"),
            under_root("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice/berth-abc.scope"));
  EXPECT_EQ(dir(":berth:abc"), under_root("/system.slice/berth-abc.scope"));
  EXPECT_EQ(dir("machine.slice::abc"), under_root("/machine.slice/abc.scope"));
  EXPECT_EQ(dir("-.slice:berth:abc"), under_root("/berth-abc.scope"));
  EXPECT_EQ(dir("machine.slice:libpod:x.slice"), under_root("/machine.slice/x.slice"));
  for (std::string bad : {"a--b.slice:p:n", "-a.slice:p:n", "a-.slice:p:n", "a.slice:p:", "a:p:n", ".slice:p:n",
                          "a.slice:p", "a.slice:p:n:x", "a/b.slice:p:n", "a.slice:p:../x", "a.slice:..:n",
                          "a.slice:p:..", "/kubepods/x"})
    EXPECT_EQ(error_code([&] { dir(bad); }), EINVAL) << bad;

  EXPECT_EQ(cgroup_parent_dir(CgroupDriver::systemd, "kubepods-burstable-poduid.slice"),
            under_root("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poduid.slice"));
  EXPECT_EQ(cgroup_parent_dir(CgroupDriver::systemd, "-.slice"), under_root(""));
  EXPECT_EQ(cgroup_parent_dir(CgroupDriver::systemd, ""), "");
  EXPECT_EQ(error_code([] { cgroup_parent_dir(CgroupDriver::systemd, "kubepods"); }), EINVAL);
  EXPECT_EQ(error_code([] { cgroup_parent_dir(CgroupDriver::systemd, "/kubepods.slice"); }), EINVAL);
}

TEST(CgroupPaths, Mount) {
  // This host is hybrid (cgroup2 at /sys/fs/cgroup/unified) or pure v2; either is found.
  if (root().empty()) GTEST_SKIP() << "no cgroup v2 hierarchy";
  EXPECT_TRUE(root() == "/sys/fs/cgroup" || root() == "/sys/fs/cgroup/unified") << root();
  EXPECT_TRUE(path_exists(root() + "/cgroup.procs"));
}

// ---- usage from files --------------------------------------------------------------------

TEST(CgroupUsage, ParsedFromTheFiles) {
  TempDir d("berth-cgfiles");
  d.put("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n");
  d.put("memory.current", "10000000\n");
  d.put("memory.stat", "anon 4000000\nfile 5000000\nkernel 1000\ninactive_file 3000000\nactive_file 2000000\n"
                       "pgfault 1234\npgmajfault 56\n");
  d.put("memory.max", "20000000\n");
  d.put("memory.swap.current", "1000\n");
  d.put("memory.swap.max", "max\n");
  d.put("memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n");
  d.put("pids.current", "7\n");
  auto u = read_cgroup_usage(d.path());
  ASSERT_TRUE(u);
  EXPECT_GT(u->timestamp_ns, 1'600'000'000'000'000'000);
  EXPECT_EQ(u->cpu_usage_ns, 1'500'000u);
  EXPECT_EQ(u->cpu_user_ns, 1'000'000u);
  EXPECT_EQ(u->cpu_system_ns, 500'000u);
  EXPECT_EQ(u->memory_usage_bytes, 10'000'000u);
  EXPECT_EQ(u->memory_working_set_bytes, 7'000'000u);
  EXPECT_EQ(u->memory_rss_bytes, 4'000'000u);
  EXPECT_EQ(u->memory_available_bytes, 13'000'000u);
  EXPECT_EQ(u->page_faults, 1234u);
  EXPECT_EQ(u->major_page_faults, 56u);
  EXPECT_EQ(u->swap_usage_bytes, 1000u);
  EXPECT_FALSE(u->swap_available_bytes);  // swap.max is "max"
  EXPECT_EQ(u->process_count, 7u);
  EXPECT_EQ(u->oom_events, 1u);

  // Unlimited memory: no available; inactive_file above usage: working set 0; a limit
  // below the working set: 0 available.
  d.put("memory.max", "max\n");
  d.put("memory.swap.max", "5000\n");
  EXPECT_FALSE(read_cgroup_usage(d.path())->memory_available_bytes);
  EXPECT_EQ(read_cgroup_usage(d.path())->swap_available_bytes, 4000u);
  d.put("memory.stat", "anon 1\ninactive_file 20000000\n");
  EXPECT_EQ(read_cgroup_usage(d.path())->memory_working_set_bytes, 0u);
  d.put("memory.stat", "anon 1\ninactive_file 0\n");
  d.put("memory.max", "4096\n");
  EXPECT_EQ(read_cgroup_usage(d.path())->memory_available_bytes, 0u);
}

TEST(CgroupUsage, WhatIsMissingStaysUnset) {
  TempDir d("berth-cgfiles");
  d.put("cpu.stat", "usage_usec 10\nuser_usec 5\nsystem_usec 5\n");  // a hybrid host's v2 tree
  d.put("cgroup.procs", "12\n13\n");
  mkdir_p(d / "child");
  write_file(d.file("child/cgroup.procs"), "14\n");
  d.put("memory.stat", "garbage\n");
  auto u = read_cgroup_usage(d.path());
  ASSERT_TRUE(u);
  EXPECT_EQ(u->cpu_usage_ns, 10'000u);
  EXPECT_FALSE(u->memory_usage_bytes);
  EXPECT_FALSE(u->memory_working_set_bytes);
  EXPECT_FALSE(u->memory_rss_bytes);
  EXPECT_FALSE(u->memory_available_bytes);
  EXPECT_FALSE(u->swap_usage_bytes);
  EXPECT_FALSE(u->oom_events);
  EXPECT_EQ(u->process_count, 3u);  // cgroup.procs over the subtree without pids.current

  EXPECT_FALSE(read_cgroup_usage(d / "missing"));
  EXPECT_FALSE(read_cgroup_usage(d / "cpu.stat"));  // not a directory
}

// ---- a real cgroup -------------------------------------------------------------------------

// A cgroup of the test's own under the v2 hierarchy, with a busy child process in a
// sub-cgroup; the destructor kills that child (ours) and removes both cgroups.
class OwnCgroup {
public:
  OwnCgroup() {
    std::random_device rd;
    path_ = fmt::format("{}/berth-test-{}-{:08x}", root(), ::getpid(), rd());
    if (::mkdir(path_.c_str(), 0755) < 0) throw std::runtime_error("mkdir " + path_ + ": " + std::strerror(errno));
    sub_ = path_ + "/busy";
    if (::mkdir(sub_.c_str(), 0755) < 0) throw std::runtime_error("mkdir " + sub_ + ": " + std::strerror(errno));
  }
  ~OwnCgroup() {
    if (child_ > 0) {
      ::kill(child_, SIGKILL);
      ::waitpid(child_, nullptr, 0);
    }
    // The killed process leaves the cgroup asynchronously: retry briefly.
    for (int i = 0; i < 200 && (::rmdir(sub_.c_str()) < 0 && errno == EBUSY); ++i) std::this_thread::sleep_for(10ms);
    ::rmdir(path_.c_str());
  }
  void start_busy_child() {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) < 0) throw std::runtime_error("pipe");
    child_ = ::fork();
    if (child_ == 0) {
      char c;
      (void)::read(ready[0], &c, 1);  // run only once moved into the cgroup
      volatile unsigned long spin = 0;
      for (;;) spin = spin + 1;
    }
    ::close(ready[0]);
    write_file(sub_ + "/cgroup.procs", std::to_string(child_), false);
    (void)::write(ready[1], "x", 1);
    ::close(ready[1]);
  }
  const std::string& path() const { return path_; }
  const std::string& sub() const { return sub_; }
  pid_t child() const { return child_; }

private:
  std::string path_, sub_;
  pid_t child_ = -1;
};

TEST(CgroupUsage, ARealCgroupWithABusyProcess) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  if (root().empty()) GTEST_SKIP() << "no cgroup v2 hierarchy";
  OwnCgroup cg;
  auto idle = read_cgroup_usage(cg.path());
  ASSERT_TRUE(idle);
  ASSERT_TRUE(idle->cpu_usage_ns) << "no cpu.stat in " << cg.path();
  EXPECT_EQ(*idle->cpu_usage_ns, 0u);
  EXPECT_EQ(idle->process_count, 0u);

  cg.start_busy_child();
  // The usage of the parent sums its subtree (the child runs in busy/).
  std::optional<CgroupUsage> u;
  for (int i = 0; i < 300; ++i) {
    u = read_cgroup_usage(cg.path());
    if (u && u->cpu_usage_ns.value_or(0) >= 200'000'000) break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(u);
  EXPECT_GE(u->cpu_usage_ns.value_or(0), 200'000'000u);
  EXPECT_GE(u->cpu_user_ns.value_or(0), 100'000'000u);
  EXPECT_LE(u->cpu_user_ns.value_or(0) + u->cpu_system_ns.value_or(0), u->cpu_usage_ns.value_or(0) + 1'000'000);
  EXPECT_EQ(u->process_count, 1u);
  auto sub = read_cgroup_usage(cg.sub());
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->process_count, 1u);
  EXPECT_GE(sub->cpu_usage_ns.value_or(0), 200'000'000u);
  // Memory files only where the memory controller is enabled (not on a hybrid host).
  if (!path_exists(cg.path() + "/memory.current")) {
    EXPECT_FALSE(u->memory_usage_bytes);
    EXPECT_FALSE(u->memory_working_set_bytes);
  } else {
    EXPECT_TRUE(u->memory_usage_bytes);
  }
}

// ---- network counters ----------------------------------------------------------------------

class NetnsUsage : public ::testing::Test {
protected:
  void SetUp() override {
    if (!pod_test::private_mount_ns_error().empty())
      GTEST_SKIP() << "needs root in a private mount namespace: " << pod_test::private_mount_ns_error();
  }
  void TearDown() override {
    if (!pod_test::private_mount_ns_error().empty()) return;
    unpin_namespaces(tmp_ / "a");
    unpin_namespaces(tmp_ / "b");
    EXPECT_TRUE(pod_test::mounts_under(tmp_.path()).empty());
  }
  void sh(const std::string& cmd) {
    int status = 0;
    std::string out = pod_test::run_command(cmd + " 2>&1", &status);
    ASSERT_EQ(status, 0) << cmd << ": " << out;
  }
  TempDir tmp_{"berth-netns"};
};

// UDP datagrams sent from inside the namespace pinned at pin (a thread of its own joins it).
void send_udp(const std::string& pin, const char* to, int count, size_t size) {
  std::thread([&] {
    UniqueFd ns(::open(pin.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns || ::setns(ns.get(), CLONE_NEWNET) < 0) return;
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(9);
    ::inet_pton(AF_INET, to, &addr.sin_addr);
    std::string payload(size, 'x');
    for (int i = 0; i < count; ++i) {
      ::sendto(s.get(), payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      std::this_thread::sleep_for(5ms);
    }
  }).join();
}

const InterfaceUsage* find(const std::vector<InterfaceUsage>& v, const std::string& name) {
  for (auto& i : v)
    if (i.name == name) return &i;
  return nullptr;
}

TEST_F(NetnsUsage, CountersOfThePinnedNamespace) {
  std::string a = pin_namespaces(PinRequest{tmp_ / "a", true, false, false, "", {}}).net;
  std::string b = pin_namespaces(PinRequest{tmp_ / "b", true, false, false, "", {}}).net;
  ino_t own = 0;
  struct stat st;
  if (::stat("/proc/thread-self/ns/net", &st) == 0) own = st.st_ino;

  // A fresh namespace: lo only, which is left out.
  EXPECT_TRUE(read_netns_usage(a).empty());

  // a: one end of a veth pair whose other end is in b, and a second pair with both ends
  // in a; a dummy too where the kernel has it (this host's has no CONFIG_DUMMY).
  int status = 0;
  pod_test::run_command(fmt::format("nsenter --net={} ip link add d0 type dummy 2>&1", a), &status);
  bool dummy = status == 0;
  if (dummy) sh(fmt::format("nsenter --net={} ip link set d0 up", a));
  sh(fmt::format("nsenter --net={} ip link add v0 type veth peer name v1", a));
  sh(fmt::format("nsenter --net={} ip link set v1 netns {}", a, b));
  sh(fmt::format("nsenter --net={} ip addr add 10.99.0.1/24 dev v0", a));
  sh(fmt::format("nsenter --net={} ip link set v0 up", a));
  sh(fmt::format("nsenter --net={} ip addr add 10.99.0.2/24 dev v1", b));
  sh(fmt::format("nsenter --net={} ip link set v1 up", b));
  sh(fmt::format("nsenter --net={} ip link add x0 type veth peer name x1", a));
  sh(fmt::format("nsenter --net={} ip addr add 10.98.0.1/24 dev x0", a));
  sh(fmt::format("nsenter --net={} ip link set x0 up", a));
  sh(fmt::format("nsenter --net={} ip link set x1 up", a));
  sh(fmt::format("nsenter --net={} ip neigh add 10.98.0.2 lladdr 02:00:00:00:00:02 dev x0", a));

  send_udp(a, "10.99.0.2", 10, 200);  // over the a-b pair: tx in a, rx in b
  send_udp(a, "10.98.0.2", 3, 100);   // out of x0, no ARP needed
  std::vector<InterfaceUsage> ua, ub;
  for (int i = 0; i < 200; ++i) {
    ua = read_netns_usage(a);
    ub = read_netns_usage(b);
    auto v1 = find(ub, "v1");
    if (v1 && v1->rx_bytes >= 10 * 200) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(ua.size(), dummy ? 4u : 3u);
  EXPECT_FALSE(find(ua, "lo"));
  ASSERT_TRUE(find(ua, "v0"));
  ASSERT_TRUE(find(ua, "x0"));
  ASSERT_TRUE(find(ua, "x1"));
  ASSERT_TRUE(find(ub, "v1"));
  EXPECT_EQ(ub.size(), 1u);
  EXPECT_GE(find(ua, "v0")->tx_bytes, 10u * 200);
  EXPECT_GE(find(ub, "v1")->rx_bytes, 10u * 200);
  EXPECT_GE(find(ua, "x0")->tx_bytes, 3u * 100);
  EXPECT_GE(find(ua, "x1")->rx_bytes, 3u * 100);
  EXPECT_EQ(find(ua, "v0")->tx_errors, 0u);
  if (dummy) {
    EXPECT_TRUE(find(ua, "d0"));
  }

  // The caller never moved.
  ASSERT_EQ(::stat("/proc/thread-self/ns/net", &st), 0);
  EXPECT_EQ(st.st_ino, own);

  // A pin that is gone reads as nothing.
  unpin_namespaces(tmp_ / "b");
  EXPECT_TRUE(read_netns_usage(b).empty());
  mkdir_p(tmp_ / "b");
  write_file(b, "");  // an empty file where a pin was
  EXPECT_TRUE(read_netns_usage(b).empty());
  ::unlink(b.c_str());
  EXPECT_TRUE(read_netns_usage(tmp_ / "nowhere").empty());
}

} // namespace
} // namespace berth::cri
