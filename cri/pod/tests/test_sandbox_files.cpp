// The pod's shared files and its /dev/shm tmpfs (root; the mounts happen in the private
// mount namespace test_namespaces.cpp enters when the binary loads).
#include <dirent.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <linux/magic.h>

#include <algorithm>

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "cri/pod/sandbox_files.hpp"
#include "tests/support/temp_dir.hpp"

namespace berth::cri::pod_test {
const std::string& private_mount_ns_error();
std::vector<std::string> mounts_under(const std::string& path);
} // namespace berth::cri::pod_test

namespace berth::cri {
namespace {

using berth::test_support::TempDir;

constexpr std::string_view kPodHosts =
    "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\n"
    "ff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n";

class SandboxFilesTest : public ::testing::Test {
protected:
  void SetUp() override {
    pod_ = tmp_.file("pod");
    mkdir_p(pod_);
    host_ = tmp_.file("host");
    mkdir_p(host_);
    write_file(host_ + "/hosts", "127.0.0.1 localhost\n10.0.0.5 node-1\n");
    write_file(host_ + "/resolv.conf", "nameserver 10.0.0.53\nsearch node.example\n");
  }
  void TearDown() override {
    if (pod_test::private_mount_ns_error().empty()) {
      release_sandbox_shm(pod_);
      EXPECT_TRUE(pod_test::mounts_under(tmp_.path()).empty());
    }
  }
  SandboxFilesRequest request() const {
    SandboxFilesRequest r;
    r.dir = pod_;
    r.hostname = "pod-a";
    r.private_shm = false;
    r.host_hosts = host_ + "/hosts";
    r.host_resolv_conf = host_ + "/resolv.conf";
    return r;
  }
  // Everything in the pod directory, sorted.
  std::vector<std::string> pod_entries() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(pod_.c_str())) {
      while (dirent* e = ::readdir(d))
        if (std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..") out.push_back(e->d_name);
      ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  TempDir tmp_{"berth-podfiles"};
  std::string pod_, host_;
};

TEST_F(SandboxFilesTest, PodNetworkWithDnsConfig) {
  auto req = request();
  req.dns_servers = {"10.96.0.10", "fd00::10", "fe80::1%eth0"};
  req.dns_searches = {"default.svc.cluster.local", "svc.cluster.local", "cluster.local"};
  req.dns_options = {"ndots:5", "edns0"};
  SandboxFiles f = prepare_sandbox_files(req);
  EXPECT_EQ(f.hostname, pod_ + "/hostname");
  EXPECT_EQ(f.hosts, pod_ + "/hosts");
  EXPECT_EQ(f.resolv_conf, pod_ + "/resolv.conf");
  EXPECT_TRUE(f.shm.empty());
  EXPECT_EQ(read_file(f.hostname), "pod-a\n");
  EXPECT_EQ(read_file(f.hosts), kPodHosts);
  EXPECT_EQ(read_file(f.resolv_conf),
            "search default.svc.cluster.local svc.cluster.local cluster.local\n"
            "nameserver 10.96.0.10\nnameserver fd00::10\nnameserver fe80::1%eth0\n"
            "options ndots:5 edns0\n");
  struct stat st;
  ASSERT_EQ(::stat(f.resolv_conf.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(pod_entries(), (std::vector<std::string>{"hostname", "hosts", "resolv.conf"}));  // no temp files
}

TEST_F(SandboxFilesTest, HostNetworkCopiesTheHostsFiles) {
  auto req = request();
  req.host_network = true;
  req.hostname = "";
  SandboxFiles f = prepare_sandbox_files(req);
  struct utsname u;
  ::uname(&u);
  EXPECT_EQ(read_file(f.hostname), std::string(u.nodename) + "\n");
  EXPECT_EQ(read_file(f.hosts), read_file(host_ + "/hosts"));
  EXPECT_EQ(read_file(f.resolv_conf), read_file(host_ + "/resolv.conf"));

  // With DNS settings the pod's resolv.conf is its own even on the node's network.
  req.dns_servers = {"1.1.1.1"};
  f = prepare_sandbox_files(req);
  EXPECT_EQ(read_file(f.resolv_conf), "nameserver 1.1.1.1\n");
  EXPECT_EQ(read_file(f.hosts), read_file(host_ + "/hosts"));
}

TEST_F(SandboxFilesTest, PodNetworkWithoutDnsGetsTheHostsResolvConf) {
  // containerd: an empty DNS config means the host's resolv.conf, whatever the network.
  SandboxFiles f = prepare_sandbox_files(request());
  EXPECT_EQ(read_file(f.resolv_conf), read_file(host_ + "/resolv.conf"));
  EXPECT_EQ(read_file(f.hosts), kPodHosts);
  auto req = request();
  req.dns_options = {"ndots:2"};  // options alone are a config of their own
  f = prepare_sandbox_files(req);
  EXPECT_EQ(read_file(f.resolv_conf), "options ndots:2\n");
}

TEST_F(SandboxFilesTest, ShmTmpfs) {
  if (!pod_test::private_mount_ns_error().empty())
    GTEST_SKIP() << "needs root in a private mount namespace: " << pod_test::private_mount_ns_error();
  auto req = request();
  req.private_shm = true;
  req.shm_size = 16 << 20;
  SandboxFiles f = prepare_sandbox_files(req);
  ASSERT_EQ(f.shm, pod_ + "/shm");
  auto mounts = pod_test::mounts_under(f.shm);
  ASSERT_EQ(mounts.size(), 1u);
  // "<id> <parent> <dev> <root> <point> <options> <optional...> - <fstype> <source> <super options>"
  auto fields = split(mounts[0], ' ');
  EXPECT_EQ(fields[4], f.shm);
  auto opts = split(fields[5], ',');
  for (auto want : {"nosuid", "nodev", "noexec", "rw"})
    EXPECT_NE(std::find(opts.begin(), opts.end(), want), opts.end()) << want << " in " << mounts[0];
  auto dash = std::find(fields.begin(), fields.end(), "-");
  ASSERT_TRUE(dash != fields.end() && dash + 3 < fields.end() + 1) << mounts[0];
  EXPECT_EQ(*(dash + 1), "tmpfs");
  EXPECT_EQ(*(dash + 2), "shm");
  EXPECT_NE((dash + 3)->find("size=16384k"), std::string::npos) << mounts[0];
  struct statfs sfs;
  ASSERT_EQ(::statfs(f.shm.c_str(), &sfs), 0);
  EXPECT_EQ(static_cast<unsigned long>(sfs.f_type), static_cast<unsigned long>(TMPFS_MAGIC));
  EXPECT_EQ(static_cast<uint64_t>(sfs.f_blocks) * sfs.f_bsize, 16u << 20);
  struct stat st;  // (tmpfs lists mode= among its options only when it is not 1777)
  ASSERT_EQ(::stat(f.shm.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);

  release_sandbox_shm(pod_);
  EXPECT_TRUE(pod_test::mounts_under(f.shm).empty());
  release_sandbox_shm(pod_);  // idempotent
  release_sandbox_shm(tmp_ / "no-such-pod");
  release_sandbox_shm(pod_);  // shm is a plain directory now: nothing to do
  EXPECT_TRUE(path_exists(f.shm));

  // A second prepare after a release mounts again; one on top of a mounted one is refused.
  f = prepare_sandbox_files(req);
  EXPECT_EQ(pod_test::mounts_under(f.shm).size(), 1u);
  auto again = request();
  again.private_shm = true;
  again.hostname = "pod-b";
  EXPECT_THROW(prepare_sandbox_files(again), Error);
  EXPECT_EQ(pod_test::mounts_under(f.shm).size(), 1u);
  EXPECT_EQ(read_file(f.hostname), "pod-a\n");  // refused before any file was replaced
  release_sandbox_shm(pod_);
}

TEST_F(SandboxFilesTest, AFailedMountLeavesNothing) {
  if (!pod_test::private_mount_ns_error().empty())
    GTEST_SKIP() << "needs root in a private mount namespace: " << pod_test::private_mount_ns_error();
  write_file(pod_ + "/shm", "not a directory");
  auto req = request();
  req.private_shm = true;
  EXPECT_THROW(prepare_sandbox_files(req), Error);
  EXPECT_EQ(pod_entries(), std::vector<std::string>{"shm"});
  EXPECT_EQ(read_file(pod_ + "/shm"), "not a directory");
}

TEST_F(SandboxFilesTest, HostileValuesAreRefusedNamingTheField) {
  auto refuse = [&](const SandboxFilesRequest& req, std::string_view field) {
    try {
      prepare_sandbox_files(req);
      ADD_FAILURE() << "accepted; expected an error naming " << field;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), EINVAL) << e.what();
      EXPECT_TRUE(starts_with(e.message(), field)) << e.what() << " does not start with " << field;
    }
    EXPECT_TRUE(pod_entries().empty()) << "files written before the error";
  };
  auto with_servers = [&](std::vector<std::string> v) {
    auto r = request();
    r.dns_servers = std::move(v);
    return r;
  };
  refuse(with_servers({"1.1.1.1", "8.8.8.8", "1.2.3.4\nnameserver 6.6.6.6"}), "dns_config.servers[2]");
  refuse(with_servers({"example.com"}), "dns_config.servers[0]");
  refuse(with_servers({""}), "dns_config.servers[0]");
  refuse(with_servers({"1.1.1.1", "1.2.3.4 "}), "dns_config.servers[1]");
  refuse(with_servers({"1.1.1.1%eth0"}), "dns_config.servers[0]");  // zones are for IPv6
  refuse(with_servers({"fe80::1%eth 0"}), "dns_config.servers[0]");
  refuse(with_servers({std::string("1.1.1.1\0", 8)}), "dns_config.servers[0]");
  refuse(with_servers(std::vector<std::string>(33, "1.1.1.1")), "dns_config.servers");

  auto with_searches = [&](std::vector<std::string> v) {
    auto r = request();
    r.dns_searches = std::move(v);
    return r;
  };
  refuse(with_searches({"a.example", "b.example\noptions debug"}), "dns_config.searches[1]");
  refuse(with_searches({"a example"}), "dns_config.searches[0]");
  refuse(with_searches({""}), "dns_config.searches[0]");
  refuse(with_searches(std::vector<std::string>(33, "a.example")), "dns_config.searches: 33 entries");
  refuse(with_searches(std::vector<std::string>(9, std::string(250, 'a'))), "dns_config.searches: 2258 characters");

  auto with_options = [&](std::vector<std::string> v) {
    auto r = request();
    r.dns_options = std::move(v);
    return r;
  };
  refuse(with_options({"ndots:5", "timeout:1 attempts:9"}), "dns_config.options[1]");
  refuse(with_options({"ndots:5\n"}), "dns_config.options[0]");
  refuse(with_options({""}), "dns_config.options[0]");

  auto bad_host = request();
  bad_host.hostname = "pod\n127.0.0.1 evil";
  refuse(bad_host, "hostname");
  auto no_limit = request();
  no_limit.private_shm = true;
  no_limit.shm_size = 0;
  refuse(no_limit, "shm size");

  // Limits themselves are fine.
  auto edge = request();
  edge.dns_searches = std::vector<std::string>(32, std::string(60, 'a'));
  edge.dns_servers = std::vector<std::string>(32, "::1");
  EXPECT_NO_THROW(prepare_sandbox_files(edge));
}

TEST_F(SandboxFilesTest, MissingHostFilesAreErrorsBeforeWriting) {
  auto req = request();
  req.host_resolv_conf = host_ + "/missing";
  EXPECT_THROW(prepare_sandbox_files(req), Error);
  EXPECT_TRUE(pod_entries().empty());
  req = request();
  req.dir = tmp_ / "no-such-pod";
  EXPECT_THROW(prepare_sandbox_files(req), Error);
}

} // namespace
} // namespace berth::cri
