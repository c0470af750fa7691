// `berth exec`: a new process in a running container's namespaces and cgroup.
#pragma once

#include <string>
#include <vector>

#include "runtime/lib/container.hpp"

namespace berth {

struct ExecOptions {
  std::string id;
  std::string process_file; // --process: a JSON "process" object; otherwise built from the flags
  std::vector<std::string> args;
  std::string console_socket, pid_file, cwd, user, process_label, apparmor, cgroup;
  std::string pidfd_socket; // receives a pidfd of the exec'd process ("setns"), as runc 1.2
  std::vector<std::string> env, caps, additional_gids;
  bool tty = false, detach = false, no_new_privs = false, ignore_paused = false;
  int preserve_fds = 0;
};

// Foreground: returns the process's exit status (128+signal when killed).
// Detached: returns 0 once the process has been exec'd and the pid file written.
int exec_container(const RuntimeContext& ctx, const ExecOptions& opts);

} // namespace berth
