// OCI hooks. run_hooks() is used by the runtime's parent process and by the
// container's init (before and after pivot_root), so it relies only on
// fork/exec/pipe/poll: no /proc, no helper binaries, no threads. That is why it is not
// common/subprocess's run_command, which also waits for the output's EOF (a hook's
// daemon may hold it open forever) and kills a process group on timeout.
#include "runtime/lib/hooks.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"

namespace berth {

namespace {

// ---- parsing ----------------------------------------------------------------

Hook parse_hook(const JsonView& v) {
  v.expect_object();
  Hook hook;
  auto path = v["path"];
  if (!path.present()) path.bad("is required");
  hook.path = path.as_string();
  if (hook.path.empty() || hook.path[0] != '/') path.bad("must be an absolute path");
  hook.args = v.string_list("args");
  hook.env = v.string_list("env");
  auto timeout = v["timeout"];
  if (timeout.present()) {
    int seconds = timeout.as_i32();
    if (seconds <= 0) timeout.bad(fmt::format("must be greater than zero, got {}", seconds));
    hook.timeout = seconds;
  }
  return hook;
}

std::vector<Hook> parse_stage(const JsonView& hooks, std::string_view stage) {
  std::vector<Hook> out;
  hooks[stage].each([&](const JsonView& h) { out.push_back(parse_hook(h)); });
  return out;
}

// ---- running ----------------------------------------------------------------

// Keep the tail: a failing hook usually explains itself last.
constexpr size_t kMaxCapture = 64 * 1024;
// Poll interval when pidfd_open is unavailable (kernel < 5.3, or seccomp).
constexpr int kFallbackPollMs = 20;

// What the child reports through the CLOEXEC pipe when it cannot exec.
struct ChildFailure {
  int step; // 0: setting up stdio, 1: execve
  int err;
};

// Everything the child needs, prepared before fork so the child only makes syscalls.
struct ExecPlan {
  std::vector<char*> argv, envp;
  explicit ExecPlan(const Hook& hook) {
    if (hook.args.empty()) {
      argv.push_back(const_cast<char*>(hook.path.c_str()));
    } else {
      for (auto& a : hook.args) argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    for (auto& e : hook.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }
};

// Moves fd above the stdio range so the dup2()s onto 0-2 cannot clobber it.
int lift_fd(int fd) { return fd >= 3 ? fd : ::fcntl(fd, F_DUPFD_CLOEXEC, 3); }

void close_fds_from(unsigned first, unsigned last) {
  if (first > last) return;
  if (::close_range(first, last, 0) == 0) return;
  // Kernels before 5.9: close them one by one, bounded by the fd limit.
  struct rlimit rl {};
  unsigned limit = ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                       ? static_cast<unsigned>(rl.rlim_cur) : 65536u;
  for (unsigned fd = first; fd <= last && fd < limit; fd++) ::close(static_cast<int>(fd));
}

[[noreturn]] void report_and_exit(int report_fd, int step) {
  ChildFailure f{step, errno};
  [[maybe_unused]] auto n = ::write(report_fd, &f, sizeof f);
  ::_exit(127);
}

// Runs in the forked child: async-signal-safe calls only.
[[noreturn]] void exec_child(const Hook& hook, const ExecPlan& plan, int stdin_fd, int output_fd,
                             int report_fd) {

  // Hooks start with a clean signal state, whatever the runtime had set up.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++) ::sigaction(sig, &dfl, nullptr); // EINVAL for KILL/STOP: fine

  int lifted = lift_fd(report_fd);
  if (lifted < 0) report_and_exit(report_fd, 0);
  report_fd = lifted;
  stdin_fd = lift_fd(stdin_fd);
  output_fd = lift_fd(output_fd);
  if (stdin_fd < 0 || output_fd < 0) report_and_exit(report_fd, 0);
  if (::dup2(stdin_fd, 0) < 0 || ::dup2(output_fd, 1) < 0 || ::dup2(output_fd, 2) < 0)
    report_and_exit(report_fd, 0);
  // Keep only stdio and the report pipe (CLOEXEC, so exec closes it).
  close_fds_from(3, static_cast<unsigned>(report_fd) - 1);
  close_fds_from(static_cast<unsigned>(report_fd) + 1, ~0U);

  ::execve(hook.path.c_str(), plan.argv.data(), plan.envp.data());
  report_and_exit(report_fd, 1);
}

// Blocks SIGPIPE for this thread while we feed a hook's stdin, so a hook that exits
// without reading gives us EPIPE instead of killing the runtime.
class SigpipeBlocker {
public:
  SigpipeBlocker() {
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigset_t pending;
    ::sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_);
  }
  ~SigpipeBlocker() {
    // Swallow the SIGPIPE our own write raised, but never one that was already there.
    if (!was_pending_) {
      sigset_t pipe_set;
      sigemptyset(&pipe_set);
      sigaddset(&pipe_set, SIGPIPE);
      struct timespec zero {};
      while (::sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {}
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocker(const SigpipeBlocker&) = delete;
  SigpipeBlocker& operator=(const SigpipeBlocker&) = delete;

private:
  sigset_t old_;
  bool was_pending_ = false;
};

// Owns the forked hook until it is reaped; kills and reaps it if we bail out early.
class Child {
public:
  explicit Child(pid_t pid) : pid_(pid) {}
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // Blocking reap; returns the wait status.
  int wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {}
    pid_ = -1;
    return status;
  }
  // Non-blocking reap; true (and status set) once the child has exited.
  bool try_wait(int& status) {
    pid_t r;
    while ((r = ::waitpid(pid_, &status, WNOHANG)) < 0 && errno == EINTR) {}
    if (r < 0) fail_errno("waitpid {}", pid_);
    if (r == 0) return false;
    pid_ = -1;
    return true;
  }

private:
  pid_t pid_;
};

int64_t now_ms() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) fail_errno("set O_NONBLOCK");
}

// Reads what is available now; returns false at end of file.
bool read_available(int fd, std::string& out) {
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      // Trim lazily so the cost stays linear.
      if (out.size() > 2 * kMaxCapture) out.erase(0, out.size() - kMaxCapture);
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return true;
    return false; // unexpected read error: treat as the end of the output
  }
}

std::string describe_output(std::string captured) {
  bool truncated = captured.size() > kMaxCapture;
  if (truncated) captured.erase(0, captured.size() - kMaxCapture);
  std::string text(trim(captured));
  if (truncated) text = "..." + text;
  return text;
}

struct Outcome {
  int status = 0;
  bool timed_out = false;
  std::string output;
};

// Feeds the state to stdin, collects output and waits for the hook, all in one poll loop
// so a hook that neither reads stdin nor exits cannot wedge us past its timeout.
Outcome supervise(Child& child, UniqueFd stdin_w, UniqueFd output_r, const std::string& state,
                  std::optional<int> timeout) {
  Outcome result;
  set_nonblocking(stdin_w.get());
  set_nonblocking(output_r.get());
  // Raw syscall: glibc 2.36's <sys/pidfd.h> lacks C linkage for C++.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, child.pid(), 0)));
  int64_t deadline = timeout ? now_ms() + int64_t{*timeout} * 1000 : -1;
  std::string_view to_write = state;
  if (to_write.empty()) stdin_w.reset();

  SigpipeBlocker no_sigpipe;
  bool exited = false;
  while (!exited) {
    struct pollfd fds[3];
    nfds_t n = 0;
    int in_idx = -1, out_idx = -1, pid_idx = -1;
    if (stdin_w) { in_idx = static_cast<int>(n); fds[n++] = {stdin_w.get(), POLLOUT, 0}; }
    if (output_r) { out_idx = static_cast<int>(n); fds[n++] = {output_r.get(), POLLIN, 0}; }
    if (pidfd) { pid_idx = static_cast<int>(n); fds[n++] = {pidfd.get(), POLLIN, 0}; }

    int wait_ms = -1;
    if (deadline >= 0) {
      int64_t left = deadline - now_ms();
      if (left <= 0) {
        ::kill(child.pid(), SIGKILL);
        result.status = child.wait();
        result.timed_out = true;
        break;
      }
      wait_ms = static_cast<int>(left);
    }
    if (!pidfd && (wait_ms < 0 || wait_ms > kFallbackPollMs)) wait_ms = kFallbackPollMs;

    if (::poll(fds, n, wait_ms) < 0) {
      if (errno == EINTR) continue;
      fail_errno("poll");
    }
    if (in_idx >= 0 && fds[in_idx].revents) {
      ssize_t w = ::write(stdin_w.get(), to_write.data(), to_write.size());
      if (w > 0) to_write.remove_prefix(static_cast<size_t>(w));
      // EPIPE: the hook closed stdin without reading it all, which is its right.
      if (to_write.empty() || (w < 0 && errno != EAGAIN && errno != EINTR)) stdin_w.reset();
    }
    if (out_idx >= 0 && fds[out_idx].revents && !read_available(output_r.get(), result.output))
      output_r.reset();
    if (pidfd) {
      if (fds[pid_idx].revents) {
        result.status = child.wait();
        exited = true;
      }
    } else {
      exited = child.try_wait(result.status);
    }
  }
  // Take what the hook wrote before exiting, but do not wait for EOF: a daemon it
  // spawned may hold the pipe open forever.
  if (output_r) read_available(output_r.get(), result.output);
  return result;
}

void run_hook(const Hook& hook, const std::string& state) {
  ExecPlan plan(hook);
  int in[2], out[2], report[2];
  if (::pipe2(in, O_CLOEXEC) < 0) fail_errno("create stdin pipe");
  UniqueFd stdin_r(in[0]), stdin_w(in[1]);
  if (::pipe2(out, O_CLOEXEC) < 0) fail_errno("create output pipe");
  UniqueFd output_r(out[0]), output_w(out[1]);
  if (::pipe2(report, O_CLOEXEC) < 0) fail_errno("create exec status pipe");
  UniqueFd report_r(report[0]), report_w(report[1]);

  pid_t pid = ::fork();
  if (pid < 0) fail_errno("fork");
  if (pid == 0) exec_child(hook, plan, stdin_r.get(), output_w.get(), report_w.get());

  Child child(pid);
  stdin_r.reset();
  output_w.reset();
  report_w.reset();

  // EOF means execve succeeded (the CLOEXEC pipe closed); a record means it did not.
  ChildFailure failure{};
  ssize_t got;
  while ((got = ::read(report_r.get(), &failure, sizeof failure)) < 0 && errno == EINTR) {}
  if (got == static_cast<ssize_t>(sizeof failure)) {
    child.wait();
    fail_code(failure.err, "{}", failure.step == 1 ? "exec" : "set up stdio");
  }

  Outcome r = supervise(child, std::move(stdin_w), std::move(output_r), state, hook.timeout);
  std::string output = describe_output(std::move(r.output));
  std::string suffix = output.empty() ? "" : ": " + output;
  if (r.timed_out) fail("timed out after {}s{}", *hook.timeout, suffix);
  if (WIFSIGNALED(r.status)) {
    const char* name = ::sigabbrev_np(WTERMSIG(r.status));
    if (name) fail("killed by signal SIG{}{}", name, suffix);
    fail("killed by signal {}{}", WTERMSIG(r.status), suffix);
  }
  if (WIFEXITED(r.status) && WEXITSTATUS(r.status) != 0)
    fail("exit status {}{}", WEXITSTATUS(r.status), suffix);
  if (!output.empty()) log::debug("hook {} output: {}", hook.path, output);
}

} // namespace

Hooks parse_hooks(const JsonView& hooks) {
  Hooks out;
  if (!hooks.present()) return out;
  hooks.expect_object();
  // Unknown stage names are ignored, as runc does, so newer specs still load.
  out.prestart = parse_stage(hooks, "prestart");
  out.create_runtime = parse_stage(hooks, "createRuntime");
  out.create_container = parse_stage(hooks, "createContainer");
  out.start_container = parse_stage(hooks, "startContainer");
  out.poststart = parse_stage(hooks, "poststart");
  out.poststop = parse_stage(hooks, "poststop");
  return out;
}

void run_hooks(const std::vector<Hook>& hooks, const char* stage, const std::string& state_json) {
  for (size_t i = 0; i < hooks.size(); i++) {
    with_context(fmt::format("{} hook #{} ({})", stage, i, hooks[i].path),
                 [&] { run_hook(hooks[i], state_json); });
  }
}

void run_hooks_warn(const std::vector<Hook>& hooks, const char* stage, const std::string& state_json) {
  for (size_t i = 0; i < hooks.size(); i++) {
    try {
      with_context(fmt::format("{} hook #{} ({})", stage, i, hooks[i].path), [&] { run_hook(hooks[i], state_json); });
    } catch (const Error& e) {
      log::warn("{}", e.what());
    }
  }
}

} // namespace berth
