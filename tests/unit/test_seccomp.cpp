// seccomp: parse-time validation, and filters loaded for real into fork()ed
// children (root, real kernel). A child reports through its exit status.
#include "runtime/lib/seccomp.hpp"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <seccomp.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "common/error.hpp"

namespace berth::seccomp {
namespace {

std::unique_ptr<Profile> parse_json(const json& j) { return parse(JsonView(j, "linux.seccomp")); }
std::unique_ptr<Profile> parse_text(std::string_view text) { return parse_json(json::parse(text)); }

std::string parse_error(std::string_view text) {
  try {
    parse_text(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Runs fn in a fork()ed child; returns its exit code, or 128+signal.
// 254 means fn threw (the message goes to stderr).
int run_in_child(const std::function<int()>& fn) {
  fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int code = 254;
    try {
      code = fn();
    } catch (const std::exception& e) {
      fprintf(stderr, "child: %s\n", e.what());
    }
    _exit(code);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// no_new_privs first, as the runtime does, then the filter.
int load_in_child(const Profile& profile) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 253;
  return load(profile);
}

// errno of a raw syscall, 0 when it succeeded.
template <typename... A>
int errno_of(long nr, A... args) {
  errno = 0;
  return syscall(nr, args...) < 0 ? errno : 0;
}

TEST(SeccompParse, AbsentIsNull) {
  json j = json::parse(R"({"linux": {}})");
  EXPECT_EQ(parse(JsonView(j, "")["linux"]["seccomp"]), nullptr);
  EXPECT_EQ(parse_json(json()), nullptr);
}

TEST(SeccompParse, FoldsErrnoIntoActions) {
  auto p = parse_text(R"({
    "defaultAction": "SCMP_ACT_ERRNO",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X86"],
    "syscalls": [
      {"names": ["uname", "getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
      {"names": ["mount"], "action": "SCMP_ACT_TRACE"},
      {"names": ["umount2"], "action": "SCMP_ACT_KILL"},
      {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
       "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 7, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]}
    ]})");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->default_action, SCMP_ACT_ERRNO(EPERM)); // EPERM when defaultErrnoRet is absent
  EXPECT_EQ(p->architectures, (std::vector<uint32_t>{SCMP_ARCH_X86_64, SCMP_ARCH_X86}));
  ASSERT_EQ(p->rules.size(), 4u);
  EXPECT_EQ(p->rules[0].action, SCMP_ACT_ERRNO(38));
  EXPECT_EQ(p->rules[0].names, (std::vector<std::string>{"uname", "getcwd"}));
  EXPECT_EQ(p->rules[0].syscalls, (std::vector<int>{SYS_uname, SYS_getcwd}));
  EXPECT_EQ(p->rules[1].action, SCMP_ACT_TRACE(EPERM));
  EXPECT_EQ(p->rules[2].action, SCMP_ACT_KILL_THREAD);
  ASSERT_EQ(p->rules[3].args.size(), 2u);
  EXPECT_EQ(p->rules[3].args[0].value, 0xffffffffu);
  EXPECT_EQ(p->rules[3].args[1].op, SCMP_CMP_MASKED_EQ);
  EXPECT_EQ(p->rules[3].args[1].value_two, 3u);
  EXPECT_FALSE(p->uses_notify);

  p = parse_text(R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38})");
  EXPECT_EQ(p->default_action, SCMP_ACT_ERRNO(38));
}

TEST(SeccompParse, ErrorsNameTheField) {
  struct Case {
    const char* json;
    const char* error;
  };
  const Case cases[] = {
      {R"([])", "linux.seccomp: expected an object, got array"},
      {R"({})", "linux.seccomp.defaultAction: required field is missing"},
      {R"({"defaultAction": 1})", "linux.seccomp.defaultAction: expected a string, got number"},
      {R"({"defaultAction": "SCMP_ACT_NOPE"})",
       R"(linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE")"},
      {R"({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/a.sock"})",
       "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used as the default action"},
      {R"({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1})",
       "linux.seccomp.defaultErrnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, "
       "not SCMP_ACT_KILL"},
      {R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1})",
       "linux.seccomp.defaultErrnoRet: expected a non-negative integer, got -1"},
      {R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000})",
       "linux.seccomp.defaultErrnoRet: 70000 is out of range (0-65535)"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]})",
       R"(linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_Z80")"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "architectures": "SCMP_ARCH_X86_64"})",
       "linux.seccomp.architectures: expected an array, got string"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]})",
       R"(linux.seccomp.flags[0]: unknown seccomp flag "SECCOMP_FILTER_FLAG_FAST")"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "run/agent.sock"})",
       R"(linux.seccomp.listenerPath: "run/agent.sock" is not an absolute path)"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}})",
       "linux.seccomp.syscalls: expected an array, got object"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"]}]})",
       "linux.seccomp.syscalls[0].action: required field is missing"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "KILL"}]})",
       R"(linux.seccomp.syscalls[0].action: unknown action "KILL")"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_KILL"}]})",
       "linux.seccomp.syscalls[0].names: required field is missing"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_KILL"}]})",
       "linux.seccomp.syscalls[0].names: must name at least one syscall"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname", 3], "action": "SCMP_ACT_KILL"}]})",
       "linux.seccomp.syscalls[0].names[1]: expected a string, got number"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
          {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
          {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
          {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
          {"names": ["uname", "foo"], "action": "SCMP_ACT_KILL"}]})",
       R"(linux.seccomp.syscalls[3].names[1]: unknown syscall "foo")"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
          {"names": ["uname"], "action": "SCMP_ACT_LOG", "errnoRet": 1}]})",
       "linux.seccomp.syscalls[0].errnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, "
       "not SCMP_ACT_LOG"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
          {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": "EPERM"}]})",
       "linux.seccomp.syscalls[0].errnoRet: expected a non-negative integer, got string"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL",
          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]})",
       "linux.seccomp.syscalls[0].args[0].index: 6 is out of range (0-5)"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL",
          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 1, "op": "EQ"}]}]})",
       R"(linux.seccomp.syscalls[0].args[1].op: unknown operator "EQ")"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL",
          "args": [{"index": 0, "value": -5, "op": "SCMP_CMP_EQ"}]}]})",
       "linux.seccomp.syscalls[0].args[0].value: expected a non-negative integer, got -5"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL",
          "args": [{"index": 0, "op": "SCMP_CMP_EQ"}]}]})",
       "linux.seccomp.syscalls[0].args[0].value: required field is missing"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
          {"names": ["uname"], "action": "SCMP_ACT_ERRNO"},
          {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})",
       "linux.seccomp.listenerPath: seccomp listenerPath is not set, but linux.seccomp.syscalls[1] "
       "uses SCMP_ACT_NOTIFY"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock", "syscalls": [
          {"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]})",
       "linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for the write syscall"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": 5})",
       "linux.seccomp.listenerMetadata: expected a string, got number"},
  };
  for (const auto& c : cases) EXPECT_EQ(parse_error(c.json), c.error) << c.json;
}

TEST(SeccompParse, ResolvesNamesOnProfileArchitectures) {
  // socketcall and arch_prctl do not exist on every architecture; libseccomp
  // still knows them (pseudo numbers) and translates at load.
  auto p = parse_text(R"({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
    "syscalls": [{"names": ["socketcall", "arch_prctl", "_llseek"], "action": "SCMP_ACT_ERRNO"}]})");
  EXPECT_EQ(p->rules[0].names.size(), 3u);
}

TEST(SeccompParse, SkipsSyscallsNewerThanLibseccomp) {
  // Docker's current default profile lists these; libseccomp 2.5 does not know
  // them. runc/crun skip them, so do we (typos still fail, see above).
  auto p = parse_text(R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
    {"names": ["read", "mseal", "listmount", "write"], "action": "SCMP_ACT_ALLOW"}]})");
  size_t known = 2; // a newer libseccomp knows them and keeps them
  for (const char* name : {"mseal", "listmount"}) known += seccomp_syscall_resolve_name(name) != __NR_SCMP_ERROR;
  const auto& names = p->rules[0].names;
  EXPECT_EQ(names.size(), known);
  EXPECT_EQ(names.front(), "read");
  EXPECT_EQ(names.back(), "write");
  EXPECT_EQ(p->rules[0].syscalls.size(), names.size());
}

TEST(SeccompParse, Flags) {
  auto p = parse_text(R"({"defaultAction": "SCMP_ACT_ALLOW",
    "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"]})");
  EXPECT_EQ(p->flags.size(), 3u);
  auto supported = supported_flags();
  bool killable = std::ranges::find(supported, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") != supported.end();
  auto error = parse_error(
      R"({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]})");
  if (killable)
    EXPECT_EQ(error, "(no error)");
  else
    EXPECT_TRUE(error.starts_with("linux.seccomp.flags[0]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ")) << error;
}

TEST(SeccompFeatures, Lists) {
  auto actions = known_actions();
  EXPECT_EQ(actions.size(), 9u);
  EXPECT_NE(std::ranges::find(actions, "SCMP_ACT_KILL_PROCESS"), actions.end());
  EXPECT_NE(std::ranges::find(actions, "SCMP_ACT_NOTIFY"), actions.end());
  EXPECT_EQ(known_operators().size(), 7u);
  auto archs = known_archs();
  for (const char* arch : {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
                           "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390X",
                           "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64"})
    EXPECT_NE(std::ranges::find(archs, arch), archs.end()) << arch;
  EXPECT_EQ(known_flags().size(), 4u);
  auto supported = supported_flags();
  // Every kernel since 4.17 has these three.
  for (const char* flag :
       {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"})
    EXPECT_NE(std::ranges::find(supported, flag), supported.end()) << flag;
#if SCMP_VER_MAJOR == 2 && SCMP_VER_MINOR < 6
  EXPECT_EQ(std::ranges::find(supported, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"), supported.end());
#endif
}

TEST(SeccompLoad, ErrnoRuleUnderDefaultAllow) {
  auto p = parse_text(R"({"defaultAction": "SCMP_ACT_ALLOW",
    "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
    "syscalls": [
      {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
      {"names": ["uname", "getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]})");
  char buf[4096];
  EXPECT_EQ(run_in_child([&] { return load_in_child(*p) == -1 ? errno_of(SYS_uname, buf) : 100; }), ENOSYS);
  EXPECT_EQ(run_in_child([&] { return load_in_child(*p) == -1 ? errno_of(SYS_getcwd, buf, sizeof buf) : 100; }),
            ENOSYS);
  // The rule repeating the default action was skipped, not rejected, and the
  // default still applies.
  EXPECT_EQ(run_in_child([&] { return load_in_child(*p) == -1 ? errno_of(SYS_getpid) : 100; }), 0);
}

TEST(SeccompLoad, DefaultErrnoRet) {
  auto p = parse_text(R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 95,
    "syscalls": [{"names": ["exit", "exit_group", "brk", "mmap", "munmap", "futex", "write"],
                  "action": "SCMP_ACT_ALLOW"}]})");
  EXPECT_EQ(run_in_child([&] { return load_in_child(*p) == -1 ? errno_of(SYS_getppid) : 100; }), EOPNOTSUPP);
}

TEST(SeccompLoad, ArgConditions) {
  auto p = parse_text(R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
     "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
    {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 14,
     "args": [{"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
    {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 15,
     "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
              {"index": 1, "value": 15, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"}]}]})");
  auto status = run_in_child([&] {
    if (load_in_child(*p) != -1) return 100;
    if (errno_of(SYS_personality, 0xffffffffUL) != EACCES) return 1; // the value matches: denied
    if (errno_of(SYS_personality, 0UL) != 0) return 2;                // any other: allowed
    // Two conditions on one argument: one rule each, so either value matches.
    if (errno_of(SYS_getpriority, 7, 0) != EFAULT) return 3;
    if (errno_of(SYS_getpriority, 8, 0) != EFAULT) return 4;
    if (errno_of(SYS_getpriority, 9, 0) == EFAULT) return 5;
    // Conditions on different arguments are ANDed: only AF_UNIX datagram sockets.
    if (errno_of(SYS_socket, AF_UNIX, SOCK_DGRAM, 0) != 15) return 6;
    if (errno_of(SYS_socket, AF_UNIX, SOCK_STREAM, 0) != 0) return 7;
    if (errno_of(SYS_socket, AF_INET, SOCK_DGRAM, 0) == 15) return 8;
    return 0;
  });
  EXPECT_EQ(status, 0);
}

TEST(SeccompLoad, NotifyReturnsListenerFd) {
  auto p = parse_text(R"({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
    "listenerMetadata": "meta", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]})");
  ASSERT_TRUE(p->uses_notify);
  EXPECT_EQ(p->listener_metadata, "meta");
  auto status = run_in_child([&] {
    int fd = load_in_child(*p);
    if (fd < 0) return 1;
    char target[64] = {};
    auto link = "/proc/self/fd/" + std::to_string(fd);
    if (readlink(link.c_str(), target, sizeof target - 1) < 0) return 2;
    if (std::string(target) != "anon_inode:seccomp notify") return 3;
    // With the listener gone the kernel fails notified syscalls with ENOSYS.
    close(fd);
    return errno_of(SYS_getppid) == ENOSYS ? 0 : 4;
  });
  EXPECT_EQ(status, 0);
}

TEST(SeccompLoad, LoadErrorsCarryErrnoAndContext) {
  Profile profile;
  profile.default_action = SCMP_ACT_ALLOW;
  profile.rules.push_back({{"getpid"}, {}, 0x12345678u, {}}); // not an action
  auto status = run_in_child([&] {
    try {
      load(profile);
    } catch (const Error& e) {
      return e.code() == EINVAL && e.message() == R"(seccomp: add rule for "getpid")" ? 0 : 1;
    }
    return 2;
  });
  EXPECT_EQ(status, 0);
}

// ~300 allowed syscalls, like podman's and Docker's default profiles.
json large_profile() {
  json names = json::array();
  for (int nr = 0; nr < 1024; nr++) {
    char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    if (!name) continue;
    if (std::string_view(name) != "acct" && std::string_view(name) != "personality") names.push_back(name);
    free(name);
  }
  json profile = {{"defaultAction", "SCMP_ACT_ERRNO"}, {"defaultErrnoRet", 38}};
  if (seccomp_arch_native() == SCMP_ARCH_X86_64)
    profile["architectures"] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
  json syscalls = json::array();
  syscalls.push_back({{"names", names}, {"action", "SCMP_ACT_ALLOW"}});
  for (uint64_t persona : {0ul, 8ul, 0x20000ul, 0x20008ul, 0xfffffffful})
    syscalls.push_back({{"names", {"personality"}}, {"action", "SCMP_ACT_ALLOW"},
                        {"args", {{{"index", 0}, {"value", persona}, {"op", "SCMP_CMP_EQ"}}}}});
  syscalls.push_back({{"names", {"socketcall", "_llseek", "mmap2"}}, {"action", "SCMP_ACT_ALLOW"}});
  profile["syscalls"] = syscalls;
  return profile;
}

TEST(SeccompLoad, LargeProfile) {
  json j = large_profile();
  ASSERT_GE(j["syscalls"][0]["names"].size(), 300u);

  constexpr int kRounds = 200;
  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<Profile> p;
  for (int i = 0; i < kRounds; i++) p = parse_json(j);
  auto per_parse = (std::chrono::steady_clock::now() - start) / kRounds;
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(per_parse).count();
  RecordProperty("parse_us", static_cast<int>(micros));
  EXPECT_LT(micros, 5000) << "parse of a " << j["syscalls"][0]["names"].size() << "-name profile";

  auto status = run_in_child([&] {
    if (load_in_child(*p) != -1) return 100;
    if (errno_of(SYS_getpid) != 0) return 1;
    if (errno_of(SYS_acct, nullptr) != ENOSYS) return 2; // not listed: default action
    if (errno_of(SYS_personality, 0xffffffffUL) != 0) return 3;
    if (errno_of(SYS_personality, 0x1234UL) != ENOSYS) return 4;
    return 0;
  });
  EXPECT_EQ(status, 0);
}

} // namespace
} // namespace berth::seccomp
