// Child processes of the shim: the runtime's CLI calls (create, start, exec, delete).
// The shim talks to the runtime only through its command line, runc's.
#pragma once

#include <sys/types.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace berth::shim {

// The stdio of a child; -1 means /dev/null.
struct Stdio {
  int in = -1, out = -1, err = -1;
};

// Owns a child that has not been reaped: if nobody took it over, the destructor
// kills and reaps it (a failed start must not leave a runtime call behind).
class Child {
public:
  Child() = default;
  explicit Child(pid_t pid) : pid_(pid) {}
  Child(Child&& o) noexcept : pid_(o.release()) {}
  Child& operator=(Child&& o) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { kill_and_reap(); }

  pid_t pid() const { return pid_; }
  explicit operator bool() const { return pid_ > 0; }
  // The caller reaped it (or hands it to its reaper loop).
  pid_t release() {
    pid_t p = pid_;
    pid_ = -1;
    return p;
  }
  void kill_and_reap();

private:
  pid_t pid_ = -1;
};

// Starts argv (argv[0] a path, or a name looked up in PATH) in cwd, with an empty
// signal mask and default dispositions (the shim blocks and ignores some).
Child spawn_process(const std::vector<std::string>& argv, const Stdio& stdio, const std::string& cwd);

struct RunResult {
  int wait_status = 0;
  bool timed_out = false;
  std::string output; // what the child wrote to the capture fds (last 64 KiB)
};

// Runs a child to completion; after timeout_ms it is killed (timed_out). While it runs,
// the non-blocking capture fds are read (and again, until empty, after it exited), so
// a talkative child can never block on a full pipe.
RunResult run_process(const std::vector<std::string>& argv, const Stdio& stdio, const std::string& cwd,
                      int timeout_ms, std::initializer_list<int> capture_fds = {});

// The runtime's command line: binary, the caller's global args, --log FILE
// --log-format json (so that its error message can be read back), then args.
std::vector<std::string> runtime_argv(const std::string& binary, const std::vector<std::string>& global_args,
                                      const std::string& log_path, const std::vector<std::string>& args);

// "<what> failed: <message>", the message taken, in order, from the last error in the
// runtime's JSON log, its output, or its exit status.
std::string describe_runtime_failure(const std::string& what, const RunResult& r, const std::string& log_path);
// The msg of the last {"level":"error"} line of a runtime's JSON log ("" if none).
std::string last_runtime_error(const std::string& log_path);
std::string describe_wait_status(int wait_status);

// Resolves a runtime name in PATH; throws when it is not an executable file.
std::string resolve_executable(const std::string& name);

} // namespace berth::shim
