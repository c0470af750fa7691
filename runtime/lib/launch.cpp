#include "runtime/lib/launch.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/sched.h>

#include <climits>

extern char** environ;

#include "common/error.hpp"
#include "common/fs.hpp"

#include <linux/mount.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

namespace berth {

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

ChildGuard::~ChildGuard() {
  if (pid_ <= 0) return;
  if (pidfd_) pidfd_send_signal(pidfd_.get(), SIGKILL);
  else ::kill(pid_, SIGKILL);
  // We are a child subreaper, so even a re-parented grandchild is ours to reap.
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

std::string absolute_path(const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  char cwd[PATH_MAX];
  if (!::getcwd(cwd, sizeof cwd)) fail_errno("getcwd");
  return p.empty() || p == "." ? std::string(cwd) : path_join(cwd, p);
}

pid_t clone_container(unsigned long flags, int cgroup_fd, int* pidfd, bool* joined_cgroup) {
  struct clone_args args = {};
  args.flags = flags | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  args.exit_signal = SIGCHLD;
  if (cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(cgroup_fd);
  }
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid >= 0) {
    *joined_cgroup = cgroup_fd >= 0;
    return static_cast<pid_t>(pid);
  }
  if (cgroup_fd >= 0 && errno != ENOSYS) {
    // Some cgroups refuse CLONE_INTO_CGROUP (e.g. threaded or domain-invalid); join by pid instead.
    args.flags &= ~CLONE_INTO_CGROUP;
    args.cgroup = 0;
    pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid >= 0) {
      *joined_cgroup = false;
      return static_cast<pid_t>(pid);
    }
  }
  if (errno != ENOSYS) fail_errno("clone3 (flags {:#x})", flags);
  // Kernels before 5.3: clone(2) without a stack behaves like fork.
  *joined_cgroup = false;
  *pidfd = -1;
  pid = ::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) fail_errno("clone (flags {:#x})", flags);
  return static_cast<pid_t>(pid);
}

// Waits for the foreground container and forwards signals; returns its exit status.
int supervise(pid_t init, int pidfd, pid_t relay) {
  sigset_t all;
  sigfillset(&all);
  UniqueFd sfd(::signalfd(-1, &all, SFD_CLOEXEC));
  if (!sfd) fail_errno("signalfd");
  int status = -1;
  for (;;) {
    // Reap first: SIGCHLD may have arrived before the signalfd existed.
    for (;;) {
      int ws;
      pid_t p = ::waitpid(-1, &ws, WNOHANG);
      if (p <= 0) break;
      if (p == init) status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    }
    if (status >= 0) break;
    struct signalfd_siginfo si;
    ssize_t n = ::read(sfd.get(), &si, sizeof si);
    if (n != sizeof si) {
      if (n < 0 && errno == EINTR) continue;
      fail_errno("read signalfd");
    }
    int sig = static_cast<int>(si.ssi_signo);
    if (sig == SIGCHLD) continue;
    if (sig == SIGWINCH && relay > 0) {
      ::kill(relay, SIGWINCH);
      continue;
    }
    if (pidfd >= 0) ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
    else ::kill(init, sig);
  }
  if (relay > 0) {
    // The relay drains the pty and exits when the container side hangs up.
    while (::waitpid(relay, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  return status;
}

namespace {
char** saved_argv = nullptr;

// A sealed memfd copy of the binary: the fallback when no detached mount can be made.
int sealed_copy(int self) {
  struct stat st;
  if (::fstat(self, &st) < 0) return -1;
  int fd = ::memfd_create("berth", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -1;
  off_t off = 0;
  while (off < st.st_size)
    if (::sendfile(fd, self, &off, static_cast<size_t>(st.st_size - off)) <= 0) {
      ::close(fd);
      return -1;
    }
  ::fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
  return fd;
}
} // namespace

void remember_command_line(int, char** argv) { saved_argv = argv; }

void protect_runtime_binary() {
  if (!saved_argv) return;
  UniqueFd self(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  struct statvfs vfs;
  if (!self || ::fstatvfs(self.get(), &vfs) < 0) fail_errno("open /proc/self/exe");
  if (vfs.f_flag & ST_RDONLY) return; // installed on (or already running from) a read-only mount
  UniqueFd image(static_cast<int>(
      ::syscall(SYS_open_tree, AT_FDCWD, "/proc/self/exe", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)));
  if (image) {
    struct mount_attr attr = {};
    attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (::syscall(SYS_mount_setattr, image.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) image.reset();
  }
  if (!image) image.reset(sealed_copy(self.get()));
  if (!image) fail_errno("protect the runtime binary (detached mount or sealed copy)");
  ::syscall(SYS_execveat, image.get(), "", saved_argv, ::environ, AT_EMPTY_PATH);
  fail_errno("re-execute berth from a read-only image");
}

} // namespace berth
