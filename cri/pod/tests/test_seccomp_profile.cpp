// The built-in RuntimeDefault profile, which profile a container gets, and Localhost
// profile files (Docker's format, OCI's, and hostile ones).
#include <sys/stat.h>

#include <set>

#include "cri/pod/seccomp_profile.hpp"
#include "cri/pod/tests/spec_fixture.hpp"
#include "tests/support/temp_dir.hpp"

// critest sends the deprecated seccomp_profile_path.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace berth::cri::test {
namespace {

using Strings = std::vector<std::string>;

// Names allowed unconditionally (rules without args).
std::set<std::string> allowed(const json& profile) {
  std::set<std::string> out;
  for (const auto& rule : profile["syscalls"])
    if (rule["action"] == "SCMP_ACT_ALLOW" && !rule.contains("args"))
      for (const auto& n : rule["names"]) out.insert(n.get<std::string>());
  return out;
}

const json* rule_for(const json& profile, std::string_view name) {
  for (const auto& rule : profile["syscalls"])
    for (const auto& n : rule["names"])
      if (n == name) return &rule;
  return nullptr;
}

TEST(DefaultSeccompProfile, AllowsTheUsualAndDeniesTheRestWithEperm) {
  json p = default_seccomp_profile(kDefaultCaps);
  EXPECT_EQ(p["defaultAction"], "SCMP_ACT_ERRNO");
  EXPECT_FALSE(p.contains("defaultErrnoRet"));  // EPERM
  auto names = allowed(p);
  for (const char* ok : {"read", "write", "openat", "execve", "futex", "epoll_pwait2", "io_uring_setup", "ptrace",
                         "statx", "rseq", "close_range", "faccessat2", "chroot" /* CAP_SYS_CHROOT */})
    EXPECT_TRUE(names.count(ok)) << ok;
  EXPECT_FALSE(names.count("clone3"));  // ENOSYS, below
  // Docker's profile blocks these without CAP_SYS_ADMIN (and keyctl, add_key always).
  for (const char* denied : {"sethostname", "setdomainname", "mount", "umount2", "unshare", "setns", "bpf",
                             "keyctl", "add_key", "request_key", "reboot", "init_module", "kexec_load", "swapon",
                             "open_by_handle_at", "userfaultfd", "perf_event_open", "settimeofday", "acct"})
    EXPECT_EQ(rule_for(p, denied), nullptr) << denied;
#if defined(__x86_64__)
  EXPECT_EQ(p["architectures"], (Strings{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}));
  EXPECT_TRUE(names.count("arch_prctl"));
#endif
  EXPECT_GT(names.size(), 350u);
}

TEST(DefaultSeccompProfile, ArgumentRules) {
  json p = default_seccomp_profile(kDefaultCaps);
  EXPECT_EQ(*rule_for(p, "socket"), json::parse(R"({"names":["socket"],"action":"SCMP_ACT_ALLOW",
                                                      "args":[{"index":0,"value":40,"op":"SCMP_CMP_NE"}]})"));
  std::vector<uint64_t> personas;
  for (const auto& rule : p["syscalls"])
    if (rule["names"][0] == "personality") personas.push_back(rule["args"][0]["value"]);
  EXPECT_EQ(personas, (std::vector<uint64_t>{0, 8, 0x20000, 0x20008, 0xffffffff}));
  const json* clone = rule_for(p, "clone");
  ASSERT_NE(clone, nullptr);
  EXPECT_EQ((*clone)["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
  EXPECT_EQ((*clone)["args"][0]["value"], 0x7E020000u);
  EXPECT_EQ(*rule_for(p, "clone3"),
            json::parse(R"({"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38})"));  // ENOSYS
}

TEST(DefaultSeccompProfile, CapabilitiesWidenIt) {
  Strings caps = kDefaultCaps;
  caps.push_back("CAP_SYS_ADMIN");
  caps.push_back("CAP_SYS_PTRACE");
  caps.push_back("CAP_SYS_TIME");
  json p = default_seccomp_profile(caps);
  auto names = allowed(p);
  for (const char* ok : {"sethostname", "mount", "unshare", "setns", "clone", "clone3", "kcmp", "pidfd_getfd",
                         "settimeofday", "clock_settime"})
    EXPECT_TRUE(names.count(ok)) << ok;
  // With CAP_SYS_ADMIN, clone and clone3 are plain allows: no argument rule, no ENOSYS.
  for (const auto& rule : p["syscalls"])
    EXPECT_FALSE(rule.contains("args") && rule["names"][0] == "clone");
  EXPECT_FALSE(names.count("reboot"));
  EXPECT_TRUE(allowed(default_seccomp_profile({"CAP_SYS_BOOT"})).count("reboot"));
  EXPECT_FALSE(allowed(default_seccomp_profile({})).count("chroot"));
}

class SeccompSelectionTest : public SpecTest {
protected:
  test_support::TempDir dir_{"berth-seccomp"};
  std::string profile_path() {
    dir_.put("block-chmod.json",
             R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO"}]})");
    return dir_.file("block-chmod.json");
  }
  json seccomp() { return build()["linux"].value("seccomp", json()); }
};

TEST_F(SeccompSelectionTest, DeprecatedStrings) {
  EXPECT_TRUE(seccomp().is_null());  // "" is unconfined
  sc()->set_seccomp_profile_path("unconfined");
  EXPECT_TRUE(seccomp().is_null());
  for (const char* name : {"runtime/default", "docker/default"}) {
    sc()->set_seccomp_profile_path(name);
    EXPECT_EQ(seccomp(), default_seccomp_profile(kDefaultCaps)) << name;
  }
  sc()->set_seccomp_profile_path("localhost/" + profile_path());
  EXPECT_EQ(seccomp()["syscalls"][0]["names"], (Strings{"chmod", "fchmodat"}));
  sc()->set_seccomp_profile_path(profile_path());  // critest: a bare path must be rejected
  EXPECT_NE(build_error().find("linux.security_context.seccomp_profile_path: \"" + profile_path() +
                               "\" is not runtime/default, docker/default, unconfined or localhost/<profile>"),
            std::string::npos);
}

TEST_F(SeccompSelectionTest, SecurityProfileMessageWinsOverTheString) {
  sc()->set_seccomp_profile_path("unconfined");
  sc()->mutable_seccomp()->set_profile_type(runtime::v1::SecurityProfile::RuntimeDefault);
  EXPECT_EQ(seccomp()["defaultAction"], "SCMP_ACT_ERRNO");
  // The profile follows the capabilities the container keeps.
  sc()->mutable_capabilities()->add_add_capabilities("SYS_ADMIN");
  EXPECT_NE(rule_for(seccomp(), "sethostname"), nullptr);
  sc()->mutable_seccomp()->set_profile_type(runtime::v1::SecurityProfile::Localhost);
  sc()->mutable_seccomp()->set_localhost_ref(profile_path());
  EXPECT_EQ(seccomp()["defaultAction"], "SCMP_ACT_ALLOW");
  sc()->mutable_seccomp()->set_profile_type(runtime::v1::SecurityProfile::Unconfined);
  EXPECT_NE(build_error().find("linux.security_context.seccomp.localhost_ref: set, but profile_type is not "
                               "Localhost"),
            std::string::npos);
}

TEST_F(SeccompSelectionTest, RelativeRefsResolveUnderTheProfileRoot) {
  opts_.seccomp_profile_root = dir_.path();
  profile_path();
  sc()->mutable_seccomp()->set_profile_type(runtime::v1::SecurityProfile::Localhost);
  sc()->mutable_seccomp()->set_localhost_ref("localhost/block-chmod.json");
  EXPECT_EQ(seccomp()["defaultAction"], "SCMP_ACT_ALLOW");
  sc()->mutable_seccomp()->set_localhost_ref("../etc/passwd");
  EXPECT_NE(build_error().find("seccomp.localhost_ref: \"../etc/passwd\" must stay inside"), std::string::npos);
  sc()->mutable_seccomp()->set_localhost_ref("missing.json");
  std::string err;
  try {
    build();
  } catch (const Error& e) {
    err = e.what();
    EXPECT_EQ(e.code(), ENOENT);
  }
  EXPECT_NE(err.find("linux.security_context.seccomp.localhost_ref: seccomp profile " + dir_.file("missing.json") +
                     ": open: no such file or directory"),
            std::string::npos)
      << err;
}

TEST_F(SeccompSelectionTest, PrivilegedIgnoresTheProfile) {
  pod_sc()->set_privileged(true);
  sc()->set_privileged(true);
  host_.devices["/dev"] = {};
  sc()->set_seccomp_profile_path("localhost/" + profile_path());
  EXPECT_TRUE(seccomp().is_null());
}

class LocalhostProfileTest : public ::testing::Test {
protected:
  test_support::TempDir dir_{"berth-seccomp"};
  json load(const std::string& text, const Strings& caps = kDefaultCaps) {
    dir_.put("p.json", text);
    return load_seccomp_profile(dir_.file("p.json"), caps);
  }
  std::string error(const std::string& text) {
    try {
      load(text);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), EINVAL) << e.what();
      return e.what();
    }
    return "";
  }
};

TEST_F(LocalhostProfileTest, DockerFormatIsAppliedForThisMachine) {
  json p = load(R"({
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [
      {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "basics"},
      {"name": "getpid", "action": "SCMP_ACT_ALLOW"},
      {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
      {"names": ["chmod"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_CHOWN"]}},
      {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
      {"names": ["kexec_load"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
      {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
      {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm", "arm64"]}},
      {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
       "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}]})");
  EXPECT_EQ(p["defaultErrnoRet"], 1);
  Strings names;
  for (const auto& r : p["syscalls"]) names.push_back(r["names"][0]);
#if defined(__x86_64__)
  EXPECT_EQ(p["architectures"], (Strings{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}));
  EXPECT_EQ(names, (Strings{"read", "getpid", "ptrace", "arch_prctl", "personality"}));
#elif defined(__aarch64__)
  EXPECT_EQ(p["architectures"], (Strings{"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"}));
  EXPECT_EQ(names, (Strings{"read", "getpid", "ptrace", "set_tls", "personality"}));
#endif
  EXPECT_EQ(p["syscalls"][0], json::parse(R"({"names":["read","write"],"action":"SCMP_ACT_ALLOW"})"));
  EXPECT_EQ(p["syscalls"].back()["args"], json::parse(R"([{"index":0,"value":8,"valueTwo":0,"op":"SCMP_CMP_EQ"}])"));
  // With CAP_SYS_ADMIN the included rule comes in.
  Strings caps{"CAP_SYS_ADMIN"};
  json admin = load_seccomp_profile(dir_.file("p.json"), caps);
  EXPECT_TRUE(std::any_of(admin["syscalls"].begin(), admin["syscalls"].end(),
                          [](const json& r) { return r["names"][0] == "mount"; }));
  EXPECT_TRUE(std::any_of(admin["syscalls"].begin(), admin["syscalls"].end(),
                          [](const json& r) { return r["names"][0] == "chmod"; }));
}

TEST_F(LocalhostProfileTest, OciFormatPassesThrough) {
  json p = load(R"({"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
                    "flags":["SECCOMP_FILTER_FLAG_LOG"],
                    "syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]})");
  EXPECT_EQ(p, json::parse(R"({"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
      "flags":["SECCOMP_FILTER_FLAG_LOG"],"syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO",
      "errnoRet":1}]})"));
}

TEST_F(LocalhostProfileTest, HostileProfilesAreErrorsNamingTheFileAndField) {
  std::string file = dir_.file("p.json");
  EXPECT_EQ(error(R"({"syscalls":[]})"), "seccomp profile " + file + ": defaultAction: required: invalid argument");
  EXPECT_NE(error(R"({"defaultAction":"SCMP_ACT_NOPE"})").find("defaultAction: unknown action \"SCMP_ACT_NOPE\""),
            std::string::npos);
  EXPECT_NE(error(R"({"defaultAction":1})").find("defaultAction: expected a string, got number"), std::string::npos);
  EXPECT_NE(error(R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":{}})").find("syscalls: expected an array"),
            std::string::npos);
  EXPECT_NE(error(R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":"read","action":"SCMP_ACT_ALLOW"}]})")
                .find("syscalls[0].names: expected an array, got string"),
            std::string::npos);
  EXPECT_NE(error(R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["rm -rf"],"action":"SCMP_ACT_ALLOW"}]})")
                .find("syscalls[0].names[0]: \"rm -rf\" is not a syscall name"),
            std::string::npos);
  EXPECT_NE(error(R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[],"action":"SCMP_ACT_ALLOW"}]})")
                .find("syscalls[0].names: must name at least one syscall"),
            std::string::npos);
  EXPECT_NE(error(R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]})")
                .find("has both \"name\" and \"names\""),
            std::string::npos);
  EXPECT_NE(error(R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW",
                      "args":[{"index":6,"value":0,"op":"SCMP_CMP_EQ"}]}]})")
                .find("syscalls[0].args[0].index: 6 is out of range (0-5)"),
            std::string::npos);
  EXPECT_NE(error(R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW",
                      "args":[{"index":0,"value":-1,"op":"SCMP_CMP_EQ"}]}]})")
                .find("syscalls[0].args[0].value: expected a non-negative integer"),
            std::string::npos);
  EXPECT_NE(error(R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW",
                      "includes":{"minKernel":"new"}}]})")
                .find("syscalls[0].includes.minKernel: \"new\" is not a kernel version"),
            std::string::npos);
  EXPECT_NE(error(R"({"defaultAction":"SCMP_ACT_ALLOW","architectures":["x86"]})")
                .find("architectures[0]: \"x86\" is not an architecture"),
            std::string::npos);
  EXPECT_NE(error(R"({"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],
                      "archMap":[{"architecture":"SCMP_ARCH_X86_64"}]})")
                .find("has both \"architectures\" and \"archMap\""),
            std::string::npos);
  EXPECT_NE(error("[]").find("expected an object, got array"), std::string::npos);
  EXPECT_NE(error("{").find("invalid JSON"), std::string::npos);
  EXPECT_NE(error(std::string(5000, '[') + std::string(5000, ']')).find("nested deeper than 16 levels"),
            std::string::npos);
  EXPECT_NE(error(R"({"defaultAction":"SCMP_ACT_ALLOW","x":")" + std::string(2 << 20, 'a') + "\"}")
                .find("bytes, at most 1048576 are accepted"),
            std::string::npos);
}

TEST_F(LocalhostProfileTest, OnlyRegularFilesAreRead) {
  std::string fifo = dir_.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string err;
  try {
    load_seccomp_profile(fifo, {});  // must not block on the FIFO
  } catch (const Error& e) {
    err = e.what();
  }
  EXPECT_NE(err.find("seccomp profile " + fifo + ": not a regular file"), std::string::npos) << err;
  EXPECT_THROW(load_seccomp_profile(dir_.path(), {}), Error);
}

} // namespace
} // namespace berth::cri::test
