// The built-in RuntimeDefault seccomp profile: the allow-list of containerd 1.7's
// contrib/seccomp DefaultProfile (itself Docker's default.json), kept here as data: the
// syscalls everyone may use, the ones the process's capabilities unlock, the ones of
// this architecture, and the few rules that look at arguments. Everything else fails
// with EPERM.
#include "cri/pod/seccomp_profile.hpp"

#include <algorithm>
#include <cerrno>
#include <span>
#include <string_view>

namespace berth::cri {
namespace {

using Names = std::span<const std::string_view>;

constexpr std::string_view kAllowed[] = {
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget", "capset",
    "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
    "close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait",
    "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat",
    "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
    "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
    "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
    "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv",
    "futex_wake", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
    "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername",
    "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresgid32",
    "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
    "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
    "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set",
    "io_setup", "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup", "ipc", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32",
    "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek",
    "lsetxattr", "lstat", "lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore",
    "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "map_shadow_stack", "mmap",
    "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
    "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd",
    "msync", "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect",
    "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2",
    "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64",
    "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall",
    "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl",
    "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
    "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
    "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid",
    "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list",
    "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr", "shmat",
    "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask",
    "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs", "statfs64", "statx",
    "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time",
    "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink",
    "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid",
    "waitpid", "write", "writev",
    // containerd adds these on kernels >= 4.8, where ptrace can no longer bypass seccomp;
    // Berth needs a far newer kernel anyway (clone3, mount_setattr).
    "process_vm_readv", "process_vm_writev", "ptrace"};

// The architectures whose syscalls the filter covers, and their own allowed syscalls.
#if defined(__x86_64__)
constexpr std::string_view kArchitectures[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
constexpr std::string_view kArchAllowed[] = {"arch_prctl", "modify_ldt"};
#elif defined(__aarch64__)
constexpr std::string_view kArchitectures[] = {"SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"};
constexpr std::string_view kArchAllowed[] = {"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
                                             "breakpoint", "cacheflush", "set_tls"};
#elif defined(__s390x__)
constexpr std::string_view kArchitectures[] = {"SCMP_ARCH_S390", "SCMP_ARCH_S390X"};
constexpr std::string_view kArchAllowed[] = {"s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"};
#elif defined(__riscv) && __riscv_xlen == 64
constexpr std::string_view kArchitectures[] = {"SCMP_ARCH_RISCV64"};
constexpr std::string_view kArchAllowed[] = {"riscv_flush_icache"};
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr std::span<const std::string_view> kArchitectures;  // containerd names none: native only
constexpr std::string_view kArchAllowed[] = {"sync_file_range2", "swapcontext"};
#elif defined(__i386__)
constexpr std::span<const std::string_view> kArchitectures;
constexpr std::string_view kArchAllowed[] = {"modify_ldt"};
#else
constexpr std::span<const std::string_view> kArchitectures;
constexpr std::span<const std::string_view> kArchAllowed;
#endif

// What a capability in the bounding set unlocks (Docker's "includes": {"caps": [...]}).
constexpr std::string_view kDacReadSearch[] = {"open_by_handle_at"};
constexpr std::string_view kSysAdmin[] = {
    "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
    "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd",
    "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare"};
constexpr std::string_view kSysBoot[] = {"reboot"};
constexpr std::string_view kSysChroot[] = {"chroot"};
constexpr std::string_view kSysModule[] = {"delete_module", "init_module", "finit_module"};
constexpr std::string_view kSysPacct[] = {"acct"};
constexpr std::string_view kSysPtrace[] = {"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
                                           "process_vm_writev", "ptrace"};
constexpr std::string_view kSysRawio[] = {"iopl", "ioperm"};
constexpr std::string_view kSysTime[] = {"settimeofday", "stime", "clock_settime", "clock_settime64"};
constexpr std::string_view kSysTtyConfig[] = {"vhangup"};
constexpr std::string_view kSysNice[] = {"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"};
constexpr std::string_view kSyslog[] = {"syslog"};
constexpr std::string_view kBpf[] = {"bpf"};
constexpr std::string_view kPerfmon[] = {"perf_event_open"};

struct CapabilityRule {
  std::string_view capability;
  Names names;
};
constexpr CapabilityRule kByCapability[] = {
    {"CAP_DAC_READ_SEARCH", kDacReadSearch}, {"CAP_SYS_ADMIN", kSysAdmin},   {"CAP_SYS_BOOT", kSysBoot},
    {"CAP_SYS_CHROOT", kSysChroot},          {"CAP_SYS_MODULE", kSysModule}, {"CAP_SYS_PACCT", kSysPacct},
    {"CAP_SYS_PTRACE", kSysPtrace},          {"CAP_SYS_RAWIO", kSysRawio},   {"CAP_SYS_TIME", kSysTime},
    {"CAP_SYS_TTY_CONFIG", kSysTtyConfig},   {"CAP_SYS_NICE", kSysNice},     {"CAP_SYSLOG", kSyslog},
    {"CAP_BPF", kBpf},                       {"CAP_PERFMON", kPerfmon}};

// personality(2) only with the personas programs ask for: PER_LINUX, PER_LINUX32,
// UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (a query).
constexpr uint64_t kPersonalities[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};
constexpr uint64_t kAfVsock = 40;
// CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP: without CAP_SYS_ADMIN,
// clone may not make namespaces.
constexpr uint64_t kCloneNamespaceFlags = 0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 |
                                          0x40000000 | 0x02000000;
#if defined(__s390x__)
constexpr unsigned kCloneFlagsArg = 1;  // s390's clone takes the stack first
#else
constexpr unsigned kCloneFlagsArg = 0;
#endif

json allow(Names names) {
  std::vector<std::string> list(names.begin(), names.end());
  return json{{"names", list}, {"action", "SCMP_ACT_ALLOW"}};
}

json allow_if(std::string_view name, unsigned index, uint64_t value, std::string_view op, uint64_t value_two = 0) {
  json arg{{"index", index}, {"value", value}, {"op", op}};
  if (value_two) arg["valueTwo"] = value_two;
  return json{{"names", {name}}, {"action", "SCMP_ACT_ALLOW"}, {"args", {arg}}};
}

} // namespace

json default_seccomp_profile(const std::vector<std::string>& capabilities) {
  auto has = [&](std::string_view cap) { return std::find(capabilities.begin(), capabilities.end(), cap) != capabilities.end(); };
  json rules = json::array();
  rules.push_back(allow(kAllowed));
  rules.push_back(allow_if("socket", 0, kAfVsock, "SCMP_CMP_NE"));
  for (uint64_t persona : kPersonalities) rules.push_back(allow_if("personality", 0, persona, "SCMP_CMP_EQ"));
  if (!std::empty(kArchAllowed)) rules.push_back(allow(kArchAllowed));
  for (const auto& rule : kByCapability)
    if (has(rule.capability)) rules.push_back(allow(rule.names));
  if (!has("CAP_SYS_ADMIN")) {
    // (flags & namespace flags) == 0
    rules.push_back(allow_if("clone", kCloneFlagsArg, kCloneNamespaceFlags, "SCMP_CMP_MASKED_EQ"));
    // clone3's flags are behind a pointer seccomp cannot follow: ENOSYS makes libc fall
    // back to clone, which the rule above checks (moby#42681).
    rules.push_back(json{{"names", {"clone3"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", ENOSYS}});
  }
  json profile{{"defaultAction", "SCMP_ACT_ERRNO"}, {"syscalls", std::move(rules)}};
  if (!std::empty(kArchitectures))
    profile["architectures"] = std::vector<std::string>(std::begin(kArchitectures), std::end(kArchitectures));
  return profile;
}

} // namespace berth::cri
