// runc 1.1 command line: urfave/cli v1.22.1 semantics over Go's flag package.
// Everything is table driven from constexpr data; parsing works on string_views
// into argv and only allocates for the results it hands back.
#include "runtime/lib/cli.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>

#include "common/error.hpp"

namespace berth::cli {

namespace {

enum class Kind : uint8_t { Bool, String, Int, Duration, StringList, IntList };

struct FlagSpec {
  std::string_view name;         // canonical long name, the key in Command::flags
  std::string_view alias;        // short alias ("b"), empty when none
  Kind kind;
  std::string_view help;         // one line, for usage()
  std::string_view default_text; // rendered as " (default: ...)" in usage()
  bool hidden = false;           // accepted but not listed (obsolete runc flags)
};

struct CommandSpec {
  std::string_view name;
  std::string_view alias;
  std::string_view summary;
  std::string_view args_usage;  // runc's ArgsUsage: the operands plus explanation
  std::string_view description;
  std::span<const FlagSpec> flags;
  bool skip_reorder;            // exec and ps: trailing arguments belong to the process
  int min_args;
  int max_args;                 // -1 = unbounded
};

constexpr std::string_view kProg = "berth";

// ---- flag tables -----------------------------------------------------------

constexpr FlagSpec kHelpFlag{"help", "h", Kind::Bool, "show help", {}};

constexpr std::array kGlobalFlags{
  FlagSpec{"debug", "", Kind::Bool, "enable debug logging", {}},
  FlagSpec{"log", "", Kind::String, "set the log file to write berth logs to (default is '/dev/stderr')", {}},
  FlagSpec{"log-format", "", Kind::String, "set the log format ('text' (default), or 'json')", "\"text\""},
  FlagSpec{"root", "", Kind::String,
           "root directory for storage of container state (this should be located in tmpfs)", "\"/run/berth\""},
  FlagSpec{"criu", "", Kind::String, "accepted for runc compatibility; checkpoint/restore is not supported", "\"criu\""},
  FlagSpec{"systemd-cgroup", "", Kind::Bool,
           "enable systemd cgroup support, expects cgroupsPath to be of form \"slice:prefix:name\" "
           "for e.g. \"system.slice:berth:434234\"", {}},
  FlagSpec{"rootless", "", Kind::String, "ignore cgroup permission errors ('true', 'false', or 'auto')", "\"auto\""},
  FlagSpec{"cgroup-manager", "", Kind::String, "cgroup manager: 'cgroupfs', 'systemd' or 'disabled' (crun compatible)", {}},
  FlagSpec{"allow-unenforced-limits", "", Kind::Bool,
           "run containers whose linux.resources this host cannot enforce, without those limits (else create "
           "fails; also BERTH_ALLOW_UNENFORCED_LIMITS=1)", {}},
  kHelpFlag,
  FlagSpec{"version", "v", Kind::Bool, "print the version", {}},
};

// Flags shared by several commands, worded as runc words them.
constexpr FlagSpec kBundle{"bundle", "b", Kind::String,
                           "path to the root of the bundle directory, defaults to the current directory", {}};
constexpr FlagSpec kConsoleSocket{"console-socket", "", Kind::String,
                                  "path to an AF_UNIX socket which will receive a file descriptor referencing the "
                                  "master end of the console's pseudoterminal", {}};
constexpr FlagSpec kPidfdSocket{"pidfd-socket", "", Kind::String,
                                "path to an AF_UNIX socket which will receive a file descriptor referencing the "
                                "init process", {}};
constexpr FlagSpec kPidFile{"pid-file", "", Kind::String, "specify the file to write the process id to", {}};
constexpr FlagSpec kNoPivot{"no-pivot", "", Kind::Bool,
                            "do not use pivot root to jail process inside rootfs.  This should be used whenever "
                            "the rootfs is on top of a ramdisk", {}};
constexpr FlagSpec kNoNewKeyring{"no-new-keyring", "", Kind::Bool,
                                 "do not create a new session keyring for the container.  This will cause the "
                                 "container to inherit the calling processes session key", {}};
constexpr FlagSpec kPreserveFds{"preserve-fds", "", Kind::Int,
                                "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in "
                                "total)", "0"};
constexpr FlagSpec kDetach{"detach", "d", Kind::Bool, "detach from the container's process", {}};
constexpr FlagSpec kNoSubreaper{"no-subreaper", "", Kind::Bool,
                                "disable the use of the subreaper used to reap reparented processes", {}};
constexpr FlagSpec kFormat{"format", "f", Kind::String, "select one of: table or json", "\"table\""};
constexpr FlagSpec kTcpEstablished{"tcp-established", "", Kind::Bool, "allow open tcp connections", {}};
constexpr FlagSpec kExtUnixSk{"ext-unix-sk", "", Kind::Bool, "allow external unix sockets", {}};
constexpr FlagSpec kShellJob{"shell-job", "", Kind::Bool, "allow shell jobs", {}};
constexpr FlagSpec kLazyPages{"lazy-pages", "", Kind::Bool, "use userfaultfd to lazily restore memory pages", {}};
constexpr FlagSpec kFileLocks{"file-locks", "", Kind::Bool, "handle file locks, for safety", {}};
constexpr FlagSpec kManageCgroupsMode{"manage-cgroups-mode", "", Kind::String,
                                      "cgroups mode: 'soft' (default), 'full' and 'strict'", {}};
constexpr FlagSpec kEmptyNs{"empty-ns", "", Kind::StringList, "create a namespace, but don't restore its properties", {}};
constexpr FlagSpec kAutoDedup{"auto-dedup", "", Kind::Bool, "enable auto deduplication of memory images", {}};
constexpr FlagSpec kWorkPath{"work-path", "", Kind::String, "path for saving work files and logs", {}};

constexpr std::array kCreateFlags{kBundle, kConsoleSocket, kPidfdSocket, kPidFile, kNoPivot, kNoNewKeyring,
                                  kPreserveFds};

constexpr std::array kRunFlags{
  kBundle, kConsoleSocket, kPidfdSocket, kDetach,
  FlagSpec{"keep", "", Kind::Bool, "do not delete the container after it exits", {}},
  kPidFile, kNoSubreaper, kNoPivot, kNoNewKeyring, kPreserveFds,
};

constexpr std::array kListFlags{kFormat, FlagSpec{"quiet", "q", Kind::Bool, "display only container IDs", {}}};

constexpr std::array kKillFlags{
  FlagSpec{"all", "a", Kind::Bool, "send the specified signal to all processes inside the container", {}},
};

constexpr std::array kDeleteFlags{
  FlagSpec{"force", "f", Kind::Bool, "Forcibly deletes the container if it is still running (uses SIGKILL)", {}},
};

constexpr std::array kExecFlags{
  kConsoleSocket,
  FlagSpec{"pidfd-socket", "", Kind::String,
           "path to an AF_UNIX socket which will receive a file descriptor referencing the exec process", {}},
  FlagSpec{"cwd", "", Kind::String, "current working directory in the container", {}},
  FlagSpec{"env", "e", Kind::StringList, "set environment variables", {}},
  FlagSpec{"tty", "t", Kind::Bool, "allocate a pseudo-TTY", {}},
  FlagSpec{"user", "u", Kind::String, "UID (format: <uid>[:<gid>])", {}},
  FlagSpec{"additional-gids", "g", Kind::IntList, "additional gids", {}},
  FlagSpec{"process", "p", Kind::String, "path to the process.json", {}},
  kDetach,
  kPidFile,
  FlagSpec{"process-label", "", Kind::String, "set the asm process label for the process commonly used with selinux", {}},
  FlagSpec{"apparmor", "", Kind::String, "set the apparmor profile for the process", {}},
  FlagSpec{"no-new-privs", "", Kind::Bool, "set the no new privileges value for the process", {}},
  FlagSpec{"cap", "c", Kind::StringList, "add a capability to the bounding set for the process", {}},
  kPreserveFds,
  FlagSpec{"cgroup", "", Kind::StringList,
           "run the process in an (existing) sub-cgroup(s). Format is [<controller>:]<cgroup>.", {}},
  FlagSpec{"ignore-paused", "", Kind::Bool, "allow exec in a paused container", {}},
};

constexpr std::array kPsFlags{kFormat};

constexpr std::array kEventsFlags{
  FlagSpec{"interval", "", Kind::Duration, "set the stats collection interval", "5s"},
  FlagSpec{"stats", "", Kind::Bool, "display the container's stats then exit", {}},
};

constexpr std::array kUpdateFlags{
  FlagSpec{"resources", "r", Kind::String,
           "path to the file containing the resources to update or '-' to read from the standard input", {}},
  FlagSpec{"blkio-weight", "", Kind::Int, "Specifies per cgroup weight, range is from 10 to 1000", "0"},
  FlagSpec{"cpu-period", "", Kind::String,
           "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default", {}},
  FlagSpec{"cpu-quota", "", Kind::String, "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period", {}},
  FlagSpec{"cpu-burst", "", Kind::String,
           "CPU CFS hardcap burst limit (in usecs). Allowed accumulated cpu time additionally for burst a given "
           "period", {}},
  FlagSpec{"cpu-share", "", Kind::String, "CPU shares (relative weight vs. other containers)", {}},
  FlagSpec{"cpu-rt-period", "", Kind::String,
           "CPU realtime period to be used for hardcapping (in usecs). 0 to use system default", {}},
  FlagSpec{"cpu-rt-runtime", "", Kind::String,
           "CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period", {}},
  FlagSpec{"cpuset-cpus", "", Kind::String, "CPU(s) to use", {}},
  FlagSpec{"cpuset-mems", "", Kind::String, "Memory node(s) to use", {}},
  FlagSpec{"cpu-idle", "", Kind::String, "set cgroup SCHED_IDLE or not, 0: default behavior, 1: SCHED_IDLE", {}},
  FlagSpec{"kernel-memory", "", Kind::String, "(obsoleted; do not use)", {}, true},
  FlagSpec{"kernel-memory-tcp", "", Kind::String, "(obsoleted; do not use)", {}, true},
  FlagSpec{"memory", "", Kind::String, "Memory limit (in bytes)", {}},
  FlagSpec{"memory-reservation", "", Kind::String, "Memory reservation or soft_limit (in bytes)", {}},
  FlagSpec{"memory-swap", "", Kind::String, "Total memory usage (memory + swap); set '-1' to enable unlimited swap", {}},
  FlagSpec{"pids-limit", "", Kind::Int, "Maximum number of pids allowed in the container", "0"},
  FlagSpec{"l3-cache-schema", "", Kind::String, "The string of Intel RDT/CAT L3 cache schema", {}},
  FlagSpec{"mem-bw-schema", "", Kind::String, "The string of Intel RDT/MBA memory bandwidth schema", {}},
};

constexpr std::array kSpecFlags{
  FlagSpec{"bundle", "b", Kind::String, "path to the root of the bundle directory", {}},
  FlagSpec{"rootless", "", Kind::Bool, "generate a configuration for a rootless container", {}},
};

constexpr std::array kCheckpointFlags{
  FlagSpec{"image-path", "", Kind::String, "path for saving criu image files", {}},
  kWorkPath,
  FlagSpec{"parent-path", "", Kind::String, "path for previous criu image files in pre-dump", {}},
  FlagSpec{"leave-running", "", Kind::Bool, "leave the process running after checkpointing", {}},
  kTcpEstablished,
  kExtUnixSk,
  kShellJob,
  kLazyPages,
  FlagSpec{"status-fd", "", Kind::Int, "criu writes \\0 to this FD once lazy-pages is ready", "-1"},
  FlagSpec{"page-server", "", Kind::String, "ADDRESS:PORT of the page server", {}},
  kFileLocks,
  FlagSpec{"pre-dump", "", Kind::Bool,
           "dump container's memory information only, leave the container running after this", {}},
  kManageCgroupsMode,
  kEmptyNs,
  kAutoDedup,
};

constexpr std::array kRestoreFlags{
  kConsoleSocket,
  FlagSpec{"image-path", "", Kind::String, "path to criu image files for restoring", {}},
  kWorkPath,
  kTcpEstablished,
  kExtUnixSk,
  kShellJob,
  kFileLocks,
  kManageCgroupsMode,
  FlagSpec{"bundle", "b", Kind::String, "path to the root of the bundle directory", {}},
  kDetach,
  kPidFile,
  kNoSubreaper,
  kNoPivot,
  kEmptyNs,
  kAutoDedup,
  kLazyPages,
  FlagSpec{"lsm-profile", "", Kind::String,
           "Specify an LSM profile to be used during restore in the form of TYPE:NAME.", {}},
  FlagSpec{"lsm-mount-context", "", Kind::String, "Specify an LSM mount context to be used during restore.", {}},
};

// ---- command table (runc's `--help` order; `help` last, as urfave appends it) ----

constexpr std::string_view kIdArg = R"(<container-id>

Where "<container-id>" is the name for the instance of the container.)";

constexpr std::string_view kNewIdArg = R"(<container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host.)";

constexpr std::array<CommandSpec, 18> kCommands{{
  {"checkpoint", "", "checkpoint a running container", kIdArg,
   "The checkpoint command saves the state of the container instance.\n"
   "   Not supported by berth: it always fails.",
   kCheckpointFlags, false, 1, 1},
  {"create", "", "create a container", kNewIdArg,
   "The create command creates an instance of a container for a bundle. The bundle\n"
   "is a directory with a specification file named \"config.json\" and a root\n"
   "filesystem. The user process is started later with \"berth start\".",
   kCreateFlags, false, 1, 1},
  {"delete", "rm", "delete any resources held by the container often used with detached container", kIdArg,
   "", kDeleteFlags, false, 1, 1},
  {"events", "", "display container events such as OOM notifications, cpu, memory, and IO usage statistics",
   kIdArg,
   "The events command displays information about the container. By default the\n"
   "information is displayed once every 5 seconds.",
   kEventsFlags, false, 1, 1},
  {"exec", "", "execute new process inside the container",
   R"(<container-id> <command> [command options]  || -p process.json <container-id>

Where "<container-id>" is the name for the instance of the container and
"<command>" is the command to be executed in the container.
"<command>" can't be empty unless a "-p" flag provided.)",
   "", kExecFlags, true, 1, -1},
  {"kill", "", "kill sends the specified signal (default: SIGTERM) to the container's init process",
   R"(<container-id> [signal]

Where "<container-id>" is the name for the instance of the container and
"[signal]" is the signal to be sent to the init process.)",
   "", kKillFlags, false, 1, 2},
  {"list", "ls", "lists containers started by berth with the given root", "",
   "Where the given root is specified via the global option \"--root\"\n"
   "(default: \"/run/berth\").",
   kListFlags, false, 0, 0},
  {"pause", "", "pause suspends all processes inside the container", kIdArg,
   "The pause command suspends all processes in the instance of the container.", {}, false, 1, 1},
  {"ps", "", "ps displays the processes running inside a container", "<container-id> [ps options]", "",
   kPsFlags, true, 1, -1},
  {"restore", "", "restore a container from a previous checkpoint", kIdArg,
   "Restores the saved state of the container instance that was previously saved\n"
   "using the checkpoint command.\n"
   "   Not supported by berth: it always fails.",
   kRestoreFlags, false, 1, 1},
  {"resume", "", "resumes all processes that have been previously paused", kIdArg,
   "The resume command resumes all processes in the instance of the container.", {}, false, 1, 1},
  {"run", "", "create and run a container", kNewIdArg,
   "The run command creates an instance of a container for a bundle and starts its\n"
   "process. Without --detach it waits for the process and exits with its status.",
   kRunFlags, false, 1, 1},
  {"spec", "", "create a new specification file", "",
   "The spec command creates the new specification file named \"config.json\" for\n"
   "the bundle. Pass --rootless to generate a spec for a rootless container.",
   kSpecFlags, false, 0, 0},
  {"start", "", "executes the user defined process in a created container", kIdArg,
   "The start command executes the user defined process in a created container.", {}, false, 1, 1},
  {"state", "", "output the state of a container", kIdArg,
   "The state command outputs current state information for the\ninstance of a container.", {}, false, 1, 1},
  {"update", "", "update container resource constraints", "<container-id>",
   "With --resources the JSON document (a LinuxResources object from the OCI\n"
   "runtime spec) is read from the file, or from standard input for '-', and all\n"
   "other options are ignored.",
   kUpdateFlags, false, 1, 1},
  {"features", "", "show the enabled features", "",
   "Show the enabled features.\n   The result is parsable as a JSON.", {}, false, 0, 0},
  {"help", "h", "Shows a list of commands or help for one command", "[command]", "", {}, false, 0, -1},
}};

constexpr const CommandSpec& kHelpCommand = kCommands.back();

const CommandSpec* find_command(std::string_view name) {
  for (const CommandSpec& spec : kCommands) {
    if (spec.name == name || (!spec.alias.empty() && spec.alias == name)) return &spec;
  }
  return nullptr;
}

// urfave adds a help flag to every command's flag set without listing it.
const FlagSpec* find_flag(std::span<const FlagSpec> flags, std::string_view name, bool with_help) {
  for (const FlagSpec& flag : flags) {
    if (flag.name == name || (!flag.alias.empty() && flag.alias == name)) return &flag;
  }
  if (with_help && (name == kHelpFlag.name || name == kHelpFlag.alias)) return &kHelpFlag;
  return nullptr;
}

// ---- Go value syntax ---------------------------------------------------------

// strconv.ParseBool.
std::optional<bool> parse_go_bool(std::string_view s) {
  if (s == "1" || s == "t" || s == "T" || s == "TRUE" || s == "true" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "FALSE" || s == "false" || s == "False") return false;
  return std::nullopt;
}

enum class IntError : uint8_t { None, Syntax, Range };

// strconv.ParseInt(s, 0, 64): optional sign, then 0x/0o/0b/0 prefixes select the base.
// (Go's `_` digit separators are not accepted; nobody passes them to a runtime.)
IntError parse_go_int(std::string_view s, int64_t& out) {
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  unsigned base = 10;
  if (s.size() > 1 && s[0] == '0') {
    char p = static_cast<char>(s[1] | 0x20);
    if (p == 'x') base = 16, s.remove_prefix(2);
    else if (p == 'o') base = 8, s.remove_prefix(2);
    else if (p == 'b') base = 2, s.remove_prefix(2);
    else base = 8, s.remove_prefix(1);
  }
  if (s.empty()) return IntError::Syntax;
  uint64_t value = 0;
  bool overflow = false;
  for (char c : s) {
    unsigned digit;
    if (c >= '0' && c <= '9') digit = static_cast<unsigned>(c - '0');
    else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') digit = static_cast<unsigned>((c | 0x20) - 'a' + 10);
    else return IntError::Syntax;
    if (digit >= base) return IntError::Syntax;
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / base) overflow = true;
    else value = value * base + digit;
  }
  constexpr uint64_t kLimit = uint64_t{1} << 63;
  if (overflow || value > (negative ? kLimit : kLimit - 1)) return IntError::Range;
  out = negative ? static_cast<int64_t>(0 - value) : static_cast<int64_t>(value);
  return IntError::None;
}

// time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+ with units ns us µs μs ms s m h.
std::optional<int64_t> parse_go_duration(std::string_view s) {
  constexpr uint64_t kMax = uint64_t{1} << 63;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return 0;
  if (s.empty()) return std::nullopt;
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  uint64_t total = 0;
  while (!s.empty()) {
    if (!(s[0] == '.' || is_digit(s[0]))) return std::nullopt;
    uint64_t whole = 0;
    size_t n = 0;
    for (; n < s.size() && is_digit(s[n]); ++n) {
      if (whole > (kMax - 1) / 10) return std::nullopt; // overflow
      whole = whole * 10 + static_cast<uint64_t>(s[n] - '0');
      if (whole > kMax) return std::nullopt;
    }
    bool had_whole = n > 0;
    s.remove_prefix(n);
    uint64_t fraction = 0;
    double scale = 1;
    bool had_fraction = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      bool fraction_overflow = false;
      for (n = 0; n < s.size() && is_digit(s[n]); ++n) {
        if (fraction_overflow) continue;
        if (fraction > (kMax - 1) / 10) { fraction_overflow = true; continue; }
        uint64_t next = fraction * 10 + static_cast<uint64_t>(s[n] - '0');
        if (next > kMax) { fraction_overflow = true; continue; }
        fraction = next;
        scale *= 10;
      }
      had_fraction = n > 0;
      s.remove_prefix(n);
    }
    if (!had_whole && !had_fraction) return std::nullopt;
    size_t unit_len = 0;
    while (unit_len < s.size() && s[unit_len] != '.' && !is_digit(s[unit_len])) ++unit_len;
    std::string_view unit_name = s.substr(0, unit_len);
    s.remove_prefix(unit_len);
    uint64_t unit;
    if (unit_name == "ns") unit = 1;
    else if (unit_name == "us" || unit_name == "\u00b5s" || unit_name == "\u03bcs") unit = 1000;
    else if (unit_name == "ms") unit = 1000 * 1000;
    else if (unit_name == "s") unit = 1000 * 1000 * 1000;
    else if (unit_name == "m") unit = 60ull * 1000 * 1000 * 1000;
    else if (unit_name == "h") unit = 3600ull * 1000 * 1000 * 1000;
    else return std::nullopt; // missing or unknown unit
    if (whole > kMax / unit) return std::nullopt;
    whole *= unit;
    if (fraction > 0) {
      whole += static_cast<uint64_t>(static_cast<double>(fraction) * (static_cast<double>(unit) / scale));
      if (whole > kMax) return std::nullopt;
    }
    total += whole;
    if (total > kMax) return std::nullopt;
  }
  if (negative) return static_cast<int64_t>(0 - total);
  if (total > kMax - 1) return std::nullopt;
  return static_cast<int64_t>(total);
}

// ---- the parser --------------------------------------------------------------

// Go's flag.FlagSet.Parse over args: calls on_flag(spec, value) for each flag (bools
// get "true"/"false") and returns the index of the first argument it did not consume.
// `typed` is the flag name as written, which is what Go's error messages quote.
template <typename OnFlag>
size_t parse_flag_set(std::span<const std::string_view> args, std::span<const FlagSpec> flags, bool with_help,
                      OnFlag&& on_flag) {
  size_t i = 0;
  while (i < args.size()) {
    std::string_view arg = args[i];
    if (arg.size() < 2 || arg[0] != '-') break; // positional, or "-" (stdin)
    size_t dashes = 1;
    if (arg[1] == '-') {
      if (arg.size() == 2) return i + 1;       // "--" ends the flags and is consumed
      dashes = 2;
    }
    std::string_view typed = arg.substr(dashes);
    if (typed.empty() || typed[0] == '-' || typed[0] == '=') fail("bad flag syntax: {}", arg);
    ++i;
    std::optional<std::string_view> value;
    if (size_t eq = typed.find('='); eq != std::string_view::npos) {
      value = typed.substr(eq + 1);
      typed = typed.substr(0, eq);
    }
    const FlagSpec* spec = find_flag(flags, typed, with_help);
    if (!spec) fail("flag provided but not defined: -{}", typed);

    if (spec->kind == Kind::Bool) {
      bool on = true;
      if (value) {
        std::optional<bool> parsed = parse_go_bool(*value);
        if (!parsed) fail("invalid boolean value \"{}\" for -{}: parse error", *value, typed);
        on = *parsed;
      }
      on_flag(*spec, on ? std::string_view("true") : std::string_view("false"));
      continue;
    }
    if (!value) {
      // Go takes the next argument whatever it looks like: `--pid-file --x` sets "--x".
      if (i == args.size()) fail("flag needs an argument: -{}", typed);
      value = args[i++];
    }
    int64_t number;
    switch (spec->kind) {
    case Kind::Int:
      if (IntError err = parse_go_int(*value, number); err != IntError::None)
        fail("invalid value \"{}\" for flag -{}: {}", *value, typed,
             err == IntError::Range ? "value out of range" : "parse error");
      break;
    case Kind::IntList: // urfave's Int64Slice returns strconv's error verbatim
      if (IntError err = parse_go_int(*value, number); err != IntError::None)
        fail("invalid value \"{}\" for flag -{}: strconv.ParseInt: parsing \"{}\": {}", *value, typed, *value,
             err == IntError::Range ? "value out of range" : "invalid syntax");
      break;
    case Kind::Duration:
      if (!parse_go_duration(*value)) fail("invalid value \"{}\" for flag -{}: parse error", *value, typed);
      break;
    default:
      break;
    }
    on_flag(*spec, *value);
  }
  return i;
}

// urfave v1.22.1 reorderArgs: every dash argument, plus the non-dash word right
// after a dash argument without '=', moves in front of the rest; `--` and
// everything after it stay behind, in order.
void reorder(std::span<const std::string_view> args, std::vector<std::string_view>& out) {
  out.clear();
  out.reserve(args.size());
  std::vector<std::string_view> rest;
  bool may_take_value = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--") {
      rest.insert(rest.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    if (may_take_value && !arg.starts_with('-')) {
      may_take_value = false;
      out.push_back(arg);
      continue;
    }
    may_take_value = false;
    if (arg != "-" && arg.starts_with('-')) {
      out.push_back(arg);
      may_take_value = arg.find('=') == std::string_view::npos;
    } else {
      rest.push_back(arg);
    }
  }
  out.insert(out.end(), rest.begin(), rest.end());
}

// runc's Before hook: validated only when a command is about to run, so that
// `--version` and `--help` work whatever else was passed.
void validate_globals(GlobalOptions& global) {
  if (global.log_format.empty()) global.log_format = "text";
  if (global.log_format != "text" && global.log_format != "json")
    fail("invalid log-format: {}", global.log_format);

  std::string_view rootless = global.rootless;
  auto lower_is_auto = [](std::string_view s) {
    return s.size() == 4 && (s[0] | 0x20) == 'a' && (s[1] | 0x20) == 'u' && (s[2] | 0x20) == 't' &&
           (s[3] | 0x20) == 'o';
  };
  if (rootless.empty() || lower_is_auto(rootless)) {
    global.rootless = "auto";
  } else if (std::optional<bool> on = parse_go_bool(rootless)) {
    global.rootless = *on ? "true" : "false";
  } else {
    fail("invalid value \"{}\" for flag -rootless: want true, false or auto", rootless);
  }

  const std::string& manager = global.cgroup_manager;
  if (!manager.empty() && manager != "cgroupfs" && manager != "systemd" && manager != "disabled")
    fail("invalid value \"{}\" for flag -cgroup-manager: want cgroupfs, systemd or disabled", manager);
}

std::string_view last_value(const Command& command, const std::string& flag) {
  auto it = command.flags.find(flag);
  if (it == command.flags.end() || it->second.empty()) return {};
  return it->second.back();
}

} // namespace

// ---- Command accessors -------------------------------------------------------

bool Command::has(const std::string& flag) const { return flags.find(flag) != flags.end(); }

bool Command::boolean(const std::string& flag) const { return last_value(*this, flag) == "true"; }

std::string Command::value(const std::string& flag, const std::string& def) const {
  auto it = flags.find(flag);
  if (it == flags.end() || it->second.empty()) return def;
  return it->second.back();
}

std::vector<std::string> Command::values(const std::string& flag) const {
  auto it = flags.find(flag);
  return it == flags.end() ? std::vector<std::string>{} : it->second;
}

long long Command::integer(const std::string& flag, long long def) const {
  if (!has(flag)) return def;
  std::string_view text = last_value(*this, flag);
  int64_t number;
  if (parse_go_int(text, number) != IntError::None) fail("invalid value \"{}\" for flag -{}: parse error", text, flag);
  return number;
}

std::chrono::nanoseconds Command::duration(const std::string& flag, std::chrono::nanoseconds def) const {
  if (!has(flag)) return def;
  std::string_view text = last_value(*this, flag);
  std::optional<int64_t> ns = parse_go_duration(text);
  if (!ns) fail("invalid value \"{}\" for flag -{}: parse error", text, flag);
  return std::chrono::nanoseconds(*ns);
}

// ---- parse -------------------------------------------------------------------

Command parse(int argc, char** argv) {
  Command command;
  std::vector<std::string_view> args;
  args.reserve(argc > 1 ? static_cast<size_t>(argc) : 1);
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);

  GlobalOptions& global = command.global;
  size_t next = parse_flag_set(args, kGlobalFlags, false, [&](const FlagSpec& flag, std::string_view value) {
    std::string_view name = flag.name;
    bool on = value == "true";
    if (name == "root") global.root = value;
    else if (name == "log") global.log = value;
    else if (name == "log-format") global.log_format = value;
    else if (name == "debug") global.debug = on;
    else if (name == "systemd-cgroup") global.systemd_cgroup = on;
    else if (name == "rootless") global.rootless = value;
    else if (name == "cgroup-manager") global.cgroup_manager = value;
    else if (name == "allow-unenforced-limits") global.allow_unenforced_limits = on;
    else if (name == "help") command.show_help = on;
    else if (name == "version") command.show_version = on;
    // --criu: accepted for compatibility, nothing to configure.
  });
  std::span<const std::string_view> rest = std::span(args).subspan(next);

  // urfave checks help, then version, before anything else runs; `--help create`
  // shows the global help, so the words after it are only kept as arguments.
  if (command.show_help || command.show_version) {
    for (std::string_view arg : rest) command.args.emplace_back(arg);
    return command;
  }
  validate_globals(global);
  if (rest.empty()) { // a bare `berth` prints the help and succeeds
    command.show_help = true;
    return command;
  }

  const CommandSpec* spec = find_command(rest[0]);
  if (!spec) fail("No help topic for '{}'", rest[0]);
  command.name = spec->name;

  std::span<const std::string_view> tail = rest.subspan(1);
  std::vector<std::string_view> reordered;
  if (!spec->skip_reorder) {
    reorder(tail, reordered);
    tail = reordered;
  }
  next = parse_flag_set(tail, spec->flags, true, [&](const FlagSpec& flag, std::string_view value) {
    if (&flag == &kHelpFlag) {
      command.show_help = value == "true";
      return;
    }
    std::vector<std::string>& slot = command.flags[std::string(flag.name)];
    if (flag.kind == Kind::StringList || flag.kind == Kind::IntList) {
      slot.emplace_back(value);
    } else if (slot.empty()) {
      slot.emplace_back(value);
    } else { // Go's flag package: a repeated scalar flag keeps the last value
      slot.back().assign(value);
    }
  });
  for (std::string_view arg : tail.subspan(next)) command.args.emplace_back(arg);

  if (spec == &kHelpCommand) {
    // `berth help [command]`: becomes a help request for that command.
    command.show_help = true;
    command.name.clear();
    if (!command.args.empty()) {
      const CommandSpec* topic = find_command(command.args.front());
      if (!topic) fail("No help topic for '{}'", command.args.front());
      if (topic != &kHelpCommand) command.name = topic->name;
      command.args.clear();
    }
  }
  return command;
}

void check_args(const Command& command) {
  const CommandSpec* spec = find_command(command.name);
  if (!spec) return;
  int count = static_cast<int>(command.args.size());
  if (spec->min_args == spec->max_args && count != spec->min_args)
    fail("{}: \"{}\" requires exactly {} argument(s)", kProg, spec->name, spec->min_args);
  if (count < spec->min_args)
    fail("{}: \"{}\" requires a minimum of {} argument(s)", kProg, spec->name, spec->min_args);
  if (spec->max_args >= 0 && count > spec->max_args)
    fail("{}: \"{}\" requires a maximum of {} argument(s)", kProg, spec->name, spec->max_args);
}

// ---- usage -------------------------------------------------------------------

namespace {

// `--bundle value, -b value` (bools have no placeholder), as urfave prints it.
std::string flag_label(const FlagSpec& flag) {
  std::string_view placeholder = flag.kind == Kind::Bool ? "" : " value";
  std::string label = fmt::format("--{}{}", flag.name, placeholder);
  if (!flag.alias.empty())
    label += fmt::format(", {}{}{}", flag.alias.size() == 1 ? "-" : "--", flag.alias, placeholder);
  return label;
}

// Two aligned columns, like urfave's tabwriter (padding 2, three-space indent).
void append_table(std::string& out, std::span<const std::pair<std::string, std::string>> rows) {
  size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());
  for (const auto& row : rows) {
    out += "   ";
    out += row.first;
    out.append(width - row.first.size() + 2, ' ');
    out += row.second;
    out += '\n';
  }
}

void append_flags(std::string& out, std::span<const FlagSpec> flags) {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const FlagSpec& flag : flags) {
    if (flag.hidden) continue;
    std::string help(flag.help);
    if (!flag.default_text.empty()) help += fmt::format(" (default: {})", flag.default_text);
    rows.emplace_back(flag_label(flag), std::move(help));
  }
  append_table(out, rows);
}

std::string names_of(const CommandSpec& spec) {
  return spec.alias.empty() ? std::string(spec.name) : fmt::format("{}, {}", spec.name, spec.alias);
}

} // namespace

std::string usage(const std::string& command) {
  std::string out;
  if (command.empty()) {
    out += fmt::format(
        "NAME:\n   {0} - Open Container Initiative runtime\n\n"
        "{0} is a command line client for running applications packaged according to\n"
        "the Open Container Initiative (OCI) format. It is a drop-in replacement for runc.\n\n"
        "To start a new instance of a container:\n\n"
        "    # {0} run [ -b bundle ] <container-id>\n\n"
        "USAGE:\n   {0} [global options] command [command options] [arguments...]\n",
        kProg);
#ifdef BERTH_VERSION
    out += "\nVERSION:\n   " BERTH_VERSION "\n";
#endif
    out += "\nCOMMANDS:\n";
    std::vector<std::pair<std::string, std::string>> rows;
    for (const CommandSpec& spec : kCommands) rows.emplace_back(names_of(spec), std::string(spec.summary));
    append_table(out, rows);
    out += "\nGLOBAL OPTIONS:\n";
    append_flags(out, kGlobalFlags);
    return out;
  }

  const CommandSpec* spec = find_command(command);
  if (!spec) fail("No help topic for '{}'", command);
  out += fmt::format("NAME:\n   {} {} - {}\n\nUSAGE:\n   {} {}{} {}\n", kProg, spec->name, spec->summary, kProg,
                     spec->name, spec->flags.empty() ? "" : " [command options]",
                     spec->args_usage.empty() ? std::string_view("[arguments...]") : spec->args_usage);
  if (!spec->description.empty()) out += fmt::format("\nDESCRIPTION:\n   {}\n", spec->description);
  if (!spec->flags.empty()) {
    out += "\nOPTIONS:\n";
    append_flags(out, spec->flags);
  }
  return out;
}

std::vector<std::string> command_names() {
  std::vector<std::string> names;
  names.reserve(kCommands.size() - 1);
  for (const CommandSpec& spec : kCommands) {
    if (&spec != &kHelpCommand) names.emplace_back(spec.name);
  }
  return names;
}

} // namespace berth::cli
