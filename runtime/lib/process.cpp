#include "runtime/lib/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/keyctl.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "runtime/lib/dmz.hpp"
#include "runtime/lib/finalize.hpp"
#include "runtime/lib/state.hpp"
#include "runtime/lib/sync.hpp"
#include "runtime/lib/terminal.hpp"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace berth {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::string env_value(const std::vector<std::string>& env, std::string_view key) {
  for (auto it = env.rbegin(); it != env.rend(); ++it)
    if (it->size() > key.size() && it->compare(0, key.size(), key) == 0 && (*it)[key.size()] == '=')
      return it->substr(key.size() + 1);
  return {};
}

void set_ids_to_root() {
  if (::setresgid(0, 0, 0) < 0) fail_errno("setresgid(0) in the user namespace");
  if (::setresuid(0, 0, 0) < 0) fail_errno("setresuid(0) in the user namespace");
}

void join_namespaces(const InitContext& c, bool user_only) {
  for (auto& [flag, fd] : c.joins) {
    if ((flag == CLONE_NEWUSER) != user_only) continue;
    if (::setns(fd, flag) < 0) fail_errno("join {} namespace", namespace_proc_name(flag));
  }
}

void request_idmap(InitContext& c) {
  sync::send(c.sync_fd, sync::Msg::need_idmap);
  auto done = sync::expect(c.sync_fd, sync::Msg::idmap_done, "uid/gid mapping");
  auto trees = parse_uint(done.payload).value_or(0);
  for (uint64_t i = 0; i < trees; i++) {
    std::string index;
    UniqueFd fd = recv_fd(c.sync_fd, &index);
    c.idmap_trees.emplace_back(parse_uint(index).value_or(SIZE_MAX), std::move(fd));
  }
  set_ids_to_root();
}

void write_time_offsets(const Spec& s) {
  std::string text;
  for (auto& [clock, secs] : s.time_offsets)
    text += fmt::format("{} {} {}\n", clock, secs, s.time_offsets_nanos.at(clock));
  if (!text.empty())
    with_context("set time namespace offsets", [&] { write_file("/proc/self/timens_offsets", text, false); });
}

// Forks the init; returns in the init. The intermediate reports the init's pid and
// exits. The init waits until that report is sent: both write to the same socket, and
// the parent must learn the init's pid before any message of the init (it reads the
// init's start time then, and a state that pairs the init's pid with the
// intermediate's start time says "stopped" for a live container).
void fork_init(const InitContext& c) {
  int go[2];
  if (::pipe2(go, O_CLOEXEC) < 0) fail_errno("pipe");
  UniqueFd go_read(go[0]), go_write(go[1]);
  pid_t pid = ::fork();
  if (pid < 0) fail_errno("fork the container init");
  if (pid > 0) {
    sync::send(c.sync_fd, sync::Msg::init_pid, std::to_string(pid));
    char b = 1;
    if (::write(go_write.get(), &b, 1) != 1) fail_errno("release the container init");
    ::_exit(0);
  }
  go_write.reset();
  char b = 0;
  ssize_t n;
  do {
    n = ::read(go_read.get(), &b, 1);
  } while (n < 0 && errno == EINTR);
  // EOF: the intermediate failed before it could report us; it sent the error.
  if (n != 1) ::_exit(1);
}

// The slow path: join, unshare, and fork the real init when the pid or time
// namespace only applies to children. Returns in the process that becomes init.
void enter_namespaces_stepwise(InitContext& c) {
  const Spec& s = *c.spec;
  join_namespaces(c, /*user_only=*/true);
  bool joined_user = false;
  for (auto& [flag, fd] : c.joins) joined_user |= flag == CLONE_NEWUSER;
  if (joined_user) set_ids_to_root();
  join_namespaces(c, /*user_only=*/false);
  if (c.new_flags & CLONE_NEWUSER) {
    if (::unshare(CLONE_NEWUSER) < 0) fail_errno("create user namespace");
    request_idmap(c);
  }
  unsigned long rest = c.new_flags & ~static_cast<unsigned long>(CLONE_NEWUSER);
  if (rest && ::unshare(static_cast<int>(rest)) < 0) fail_errno("create namespaces (flags {:#x})", rest);
  if (rest & CLONE_NEWTIME) write_time_offsets(s);
  if (init_is_forked(c)) fork_init(c);
}

void set_hostname(const Spec& s) {
  if (!s.hostname.empty() && ::sethostname(s.hostname.data(), s.hostname.size()) < 0)
    fail_errno("sethostname {}", s.hostname);
  if (!s.domainname.empty() && ::setdomainname(s.domainname.data(), s.domainname.size()) < 0)
    fail_errno("setdomainname {}", s.domainname);
}

void write_sysctls(const Spec& s) {
  for (auto& [key, value] : s.sysctl) {
    std::string path = "/proc/sys/" + key;
    for (size_t i = 10; i < path.size(); i++)
      if (path[i] == '.') path[i] = '/';
    with_context(fmt::format("sysctl {}", key), [&] { write_file(path, value, false); });
  }
}

void setup_terminal(InitContext& c) {
  const ProcessSpec& p = c.spec->process;
  PtyPair pty = open_pty();
  if (p.console_size) set_window_size(pty.master.get(), p.console_size->first, p.console_size->second);
  if (c.console_fd >= 0) {
    send_fd(c.console_fd, pty.master.get(), "/dev/ptmx");
    ::close(c.console_fd);
    c.console_fd = -1;
  } else {
    sync::send(c.sync_fd, sync::Msg::pty_master);
    send_fd(c.sync_fd, pty.master.get(), "pty");
  }
  pty.master.reset();
  make_controlling_terminal(pty.slave.get());
}

void join_session_keyring(const std::string& id) {
  std::string name = "_ses." + id;
  if (::syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.c_str(), 0, 0, 0) < 0 && errno != ENOSYS &&
      errno != EACCES && errno != EPERM && errno != EDQUOT)
    fail_errno("join session keyring");
}

void wait_for_start(const InitContext& c) {
  if (c.fifo_fd < 0) {
    sync::expect(c.sync_fd, sync::Msg::start, "start");
    return;
  }
  // `berth start` opens the fifo for writing and writes one byte.
  for (;;) {
    struct pollfd pfd = {c.fifo_fd, POLLIN, 0};
    int n = ::poll(&pfd, 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("wait for start");
    char b;
    ssize_t r = ::read(c.fifo_fd, &b, 1);
    if (r == 1) return;
    if (r < 0 && errno != EAGAIN && errno != EINTR) fail_errno("read exec fifo");
    if (r == 0) ::usleep(1000); // a writer came and went without writing; keep waiting
  }
}


void report_start_error(const InitContext& c, const Error& e) {
  if (c.state_dir_fd < 0) return;
  int fd = ::openat(c.state_dir_fd, "start.error", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  json j = {{"errno", e.code()}, {"msg", e.message()}};
  std::string text = j.dump();
  ssize_t n = ::write(fd, text.data(), text.size());
  (void)n;
  ::close(fd);
}

std::string with_status(const std::string& state_json, const char* status) {
  json j = json::parse(state_json);
  j["status"] = status;
  return j.dump();
}

[[noreturn]] void run_init(InitContext& c) {
  const Spec& s = *c.spec;
  const ProcessSpec& p = s.process;

  if (!c.flags_in_clone) {
    enter_namespaces_stepwise(c);
  } else {
    if (c.new_flags & CLONE_NEWUSER) request_idmap(c);
    join_namespaces(c, /*user_only=*/false);
  }
  for (auto& [flag, fd] : c.joins) ::close(fd);
  c.joins.clear();

  if (p.terminal || c.console_fd >= 0) ::setsid();
  if (!c.no_new_keyring) join_session_keyring(c.id);

  RootfsConfig rootfs;
  rootfs.rootfs = s.root_path;
  rootfs.readonly = s.root_readonly;
  rootfs.rootfs_propagation = s.rootfs_propagation;
  rootfs.mounts = s.mounts;
  rootfs.devices = s.devices;
  rootfs.masked_paths = s.masked_paths;
  rootfs.readonly_paths = s.readonly_paths;
  rootfs.user_namespace = s.has_namespace(CLONE_NEWUSER);
  rootfs.no_pivot = c.no_pivot;
  rootfs.mount_namespace = s.has_namespace(CLONE_NEWNS);
  rootfs.cgroup_path = c.cgroup_path;
  rootfs.cgroup_namespace = s.has_namespace(CLONE_NEWCGROUP);
  rootfs.mount_label = s.mount_label;
  rootfs.uid_mappings = s.uid_mappings;
  rootfs.gid_mappings = s.gid_mappings;
  for (auto& [index, fd] : c.idmap_trees)
    if (index < rootfs.mounts.size()) rootfs.mounts[index].premade_tree = fd.get();
  prepare_rootfs(rootfs);

  sync::send(c.sync_fd, sync::Msg::mounts_done);
  std::string state_json = sync::expect(c.sync_fd, sync::Msg::hooks_done, "createRuntime hooks").payload;
  run_hooks(s.hooks.create_container, "createContainer", state_json);

  UniqueFd listener;
  if (s.seccomp && !s.seccomp->listener_path.empty()) listener = connect_unix(s.seccomp->listener_path);

  enter_rootfs(rootfs);
  write_sysctls(s); // before finalize_rootfs makes /proc/sys read-only
  finalize_rootfs(rootfs);
  set_hostname(s);
  if (p.terminal) setup_terminal(c);

  if (::chdir(p.cwd.c_str()) < 0) {
    if (errno != ENOENT) fail_errno("chdir to cwd (\"{}\") set in config.json", p.cwd);
    mkdir_p(p.cwd);
    if (::chdir(p.cwd.c_str()) < 0) fail_errno("chdir to cwd (\"{}\") set in config.json", p.cwd);
  }
  PreparedProcess prepared = prepare_process(p);

  ::prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0); // `create` exits while we wait for start

  // A created container waits for `start` inside berth-dmz, so the host's berth binary
  // is never the executable of a process in the container, not even before start.
  // startContainer hooks run berth code after start, so with them the init waits in
  // berth, after everything that can fail (so that a failure still fails `create`).
  bool wait_in_dmz = init_waits_in_dmz(c);
  try {
    FinalizeArgs f;
    f.process = &p;
    f.env = std::move(prepared.env);
    f.exe = std::move(prepared.exe);
    f.seccomp = s.seccomp.get();
    f.personality = &s.personality;
    f.user_namespace = s.has_namespace(CLONE_NEWUSER);
    f.dmz_fd = c.dmz_fd;
    f.preserve_fds = c.preserve_fds;
    f.wait_fd = wait_in_dmz ? c.fifo_fd : -1;
    f.listener_fd = listener.release();
    if (f.listener_fd >= 0) {
      f.listener_state = with_status(state_json, "creating");
      f.listener_metadata = s.seccomp->listener_metadata;
    }
    if (wait_in_dmz) {
      f.before_privileges_drop = [&] { sync::send(c.sync_fd, sync::Msg::created); };
    } else {
      f.ready = [&] {
        sync::send(c.sync_fd, sync::Msg::created);
        wait_for_start(c);
        run_hooks(s.hooks.start_container, "startContainer", with_status(state_json, "created"));
      };
    }
    finalize_and_exec(f);
  } catch (Error& e) {
    report_start_error(c, e);
    throw;
  }
}

} // namespace

bool init_waits_in_dmz(const InitContext& c) {
  return c.fifo_fd >= 0 && c.dmz_fd >= 0 && c.spec->hooks.start_container.empty();
}

bool init_is_forked(const InitContext& c) {
  if (c.flags_in_clone) return false;
  if (c.new_flags & (CLONE_NEWPID | CLONE_NEWTIME)) return true;
  for (auto& [flag, fd] : c.joins)
    if (flag == CLONE_NEWPID) return true;
  return false;
}

bool namespaces_need_intermediate(const Spec& spec) {
  bool new_user = false, any_join = false;
  for (auto& ns : spec.namespaces) {
    if (!ns.path.empty()) {
      any_join = true;
      if (ns.flag == CLONE_NEWUSER || ns.flag == CLONE_NEWPID) return true;
    } else if (ns.flag == CLONE_NEWUSER) {
      new_user = true;
    }
  }
  if (new_user && any_join) return true;
  return !spec.time_offsets.empty();
}

static void check_cwd_inside_container() {
  char buf[4096];
  // glibc's getcwd fails with ENOENT for a directory not reachable from the root.
  if (!::getcwd(buf, sizeof buf)) {
    if (errno == ENOENT) fail("current working directory is outside of the container's root");
    fail_errno("getcwd");
  }
  if (buf[0] != '/') fail("current working directory is outside of the container's root (\"{}\")", buf);
}

PreparedProcess prepare_process(const ProcessSpec& p) {
  check_cwd_inside_container();
  PreparedProcess out{p.env, {}};
  add_home(out.env, p.uid);
  out.exe = resolve_executable(p.args[0], out.env);
  if (p.oom_score_adj)
    with_context("set oom_score_adj",
                 [&] { write_file("/proc/self/oom_score_adj", std::to_string(*p.oom_score_adj), false); });
  apply_rlimits(p.rlimits);
  return out;
}

std::string resolve_executable(const std::string& arg0, const std::vector<std::string>& env) {
  auto check = [](const std::string& path) -> int {
    struct stat st;
    if (::stat(path.c_str(), &st) < 0) return errno;
    if (S_ISDIR(st.st_mode)) return EACCES;
    if (!(st.st_mode & 0111)) return EACCES;
    return 0;
  };
  if (arg0.find('/') != std::string::npos) {
    int err = check(arg0);
    if (err == ENOENT) fail_code(err, "exec: \"{}\": stat {}", arg0, arg0);
    if (err) fail_code(err, "exec: \"{}\"", arg0);
    return arg0;
  }
  std::string path = env_value(env, "PATH");
  if (path.empty()) path = kDefaultPath;
  int denied = 0;
  for (auto& dir : split(path, ':', false)) {
    std::string candidate = path_join(dir.empty() ? "." : dir, arg0);
    int err = check(candidate);
    if (err == 0) return candidate;
    if (err == EACCES) denied = err;
  }
  if (denied) fail_code(denied, "exec: \"{}\"", arg0);
  fail("exec: \"{}\": executable file not found in $PATH", arg0);
}

void container_init(InitContext& c) {
  try {
    run_init(c);
  } catch (const Error& e) {
    try {
      sync::send(c.sync_fd, sync::Msg::error, e.message(), e.code());
    } catch (...) {
    }
  } catch (const std::exception& e) {
    try {
      sync::send(c.sync_fd, sync::Msg::error, e.what(), 0);
    } catch (...) {
    }
  }
  ::_exit(1);
}

} // namespace berth
