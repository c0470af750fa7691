#include "runtime/lib/finalize.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "runtime/lib/dmz.hpp"
#include "runtime/lib/terminal.hpp"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace berth {

namespace {

void apply_lsm_labels(const ProcessSpec& p) {
  if (!p.apparmor_profile.empty()) {
    auto enabled = try_read_file("/sys/module/apparmor/parameters/enabled");
    if (!enabled || trim(*enabled) != "Y")
      fail("apparmor profile \"{}\" requested but AppArmor is not enabled on this host", p.apparmor_profile);
    std::string cmd = "exec " + p.apparmor_profile;
    with_context("apply apparmor profile", [&] { write_file("/proc/self/attr/apparmor/exec", cmd, false); });
  }
  if (!p.selinux_label.empty())
    with_context("set selinux exec label", [&] { write_file("/proc/self/attr/exec", p.selinux_label, false); });
}

void apply_credentials(const ProcessSpec& p, bool setgroups_allowed) {
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) fail_errno("prctl(PR_SET_KEEPCAPS)");
  if (setgroups_allowed) {
    std::vector<gid_t> groups = p.additional_gids;
    if (::setgroups(groups.size(), groups.data()) < 0) fail_errno("setgroups");
  }
  if (::setresgid(p.gid, p.gid, p.gid) < 0) fail_errno("setresgid {}", p.gid);
  if (::setresuid(p.uid, p.uid, p.uid) < 0) fail_errno("setresuid {}", p.uid);
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) fail_errno("prctl(PR_SET_KEEPCAPS, 0)");
}

void reset_signals() {
  sigset_t all;
  sigemptyset(&all);
  if (::sigprocmask(SIG_SETMASK, &all, nullptr) < 0) fail_errno("reset signal mask");
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
}

// Every fd but stdio and the preserved ones is closed by the exec (CVE-2024-21626).
void seal_fds(int preserve_fds) {
  unsigned first_closed = 3u + static_cast<unsigned>(preserve_fds);
  if (::syscall(SYS_close_range, first_closed, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    // Kernels before 5.11: mark each open fd close-on-exec.
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) fail_errno("open /proc/self/fd");
    int own = ::dirfd(d);
    while (auto* e = ::readdir(d)) {
      auto fd = parse_int(e->d_name);
      if (fd && *fd >= static_cast<int64_t>(first_closed) && *fd != own)
        ::fcntl(static_cast<int>(*fd), F_SETFD, FD_CLOEXEC);
    }
    ::closedir(d);
  }
  for (int fd = 3; fd < static_cast<int>(first_closed); fd++) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
}

void send_to_listener(const FinalizeArgs& a, int notify_fd) {
  json state = json::parse(a.listener_state);
  json msg = {{"ociVersion", state.value("ociVersion", "1.2.0")},
              {"fds", json::array({"seccompFd"})},
              {"pid", state.value("pid", 0)},
              {"metadata", a.listener_metadata},
              {"state", state}};
  send_fd(a.listener_fd, notify_fd, msg.dump());
}

} // namespace

std::vector<std::string> passwd_entry(uid_t uid) {
  if (auto passwd = try_read_file("/etc/passwd")) {
    for (auto& line : split(*passwd, '\n')) {
      auto f = split(line, ':', false);
      if (f.size() >= 6 && parse_uint(f[2]) == uid) return f;
    }
  }
  return {};
}

void add_home(std::vector<std::string>& env, uid_t uid) {
  for (auto& e : env)
    if (starts_with(e, "HOME=")) return;
  auto entry = passwd_entry(uid);
  env.push_back("HOME=" + (entry.empty() || entry[5].empty() ? std::string("/") : entry[5]));
}

void finalize_and_exec(FinalizeArgs& a) {
  const ProcessSpec& p = *a.process;
  apply_lsm_labels(p);
  if (a.personality) apply_personality(*a.personality);
  apply_scheduler(p.scheduler);
  apply_io_priority(p.io_priority);
  if (p.capabilities.present) drop_bounding_set(p.capabilities);
  bool setgroups_allowed = true;
  if (a.user_namespace) {
    auto sg = try_read_file("/proc/self/setgroups");
    setgroups_allowed = !sg || trim(*sg) != "deny";
  }
  ::umask(p.umask.value_or(022));
  reset_signals();
  seal_fds(a.preserve_fds);
  if (a.wait_fd >= 0 && ::fcntl(a.wait_fd, F_SETFD, 0) < 0) fail_errno("keep exec fifo open");
  if (a.before_privileges_drop) a.before_privileges_drop();

  // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we have it.
  int notify_fd = -1;
  if (a.seccomp && !p.no_new_privileges) notify_fd = seccomp::load(*a.seccomp);
  apply_credentials(p, setgroups_allowed);
  if (p.capabilities.present) apply_capabilities(p.capabilities);
  if (p.no_new_privileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail_errno("set no_new_privs");
  if (a.ready) a.ready();
  if (a.seccomp && p.no_new_privileges) notify_fd = seccomp::load(*a.seccomp);
  if (notify_fd >= 0 && a.listener_fd >= 0) {
    send_to_listener(a, notify_fd);
    ::close(notify_fd);
  }
  if (a.listener_fd >= 0) ::close(a.listener_fd);

  if (a.dmz_fd >= 0) {
    exec_via_dmz(a.dmz_fd, a.exe, p.args, a.env, a.wait_fd);
  } else {
    std::vector<char*> argv, envp;
    for (auto& s : p.args) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    for (auto& e : a.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    ::execve(a.exe.c_str(), argv.data(), envp.data());
  }
  fail_errno("exec: \"{}\"", p.args[0]);
}

} // namespace berth
