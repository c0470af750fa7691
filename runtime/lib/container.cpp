#include "runtime/lib/container.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/sched.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <functional>
#include <optional>
#include <cstring>

#include <fmt/ranges.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "common/subprocess.hpp"
#include "runtime/lib/cgroup.hpp"
#include "runtime/lib/dmz.hpp"
#include "runtime/lib/finalize.hpp"
#include "runtime/lib/hooks.hpp"
#include "runtime/lib/launch.hpp"
#include "runtime/lib/notify.hpp"
#include "runtime/lib/process.hpp"
#include "runtime/lib/rootfs.hpp"
#include "runtime/lib/spec.hpp"
#include "runtime/lib/state.hpp"
#include "runtime/lib/sync.hpp"
#include "runtime/lib/terminal.hpp"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

namespace berth {

namespace {

std::string resolve_bundle(const std::string& bundle) {
  std::string abs = absolute_path(bundle);
  char real[PATH_MAX];
  if (!::realpath(abs.c_str(), real)) fail_errno("bundle {}", abs);
  return real;
}

// Runs newuidmap/newgidmap (Debian's uidmap package, setuid root), which may write
// the ranges /etc/subuid and /etc/subgid grant to an unprivileged user.
void run_id_helper(const char* helper, pid_t pid, const std::vector<IdMapping>& maps) {
  std::vector<std::string> args = {helper, std::to_string(pid)};
  for (auto& m : maps) {
    args.push_back(std::to_string(m.container_id));
    args.push_back(std::to_string(m.host_id));
    args.push_back(std::to_string(m.size));
  }
  std::string path;
  try {
    path = find_executable(helper, path_dirs());
  } catch (const Error&) {
    fail("{} not found: mapping more than the caller's own id needs the uidmap package", helper);
  }
  CommandResult r = run_command(path, args);
  if (!r.ok()) fail("{} {} failed ({}): {}", helper, pid, r.describe(), trim(r.err));
}

void write_id_maps(pid_t pid, const Spec& spec) {
  auto render = [](const std::vector<IdMapping>& maps) {
    std::string out;
    for (auto& m : maps) out += fmt::format("{} {} {}\n", m.container_id, m.host_id, m.size);
    return out;
  };
  auto only_self = [](const std::vector<IdMapping>& maps, uint32_t self) {
    return maps.size() == 1 && maps[0].size == 1 && maps[0].host_id == self;
  };
  std::string proc = fmt::format("/proc/{}/", pid);
  bool root = ::geteuid() == 0;
  if (root || only_self(spec.uid_mappings, ::geteuid()))
    with_context("write uid_map", [&] { write_file(proc + "uid_map", render(spec.uid_mappings), false); });
  else
    run_id_helper("newuidmap", pid, spec.uid_mappings);
  if (root) {
    with_context("write gid_map", [&] { write_file(proc + "gid_map", render(spec.gid_mappings), false); });
  } else if (only_self(spec.gid_mappings, ::getegid())) {
    // An unprivileged process may map its own gid only once setgroups is denied.
    with_context("deny setgroups", [&] { write_file(proc + "setgroups", "deny", false); });
    with_context("write gid_map", [&] { write_file(proc + "gid_map", render(spec.gid_mappings), false); });
  } else {
    run_id_helper("newgidmap", pid, spec.gid_mappings);
  }
}

void write_pid_file(const std::string& path, pid_t pid) {
  if (path.empty()) return;
  with_context("write pid file", [&] { write_file_atomic(path, std::to_string(pid), 0644, /*durable=*/false); });
}

// An init that waits for start in berth-dmz reports "created" before it drops its
// privileges: what fails after that (capabilities, uid/gid, seccomp, the exec of
// berth-dmz) arrives as an error message, or as the init's death, before the sync
// socket closes on the exec. Either fails `create`, as in runc and crun.
void await_exec(int sync_fd, pid_t init) {
  sync::Message m;
  if (sync::try_recv(sync_fd, m)) {
    if (m.type == sync::Msg::error) throw Error(m.err, m.payload);
    fail("sync: unexpected message {} after the container was created", static_cast<uint32_t>(m.type));
  }
  // EOF: the exec closed the socket, or the init died (PF_EXITING is set before its
  // files are closed, so a dying init is never taken for a waiting one).
  constexpr unsigned long kPfExiting = 0x4;
  auto ps = read_proc_stat(init);
  if (!ps || ps->state == 'Z' || ps->state == 'X' || (ps->flags & kPfExiting))
    fail("the container init exited before it could wait for start");
}

// Recorded with the pid, so that a recycled pid is never taken for the init.
uint64_t start_time_of(pid_t pid) {
  auto ps = read_proc_stat(pid);
  if (!ps) fail("read the start time of the container init {}: it is gone", pid);
  return ps->start_time;
}

std::string state_json(const ContainerState& s, Status status) { return oci_state(s, status).dump(); }

Hooks hooks_of(const ContainerState& s) {
  if (!s.config.is_object() || !s.config.contains("hooks")) return {};
  return parse_hooks(JsonView(s.config["hooks"], "hooks"));
}

// Waits until a process (not necessarily our child) has exited.
bool wait_exit(pid_t pid, int pidfd, int timeout_ms) {
  UniqueFd own;
  if (pidfd < 0) {
    own.reset(pidfd_open(pid));
    pidfd = own.get();
    if (pidfd < 0) return errno == ESRCH;
  }
  struct pollfd pfd = {pidfd, POLLIN, 0};
  int n;
  do {
    n = ::poll(&pfd, 1, timeout_ms);
  } while (n < 0 && errno == EINTR);
  return n > 0;
}

// The spec: a failing poststart hook is logged as a warning and the lifecycle goes on.
void run_poststart(const std::vector<Hook>& hooks, const ContainerState& st) {
  run_hooks_warn(hooks, "poststart", state_json(st, Status::running));
}

// Deletes what a stopped (or force-killed) container leaves: poststop hooks, cgroup, state.
void destroy(StateDir& dir, const ContainerState& s) {
  run_hooks_warn(hooks_of(s).poststop, "poststop", state_json(s, Status::stopped));
  cgroup_destroy(s.cgroup_path, s.systemd_cgroup);
  dir.remove();
}

void signal_init(const ContainerState& s, int sig) {
  UniqueFd pidfd(pidfd_open(s.pid));
  if (pidfd) {
    // The pidfd pins the process: re-check it is still our init, then signal race-free.
    if (!init_alive(s)) fail("container not running");
    if (::syscall(SYS_pidfd_send_signal, pidfd.get(), sig, nullptr, 0) == 0) return;
  } else if (errno == ESRCH) {
    fail("container not running");
  } else if (init_alive(s) && ::kill(s.pid, sig) == 0) {
    return;
  }
  if (errno == ESRCH) fail("container not running");
  fail_errno("kill container");
}

void signal_all(const ContainerState& s, int sig) {
  if (sig == SIGKILL && !s.cgroup_path.empty() && cgroup_kill(s.cgroup_path)) return;
  auto pids = s.cgroup_path.empty() ? std::vector<pid_t>{} : cgroup_pids(s.cgroup_path);
  if (pids.empty()) {
    signal_init(s, sig);
    return;
  }
  for (pid_t p : pids)
    if (::kill(p, sig) < 0 && errno != ESRCH) fail_errno("kill process {} of the container", p);
}

// The processes left in a stopped container's cgroup, if any.
void signal_leftovers(const ContainerState& s, int sig) {
  if (s.cgroup_path.empty() || !path_exists(s.cgroup_path)) return;
  if (sig == SIGKILL && cgroup_kill(s.cgroup_path)) return;
  for (pid_t p : cgroup_pids(s.cgroup_path))
    if (::kill(p, sig) < 0 && errno != ESRCH) fail_errno("kill process {} of the container", p);
}

// The container's cgroup, or none: --cgroup-manager=disabled (its limits are then
// knowingly not applied), or a cgroup berth may not create with --rootless (as runc's
// rootless cgroup manager; the limits then need the opt-in like any unenforced limit).
Cgroup container_cgroup(const RuntimeContext& ctx, const Spec& spec, const std::string& id, LimitsPolicy& limits) {
  limits.allow_unenforced = ctx.allow_unenforced_limits;
  if (ctx.cgroups_disabled) {
    limits.allow_unenforced = true;
    limits.no_cgroup_reason = "--cgroup-manager=disabled";
    return Cgroup();
  }
  try {
    Cgroup cgroup = ctx.systemd_cgroup ? Cgroup::create_systemd(spec.cgroups_path, id, spec.resources)
                                       : Cgroup::create(spec.cgroups_path, id);
    if (!cgroup.enabled()) limits.no_cgroup_reason = "this host has no cgroup v2 hierarchy";
    return cgroup;
  } catch (const Error& e) {
    bool permission = e.code() == EACCES || e.code() == EPERM || e.code() == EROFS;
    if (!ctx.rootless_cgroups || !permission) throw;
    log::warn("{}: running without a cgroup of its own (--rootless)", e.what());
    limits.no_cgroup_reason = e.what();
    return Cgroup();
  }
}

// --pidfd-socket: a pidfd of the process, as runc 1.2 sends it ("standard" for an
// init, "setns" for an exec) and crun does.
void send_pidfd(int sock, int pidfd, const char* kind) {
  if (sock < 0) return;
  if (pidfd < 0) fail("--pidfd-socket: no pidfd for the container process (pidfd_open needs Linux 5.3)");
  with_context("send a pidfd to --pidfd-socket", [&] { send_fd(sock, pidfd, kind); });
}

enum class Mode { create, run_detached, run_foreground };

// One `create` or `run`, stage by stage (as crun's container_run_internal and youki's
// builder): each stage below reads what the ones before it left here. The members are
// declared so that, when a stage fails, the child dies before its cgroup and its state
// directory are removed.
struct Launch {
  Launch(const RuntimeContext& c, const CreateOptions& o, Mode m) : ctx(c), opts(o), mode(m) {}
  const RuntimeContext& ctx;
  const CreateOptions& opts;
  Mode mode;

  std::string bundle;
  Spec spec;
  std::string pid_file;
  UniqueFd console, pidfd_sock;
  std::vector<std::pair<int, int>> joins; // (flag, fd) of namespaces the init joins
  std::vector<UniqueFd> join_fds;
  unsigned long new_flags = 0;

  std::optional<StateDir> dir;
  std::string notify_host;
  UniqueFd notify_sock;
  Cgroup cgroup;
  UniqueFd fifo, dir_path_fd, dmz;

  UniqueFd sync, child_end;
  sigset_t saved_mask{};
  InitContext ic;
  UniqueFd first_pidfd;
  ChildGuard guard;
  ContainerState state;
  bool awaiting_init_pid = false;
  UniqueFd pty_master;
};

// Stage 1: the bundle, the options that must agree with it, the sockets to reply on.
void check_request(Launch& l) {
  const CreateOptions& opts = l.opts;
  l.bundle = resolve_bundle(opts.bundle);
  l.spec = load_spec(l.bundle);
  const Spec& spec = l.spec;
  bool detached = l.mode != Mode::run_foreground;
  if (spec.process.terminal && detached && opts.console_socket.empty())
    fail("cannot allocate tty if berth will detach without setting console socket");
  if (!spec.process.terminal && !opts.console_socket.empty())
    fail("cannot use console socket if berth will not detach or allocate tty");
  for (int fd = 3; fd < 3 + opts.preserve_fds; fd++)
    if (::fcntl(fd, F_GETFD) < 0) fail("--preserve-fds {}: fd {} is not open", opts.preserve_fds, fd);
  if (!spec.has_namespace(CLONE_NEWNS))
    log::warn("linux.namespaces has no mount namespace: the container's mounts are made in berth's own "
              "mount namespace");
  l.pid_file = opts.pid_file.empty() ? "" : absolute_path(opts.pid_file);
  if (auto* pid_ns = spec.find_namespace(CLONE_NEWPID); pid_ns && !pid_ns->path.empty())
    protect_runtime_binary(); // the init is born where the pid namespace's processes see it
  if (!opts.console_socket.empty())
    l.console = with_context("connect to console socket", [&] { return connect_unix(opts.console_socket); });
  if (!opts.pidfd_socket.empty())
    l.pidfd_sock = with_context("connect to pidfd socket", [&] { return connect_unix(opts.pidfd_socket); });
}

// Stage 2: the namespaces to create, and those to join, opened now so that a bad path
// fails before anything exists on the host.
void open_namespaces(Launch& l) {
  for (auto& ns : l.spec.namespaces) {
    if (ns.path.empty()) {
      l.new_flags |= static_cast<unsigned long>(ns.flag);
      continue;
    }
    UniqueFd fd(::open(ns.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fail_errno("open {} namespace path {}", ns.type, ns.path);
    l.joins.emplace_back(ns.flag, fd.get());
    l.join_fds.push_back(std::move(fd));
  }
}

// Stage 3: what the container owns on the host: its state directory, notify socket,
// cgroup with its limits, exec fifo and the sealed copy of berth it execs through.
void prepare_host(Launch& l) {
  StateDir& dir = l.dir.emplace(StateDir::create(l.ctx.root, l.opts.id));
  // `exec` builds its process from the configuration the container was created with.
  write_file(dir.path() + "/config.json", l.spec.source_text, true, 0600);
  l.notify_host = notify::host_socket();
  if (!l.notify_host.empty()) {
    notify::setup_container(l.spec, dir.fd(), dir.path());
    // create leaves listening to `start`; run starts the process itself.
    if (l.mode != Mode::create) l.notify_sock = notify::bind_container_socket(dir.fd());
  }
  LimitsPolicy limits;
  l.cgroup = container_cgroup(l.ctx, l.spec, l.opts.id, limits);
  apply_resources(l.cgroup.path(), l.spec.resources, limits);
  if (l.mode == Mode::create) {
    if (::mkfifoat(dir.fd(), "exec.fifo", 0600) < 0) fail_errno("create exec fifo");
    l.fifo.reset(::openat(dir.fd(), "exec.fifo", O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!l.fifo) fail_errno("open exec fifo");
  }
  l.dir_path_fd.reset(::open(dir.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!l.spec.has_namespace(CLONE_NEWUSER)) l.dmz = create_dmz_fd();
}

// Stage 4: clone the init (into its cgroup where clone3 can) and drop what only the
// child needed.
void spawn_init(Launch& l) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) fail_errno("socketpair");
  l.sync.reset(sv[0]);
  l.child_end.reset(sv[1]);

  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  sigset_t all;
  sigfillset(&all);
  if (l.mode == Mode::run_foreground) ::sigprocmask(SIG_BLOCK, &all, &l.saved_mask);

  InitContext& ic = l.ic;
  ic.spec = &l.spec;
  ic.id = l.opts.id;
  ic.sync_fd = l.child_end.get();
  ic.console_fd = l.console.get();
  ic.relay_terminal = l.spec.process.terminal && !l.console;
  ic.fifo_fd = l.fifo.get();
  ic.state_dir_fd = l.mode == Mode::create ? l.dir_path_fd.get() : -1;
  ic.dmz_fd = l.dmz.get();
  ic.preserve_fds = l.opts.preserve_fds;
  ic.cgroup_path = l.cgroup.path();
  ic.no_pivot = l.opts.no_pivot;
  ic.no_new_keyring = l.opts.no_new_keyring;
  ic.joins = l.joins;
  ic.new_flags = l.new_flags;
  ic.flags_in_clone = !namespaces_need_intermediate(l.spec);

  int pidfd = -1;
  bool in_cgroup = false;
  pid_t pid = clone_container(ic.flags_in_clone ? l.new_flags : 0, l.cgroup.enabled() ? l.cgroup.dir_fd() : -1,
                              &pidfd, &in_cgroup);
  if (pid == 0) {
    ::close(l.sync.release());
    ::close(l.dir->fd());
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    container_init(ic);
  }
  l.first_pidfd.reset(pidfd);
  l.guard.set(pid);
  l.child_end.reset();
  l.fifo.reset();
  l.dmz.reset();
  l.console.reset();
  l.join_fds.clear();
  if (!in_cgroup) l.cgroup.add_process(pid);
  l.cgroup.release_placeholder();

  ContainerState& st = l.state;
  st.id = l.opts.id;
  st.pid = pid;
  st.pid_start_time = start_time_of(pid); // replaced with the init's once a go-between forks it
  l.awaiting_init_pid = init_is_forked(ic);
  st.bundle = l.bundle;
  st.rootfs = l.spec.root_path;
  st.created = log::rfc3339_now();
  st.cgroup_path = l.cgroup.path();
  st.systemd_cgroup = !l.cgroup.systemd_unit().empty();
  st.annotations = l.spec.annotations;
  st.oci_version = l.spec.oci_version;
  if (l.spec.raw.contains("hooks")) st.config = {{"hooks", l.spec.raw["hooks"]}};
}

// Idmapped mounts are made here, on the host side: inside its user namespace the init
// may not idmap host file systems. It attaches the detached trees itself.
void send_idmapped_trees(Launch& l) {
  write_id_maps(l.state.pid, l.spec);
  std::vector<std::pair<size_t, UniqueFd>> trees;
  UniqueFd userns;
  for (size_t i = 0; i < l.spec.mounts.size(); i++) {
    const auto& m = l.spec.mounts[i];
    if (!m.idmap || !m.is_bind()) continue;
    if (!userns) userns.reset(::open(fmt::format("/proc/{}/ns/user", l.state.pid).c_str(), O_RDONLY | O_CLOEXEC));
    if (!userns) fail_errno("open the container's user namespace");
    trees.emplace_back(i, with_context(fmt::format("mounts[{}]", i), [&] { return make_idmapped_tree(m, userns.get()); }));
  }
  sync::send(l.sync.get(), sync::Msg::idmap_done, std::to_string(trees.size()));
  for (auto& [index, tree] : trees) send_fd(l.sync.get(), tree.get(), std::to_string(index));
}

// The go-between that joined the pid namespace forked the real init and exits.
void adopt_init_pid(Launch& l, const std::string& payload) {
  auto init = parse_int(payload);
  if (!init) fail("sync: bad init pid \"{}\"", payload);
  int ws = 0;
  while (::waitpid(l.state.pid, &ws, 0) < 0 && errno == EINTR) {
  }
  l.guard.release();
  l.state.pid = static_cast<pid_t>(*init);
  l.state.pid_start_time = start_time_of(l.state.pid);
  l.guard.set(l.state.pid);
  l.awaiting_init_pid = false;
}

// Stage 5: serve the init's requests until it waits for `start` (or its exec).
void await_created(Launch& l) {
  for (bool created = false; !created;) {
    sync::Message m = sync::recv(l.sync.get(), "the container was created");
    switch (m.type) {
    case sync::Msg::error:
      throw Error(m.err, m.payload);
    case sync::Msg::need_idmap:
      send_idmapped_trees(l);
      break;
    case sync::Msg::init_pid:
      adopt_init_pid(l, m.payload);
      break;
    case sync::Msg::mounts_done: {
      // The init only speaks once its pid was reported (fork_init): anything else would
      // pair the wrong process with the state.
      if (l.awaiting_init_pid) fail("sync: the container init reported before its pid was known");
      // crun, and runtime-tools' hooks_stdin test, give these hooks the status "created".
      std::string s = state_json(l.state, Status::created);
      run_hooks(l.spec.hooks.prestart, "prestart", s);
      run_hooks(l.spec.hooks.create_runtime, "createRuntime", s);
      sync::send(l.sync.get(), sync::Msg::hooks_done, s);
      break;
    }
    case sync::Msg::pty_master:
      l.pty_master = recv_fd(l.sync.get());
      break;
    case sync::Msg::created:
      created = true;
      break;
    default:
      fail("sync: unexpected message {}", static_cast<uint32_t>(m.type));
    }
  }
  if (init_waits_in_dmz(l.ic)) await_exec(l.sync.get(), l.state.pid);
  send_pidfd(l.pidfd_sock.get(), l.guard.pidfd(), "standard");
  l.pidfd_sock.reset();
  l.dir->save(l.state);
  write_pid_file(l.pid_file, l.state.pid);
}

// Stage 6 of `run`: start the process now and wait until it has been exec'd (the sync
// socket closes), then run the poststart hooks.
void start_init(Launch& l) {
  sync::send(l.sync.get(), sync::Msg::start);
  sync::Message m;
  if (sync::try_recv(l.sync.get(), m)) {
    if (m.type == sync::Msg::error) throw Error(m.err, m.payload);
    fail("sync: unexpected message {} after start", static_cast<uint32_t>(m.type));
  }
  l.sync.reset();
  run_poststart(l.spec.hooks.poststart, l.state);
}

// Stage 7 of a foreground `run`: relay the terminal, wait for the container's end and
// delete it unless --keep.
int supervise_foreground(Launch& l, bool keep) {
  StateDir& dir = *l.dir;
  // Others may query, signal or delete the container while we wait for it.
  dir.unlock();
  // In the foreground berth is the main process systemd should watch, as runc is.
  if (l.notify_sock) notify::relay_ready(l.notify_sock.get(), l.notify_host, l.guard.pidfd(), ::getpid());
  l.notify_sock.reset();
  pid_t relay = -1;
  if (l.pty_master) {
    relay = ::fork();
    if (relay < 0) fail_errno("fork terminal relay");
    if (relay == 0) {
      ::sigprocmask(SIG_SETMASK, &l.saved_mask, nullptr);
      try {
        relay_pty(l.pty_master.get());
      } catch (const Error& e) {
        log::warn("terminal relay: {}", e.what());
      }
      ::_exit(0);
    }
    l.pty_master.reset();
  }
  int status = supervise(l.state.pid, l.guard.pidfd(), relay);
  l.guard.release();
  ::sigprocmask(SIG_SETMASK, &l.saved_mask, nullptr);
  if (!keep) {
    dir.lock();
    // A concurrent `delete --force` may have removed it already.
    struct stat sb;
    if (::fstatat(dir.fd(), "state.json", &sb, 0) == 0) destroy(dir, l.state);
  }
  return status;
}

int launch(const RuntimeContext& ctx, const CreateOptions& opts, Mode mode, bool keep) {
  Launch l(ctx, opts, mode);
  check_request(l);
  open_namespaces(l);
  prepare_host(l);
  spawn_init(l);
  await_created(l);
  if (mode == Mode::create) {
    l.guard.release();
    l.cgroup.commit();
    l.dir->commit();
    return 0;
  }
  start_init(l);
  l.cgroup.commit();
  l.dir->commit();
  if (mode == Mode::run_detached) {
    l.guard.release();
    l.dir->unlock();
    if (l.notify_sock) notify::relay_ready(l.notify_sock.get(), l.notify_host, l.guard.pidfd(), l.state.pid);
    return 0;
  }
  return supervise_foreground(l, keep);
}

} // namespace

void create_container(const RuntimeContext& ctx, const CreateOptions& opts) { launch(ctx, opts, Mode::create, false); }

int run_container(const RuntimeContext& ctx, const CreateOptions& opts, bool detach, bool keep) {
  return launch(ctx, opts, detach ? Mode::run_detached : Mode::run_foreground, keep);
}

void start_container(const RuntimeContext& ctx, const std::string& id) {
  StateDir dir = StateDir::open(ctx.root, id, StateDir::Lock::exclusive);
  ContainerState st = dir.load();
  Status status = current_status(dir, st);
  if (status == Status::stopped) fail("cannot start a container that has stopped");
  if (status != Status::created) fail("cannot start an already running container");
  UniqueFd fifo(::openat(dir.fd(), "exec.fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fifo) {
    if (errno == ENXIO) fail("cannot start a container that has stopped");
    fail_errno("open exec fifo");
  }
  // Listening before the process runs: it may report at once.
  std::string notify_host = notify::host_socket();
  UniqueFd notify_sock = notify_host.empty() ? UniqueFd() : notify::bind_container_socket(dir.fd());
  if (::write(fifo.get(), "0", 1) != 1) fail_errno("write exec fifo");
  // The init holds the read end until it execs (close-on-exec) or dies: POLLERR.
  for (;;) {
    struct pollfd pfd = {fifo.get(), 0, 0};
    int n = ::poll(&pfd, 1, 100);
    if (n > 0) break;
    if (n < 0 && errno != EINTR) fail_errno("wait for the container to start");
    if (n == 0 && !init_alive(st)) break;
  }
  fifo.reset();
  ::unlinkat(dir.fd(), "exec.fifo", 0);
  std::string err_text;
  try {
    err_text = read_file_at(dir.fd(), "start.error");
  } catch (const Error&) {
  }
  if (!err_text.empty()) {
    ::unlinkat(dir.fd(), "start.error", 0);
    json j = json::parse(err_text, nullptr, false);
    if (j.is_object()) throw Error(j.value("errno", 0), j.value("msg", "start failed"));
    fail("start failed");
  }
  run_poststart(hooks_of(st).poststart, st);
  if (notify_sock) {
    // runc's start waits for the container's READY= (or its end) and relays it.
    UniqueFd pidfd(pidfd_open(st.pid));
    dir.unlock();
    if (pidfd && init_alive(st)) notify::relay_ready(notify_sock.get(), notify_host, pidfd.get(), st.pid);
  }
}

nlohmann::ordered_json container_state(const RuntimeContext& ctx, const std::string& id) {
  StateDir dir = StateDir::open(ctx.root, id, StateDir::Lock::none);
  ContainerState st = dir.load();
  return oci_state(st, current_status(dir, st));
}

// `list` names the owner of each state dir as runc does: the user name, or #uid.
static std::string state_dir_owner(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  auto entry = passwd_entry(st.st_uid);
  return entry.empty() ? fmt::format("#{}", st.st_uid) : entry[0];
}

std::vector<nlohmann::ordered_json> list_containers(const RuntimeContext& ctx) {
  std::vector<nlohmann::ordered_json> out;
  DIR* d = ::opendir(ctx.root.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    fail_errno("open state root {}", ctx.root);
  }
  std::vector<std::string> ids;
  while (auto* e = ::readdir(d))
    if (e->d_name[0] != '.') ids.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  for (auto& id : ids) {
    try {
      auto dir = StateDir::try_open(ctx.root, id, StateDir::Lock::none);
      if (!dir) continue;
      ContainerState st = dir->load();
      auto entry = oci_state(st, current_status(*dir, st));
      entry["owner"] = state_dir_owner(ctx.root + "/" + id);
      out.push_back(std::move(entry));
    } catch (const Error& e) {
      log::warn("list: skipping {}: {}", id, e.what());
    }
  }
  return out;
}

void kill_container(const RuntimeContext& ctx, const std::string& id, int signal, bool all) {
  StateDir dir = StateDir::open(ctx.root, id, StateDir::Lock::none);
  ContainerState st = dir.load();
  bool stopped = current_status(dir, st) == Status::stopped;
  if (all && stopped) {
    // runc: --all signals what the cgroup still holds (without a pid namespace, processes
    // can outlive the init); a stopped container with nothing left is not an error.
    signal_leftovers(st, signal);
  } else if (all) {
    signal_all(st, signal);
  } else {
    if (stopped) fail("container not running");
    signal_init(st, signal);
  }
}

void pause_container(const RuntimeContext& ctx, const std::string& id, bool pause) {
  StateDir dir = StateDir::open(ctx.root, id, StateDir::Lock::exclusive);
  ContainerState st = dir.load();
  Status status = current_status(dir, st);
  if (status == Status::stopped) fail("container not running");
  if (pause && status == Status::paused) fail("container already paused");
  if (!pause && status != Status::paused) fail("container not paused");
  if (st.cgroup_path.empty()) fail("cannot {} a container that has no cgroup", pause ? "pause" : "resume");
  cgroup_freeze(st.cgroup_path, pause);
}

void update_container(const RuntimeContext& ctx, const std::string& id, const json& resources) {
  StateDir dir = StateDir::open(ctx.root, id, StateDir::Lock::exclusive);
  ContainerState st = dir.load();
  if (current_status(dir, st) == Status::stopped) fail("container not running");
  if (st.cgroup_path.empty()) fail("cannot update a container that has no cgroup");
  validate_resources(resources);
  // The systemd unit (the cgroup's last component) gets the values merged with the
  // live ones, before the cgroup files are written.
  std::string unit = st.systemd_cgroup ? st.cgroup_path.substr(st.cgroup_path.rfind('/') + 1) : "";
  update_resources(st.cgroup_path, resources, unit);
}

void container_events(const RuntimeContext& ctx, const std::string& id, bool stats_once,
                      std::chrono::milliseconds interval, const std::function<void(const json&)>& emit) {
  StateDir dir = StateDir::open(ctx.root, id, StateDir::Lock::none);
  ContainerState st = dir.load();
  if (current_status(dir, st) == Status::stopped) fail("container not running");
  if (st.cgroup_path.empty()) fail("container {} has no cgroup: no events or statistics", id);
  auto stats = [&] { return json{{"type", "stats"}, {"id", id}, {"data", cgroup_stats(st.cgroup_path)}}; };
  if (stats_once) {
    emit(stats());
    return;
  }
  // runc streams a stats event every interval and an "oom" event for each OOM kill.
  uint64_t ooms = cgroup_oom_kills(st.cgroup_path);
  auto next_stats = std::chrono::steady_clock::now();
  while (init_alive(st)) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next_stats) {
      emit(stats());
      next_stats = now + interval;
    }
    uint64_t n = cgroup_oom_kills(st.cgroup_path);
    for (; ooms < n; ooms++) emit(json{{"type", "oom"}, {"id", id}});
    ::usleep(100 * 1000);
  }
  uint64_t n = cgroup_oom_kills(st.cgroup_path);
  for (; ooms < n; ooms++) emit(json{{"type", "oom"}, {"id", id}});
}

std::string container_ps(const RuntimeContext& ctx, const std::string& id, bool as_json,
                         const std::vector<std::string>& ps_args) {
  StateDir dir = StateDir::open(ctx.root, id, StateDir::Lock::none);
  ContainerState st = dir.load();
  std::vector<pid_t> pids;
  if (!st.cgroup_path.empty()) pids = cgroup_pids(st.cgroup_path);
  if (pids.empty() && init_alive(st)) pids.push_back(st.pid);
  if (as_json) return json(pids).dump() + "\n";

  // Like runc: run ps on the host and keep the header and the container's lines.
  int out[2];
  if (::pipe2(out, O_CLOEXEC) < 0) fail_errno("pipe");
  UniqueFd rd(out[0]), wr(out[1]);
  std::vector<std::string> argv = {"ps"};
  if (ps_args.empty()) argv.push_back("-ef");
  argv.insert(argv.end(), ps_args.begin(), ps_args.end());
  pid_t child = ::fork();
  if (child < 0) fail_errno("fork ps");
  if (child == 0) {
    ::dup2(wr.get(), STDOUT_FILENO);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp("ps", args.data());
    ::_exit(127);
  }
  wr.reset();
  std::string text;
  char buf[8192];
  for (ssize_t n; (n = ::read(rd.get(), buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  int ws = 0;
  while (::waitpid(child, &ws, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) fail("ps {} failed: {}", fmt::join(ps_args, " "), trim(text));
  auto lines = split(text, '\n');
  if (lines.empty()) return text;
  auto header = split(lines[0], ' ');
  size_t pid_col = std::find(header.begin(), header.end(), "PID") - header.begin();
  if (pid_col == header.size()) fail("couldn't find PID field in ps output");
  std::string result = lines[0] + "\n";
  for (size_t i = 1; i < lines.size(); i++) {
    auto fields = split(lines[i], ' ');
    if (pid_col >= fields.size()) continue;
    auto p = parse_int(fields[pid_col]);
    if (p && std::find(pids.begin(), pids.end(), static_cast<pid_t>(*p)) != pids.end()) result += lines[i] + "\n";
  }
  return result;
}

void delete_container(const RuntimeContext& ctx, const std::string& id, bool force) {
  auto dir = StateDir::try_open(ctx.root, id, StateDir::Lock::exclusive);
  if (!dir) {
    if (force) return;
    fail("container does not exist");
  }
  ContainerState st = dir->load();
  Status status = current_status(*dir, st);
  if (status == Status::running || status == Status::paused) {
    if (!force) fail("cannot delete container {} that is not stopped: {}", id, status_name(status));
  }
  if (status != Status::stopped) {
    // A created container never ran user code: deleting it needs no --force (as runc).
    UniqueFd pidfd(pidfd_open(st.pid));
    if (!st.cgroup_path.empty()) {
      std::string thaw = st.cgroup_path + "/cgroup.freeze";
      if (cgroup_frozen(st.cgroup_path)) write_file(thaw, "0", false);
    }
    try {
      signal_all(st, SIGKILL);
    } catch (const Error&) {
    }
    if (!wait_exit(st.pid, pidfd.get(), 10000)) log::warn("container {} init did not exit after SIGKILL", id);
  }
  destroy(*dir, st);
}

} // namespace berth
