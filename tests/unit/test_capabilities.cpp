// Capabilities, rlimits, signals and scheduling attributes. Anything that changes the process
// runs in a fork()ed child, so the test binary keeps its own credentials and limits.
#include "runtime/lib/capabilities.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth {
namespace {

// Runs fn in a forked child and returns what it reported: empty on success, else the failure.
std::string in_child(const std::function<std::string()>& fn) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return "pipe2 failed";
  pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::close(fds[0]);
    std::string report;
    try {
      report = fn();
    } catch (const std::exception& e) {
      report = std::string("threw: ") + e.what();
    }
    ssize_t n = ::write(fds[1], report.data(), report.size());
    ::_exit(n == static_cast<ssize_t>(report.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  std::string report;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) report.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return "child died: status " + std::to_string(status) + " " + report;
  return report;
}

// A capability mask line of /proc/self/status ("CapEff"), as the kernel sees it.
uint64_t status_caps(const std::string& field) {
  std::string status = read_file("/proc/self/status");
  auto pos = status.find(field + ":\t");
  if (pos == std::string::npos) return ~uint64_t{0};
  return std::stoull(status.substr(pos + field.size() + 2, 16), nullptr, 16);
}

uint64_t bit(int cap) { return uint64_t{1} << cap; }

std::string hex(uint64_t v) { return fmt::format("{:#x}", v); }

// Parses `text` as the value at `path`, or returns the error message.
template <typename Fn>
std::string parse_error(Fn parse, const std::string& text, const std::string& path) {
  json j = json::parse(text);
  try {
    parse(JsonView(j, path));
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

CapabilitySets caps_from(const std::string& text) {
  json j = json::parse(text);
  return parse_capabilities(JsonView(j, "process.capabilities"));
}

// ---- capabilities ------------------------------------------------------------------------------

TEST(CapNames, LastCapabilityMatchesKernel) {
  std::string text = read_file("/proc/sys/kernel/cap_last_cap");
  EXPECT_EQ(last_capability(), std::stoi(text));
  auto names = all_capability_names();
  ASSERT_FALSE(names.empty());
  EXPECT_LE(static_cast<int>(names.size()), last_capability() + 1);
  EXPECT_EQ(names[0], "CAP_CHOWN");
  EXPECT_EQ(names[CAP_SYS_ADMIN], "CAP_SYS_ADMIN");
}

TEST(CapNames, FromName) {
  EXPECT_EQ(capability_from_name("CAP_NET_ADMIN"), CAP_NET_ADMIN);
  EXPECT_EQ(capability_from_name("NET_ADMIN"), CAP_NET_ADMIN);
  EXPECT_EQ(capability_from_name("cap_net_admin"), CAP_NET_ADMIN);
  EXPECT_EQ(capability_from_name("CAP_CHOWN"), 0);
  EXPECT_EQ(capability_from_name("CAP_FOO"), std::nullopt);
  EXPECT_EQ(capability_from_name("12"), std::nullopt);           // libcap would take a number
  EXPECT_EQ(capability_from_name("CAP_KILL=ep"), std::nullopt);  // ... and trailing text
  EXPECT_EQ(capability_from_name("CAP_"), std::nullopt);
  EXPECT_EQ(capability_from_name(""), std::nullopt);
  for (const auto& name : all_capability_names())
    EXPECT_TRUE(capability_from_name(name).has_value()) << name;
}

TEST(CapParse, AllSets) {
  auto sets = caps_from(R"({
    "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_KILL"],
    "effective": ["CAP_CHOWN"],
    "inheritable": [],
    "permitted": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
    "ambient": ["CAP_NET_BIND_SERVICE"]
  })");
  EXPECT_TRUE(sets.present);
  EXPECT_EQ(sets.bounding, (std::vector<int>{CAP_CHOWN, CAP_KILL})); // sorted, deduplicated
  EXPECT_EQ(sets.effective, (std::vector<int>{CAP_CHOWN}));
  EXPECT_TRUE(sets.inheritable.empty());
  EXPECT_EQ(sets.permitted, (std::vector<int>{CAP_CHOWN, CAP_NET_BIND_SERVICE}));
  EXPECT_EQ(sets.ambient, (std::vector<int>{CAP_NET_BIND_SERVICE}));
}

TEST(CapParse, AbsentAndEmpty) {
  json null;
  EXPECT_FALSE(parse_capabilities(JsonView(null, "process.capabilities")).present);
  auto sets = caps_from("{}");
  EXPECT_TRUE(sets.present);
  EXPECT_TRUE(sets.bounding.empty() && sets.effective.empty() && sets.ambient.empty());
}

TEST(CapParse, Errors) {
  auto err = [](const std::string& text) {
    return parse_error(parse_capabilities, text, "process.capabilities");
  };
  EXPECT_EQ(err(R"({"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_FOO"]})"),
            R"(process.capabilities.bounding[2]: unknown capability "CAP_FOO")");
  EXPECT_EQ(err(R"({"ambient": ["CAP_CHOWN", 7]})"),
            "process.capabilities.ambient[1]: expected a string, got number");
  EXPECT_EQ(err(R"({"effective": "CAP_CHOWN"})"),
            "process.capabilities.effective: expected an array, got string");
  EXPECT_EQ(err(R"(["CAP_CHOWN"])"), "process.capabilities: expected an object, got array");
}

TEST(CapBounding, DropInChild) {
  std::string report = in_child([] {
    uint64_t before = status_caps("CapBnd");
    drop_bounding_set(caps_from(R"({"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETPCAP"]})"));
    uint64_t want = before & (bit(CAP_CHOWN) | bit(CAP_KILL) | bit(CAP_SETPCAP));
    for (int cap = 0; cap <= last_capability(); cap++) {
      int in_bound = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
      if (in_bound != ((want & bit(cap)) ? 1 : 0))
        return fmt::format("PR_CAPBSET_READ({}) = {}", cap, in_bound);
    }
    if (status_caps("CapBnd") != want) return "CapBnd " + hex(status_caps("CapBnd"));
    return std::string();
  });
  EXPECT_EQ(report, "");
}

TEST(CapBounding, AbsentLeavesBoundingAlone) {
  std::string report = in_child([] {
    uint64_t before = status_caps("CapBnd");
    drop_bounding_set(CapabilitySets{});
    apply_capabilities(CapabilitySets{});
    if (status_caps("CapBnd") != before) return std::string("bounding set changed");
    return std::string();
  });
  EXPECT_EQ(report, "");
}

TEST(CapApply, ReducedSet) {
  std::string report = in_child([] {
    apply_capabilities(caps_from(R"({
      "effective": ["CAP_CHOWN", "CAP_KILL"],
      "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID"],
      "inheritable": ["CAP_KILL"]
    })"));
    // capget, the syscall itself, and the kernel's /proc view must agree.
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (::syscall(SYS_capget, &header, data) != 0) return std::string("capget failed");
    uint64_t eff = data[0].effective | uint64_t{data[1].effective} << 32;
    uint64_t prm = data[0].permitted | uint64_t{data[1].permitted} << 32;
    uint64_t inh = data[0].inheritable | uint64_t{data[1].inheritable} << 32;
    if (eff != (bit(CAP_CHOWN) | bit(CAP_KILL))) return "capget effective " + hex(eff);
    if (prm != (bit(CAP_CHOWN) | bit(CAP_KILL) | bit(CAP_SETUID))) return "permitted " + hex(prm);
    if (inh != bit(CAP_KILL)) return "inheritable " + hex(inh);
    if (status_caps("CapEff") != eff) return "CapEff " + hex(status_caps("CapEff"));
    if (status_caps("CapAmb") != 0) return "CapAmb " + hex(status_caps("CapAmb"));
    return std::string();
  });
  EXPECT_EQ(report, "");
}

TEST(CapApply, AmbientRaisedAndReset) {
  std::string report = in_child([] {
    const char* sets = R"({
      "effective": ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
      "permitted": ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
      "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
      "ambient": ["CAP_NET_BIND_SERVICE"]
    })";
    apply_capabilities(caps_from(sets));
    // A stale ambient capability must not survive a second apply: the set is cleared first.
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_RAW, 0, 0) != 0)
      return std::string("could not raise CAP_NET_RAW for the test");
    apply_capabilities(caps_from(sets));
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) != 1)
      return std::string("CAP_NET_BIND_SERVICE not ambient");
    if (status_caps("CapAmb") != bit(CAP_NET_BIND_SERVICE))
      return "CapAmb " + hex(status_caps("CapAmb"));
    return std::string();
  });
  EXPECT_EQ(report, "");
}

// As runc and crun: an ambient capability the kernel refuses (not inheritable) is
// skipped with a warning, and the rest of the sets still apply.
TEST(CapApply, AmbientNotInheritableIsSkipped) {
  std::string report = in_child([] {
    try {
      apply_capabilities(caps_from(R"({
        "effective": ["CAP_NET_RAW"], "permitted": ["CAP_NET_RAW"], "ambient": ["CAP_NET_RAW"]
      })"));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_RAW, 0, 0) != 0) return std::string("raised");
    cap_t now = cap_get_proc();
    cap_flag_value_t v = CAP_CLEAR;
    cap_get_flag(now, CAP_NET_RAW, CAP_EFFECTIVE, &v);
    cap_free(now);
    return std::string(v == CAP_SET ? "" : "effective set not applied");
  });
  EXPECT_EQ(report, "");
}

TEST(CapApply, EffectiveBeyondPermittedFails) {
  std::string report = in_child([] {
    try {
      apply_capabilities(caps_from(R"({"effective": ["CAP_KILL"], "permitted": ["CAP_CHOWN"]})"));
    } catch (const Error& e) {
      if (e.code() != EPERM) return fmt::format("errno {}: {}", e.code(), e.what());
      if (std::string(e.what()).find("capset") == std::string::npos) return std::string(e.what());
      return std::string();
    }
    return std::string("no error");
  });
  EXPECT_EQ(report, "");
}

// ---- rlimits -----------------------------------------------------------------------------------

std::vector<Rlimit> rlimits_from(const std::string& text) {
  json j = json::parse(text);
  return parse_rlimits(JsonView(j, "process.rlimits"));
}

TEST(RlimitParse, Valid) {
  auto limits = rlimits_from(R"([
    {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
    {"type": "RLIMIT_CORE", "soft": 0, "hard": 18446744073709551615},
    {"type": "RLIMIT_RTTIME", "soft": 5, "hard": 5}
  ])");
  ASSERT_EQ(limits.size(), 3u);
  EXPECT_EQ(limits[0].resource, RLIMIT_NOFILE);
  EXPECT_EQ(limits[0].soft, 1024u);
  EXPECT_EQ(limits[0].hard, 4096u);
  EXPECT_EQ(limits[1].resource, RLIMIT_CORE);
  EXPECT_EQ(limits[1].hard, RLIM_INFINITY);
  EXPECT_EQ(limits[2].resource, RLIMIT_RTTIME);
  EXPECT_TRUE(rlimits_from("null").empty());
}

TEST(RlimitParse, AllSixteenTypes) {
  const char* names[] = {"CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE",
                         "MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO",
                         "RTTIME"};
  json j = json::array();
  for (const char* name : names)
    j.push_back({{"type", std::string("RLIMIT_") + name}, {"soft", 1}, {"hard", 2}});
  auto limits = parse_rlimits(JsonView(j, "process.rlimits"));
  ASSERT_EQ(limits.size(), 16u);
  for (int i = 0; i < 16; i++) EXPECT_EQ(limits[i].resource, i) << names[i];
}

TEST(RlimitParse, Errors) {
  auto err = [](const std::string& text) {
    return parse_error(parse_rlimits, text, "process.rlimits");
  };
  EXPECT_EQ(err(R"([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                    {"type": "RLIMIT_FOO", "soft": 1, "hard": 1}])"),
            R"(process.rlimits[1].type: unknown rlimit type "RLIMIT_FOO")");
  EXPECT_EQ(err(R"([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                    {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}])"),
            R"(process.rlimits[1].type: duplicate rlimit type "RLIMIT_NOFILE")");
  EXPECT_EQ(err(R"([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}])"),
            "process.rlimits[0]: RLIMIT_NOFILE soft limit 2048 is greater than hard limit 1024");
  EXPECT_EQ(err(R"([{"type": "RLIMIT_NOFILE", "hard": 1024}])"),
            "process.rlimits[0].soft: expected a non-negative integer, got null");
  EXPECT_EQ(err(R"([{"type": "RLIMIT_NOFILE", "soft": -1, "hard": 1024}])"),
            "process.rlimits[0].soft: expected a non-negative integer, got -1");
  EXPECT_EQ(err(R"({"type": "RLIMIT_NOFILE"})"), "process.rlimits: expected an array, got object");
}

TEST(RlimitApply, LowerNofileSoft) {
  std::string report = in_child([] {
    struct rlimit before;
    ::getrlimit(RLIMIT_NOFILE, &before);
    apply_rlimits({{RLIMIT_NOFILE, 256, before.rlim_max}});
    struct rlimit after;
    ::getrlimit(RLIMIT_NOFILE, &after);
    if (after.rlim_cur != 256 || after.rlim_max != before.rlim_max)
      return fmt::format("got soft {} hard {}", after.rlim_cur, after.rlim_max);
    return std::string();
  });
  EXPECT_EQ(report, "");
}

TEST(RlimitApply, RaisingHardLimitFailsLikeRunc) {
  struct rlimit current;
  ::getrlimit(RLIMIT_NOFILE, &current);
  if (current.rlim_max == RLIM_INFINITY) GTEST_SKIP() << "NOFILE hard limit is unlimited";
  uint64_t target = std::max<uint64_t>(1048576, current.rlim_max + 1);
  std::string report = in_child([target] {
    // Without CAP_SYS_RESOURCE, raising a hard limit is refused even to root.
    auto caps = caps_from("{}");
    for (int cap = 0; cap <= last_capability(); cap++) {
      if (cap == CAP_SYS_RESOURCE || !(status_caps("CapEff") & bit(cap))) continue;
      caps.effective.push_back(cap);
      caps.permitted.push_back(cap);
    }
    apply_capabilities(caps);
    try {
      apply_rlimits({{RLIMIT_NOFILE, target, target}});
    } catch (const Error& e) {
      std::string want = fmt::format(
          "setrlimit RLIMIT_NOFILE (soft {}, hard {}): operation not permitted", target, target);
      if (e.code() != EPERM || e.what() != want) return fmt::format("got {}: {}", e.code(), e.what());
      return std::string();
    }
    return std::string("no error");
  });
  EXPECT_EQ(report, "");
}

// ---- signals -----------------------------------------------------------------------------------

TEST(Signal, Parse) {
  EXPECT_EQ(parse_signal("9"), SIGKILL);
  EXPECT_EQ(parse_signal("KILL"), SIGKILL);
  EXPECT_EQ(parse_signal("SIGKILL"), SIGKILL);
  EXPECT_EQ(parse_signal("sigkill"), SIGKILL);
  EXPECT_EQ(parse_signal("kill"), SIGKILL);
  EXPECT_EQ(parse_signal("SIGTERM"), SIGTERM);
  EXPECT_EQ(parse_signal("SIGCLD"), SIGCHLD);
  EXPECT_EQ(parse_signal("IOT"), SIGABRT);
  EXPECT_EQ(parse_signal("SIGRTMIN"), SIGRTMIN);
  EXPECT_EQ(parse_signal("SIGRTMIN+3"), SIGRTMIN + 3);
  EXPECT_EQ(parse_signal("rtmin+3"), SIGRTMIN + 3);
  EXPECT_EQ(parse_signal("RTMAX-2"), SIGRTMAX - 2);
  EXPECT_EQ(parse_signal("SIGRTMAX"), SIGRTMAX);
  EXPECT_EQ(parse_signal(std::to_string(SIGRTMAX)), SIGRTMAX);
}

TEST(Signal, RejectsUnknownAndOutOfRange) {
  for (const char* bad : {"", "0", "-9", "+9", "9x", "65", "99999999999", "FOO", "SIG", "SIGSIGKILL",
                          "RTMIN+", "RTMIN-1", "RTMAX+1", "RTMIN+31", "RTMAX-31", "RTMIN+x",
                          "RTMIN+-1"})
    EXPECT_EQ(parse_signal(bad), std::nullopt) << '"' << bad << '"';
  EXPECT_EQ(parse_signal(std::to_string(SIGRTMAX + 1)), std::nullopt);
}

TEST(Signal, NamesRoundTrip) {
  EXPECT_EQ(signal_name(SIGKILL), "SIGKILL");
  EXPECT_EQ(signal_name(SIGCHLD), "SIGCHLD");
  EXPECT_EQ(signal_name(SIGABRT), "SIGABRT");
  EXPECT_EQ(signal_name(SIGRTMIN), "SIGRTMIN");
  EXPECT_EQ(signal_name(SIGRTMIN + 3), "SIGRTMIN+3");
  EXPECT_EQ(signal_name(SIGRTMAX - 2), "SIGRTMAX-2");
  EXPECT_EQ(signal_name(SIGRTMAX), "SIGRTMAX");
  for (int sig = 1; sig <= SIGRTMAX; sig++)
    EXPECT_EQ(parse_signal(signal_name(sig)), sig) << signal_name(sig);
}

// ---- scheduler ---------------------------------------------------------------------------------

SchedulerAttrs sched_from(const std::string& text) {
  json j = json::parse(text);
  return parse_scheduler(JsonView(j, "process.scheduler"));
}

TEST(SchedParse, Valid) {
  auto s = sched_from(R"({"policy": "SCHED_BATCH", "nice": 5,
                          "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_KEEP_PARAMS"]})");
  EXPECT_TRUE(s.present);
  EXPECT_EQ(s.policy, "SCHED_BATCH");
  EXPECT_EQ(s.policy_num, SCHED_BATCH);
  EXPECT_EQ(s.nice, 5);
  EXPECT_EQ(s.flags, 0x11u);
  auto rt = sched_from(R"({"policy": "SCHED_FIFO", "priority": 10})");
  EXPECT_EQ(rt.policy_num, SCHED_FIFO);
  EXPECT_EQ(rt.priority, 10u);
  auto dl = sched_from(R"({"policy": "SCHED_DEADLINE", "runtime": 10000000,
                           "deadline": 20000000, "period": 30000000})");
  EXPECT_EQ(dl.policy_num, SCHED_DEADLINE);
  EXPECT_EQ(dl.runtime, 10000000u);
  EXPECT_EQ(dl.period, 30000000u);
  json null;
  EXPECT_FALSE(parse_scheduler(JsonView(null, "process.scheduler")).present);
}

TEST(SchedParse, Errors) {
  auto err = [](const std::string& text) {
    return parse_error(parse_scheduler, text, "process.scheduler");
  };
  EXPECT_EQ(err(R"({"policy": "SCHED_FOO"})"),
            R"(process.scheduler.policy: unknown scheduler policy "SCHED_FOO")");
  EXPECT_EQ(err(R"({"nice": 1})"), "process.scheduler.policy: is required");
  EXPECT_EQ(err(R"({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_RECLAIM", "SCHED_FLAG_X"]})"),
            R"(process.scheduler.flags[1]: unknown scheduler flag "SCHED_FLAG_X")");
  EXPECT_EQ(err(R"({"policy": "SCHED_OTHER", "nice": 20})"),
            "process.scheduler.nice: 20 is outside -20..19");
  EXPECT_EQ(err(R"({"policy": "SCHED_OTHER", "priority": 5})"),
            "process.scheduler.priority: 5 given, but only SCHED_FIFO and SCHED_RR take a priority");
  EXPECT_EQ(err(R"({"policy": "SCHED_RR"})"),
            "process.scheduler.priority: 0 is outside 1..99, as SCHED_RR requires");
  EXPECT_EQ(err(R"({"policy": "SCHED_BATCH", "runtime": 100})"),
            "process.scheduler.runtime: 100 given, but only SCHED_DEADLINE takes it");
  EXPECT_EQ(err(R"({"policy": "SCHED_DEADLINE", "runtime": 100})"),
            "process.scheduler.deadline: SCHED_DEADLINE needs a non-zero deadline");
  EXPECT_EQ(err(R"({"policy": "SCHED_DEADLINE", "runtime": 300, "deadline": 200})"),
            "process.scheduler.runtime: 300 is greater than the deadline 200");
  EXPECT_EQ(err(R"({"policy": "SCHED_DEADLINE", "runtime": 100, "deadline": 200, "period": 150})"),
            "process.scheduler.deadline: 200 is greater than the period 150");
}

TEST(SchedApply, BatchWithNice) {
  std::string report = in_child([] {
    apply_scheduler(sched_from(R"({"policy": "SCHED_BATCH", "nice": 7})"));
    if (::sched_getscheduler(0) != SCHED_BATCH)
      return fmt::format("policy {}", ::sched_getscheduler(0));
    errno = 0;
    int nice = ::getpriority(PRIO_PROCESS, 0);
    if (nice != 7) return fmt::format("nice {}", nice);
    return std::string();
  });
  EXPECT_EQ(report, "");
}

TEST(SchedApply, IdleResetOnFork) {
  std::string report = in_child([] {
    apply_scheduler(sched_from(R"({"policy": "SCHED_IDLE", "flags": ["SCHED_FLAG_RESET_ON_FORK"]})"));
    int policy = ::sched_getscheduler(0);
    if (policy != (SCHED_IDLE | SCHED_RESET_ON_FORK)) return fmt::format("policy {:#x}", policy);
    return std::string();
  });
  EXPECT_EQ(report, "");
}

TEST(SchedApply, FailureNamesPolicy) {
  std::string report = in_child([] {
    try {
      apply_scheduler(sched_from(R"({"policy": "SCHED_ISO"})")); // reserved, never implemented
    } catch (const Error& e) {
      if (std::string(e.what()).find("sched_setattr SCHED_ISO: ") != 0 || e.code() == 0)
        return std::string(e.what());
      return std::string();
    }
    return std::string("no error");
  });
  EXPECT_EQ(report, "");
}

// ---- I/O priority ------------------------------------------------------------------------------

TEST(IoPrioParse, ValidAndErrors) {
  json j = json::parse(R"({"class": "IOPRIO_CLASS_BE", "priority": 4})");
  auto p = parse_io_priority(JsonView(j, "process.ioPriority"));
  EXPECT_TRUE(p.present);
  EXPECT_EQ(p.ioprio_class, 2);
  EXPECT_EQ(p.priority, 4);
  auto err = [](const std::string& text) {
    return parse_error(parse_io_priority, text, "process.ioPriority");
  };
  EXPECT_EQ(err(R"({"class": "IOPRIO_CLASS_FOO", "priority": 1})"),
            R"(process.ioPriority.class: unknown I/O priority class "IOPRIO_CLASS_FOO")");
  EXPECT_EQ(err(R"({"class": "IOPRIO_CLASS_RT", "priority": 8})"),
            "process.ioPriority.priority: 8 is outside 0..7");
  EXPECT_EQ(err(R"({"priority": 1})"), "process.ioPriority.class: is required");
}

TEST(IoPrioApply, BestEffort4) {
  std::string report = in_child([] {
    json j = json::parse(R"({"class": "IOPRIO_CLASS_BE", "priority": 4})");
    apply_io_priority(parse_io_priority(JsonView(j, "process.ioPriority")));
    long got = ::syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0);
    if (got != ((2 << 13) | 4)) return fmt::format("ioprio_get = {:#x}", got);
    return std::string();
  });
  EXPECT_EQ(report, "");
}

// ---- personality -------------------------------------------------------------------------------

TEST(PersonalityParse, ValidAndErrors) {
  json j = json::parse(R"({"domain": "LINUX32", "flags": []})");
  auto p = parse_personality(JsonView(j, "linux.personality"));
  EXPECT_TRUE(p.present);
  EXPECT_EQ(p.domain, static_cast<unsigned long>(PER_LINUX32));
  auto err = [](const std::string& text) {
    return parse_error(parse_personality, text, "linux.personality");
  };
  EXPECT_EQ(err(R"({"domain": "SVR4"})"),
            R"(linux.personality.domain: unknown personality domain "SVR4")");
  EXPECT_EQ(err(R"({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]})"),
            R"(linux.personality.flags[0]: unsupported personality flag "ADDR_NO_RANDOMIZE")");
  EXPECT_EQ(err("{}"), "linux.personality.domain: is required");
}

TEST(PersonalityApply, Linux32) {
  std::string report = in_child([] {
    json j = json::parse(R"({"domain": "LINUX32"})");
    apply_personality(parse_personality(JsonView(j, "linux.personality")));
    int current = ::personality(0xffffffff);
    if ((current & PER_MASK) != PER_LINUX32) return fmt::format("personality {:#x}", current);
    return std::string();
  });
  EXPECT_EQ(report, "");
}

} // namespace
} // namespace berth
