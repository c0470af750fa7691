// linux.seccomp. parse() validates the whole profile in `berth create`, before
// anything exists, and resolves syscall names once; load() builds the libseccomp
// filter in the container process and loads it. Semantics follow runc.
#include "runtime/lib/seccomp.hpp"

#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <seccomp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <optional>
#include <string_view>
#include <utility>

#include "common/error.hpp"
#include "common/log.hpp"

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

#define BERTH_LIBSECCOMP_AT_LEAST(major, minor) \
  (SCMP_VER_MAJOR > (major) || (SCMP_VER_MAJOR == (major) && SCMP_VER_MINOR >= (minor)))

namespace berth::seccomp {
namespace {

template <typename T>
struct Named {
  std::string_view name;
  T value;
};

// SCMP_ACT_ERRNO and SCMP_ACT_TRACE carry their errnoRet in the low 16 bits.
constexpr uint32_t kErrnoBase = SCMP_ACT_ERRNO(0);
constexpr uint32_t kTraceBase = SCMP_ACT_TRACE(0);

constexpr Named<uint32_t> kActions[] = {
    {"SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD}, // as runc: kill the thread
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS},
    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP},
    {"SCMP_ACT_ERRNO", kErrnoBase},
    {"SCMP_ACT_TRACE", kTraceBase},
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG},
    {"SCMP_ACT_NOTIFY", SCMP_ACT_NOTIFY},
};

constexpr Named<scmp_compare> kOperators[] = {
    {"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT},
    {"SCMP_CMP_LE", SCMP_CMP_LE}, {"SCMP_CMP_EQ", SCMP_CMP_EQ},
    {"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

constexpr Named<uint32_t> kArchs[] = {
    {"SCMP_ARCH_X86", SCMP_ARCH_X86},
    {"SCMP_ARCH_X86_64", SCMP_ARCH_X86_64},
    {"SCMP_ARCH_X32", SCMP_ARCH_X32},
    {"SCMP_ARCH_ARM", SCMP_ARCH_ARM},
    {"SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64},
    {"SCMP_ARCH_MIPS", SCMP_ARCH_MIPS},
    {"SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64},
    {"SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32},
    {"SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL},
    {"SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64},
    {"SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32},
    {"SCMP_ARCH_PPC", SCMP_ARCH_PPC},
    {"SCMP_ARCH_PPC64", SCMP_ARCH_PPC64},
    {"SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE},
    {"SCMP_ARCH_S390", SCMP_ARCH_S390},
    {"SCMP_ARCH_S390X", SCMP_ARCH_S390X},
    {"SCMP_ARCH_PARISC", SCMP_ARCH_PARISC},
    {"SCMP_ARCH_PARISC64", SCMP_ARCH_PARISC64},
    {"SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64},
#ifdef SCMP_ARCH_LOONGARCH64
    {"SCMP_ARCH_LOONGARCH64", SCMP_ARCH_LOONGARCH64},
#endif
#ifdef SCMP_ARCH_M68K
    {"SCMP_ARCH_M68K", SCMP_ARCH_M68K},
#endif
#ifdef SCMP_ARCH_SH
    {"SCMP_ARCH_SH", SCMP_ARCH_SH},
    {"SCMP_ARCH_SHEB", SCMP_ARCH_SHEB},
#endif
};

enum class FlagAttr { none, tsync, log, ssb, waitkill };
struct Flag {
  std::string_view name;
  unsigned long kernel_flag;
  FlagAttr attr;        // how libseccomp sets it; none = this libseccomp cannot
  std::string_view min; // libseccomp version that can, for the error message
};
constexpr Flag kFlags[] = {
    {"SECCOMP_FILTER_FLAG_TSYNC", SECCOMP_FILTER_FLAG_TSYNC, FlagAttr::tsync, {}},
    {"SECCOMP_FILTER_FLAG_LOG", SECCOMP_FILTER_FLAG_LOG, FlagAttr::log, {}},
    {"SECCOMP_FILTER_FLAG_SPEC_ALLOW", SECCOMP_FILTER_FLAG_SPEC_ALLOW, FlagAttr::ssb, {}},
#if BERTH_LIBSECCOMP_AT_LEAST(2, 6)
    {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
     FlagAttr::waitkill, {}},
#else
    {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
     FlagAttr::none, "2.6"},
#endif
};

// Real syscalls newer than the syscall table of libseccomp 2.5.x. Current
// profiles (Docker's default among them) list them; runc and crun skip names
// libseccomp cannot resolve, so we skip these instead of rejecting the profile,
// and keep rejecting everything else (typos). They get the default action.
constexpr std::string_view kNewerThanLibseccomp[] = {
    "statmount", "listmount", "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
    "mseal", "uretprobe", "setxattrat", "getxattrat", "listxattrat", "removexattrat",
    "open_tree_attr", "file_getattr", "file_setattr",
};

template <typename T, size_t N>
const Named<T>* find(const Named<T> (&table)[N], std::string_view name) {
  for (const auto& entry : table)
    if (entry.name == name) return &entry;
  return nullptr;
}

template <typename Table>
std::vector<std::string> names_of(const Table& table) {
  std::vector<std::string> out;
  for (const auto& entry : table) out.emplace_back(entry.name);
  return out;
}

const Flag* find_flag(std::string_view name) {
  for (const auto& flag : kFlags)
    if (flag.name == name) return &flag;
  return nullptr;
}

// seccomp(SECCOMP_SET_MODE_FILTER, flags, NULL) checks the flags before it reads
// the program: EFAULT means the kernel knows them (runc probes the same way).
bool kernel_supports(unsigned long flags) {
  if (flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
  return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, nullptr) < 0 && errno == EFAULT;
}

// Probed once per process: the answer cannot change while we run.
const std::vector<const Flag*>& usable_flags() {
  static const std::vector<const Flag*> usable = [] {
    std::vector<const Flag*> out;
    for (const auto& flag : kFlags)
      if (flag.attr != FlagAttr::none && kernel_supports(flag.kernel_flag)) out.push_back(&flag);
    return out;
  }();
  return usable;
}

const JsonView& required(const JsonView& v) {
  if (v.is_null()) v.bad("required field is missing");
  return v;
}

uint32_t parse_action(const JsonView& v) {
  auto name = required(v).as_string();
  if (auto* action = find(kActions, name)) return action->value;
  v.bad(fmt::format("unknown action \"{}\"", name));
}

bool takes_errno(uint32_t action) { return action == kErrnoBase || action == kTraceBase; }

// Folds errnoRet into ERRNO/TRACE (EPERM when absent, as runc); the spec wants
// errnoRet on any other action rejected.
uint32_t with_errno(uint32_t action, const JsonView& errno_ret, std::string_view action_name) {
  if (errno_ret.is_null()) return takes_errno(action) ? action | EPERM : action;
  if (!takes_errno(action))
    errno_ret.bad(fmt::format("only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not {}",
                              action_name));
  auto value = errno_ret.as_u32();
  if (value > 0xffff) errno_ret.bad(fmt::format("{} is out of range (0-65535)", value));
  return action | value;
}

ArgCondition parse_arg(const JsonView& v) {
  v.expect_object();
  ArgCondition cond{};
  auto index = v["index"];
  auto index_value = required(index).as_uint();
  if (index_value > 5) index.bad(fmt::format("{} is out of range (0-5)", index_value));
  cond.index = static_cast<unsigned>(index_value);
  cond.value = required(v["value"]).as_uint();
  cond.value_two = v.opt_uint("valueTwo").value_or(0);
  auto op = v["op"];
  auto op_name = required(op).as_string();
  auto* entry = find(kOperators, op_name);
  if (!entry) op.bad(fmt::format("unknown operator \"{}\"", op_name));
  cond.op = entry->value;
  return cond;
}

// The native number; __NR_SCMP_ERROR when only another profile architecture
// knows the name (no native rule possible); nullopt when nobody does.
std::optional<int> resolve(const char* name, const std::vector<uint32_t>& archs) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr != __NR_SCMP_ERROR) return nr;
  for (uint32_t arch : archs)
    if (seccomp_syscall_resolve_name_arch(arch, name) != __NR_SCMP_ERROR) return nr;
  return std::nullopt;
}

// Names are read straight from the JSON: a podman profile has ~350 of them and
// a path string per name would be wasted work; paths are built only on error.
void parse_names(const JsonView& names, Rule& rule, const std::vector<uint32_t>& archs) {
  const json& list = required(names).raw();
  if (!list.is_array()) names.bad(fmt::format("expected an array of strings, got {}", json_type_name(list)));
  if (list.empty()) names.bad("must name at least one syscall");
  rule.names.reserve(list.size());
  rule.syscalls.reserve(list.size());
  for (size_t i = 0; i < list.size(); i++) {
    if (!list[i].is_string()) names.at(i).as_string(); // throws, naming the element
    const auto& name = list[i].get_ref<const std::string&>();
    auto nr = resolve(name.c_str(), archs);
    if (!nr) {
      if (std::ranges::find(kNewerThanLibseccomp, name) != std::end(kNewerThanLibseccomp)) {
        log::debug("seccomp: syscall \"{}\" is unknown to libseccomp {}.{}.{}, skipped", name,
                   SCMP_VER_MAJOR, SCMP_VER_MINOR, SCMP_VER_MICRO);
        continue;
      }
      names.at(i).bad(fmt::format("unknown syscall \"{}\"", name));
    }
    // As runc: the runtime still writes to its parent after loading the filter,
    // before any agent holds the listener, and would hang.
    if (rule.action == SCMP_ACT_NOTIFY && name == "write")
      names.at(i).bad("SCMP_ACT_NOTIFY cannot be used for the write syscall");
    rule.names.push_back(name);
    rule.syscalls.push_back(*nr);
  }
}

Rule parse_rule(const JsonView& v, const std::vector<uint32_t>& archs) {
  v.expect_object();
  Rule rule;
  auto action = v["action"];
  rule.action = parse_action(action);
  rule.action = with_errno(rule.action, v["errnoRet"], action.raw().get_ref<const std::string&>());
  parse_names(v["names"], rule, archs);
  v["args"].each([&](const JsonView& arg) { rule.args.push_back(parse_arg(arg)); });
  return rule;
}

void parse_flags(const JsonView& flags, Profile& profile) {
  flags.each([&](const JsonView& v) {
    auto name = v.as_string();
    auto* flag = find_flag(name);
    if (!flag) v.bad(fmt::format("unknown seccomp flag \"{}\"", name));
    if (flag->attr == FlagAttr::none)
      v.bad(fmt::format("{} needs libseccomp >= {} (built with {}.{}.{})", name, flag->min,
                        SCMP_VER_MAJOR, SCMP_VER_MINOR, SCMP_VER_MICRO));
    if (std::ranges::find(usable_flags(), flag) == usable_flags().end())
      v.bad(fmt::format("{} is not supported by the running kernel", name));
    profile.flags.push_back(std::move(name));
  });
}

// libseccomp returns -errno.
void check(int rc, std::string_view what) {
  if (rc < 0) fail_code(-rc, "seccomp: {}", what);
}

using FilterPtr = std::unique_ptr<void, decltype(&seccomp_release)>;

void set_flag(scmp_filter_ctx ctx, std::string_view name) {
  const Flag* flag = find_flag(name);
  if (!flag) fail("seccomp: unknown flag \"{}\"", name);
  switch (flag->attr) {
  case FlagAttr::tsync: check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1), "set TSYNC"); break;
  case FlagAttr::log: check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1), "set LOG"); break;
  case FlagAttr::ssb: check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_SSB, 1), "set SPEC_ALLOW"); break;
  case FlagAttr::waitkill:
#if BERTH_LIBSECCOMP_AT_LEAST(2, 6)
    check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_WAITKILL, 1), "set WAIT_KILLABLE_RECV");
    break;
#else
    [[fallthrough]];
#endif
  case FlagAttr::none: fail("seccomp: {} is not supported by this libseccomp", name);
  }
}

void add_rule(scmp_filter_ctx ctx, const Rule& rule, const std::string& name, int nr) {
  auto context = [&] { return fmt::format("add rule for \"{}\"", name); };
  if (rule.args.empty()) {
    check(seccomp_rule_add_array(ctx, rule.action, nr, 0, nullptr), context());
    return;
  }
  // Conditions are ANDed in one rule; libseccomp cannot AND two conditions on
  // one argument, so then each becomes a rule of its own (runc does the same).
  std::array<scmp_arg_cmp, 6> conds{};
  std::array<bool, 6> seen{};
  bool repeated_index = false;
  for (size_t i = 0; i < rule.args.size(); i++) {
    const auto& arg = rule.args[i];
    repeated_index |= std::exchange(seen[arg.index], true);
    if (i < conds.size())
      conds[i] = {arg.index, static_cast<scmp_compare>(arg.op), arg.value, arg.value_two};
  }
  if (!repeated_index) {
    check(seccomp_rule_add_array(ctx, rule.action, nr, rule.args.size(), conds.data()), context());
    return;
  }
  for (const auto& arg : rule.args) {
    scmp_arg_cmp cond{arg.index, static_cast<scmp_compare>(arg.op), arg.value, arg.value_two};
    check(seccomp_rule_add_array(ctx, rule.action, nr, 1, &cond), context());
  }
}

} // namespace

std::unique_ptr<Profile> parse(const JsonView& seccomp) {
  if (seccomp.is_null()) return nullptr;
  seccomp.expect_object();
  auto profile = std::make_unique<Profile>();

  auto default_action = seccomp["defaultAction"];
  profile->default_action = parse_action(default_action);
  if (profile->default_action == SCMP_ACT_NOTIFY)
    default_action.bad("SCMP_ACT_NOTIFY cannot be used as the default action");
  profile->default_action = with_errno(profile->default_action, seccomp["defaultErrnoRet"],
                                       default_action.raw().get_ref<const std::string&>());

  seccomp["architectures"].each([&](const JsonView& v) {
    auto name = v.as_string();
    auto* arch = find(kArchs, name);
    if (!arch) v.bad(fmt::format("unknown architecture \"{}\"", name));
    if (std::ranges::find(profile->architectures, arch->value) == profile->architectures.end())
      profile->architectures.push_back(arch->value);
  });
  parse_flags(seccomp["flags"], *profile);

  auto listener_path = seccomp["listenerPath"];
  profile->listener_path = seccomp.opt_string("listenerPath").value_or("");
  if (!profile->listener_path.empty() && profile->listener_path[0] != '/')
    listener_path.bad(fmt::format("\"{}\" is not an absolute path", profile->listener_path));
  profile->listener_metadata = seccomp.opt_string("listenerMetadata").value_or("");

  auto syscalls = seccomp["syscalls"];
  profile->rules.reserve(syscalls.size());
  std::optional<std::string> first_notify; // path of the first rule using NOTIFY
  syscalls.each([&](const JsonView& v) {
    profile->rules.push_back(parse_rule(v, profile->architectures));
    if (profile->rules.back().action == SCMP_ACT_NOTIFY && !first_notify) first_notify = v.path();
  });
  profile->uses_notify = first_notify.has_value();
  if (profile->uses_notify && profile->listener_path.empty())
    listener_path.bad(fmt::format("seccomp listenerPath is not set, but {} uses SCMP_ACT_NOTIFY",
                                  *first_notify));
  return profile;
}

int load(const Profile& profile) {
  FilterPtr filter(seccomp_init(profile.default_action), &seccomp_release);
  if (!filter) fail("seccomp: cannot create a filter with default action {:#x}", profile.default_action);
  scmp_filter_ctx ctx = filter.get();

  // The caller sets no_new_privs itself.
  check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "clear NNP attribute");
  // Best effort: report the kernel's own errno (EACCES, ...) from seccomp_load
  // rather than libseccomp's generic ECANCELED.
  seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
  for (const auto& flag : profile.flags) set_flag(ctx, flag);

  for (uint32_t arch : profile.architectures) {
    int rc = seccomp_arch_add(ctx, arch);
    if (rc != -EEXIST) check(rc, fmt::format("add architecture {:#x}", arch)); // native is present
  }

  bool notify_added = false;
  for (const auto& rule : profile.rules) {
    // libseccomp rejects rules that repeat the default action; they are no-ops.
    if (rule.action == profile.default_action) continue;
    bool resolved = rule.syscalls.size() == rule.names.size();
    for (size_t i = 0; i < rule.names.size(); i++) {
      int nr = resolved ? rule.syscalls[i] : seccomp_syscall_resolve_name(rule.names[i].c_str());
      if (nr == __NR_SCMP_ERROR) {
        if (resolved) continue; // known to another profile arch only; see resolve()
        fail("seccomp: unknown syscall \"{}\"", rule.names[i]);
      }
      add_rule(ctx, rule, rule.names[i], nr);
      notify_added |= rule.action == SCMP_ACT_NOTIFY;
    }
  }

  check(seccomp_load(ctx), "load filter");
  if (!notify_added) return -1;
  int fd = seccomp_notify_fd(ctx);
  check(fd, "get notify fd");
  return fd;
}

std::vector<std::string> known_actions() { return names_of(kActions); }
std::vector<std::string> known_operators() { return names_of(kOperators); }
std::vector<std::string> known_archs() { return names_of(kArchs); }
std::vector<std::string> known_flags() { return names_of(kFlags); }

std::vector<std::string> supported_flags() {
  std::vector<std::string> out;
  for (const Flag* flag : usable_flags()) out.emplace_back(flag->name);
  return out;
}

} // namespace berth::seccomp
