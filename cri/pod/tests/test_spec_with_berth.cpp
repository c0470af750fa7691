// The generated config.json is what berth accepts: every spec goes through berth's own
// config parser (runtime/lib/spec.cpp, linked in), and the built-in seccomp profile is
// compiled by berth's libseccomp code and loaded into a child process, whose syscalls
// then show what the profile blocks on the real kernel.
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/mount.h>
#include <sched.h>
#include <sys/mount.h>

#include "cri/pod/seccomp_profile.hpp"
#include "cri/pod/tests/spec_fixture.hpp"
#include "cri/pod/user_lookup.hpp"
#include "runtime/lib/seccomp.hpp"
#include "runtime/lib/spec.hpp"
#include "tests/support/temp_dir.hpp"

// critest sends the deprecated seccomp_profile_path.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

namespace berth::cri::test {
namespace {

class BerthAcceptsTest : public SpecTest {
protected:
  BerthAcceptsTest() { in_.rootfs = rootfs_.path(); }
  Spec parse(const json& spec) { return parse_spec(spec.dump(), bundle_.path()); }

  test_support::TempDir bundle_{"berth-bundle"};
  test_support::TempDir rootfs_{"berth-rootfs"};
};

const MountSpec* parsed_mount(const Spec& s, std::string_view dest) {
  for (const auto& m : s.mounts)
    if (m.destination == dest) return &m;
  return nullptr;
}

TEST_F(BerthAcceptsTest, DefaultContainer) {
  sc()->set_seccomp_profile_path("runtime/default");
  Spec s = parse(build());
  EXPECT_EQ(s.process.args, std::vector<std::string>{"sh"});
  EXPECT_EQ(s.process.capabilities.bounding.size(), kDefaultCaps.size());
  EXPECT_TRUE(s.has_namespace(CLONE_NEWCGROUP));
  EXPECT_EQ(s.find_namespace(CLONE_NEWNET)->path, sandbox_.netns_path);
  ASSERT_NE(s.seccomp, nullptr);
  EXPECT_GT(s.seccomp->rules.size(), 5u);
  EXPECT_EQ(s.masked_paths.size(), 11u);
  EXPECT_EQ(s.cgroups_path, "/kubepods/besteffort/podpod-uid-1/ctr-1");
  ASSERT_NE(parsed_mount(s, "/etc/hosts"), nullptr);
  EXPECT_TRUE(parsed_mount(s, "/etc/hosts")->is_bind());
  EXPECT_TRUE(parsed_mount(s, "/etc/hosts")->recursive);
}

// critest's predefined-group image: uid 1000 is default-user, a member of group 50000.
TEST_F(BerthAcceptsTest, UserAndGroupsFromTheImagesFiles) {
  ASSERT_EQ(::mkdir(rootfs_.file("etc").c_str(), 0755), 0);
  rootfs_.put("etc/passwd", "root:x:0:0:root:/root:/bin/sh\ndefault-user:x:1000:1000::/home/default-user:/bin/sh\n");
  rootfs_.put("etc/group", "root:x:0:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n");
  in_.resolve_user = rootfs_user_resolver(rootfs_.path());
  sc()->mutable_run_as_user()->set_value(1000);
  sc()->add_supplemental_groups(1234);
  Spec s = parse(build());
  EXPECT_EQ(s.process.uid, 1000u);
  EXPECT_EQ(s.process.gid, 1000u);
  EXPECT_EQ(s.process.additional_gids, (std::vector<gid_t>{1000, 1234, 50000}));
  sc()->clear_run_as_user();
  sc()->set_run_as_username("nobody");
  EXPECT_NE(build_error().find("linux.security_context.run_as_username: user \"nobody\": no such user"),
            std::string::npos);
}

TEST_F(BerthAcceptsTest, EverythingAtOnce) {
  config_.set_tty(true);
  auto* kv = config_.add_envs();
  kv->set_key("A");
  kv->set_value("b");
  users_["1000"] = ResolvedUser{1000, 1000, {50000}, ""};
  sc()->mutable_run_as_user()->set_value(1000);
  sc()->add_supplemental_groups(1234);
  sc()->set_no_new_privs(true);
  sc()->set_readonly_rootfs(true);
  sc()->mutable_capabilities()->add_add_capabilities("ALL");
  sc()->mutable_capabilities()->add_drop_capabilities("NET_RAW");
  sc()->mutable_seccomp()->set_profile_type(runtime::v1::SecurityProfile::RuntimeDefault);
  sc()->add_masked_paths("/bin/ls");
  host_.propagation = {{"/mnt/shared", "shared"}};
  auto mount = [&](const char* dest, runtime::v1::MountPropagation p, bool ro, bool rro) {
    auto* m = config_.add_mounts();
    m->set_container_path(dest);
    m->set_host_path("/mnt/shared");
    m->set_propagation(p);
    m->set_readonly(ro);
    m->set_recursive_read_only(rro);
  };
  mount("/ro", runtime::v1::PROPAGATION_PRIVATE, true, true);
  mount("/both", runtime::v1::PROPAGATION_BIDIRECTIONAL, false, false);
  mount("/in", runtime::v1::PROPAGATION_HOST_TO_CONTAINER, true, false);
  host_.devices["/dev/fuse"] = {HostDevice{"/dev/fuse", "", 'c', 10, 229, 0666, 0, 0}};
  auto* d = config_.add_devices();
  d->set_host_path("/dev/fuse");
  d->set_container_path("/dev/fuse");
  d->set_permissions("rwm");
  auto* r = config_.mutable_linux()->mutable_resources();
  r->set_cpu_period(100000);
  r->set_cpu_quota(20000);
  r->set_cpu_shares(256);
  r->set_cpuset_cpus("0");
  r->set_memory_limit_in_bytes(64 << 20);
  r->set_memory_swap_limit_in_bytes(128 << 20);
  r->set_oom_score_adj(500);
  auto* h = r->add_hugepage_limits();
  h->set_page_size("2MB");
  h->set_limit(0);
  (*r->mutable_unified())["memory.high"] = "50000000";
  (*config_.mutable_annotations())["io.kubernetes.container.hash"] = "1";

  Spec s = parse(build());
  EXPECT_TRUE(s.process.terminal);
  EXPECT_EQ(s.process.uid, 1000u);
  EXPECT_EQ(s.process.additional_gids, (std::vector<gid_t>{1000, 1234, 50000}));
  EXPECT_TRUE(s.process.no_new_privileges);
  EXPECT_EQ(s.process.oom_score_adj, 500);
  EXPECT_TRUE(s.root_readonly);
  EXPECT_EQ(s.rootfs_propagation, static_cast<unsigned long>(MS_SHARED | MS_REC));
  EXPECT_EQ(parsed_mount(s, "/ro")->rec_attr_set & MOUNT_ATTR_RDONLY, static_cast<uint64_t>(MOUNT_ATTR_RDONLY));
  EXPECT_EQ(parsed_mount(s, "/both")->propagation, static_cast<unsigned long>(MS_SHARED | MS_REC));
  EXPECT_EQ(parsed_mount(s, "/in")->propagation, static_cast<unsigned long>(MS_SLAVE | MS_REC));
  EXPECT_TRUE(parsed_mount(s, "/in")->flags & MS_RDONLY);
  ASSERT_EQ(s.devices.size(), 1u);
  EXPECT_EQ(s.devices[0].major, 10);
  EXPECT_EQ(s.masked_paths, std::vector<std::string>{"/bin/ls"});
  EXPECT_EQ(s.annotations.at("io.kubernetes.cri.sandbox-id"), "sandbox-1");
}

TEST_F(BerthAcceptsTest, PrivilegedWithTheHostsDevices) {
  pod_sc()->set_privileged(true);
  sc()->set_privileged(true);
  opts_.host.devices_at = live_host_access().devices_at;
  Spec s = parse(build());
  EXPECT_EQ(s.seccomp, nullptr);
  EXPECT_FALSE(s.has_namespace(CLONE_NEWCGROUP));
  EXPECT_TRUE(std::any_of(s.devices.begin(), s.devices.end(), [](const DeviceSpec& d) { return d.path == "/dev/null"; }));
}

TEST_F(BerthAcceptsTest, PauseSpec) {
  pod_sc()->set_seccomp_profile_path("docker/default");
  Spec s = parse(build_pause_spec("sandbox-1", sandbox_, rootfs_.path(), opts_));
  EXPECT_EQ(s.process.args, std::vector<std::string>{"/pause"});
  EXPECT_TRUE(s.has_namespace(CLONE_NEWPID));
  EXPECT_TRUE(s.root_readonly);
  ASSERT_NE(s.seccomp, nullptr);
}

TEST_F(BerthAcceptsTest, LocalhostProfile) {
  test_support::TempDir dir("berth-seccomp");
  dir.put("p.json", R"({"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64",
      "subArchitectures":["SCMP_ARCH_X86"]},{"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}],
      "syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"},
                  {"name":"chmod","action":"SCMP_ACT_ERRNO","errnoRet":13,"includes":{"minKernel":"3.0"}}]})");
  sc()->set_seccomp_profile_path("localhost/" + dir.file("p.json"));
  Spec s = parse(build());
  ASSERT_NE(s.seccomp, nullptr);
  EXPECT_EQ(s.seccomp->rules.size(), 2u);
}

TEST(DefaultProfileInBerth, ParsesForEveryCapability) {
  std::vector<std::vector<std::string>> sets = {{}, kDefaultCaps, kAllCaps};
  for (const auto& cap : kAllCaps) sets.push_back({cap});
  for (const auto& caps : sets) {
    json profile = default_seccomp_profile(caps);
    EXPECT_NO_THROW(seccomp::parse(JsonView(profile, "linux.seccomp"))) << caps.size();
  }
}

// Runs checks in a child under the profile; returns the child's exit status, or -1 when
// this machine cannot load a filter.
int under_profile(const std::vector<std::string>& caps, int (*checks)()) {
  json profile = default_seccomp_profile(caps);
  auto parsed = seccomp::parse(JsonView(profile, "linux.seccomp"));
  pid_t pid = ::fork();
  if (pid == 0) {
    try {
      if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(100);
      seccomp::load(*parsed);
    } catch (...) {
      ::_exit(100);
    }
    ::_exit(checks());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) return 200;
  return WEXITSTATUS(status) == 100 ? -1 : WEXITSTATUS(status);
}

// Each failed expectation sets one bit of the exit status.
int check_default_caps() {
  int failed = 0;
  errno = 0;
  if (::syscall(SYS_clone3, nullptr, 0) != -1 || errno != ENOSYS) failed |= 1;  // ENOSYS by the profile
  if (::syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0) != -1 || errno != EPERM) failed |= 2;
  if (::syscall(SYS_unshare, CLONE_NEWUTS) != -1 || errno != EPERM) failed |= 4;
  if (::socket(40 /* AF_VSOCK */, SOCK_STREAM, 0) != -1 || errno != EPERM) failed |= 8;
  if (::syscall(SYS_personality, 0x0040000 /* ADDR_NO_RANDOMIZE */) != -1 || errno != EPERM) failed |= 16;
  if (::syscall(SYS_personality, 0xffffffff) == -1) failed |= 32;  // a query is allowed
  if (::getpid() <= 0 || ::getppid() <= 0) failed |= 64;
  return failed;
}

int check_sys_admin() {
  errno = 0;
  // Allowed by the profile: the kernel itself refuses the bad arguments.
  return ::syscall(SYS_clone3, nullptr, 0) == -1 && errno == ENOSYS ? 1 : 0;
}

TEST(DefaultProfileInBerth, BlocksOnTheRealKernel) {
  int status = under_profile(kDefaultCaps, check_default_caps);
  if (status == -1) GTEST_SKIP() << "this machine cannot load a seccomp filter";
  EXPECT_EQ(status, 0) << "failed checks (bits): " << status;
  std::vector<std::string> admin = kDefaultCaps;
  admin.push_back("CAP_SYS_ADMIN");
  EXPECT_EQ(under_profile(admin, check_sys_admin), 0);
}

} // namespace
} // namespace berth::cri::test
