#include "runtime/lib/capabilities.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <memory>
#include <span>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/log.hpp"

namespace berth {
namespace {

// ---- small helpers ---------------------------------------------------------------------------

struct NamedValue {
  std::string_view name;
  int value;
};

char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::optional<int> find_value(std::span<const NamedValue> table, std::string_view name) {
  for (const auto& entry : table)
    if (entry.name == name) return entry.value;
  return std::nullopt;
}

std::string_view find_name(std::span<const NamedValue> table, int value) {
  for (const auto& entry : table)
    if (entry.value == value) return entry.name;
  return "?";
}

// A whole string of decimal digits; nullopt on anything else (sign, junk, overflow).
std::optional<int> parse_decimal(std::string_view s) {
  int value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || s[0] == '-' || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

// The string value of v without copying it; fails naming v when it is not a string.
std::string_view string_of(const JsonView& v) {
  if (!v.raw().is_string()) v.bad(fmt::format("expected a string, got {}", json_type_name(v.raw())));
  return v.raw().get_ref<const std::string&>();
}

void expect_array(const JsonView& v) {
  if (!v.raw().is_array()) v.bad(fmt::format("expected an array, got {}", json_type_name(v.raw())));
}

// ---- capability names ------------------------------------------------------------------------

// capset() carries two 32-bit words per set, so capability numbers fit a 64-bit mask.
constexpr int kMaxCapabilities = 64;
using CapMask = uint64_t;

constexpr CapMask cap_bit(int cap) { return CapMask{1} << cap; }

CapMask mask_of(const std::vector<int>& caps) {
  CapMask mask = 0;
  for (int cap : caps) mask |= cap_bit(cap);
  return mask;
}

// "CAP_CHOWN"... for every capability libcap knows, whether or not the running kernel does,
// so that a name the kernel lacks is told apart from a misspelt one.
struct CapabilityNames {
  std::array<std::string, kMaxCapabilities> names;
  int count = 0;
};

const CapabilityNames& capability_names() {
  static const CapabilityNames table = [] {
    CapabilityNames t;
    for (; t.count < kMaxCapabilities; t.count++) {
      char* name = cap_to_name(t.count);
      // libcap spells capabilities it has no name for as plain numbers.
      bool named = name != nullptr && name[0] >= 'a' && name[0] <= 'z';
      if (named) {
        std::string& upper = t.names[t.count];
        upper = name;
        for (char& c : upper) c = ascii_upper(c);
      }
      cap_free(name);
      if (!named) break;
    }
    return t;
  }();
  return table;
}

// For messages only: "CAP_CHOWN", or "capability 41" when libcap has no name for it.
std::string capability_label(int cap) {
  const auto& table = capability_names();
  if (cap >= 0 && cap < table.count) return table.names[cap];
  return fmt::format("capability {}", cap);
}

int read_last_capability() {
  UniqueFd fd(::open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC));
  if (fd) {
    char buf[16];
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    std::string_view text(buf, n > 0 ? static_cast<size_t>(n) : 0);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    if (auto last = parse_decimal(text)) return std::min(*last, kMaxCapabilities - 1);
  }
  // Without /proc, fall back to libcap's own probe of the bounding set at load time.
  return std::min(static_cast<int>(cap_max_bits()) - 1, kMaxCapabilities - 1);
}

std::vector<int> caps_in(CapMask mask) {
  std::vector<int> caps;
  caps.reserve(static_cast<size_t>(std::popcount(mask)));
  for (int cap = 0; cap < kMaxCapabilities; cap++)
    if (mask & cap_bit(cap)) caps.push_back(cap);
  return caps;
}

// One of the five arrays; duplicates collapse, the result is in ascending order.
std::vector<int> parse_capability_list(const JsonView& list) {
  if (!list.present()) return {};
  expect_array(list);
  CapMask mask = 0;
  for (size_t i = 0; i < list.size(); i++) {
    const json& item = list.raw()[i];
    if (!item.is_string()) list.at(i).bad(fmt::format("expected a string, got {}", json_type_name(item)));
    const std::string& name = item.get_ref<const std::string&>();
    auto cap = capability_from_name(name);
    if (!cap) list.at(i).bad(fmt::format("unknown capability \"{}\"", name));
    if (*cap > last_capability()) {
      // As runc: a spec written for a newer kernel still runs, without that capability.
      log::warn("{}[{}]: ignoring capability {}: not supported by the running kernel", list.path(),
                i, name);
      continue;
    }
    mask |= cap_bit(*cap);
  }
  return caps_in(mask);
}

struct CapFree {
  void operator()(void* p) const { cap_free(p); }
};
using CapState = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;

void set_flag(const CapState& state, cap_flag_t flag, const std::vector<int>& caps) {
  if (caps.empty()) return;
  if (cap_set_flag(state.get(), flag, static_cast<int>(caps.size()), caps.data(), CAP_SET) != 0)
    fail_errno("prepare capability state");
}

void set_ambient(const std::vector<int>& ambient) {
  // One prctl, where libcap's cap_reset_ambient() first probes every capability.
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    if (errno != EINVAL) fail_errno("clear the ambient capability set");
    // Kernels before 4.3 have no ambient set and answer EINVAL to every PR_CAP_AMBIENT.
    if (!ambient.empty())
      log::warn("ignoring process.capabilities.ambient: the kernel has no ambient capabilities");
    return;
  }
  for (int cap : ambient) {
    if (cap_set_ambient(cap, CAP_SET) == 0) continue;
    int err = errno; // before capability_label() can allocate
    // runc and crun ignore an ambient capability the kernel refuses (not permitted and
    // inheritable), and `runc spec` configs ask for exactly that: warn, do not fail.
    if (err == EPERM) {
      log::warn("ambient capability {} not raised: it must be permitted and inheritable", capability_label(cap));
      continue;
    }
    fail_code(err, "raise ambient capability {}", capability_label(cap));
  }
}

// ---- rlimits, signals, scheduling tables -----------------------------------------------------

constexpr NamedValue kRlimits[] = {
    {"RLIMIT_CPU", RLIMIT_CPU},       {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_DATA", RLIMIT_DATA},     {"RLIMIT_STACK", RLIMIT_STACK},
    {"RLIMIT_CORE", RLIMIT_CORE},     {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_NPROC", RLIMIT_NPROC},   {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},   {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO}, {"RLIMIT_RTTIME", RLIMIT_RTTIME},
};

// Canonical names first: signal_name() answers with the first match.
constexpr NamedValue kSignals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},       {"QUIT", SIGQUIT},   {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT},     {"BUS", SIGBUS},     {"FPE", SIGFPE},
    {"KILL", SIGKILL},     {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE},     {"ALRM", SIGALRM},     {"TERM", SIGTERM},   {"STKFLT", SIGSTKFLT},
    {"CHLD", SIGCHLD},     {"CONT", SIGCONT},     {"STOP", SIGSTOP},   {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU},     {"URG", SIGURG},     {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ},     {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},   {"WINCH", SIGWINCH},
    {"IO", SIGIO},         {"PWR", SIGPWR},       {"SYS", SIGSYS},
    {"IOT", SIGIOT},       {"CLD", SIGCHLD},      {"POLL", SIGPOLL},
};

constexpr NamedValue kSchedPolicies[] = {
    {"SCHED_OTHER", SCHED_OTHER}, {"SCHED_FIFO", SCHED_FIFO},   {"SCHED_RR", SCHED_RR},
    {"SCHED_BATCH", SCHED_BATCH}, {"SCHED_ISO", SCHED_ISO},     {"SCHED_IDLE", SCHED_IDLE},
    {"SCHED_DEADLINE", SCHED_DEADLINE},
};

// Values from <linux/sched.h>, which clashes with glibc's <sched.h>.
constexpr uint64_t kSchedFlagUtilClampMin = 0x20;
constexpr uint64_t kSchedFlagUtilClampMax = 0x40;
constexpr NamedValue kSchedFlags[] = {
    {"SCHED_FLAG_RESET_ON_FORK", 0x01}, {"SCHED_FLAG_RECLAIM", 0x02},
    {"SCHED_FLAG_DL_OVERRUN", 0x04},    {"SCHED_FLAG_KEEP_POLICY", 0x08},
    {"SCHED_FLAG_KEEP_PARAMS", 0x10},   {"SCHED_FLAG_UTIL_CLAMP_MIN", kSchedFlagUtilClampMin},
    {"SCHED_FLAG_UTIL_CLAMP_MAX", kSchedFlagUtilClampMax},
};

// struct sched_attr (SCHED_ATTR_SIZE_VER1); glibc 2.36 declares neither it nor sched_setattr.
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};
static_assert(sizeof(SchedAttr) == 56);

// From <linux/ioprio.h>.
constexpr int kIoprioWhoProcess = 1;
constexpr int kIoprioClassShift = 13;
constexpr NamedValue kIoprioClasses[] = {
    {"IOPRIO_CLASS_RT", 1}, {"IOPRIO_CLASS_BE", 2}, {"IOPRIO_CLASS_IDLE", 3}};

constexpr NamedValue kPersonalityDomains[] = {{"LINUX", PER_LINUX}, {"LINUX32", PER_LINUX32}};

} // namespace

// ---- capabilities ------------------------------------------------------------------------------

int last_capability() {
  // Read once: later callers run after pivot_root, where /proc may be missing.
  static const int last = read_last_capability();
  return last;
}

std::optional<int> capability_from_name(std::string_view name) {
  // libcap's cap_from_name() also takes numbers and trailing junk ("cap_kill=x"), so match
  // whole names here, case-insensitively as libcap does.
  if (istarts_with(name, "CAP_")) name.remove_prefix(4);
  const auto& table = capability_names();
  // Specs spell names in upper case: try the exact match before the case-insensitive one.
  for (int cap = 0; cap < table.count; cap++)
    if (std::string_view(table.names[cap]).substr(4) == name) return cap;
  for (int cap = 0; cap < table.count; cap++)
    if (iequals(std::string_view(table.names[cap]).substr(4), name)) return cap;
  return std::nullopt;
}

std::vector<std::string> all_capability_names() {
  const auto& table = capability_names();
  int count = std::min(table.count, last_capability() + 1);
  return {table.names.begin(), table.names.begin() + count};
}

CapabilitySets parse_capabilities(const JsonView& caps) {
  CapabilitySets sets;
  if (!caps.present()) return sets;
  caps.expect_object();
  sets.present = true;
  sets.bounding = parse_capability_list(caps["bounding"]);
  sets.effective = parse_capability_list(caps["effective"]);
  sets.inheritable = parse_capability_list(caps["inheritable"]);
  sets.permitted = parse_capability_list(caps["permitted"]);
  sets.ambient = parse_capability_list(caps["ambient"]);
  return sets;
}

// Why capset refused: a process cannot gain permitted capabilities it does not have
// (e.g. root whose bounding set lacks one). Names them for the error ("" if none).
static std::string missing_capabilities_hint(const CapabilitySets& sets) {
  CapState own(cap_get_proc());
  if (!own) return "";
  std::string names;
  for (int cap : sets.permitted) {
    cap_flag_value_t have = CAP_CLEAR;
    if (cap_get_flag(own.get(), static_cast<cap_value_t>(cap), CAP_PERMITTED, &have) == 0 && have == CAP_SET) continue;
    names += (names.empty() ? "" : ", ") + capability_label(cap);
  }
  return names.empty() ? "" : fmt::format(": the runtime itself does not have {}", names);
}

void drop_bounding_set(const CapabilitySets& sets) {
  if (!sets.present) return;
  CapMask keep = mask_of(sets.bounding);
  for (int cap = 0; cap <= last_capability(); cap++) {
    // Skip what is already gone: PR_CAPBSET_DROP needs CAP_SETPCAP even when it is a no-op.
    if (keep & cap_bit(cap) || cap_get_bound(cap) == 0) continue;
    if (cap_drop_bound(cap) != 0) {
      int err = errno; // before capability_label() can allocate
      fail_code(err, "drop {} from the bounding set", capability_label(cap));
    }
  }
}

void apply_capabilities(const CapabilitySets& sets) {
  if (!sets.present) return;
  CapState state(cap_init()); // all three sets start empty
  if (!state) fail_errno("allocate capability state");
  set_flag(state, CAP_EFFECTIVE, sets.effective);
  set_flag(state, CAP_PERMITTED, sets.permitted);
  set_flag(state, CAP_INHERITABLE, sets.inheritable);
  if (cap_set_proc(state.get()) != 0) {
    int err = errno;
    fail_code(err, "capset (effective, permitted, inheritable){}", missing_capabilities_hint(sets));
  }
  set_ambient(sets.ambient);
}

// ---- rlimits -----------------------------------------------------------------------------------

std::vector<Rlimit> parse_rlimits(const JsonView& rlimits) {
  std::vector<Rlimit> limits;
  if (!rlimits.present()) return limits;
  expect_array(rlimits);
  limits.reserve(rlimits.size());
  uint32_t seen = 0; // bit per resource
  for (size_t i = 0; i < rlimits.size(); i++) {
    JsonView entry = rlimits.at(i);
    entry.expect_object();
    JsonView type = entry["type"];
    std::string_view name = string_of(type);
    auto resource = find_value(kRlimits, name);
    if (!resource) type.bad(fmt::format("unknown rlimit type \"{}\"", name));
    if (seen & (1u << *resource)) type.bad(fmt::format("duplicate rlimit type \"{}\"", name));
    seen |= 1u << *resource;
    uint64_t soft = entry["soft"].as_uint();
    uint64_t hard = entry["hard"].as_uint();
    if (soft > hard)
      entry.bad(fmt::format("{} soft limit {} is greater than hard limit {}", name, soft, hard));
    limits.push_back({*resource, soft, hard});
  }
  return limits;
}

void apply_rlimits(const std::vector<Rlimit>& limits) {
  for (const auto& limit : limits) {
    struct rlimit rl = {static_cast<rlim_t>(limit.soft), static_cast<rlim_t>(limit.hard)};
    if (::setrlimit(static_cast<__rlimit_resource_t>(limit.resource), &rl) != 0)
      fail_errno("setrlimit {} (soft {}, hard {})", find_name(kRlimits, limit.resource), limit.soft,
                 limit.hard);
  }
}

// ---- signals -----------------------------------------------------------------------------------

std::optional<int> parse_signal(std::string_view s) {
  auto in_range = [](int sig) -> std::optional<int> {
    if (sig < 1 || sig > SIGRTMAX) return std::nullopt;
    return sig;
  };
  if (!s.empty() && s[0] >= '0' && s[0] <= '9') {
    auto num = parse_decimal(s);
    return num ? in_range(*num) : std::nullopt;
  }
  if (istarts_with(s, "SIG")) s.remove_prefix(3);
  for (const auto& entry : kSignals)
    if (iequals(entry.name, s)) return entry.value;
  // Real-time signals, counted from glibc's SIGRTMIN as runc and kill(1) do.
  bool from_min = istarts_with(s, "RTMIN");
  if (!from_min && !istarts_with(s, "RTMAX")) return std::nullopt;
  std::string_view offset = s.substr(5);
  if (offset.empty()) return from_min ? SIGRTMIN : SIGRTMAX;
  if (offset[0] != (from_min ? '+' : '-')) return std::nullopt;
  auto n = parse_decimal(offset.substr(1));
  if (!n || *n > SIGRTMAX - SIGRTMIN) return std::nullopt;
  return from_min ? SIGRTMIN + *n : SIGRTMAX - *n;
}

std::string signal_name(int sig) {
  for (const auto& entry : kSignals)
    if (entry.value == sig) return fmt::format("SIG{}", entry.name);
  if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
    // Same split as kill -l: the lower half counts up from RTMIN, the upper down from RTMAX.
    int from_min = sig - SIGRTMIN;
    int from_max = SIGRTMAX - sig;
    if (from_min == 0) return "SIGRTMIN";
    if (from_max == 0) return "SIGRTMAX";
    return from_min <= from_max ? fmt::format("SIGRTMIN+{}", from_min)
                                : fmt::format("SIGRTMAX-{}", from_max);
  }
  // glibc keeps 32 and 33 for itself; they have no name, and the number parses back.
  return fmt::format("{}", sig);
}

// ---- scheduler, I/O priority, personality ------------------------------------------------------

SchedulerAttrs parse_scheduler(const JsonView& sched) {
  SchedulerAttrs s;
  if (!sched.present()) return s;
  sched.expect_object();
  s.present = true;

  JsonView policy = sched["policy"];
  if (!policy.present()) policy.bad("is required");
  s.policy = string_of(policy);
  auto policy_num = find_value(kSchedPolicies, s.policy);
  if (!policy_num) policy.bad(fmt::format("unknown scheduler policy \"{}\"", s.policy));
  s.policy_num = *policy_num;
  bool realtime = s.policy_num == SCHED_FIFO || s.policy_num == SCHED_RR;
  bool deadline = s.policy_num == SCHED_DEADLINE;

  if (JsonView nice = sched["nice"]; nice.present()) {
    s.nice = nice.as_i32();
    if (s.nice < -20 || s.nice > 19) nice.bad(fmt::format("{} is outside -20..19", s.nice));
  }

  JsonView priority = sched["priority"];
  int32_t prio = priority.present() ? priority.as_i32() : 0;
  if (realtime && (prio < 1 || prio > 99))
    priority.bad(fmt::format("{} is outside 1..99, as {} requires", prio, s.policy));
  if (!realtime && prio != 0)
    priority.bad(fmt::format("{} given, but only SCHED_FIFO and SCHED_RR take a priority", prio));
  s.priority = static_cast<uint32_t>(prio);

  JsonView flags = sched["flags"];
  if (flags.present()) {
    expect_array(flags);
    for (size_t i = 0; i < flags.size(); i++) {
      JsonView flag = flags.at(i);
      auto bit = find_value(kSchedFlags, string_of(flag));
      if (!bit) flag.bad(fmt::format("unknown scheduler flag \"{}\"", string_of(flag)));
      s.flags |= static_cast<uint64_t>(*bit);
    }
  }

  for (auto [key, field] : {std::pair{"runtime", &s.runtime}, std::pair{"deadline", &s.deadline},
                            std::pair{"period", &s.period}}) {
    JsonView v = sched[key];
    if (!v.present()) continue;
    *field = v.as_uint();
    if (!deadline && *field != 0) v.bad(fmt::format("{} given, but only SCHED_DEADLINE takes it", *field));
  }
  if (deadline) {
    // The kernel's own rule (__checkparam_dl): runtime <= deadline <= period, period 0 = deadline.
    if (s.deadline == 0) sched["deadline"].bad("SCHED_DEADLINE needs a non-zero deadline");
    if (s.runtime > s.deadline)
      sched["runtime"].bad(fmt::format("{} is greater than the deadline {}", s.runtime, s.deadline));
    if (s.period != 0 && s.deadline > s.period)
      sched["deadline"].bad(fmt::format("{} is greater than the period {}", s.deadline, s.period));
  }
  return s;
}

void apply_scheduler(const SchedulerAttrs& s) {
  if (!s.present) return;
  SchedAttr attr{};
  attr.size = sizeof attr;
  attr.sched_policy = static_cast<uint32_t>(s.policy_num);
  attr.sched_flags = s.flags;
  attr.sched_nice = s.nice;
  attr.sched_priority = s.priority;
  attr.sched_runtime = s.runtime;
  attr.sched_deadline = s.deadline;
  attr.sched_period = s.period;
  // The spec names the clamp flags but carries no clamp values; -1 means "reset to default".
  if (s.flags & kSchedFlagUtilClampMin) attr.sched_util_min = UINT32_MAX;
  if (s.flags & kSchedFlagUtilClampMax) attr.sched_util_max = UINT32_MAX;
  if (::syscall(SYS_sched_setattr, 0, &attr, 0) != 0) fail_errno("sched_setattr {}", s.policy);
}

IoPriority parse_io_priority(const JsonView& prio) {
  IoPriority p;
  if (!prio.present()) return p;
  prio.expect_object();
  p.present = true;
  JsonView cls = prio["class"];
  if (!cls.present()) cls.bad("is required");
  auto cls_num = find_value(kIoprioClasses, string_of(cls));
  if (!cls_num) cls.bad(fmt::format("unknown I/O priority class \"{}\"", string_of(cls)));
  p.ioprio_class = *cls_num;
  if (JsonView level = prio["priority"]; level.present()) {
    p.priority = level.as_i32();
    if (p.priority < 0 || p.priority > 7) level.bad(fmt::format("{} is outside 0..7", p.priority));
  }
  return p;
}

void apply_io_priority(const IoPriority& p) {
  if (!p.present) return;
  int value = (p.ioprio_class << kIoprioClassShift) | p.priority;
  if (::syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, value) != 0)
    fail_errno("ioprio_set {} priority {}", find_name(kIoprioClasses, p.ioprio_class), p.priority);
}

Personality parse_personality(const JsonView& pers) {
  Personality p;
  if (!pers.present()) return p;
  pers.expect_object();
  p.present = true;
  JsonView domain = pers["domain"];
  if (!domain.present()) domain.bad("is required");
  auto domain_num = find_value(kPersonalityDomains, string_of(domain));
  if (!domain_num) domain.bad(fmt::format("unknown personality domain \"{}\"", string_of(domain)));
  p.domain = static_cast<unsigned long>(*domain_num);
  // The spec defines no flag values; failing beats silently running with a different persona.
  JsonView flags = pers["flags"];
  if (flags.present()) {
    expect_array(flags);
    if (flags.size() > 0)
      flags.at(0).bad(fmt::format("unsupported personality flag \"{}\"", string_of(flags.at(0))));
  }
  return p;
}

void apply_personality(const Personality& p) {
  if (!p.present) return;
  if (::personality(p.domain) == -1)
    fail_errno("personality {}", find_name(kPersonalityDomains, static_cast<int>(p.domain)));
}

} // namespace berth
