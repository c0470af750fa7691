#include "runtime/lib/exec.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "runtime/lib/capabilities.hpp"
#include "runtime/lib/dmz.hpp"
#include "runtime/lib/finalize.hpp"
#include "runtime/lib/launch.hpp"
#include "runtime/lib/process.hpp"
#include "runtime/lib/spec.hpp"
#include "runtime/lib/state.hpp"
#include "runtime/lib/sync.hpp"
#include "runtime/lib/terminal.hpp"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace berth {

namespace {

// The namespaces in which the container's init differs from us: those are joined.
int namespaces_to_join(pid_t init) {
  static const std::pair<const char*, int> kinds[] = {
      {"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS},  {"pid", CLONE_NEWPID},       {"net", CLONE_NEWNET},
      {"ipc", CLONE_NEWIPC},   {"uts", CLONE_NEWUTS}, {"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME}};
  int flags = 0;
  for (auto& [name, flag] : kinds) {
    struct stat ours, theirs;
    std::string path = fmt::format("/proc/{}/ns/{}", init, name);
    if (::stat(path.c_str(), &theirs) < 0) {
      if (errno == ENOENT) continue; // the kernel lacks this namespace type
      fail_errno("stat {}", path);
    }
    if (::stat(fmt::format("/proc/self/ns/{}", name).c_str(), &ours) < 0) continue;
    if (ours.st_ino != theirs.st_ino || ours.st_dev != theirs.st_dev) flags |= flag;
  }
  return flags;
}

// runc's --user: "uid[:gid]", numeric.
void apply_user_flag(const std::string& user, ProcessSpec& p) {
  auto parts = split(user, ':', false);
  if (parts.empty() || parts.size() > 2) fail("--user \"{}\": expected uid[:gid]", user);
  auto uid = parse_uint(parts[0]);
  if (!uid || *uid > UINT32_MAX) fail("--user \"{}\": uid must be a number", user);
  p.uid = static_cast<uid_t>(*uid);
  if (parts.size() == 2) {
    auto gid = parse_uint(parts[1]);
    if (!gid || *gid > UINT32_MAX) fail("--user \"{}\": gid must be a number", user);
    p.gid = static_cast<gid_t>(*gid);
  }
}

ProcessSpec build_process(const ExecOptions& o, const Spec& spec) {
  ProcessSpec p;
  if (!o.process_file.empty()) {
    std::string text = with_context("--process", [&] { return read_file(o.process_file); });
    json doc;
    try {
      doc = json::parse(text);
    } catch (const json::parse_error& e) {
      fail("--process {}: invalid JSON: {}", o.process_file, e.what());
    }
    with_context(fmt::format("--process {}", o.process_file), [&] { parse_process(JsonView(doc, ""), p); });
    if (o.tty) p.terminal = true;
    return p;
  }
  if (o.args.empty()) fail("exec: no command given (usage: berth exec <container-id> <command> [args...])");
  p = spec.process;
  p.args = o.args;
  p.terminal = o.tty;
  for (auto& e : o.env) p.env.push_back(e);
  if (!o.cwd.empty()) p.cwd = o.cwd;
  if (!o.user.empty()) apply_user_flag(o.user, p);
  for (auto& g : o.additional_gids) {
    auto gid = parse_uint(g);
    if (!gid || *gid > UINT32_MAX) fail("--additional-gids \"{}\": must be a number", g);
    p.additional_gids.push_back(static_cast<gid_t>(*gid));
  }
  for (auto& name : o.caps) {
    auto cap = capability_from_name(name);
    if (!cap) fail("--cap: unknown capability \"{}\"", name);
    for (auto* set : {&p.capabilities.bounding, &p.capabilities.effective, &p.capabilities.permitted,
                      &p.capabilities.inheritable, &p.capabilities.ambient})
      if (std::find(set->begin(), set->end(), *cap) == set->end()) set->push_back(*cap);
    p.capabilities.present = true;
  }
  if (o.no_new_privs) p.no_new_privileges = true;
  if (!o.process_label.empty()) p.selinux_label = o.process_label;
  if (!o.apparmor.empty()) p.apparmor_profile = o.apparmor;
  return p;
}

struct ExecChild {
  const Spec* spec;
  const ProcessSpec* process;
  int pidfd, join_flags, sync_fd, console_fd, dmz_fd, preserve_fds;
};

[[noreturn]] void exec_child(ExecChild& c) {
  try {
    int late = c.join_flags & ~(CLONE_NEWPID | CLONE_NEWTIME); // pid and time were joined by the parent
    if (late && ::setns(c.pidfd, late) < 0) fail_errno("join the container's namespaces");
    ::close(c.pidfd);
    if (c.join_flags & CLONE_NEWUSER) {
      if (::setresgid(0, 0, 0) < 0 || ::setresuid(0, 0, 0) < 0) fail_errno("become root in the user namespace");
    }
    const ProcessSpec& p = *c.process;
    if (p.terminal) {
      ::setsid();
      PtyPair pty = open_pty();
      if (p.console_size) set_window_size(pty.master.get(), p.console_size->first, p.console_size->second);
      if (c.console_fd >= 0) {
        send_fd(c.console_fd, pty.master.get(), "/dev/ptmx");
        ::close(c.console_fd);
      } else {
        sync::send(c.sync_fd, sync::Msg::pty_master);
        send_fd(c.sync_fd, pty.master.get(), "pty");
      }
      pty.master.reset();
      make_controlling_terminal(pty.slave.get());
    }
    if (::chdir(p.cwd.c_str()) < 0) fail_errno("chdir to cwd (\"{}\") set in config.json failed", p.cwd);
    PreparedProcess prepared = prepare_process(p);

    FinalizeArgs f;
    f.process = &p;
    f.env = std::move(prepared.env);
    f.exe = std::move(prepared.exe);
    f.seccomp = c.spec->seccomp.get();
    f.personality = &c.spec->personality;
    f.user_namespace = c.join_flags & CLONE_NEWUSER;
    f.dmz_fd = c.dmz_fd;
    f.preserve_fds = c.preserve_fds;
    finalize_and_exec(f);
  } catch (const Error& e) {
    try {
      sync::send(c.sync_fd, sync::Msg::error, e.message(), e.code());
    } catch (...) {
    }
  }
  ::_exit(255);
}

} // namespace

int exec_container(const RuntimeContext& ctx, const ExecOptions& o) {
  StateDir dir = StateDir::open(ctx.root, o.id, StateDir::Lock::none);
  ContainerState st = dir.load();
  Status status = current_status(dir, st);
  if (status != Status::stopped) protect_runtime_binary(); // we are going to be born in its pid ns
  if (status == Status::stopped) fail("cannot exec in a stopped container");
  if (status == Status::paused && !o.ignore_paused)
    fail("cannot exec in a paused container (use --ignore-paused to override)");
  std::string config_text = read_file_at(dir.fd(), "config.json");
  Spec spec = with_context("config.json", [&] { return parse_spec(config_text, st.bundle); });
  ProcessSpec process = build_process(o, spec);
  if (process.terminal && o.detach && o.console_socket.empty())
    fail("cannot allocate tty if berth will detach without setting console socket");
  if (!process.terminal && !o.console_socket.empty())
    fail("cannot use console socket if berth will not detach or allocate tty");
  for (int fd = 3; fd < 3 + o.preserve_fds; fd++)
    if (::fcntl(fd, F_GETFD) < 0) fail("--preserve-fds {}: fd {} is not open", o.preserve_fds, fd);
  std::string pid_file = o.pid_file.empty() ? "" : absolute_path(o.pid_file);

  // The pidfd pins the init: namespaces are joined through it (one setns call), so a
  // recycled pid can never put us into somebody else's namespaces.
  UniqueFd init(pidfd_open(st.pid));
  if (!init || !init_alive(st)) fail("cannot exec in a stopped container");
  int join = namespaces_to_join(st.pid);

  UniqueFd console, pidfd_sock;
  if (!o.console_socket.empty())
    console = with_context("connect to console socket", [&] { return connect_unix(o.console_socket); });
  if (!o.pidfd_socket.empty())
    pidfd_sock = with_context("connect to pidfd socket", [&] { return connect_unix(o.pidfd_socket); });
  UniqueFd cgroup;
  if (!st.cgroup_path.empty()) {
    std::string path = o.cgroup.empty() ? st.cgroup_path : path_join(st.cgroup_path, o.cgroup);
    cgroup.reset(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!cgroup) fail_errno("open the container's cgroup {}", path);
  }
  UniqueFd dmz;
  if (!(join & CLONE_NEWUSER)) dmz = create_dmz_fd();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) fail_errno("socketpair");
  UniqueFd sync_fd(sv[0]), child_end(sv[1]);

  // The pid and time namespaces apply to children only: join them here, so the clone
  // below is born inside them, and go back right after (later children, like the tty
  // relay, must stay outside the container).
  int early = join & (CLONE_NEWPID | CLONE_NEWTIME);
  UniqueFd own_pid_ns(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC));
  UniqueFd own_time_ns((early & CLONE_NEWTIME) ? ::open("/proc/self/ns/time", O_RDONLY | O_CLOEXEC) : -1);
  if (early && ::setns(init.get(), early) < 0) fail_errno("join the container's pid namespace");

  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  sigset_t all, old;
  sigfillset(&all);
  if (!o.detach) ::sigprocmask(SIG_BLOCK, &all, &old);

  ExecChild c{&spec, &process, init.get(), join, child_end.get(), console.get(), dmz.get(), o.preserve_fds};
  int pidfd = -1;
  bool in_cgroup = false;
  pid_t pid = clone_container(0, cgroup ? cgroup.get() : -1, &pidfd, &in_cgroup);
  if (pid == 0) {
    ::close(sync_fd.release());
    exec_child(c);
  }
  UniqueFd own_pidfd(pidfd);
  if ((early & CLONE_NEWPID) && ::setns(own_pid_ns.get(), CLONE_NEWPID) < 0) fail_errno("leave the pid namespace");
  if (own_time_ns && ::setns(own_time_ns.get(), CLONE_NEWTIME) < 0) fail_errno("leave the time namespace");
  ChildGuard guard;
  guard.set(pid);
  child_end.reset();
  console.reset();
  if (!in_cgroup && !st.cgroup_path.empty())
    with_context("join the container's cgroup", [&] {
      write_file(path_join(o.cgroup.empty() ? st.cgroup_path : path_join(st.cgroup_path, o.cgroup),
                           "cgroup.procs"),
                 std::to_string(pid), false);
    });

  // The child either reports an error or execs, which closes its end of the socket.
  UniqueFd pty_master;
  for (;;) {
    sync::Message m;
    if (!sync::try_recv(sync_fd.get(), m)) break;
    if (m.type == sync::Msg::error) throw Error(m.err, m.payload);
    if (m.type == sync::Msg::pty_master) pty_master = recv_fd(sync_fd.get());
  }
  if (pidfd_sock) {
    // As runc 1.2: the exec'd process's pidfd, named "setns".
    if (guard.pidfd() < 0) fail("--pidfd-socket: no pidfd for the exec process (pidfd_open needs Linux 5.3)");
    with_context("send a pidfd to --pidfd-socket", [&] { send_fd(pidfd_sock.get(), guard.pidfd(), "setns"); });
    pidfd_sock.reset();
  }
  if (!pid_file.empty())
    with_context("write pid file", [&] { write_file_atomic(pid_file, std::to_string(pid), 0644, false); });
  if (o.detach) {
    guard.release();
    return 0;
  }
  pid_t relay = -1;
  if (pty_master) {
    relay = ::fork();
    if (relay < 0) fail_errno("fork terminal relay");
    if (relay == 0) {
      ::sigprocmask(SIG_SETMASK, &old, nullptr);
      try {
        relay_pty(pty_master.get());
      } catch (const Error& e) {
        log::warn("terminal relay: {}", e.what());
      }
      ::_exit(0);
    }
    pty_master.reset();
  }
  int code = supervise(pid, guard.pidfd(), relay);
  guard.release();
  return code;
}

} // namespace berth
