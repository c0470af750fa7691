// Running a helper program to completion: arguments, environment, stdin, captured
// and capped stdout/stderr, a deadline. One implementation for every layer that
// execs tools (CNI plugins, the OCI runtime, berth-shim, iptables).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace berth {

struct RunOptions {
  const std::vector<std::string>* env = nullptr;  // null: this process's environment
  std::string_view input;                         // written to stdin (non-blocking)
  std::chrono::milliseconds timeout{60000};       // then the process group is SIGKILLed
  // Output kept per stream; the rest is read and dropped (a hostile or broken child
  // cannot grow the caller), and `truncated` says so.
  size_t max_output = 4u << 20;
  // An fd of the caller's (>= 3) the child gets as its fd 3, e.g. the caller's own stderr
  // for a daemon child to log to, while stdout and stderr are captured. -1: none.
  int pass_fd = -1;
};

struct CommandResult {
  int status = 0;  // waitpid status
  bool timed_out = false;
  bool truncated = false;
  std::string out, err;

  bool ok() const;                 // exited with status 0
  std::string describe() const;    // "exit status 3", "killed by signal 9", "timed out"
};

// Runs path with args (argv[0] is path) in its own process group with default signal
// dispositions and an empty signal mask; every fd but stdio is closed on exec. Past the
// timeout the whole group is killed. Always reaps the child; when the caller is a child
// subreaper, also reaps what the child left in its process group.
CommandResult run_command(const std::string& path, const std::vector<std::string>& args,
                          const RunOptions& opts = {});

// The directory of this process's executable (/proc/self/exe), "" when unknown: where a
// binary finds the helpers installed next to it.
std::string executable_dir();

// The directories of $PATH, as execvp(3) searches them (its default list when unset).
std::vector<std::string> path_dirs();

// The first executable `name` in dirs (or `name` itself when it holds a '/').
// Fails naming every directory searched.
std::string find_executable(const std::string& name, const std::vector<std::string>& dirs);

} // namespace berth
