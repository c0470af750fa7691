// Pieces shared by the commands that start processes (create/run, exec): cloning
// into a cgroup, guarding a child, supervising a foreground process.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/fd.hpp"

namespace berth {

int pidfd_open(pid_t pid);
int pidfd_send_signal(int pidfd, int sig);

// Kills and reaps a child the launch still owns when something fails.
class ChildGuard {
public:
  void set(pid_t pid) {
    pid_ = pid;
    pidfd_.reset(pidfd_open(pid));
  }
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  void release() { pid_ = -1; }
  ~ChildGuard();

private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
};


// An absolute version of p (relative to the cwd).
std::string absolute_path(const std::string& p);

// clone3 with CLONE_PIDFD (and CLONE_INTO_CGROUP when cgroup_fd >= 0), falling back
// to joining the cgroup later (joined_cgroup false) and to clone(2) on old kernels.
// Returns 0 in the child.
pid_t clone_container(unsigned long flags, int cgroup_fd, int* pidfd, bool* joined_cgroup);

// Waits for a foreground process (init or exec'd), forwarding every signal it gets to
// it, and returns its exit status (128+signal when killed). The caller has blocked
// all signals. relay, if > 0, is the terminal relay process, reaped at the end.
int supervise(pid_t pid, int pidfd, pid_t relay);

// CVE-2019-5736 for processes born into a pid namespace that already exists (exec, a
// joined pid namespace): there, container processes can see our process and open its
// /proc/<pid>/exe while it sets up. Unless the binary already sits on a read-only
// mount, this re-executes berth from a detached read-only bind mount of itself (or,
// without the mount API, from a sealed memfd copy), so that handle cannot be written.
// Returns only when nothing needed doing.
void protect_runtime_binary();
// The command line to re-execute with; set by main().
void remember_command_line(int argc, char** argv);

} // namespace berth
