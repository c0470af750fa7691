#include "common/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"

extern char** environ;

namespace berth {

namespace {

using Clock = std::chrono::steady_clock;

struct Pipe {
  UniqueFd r, w;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) fail_errno("pipe");
    r.reset(fds[0]);
    w.reset(fds[1]);
  }
};

struct Output {
  std::string& text;
  size_t cap;
  bool& truncated;
  void append(const char* data, size_t n) {
    size_t room = text.size() < cap ? cap - text.size() : 0;
    if (n > room) truncated = true;
    text.append(data, std::min(n, room));
  }
};

// Feeds stdin and collects stdout/stderr until both close; false when time ran out.
bool pump(UniqueFd in_fd, std::string_view in, int out_fd, Output out, int err_fd, Output err,
          Clock::time_point deadline) {
  size_t written = 0;
  bool out_open = true, err_open = true;
  if (in.empty()) in_fd.reset();
  while (out_open || err_open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p[3] = {{out_open ? out_fd : -1, POLLIN, 0}, {err_open ? err_fd : -1, POLLIN, 0}, {in_fd.get(), POLLOUT, 0}};
    int n = ::poll(p, 3, static_cast<int>(std::min<int64_t>(left.count(), 60000)) + 1);
    if (n < 0 && errno != EINTR) fail_errno("poll child pipes");
    if (n <= 0) continue;
    char buf[16384];
    for (int i = 0; i < 2; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = ::read(p[i].fd, buf, sizeof buf);
      if (r > 0)
        (i == 0 ? out : err).append(buf, static_cast<size_t>(r));
      else if (r == 0 || errno != EINTR)
        (i == 0 ? out_open : err_open) = false;
    }
    if (in_fd && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = ::write(in_fd.get(), in.data() + written, in.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 && errno != EINTR && errno != EAGAIN) written = in.size();  // the child closed stdin
      if (written == in.size()) in_fd.reset();
    }
  }
  return true;
}

// A child may leave a process behind that outlives it (berth-bridge's DEL child sits
// out the kernel's rcu_barrier; berth-shim detaches on purpose, but into its own
// session). Orphans go to init, or to us when we are a child subreaper: then reap the
// ones of the child's process group (waitpid(-pgid) touches no other child of ours),
// killing them past the deadline.
void reap_group_orphans(pid_t pgid, Clock::time_point deadline) {
  int subreaper = 0;
  if (::prctl(PR_GET_CHILD_SUBREAPER, &subreaper) < 0 || !subreaper) return;
  bool killed = false;
  for (;;) {
    pid_t r = ::waitpid(-pgid, nullptr, WNOHANG);
    if (r > 0) continue;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return;  // ECHILD: none of ours left in the group
    if (!killed && Clock::now() >= deadline) {
      ::kill(-pgid, SIGKILL);
      killed = true;
    }
    if (killed) {
      ::waitpid(-pgid, nullptr, 0);
      continue;
    }
    ::usleep(1000);
  }
}

pid_t spawn(const std::string& path, const std::vector<std::string>& args, const std::vector<std::string>* env,
            int in_fd, int out_fd, int err_fd, int pass_fd) {
  std::vector<std::string> argv_s = {path};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_copy = env ? *env : std::vector<std::string>{};
  std::vector<char*> envp;
  for (auto& e : env_copy) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  // Last, and from an fd >= 3: the dups above have read whatever was at 3 already.
  if (pass_fd >= 3) posix_spawn_file_actions_adddup2(&fa, pass_fd, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  // Its own process group, so a timeout kills whatever the child started too.
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  pid_t pid;
  int rc = ::posix_spawn(&pid, path.c_str(), &fa, &attr, argv.data(), env ? envp.data() : environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) fail_code(rc, "execute {}", path);
  return pid;
}

} // namespace

bool CommandResult::ok() const { return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0; }

std::string CommandResult::describe() const {
  if (timed_out) return "timed out (killed)";
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return fmt::format("exit status {}", WEXITSTATUS(status));
}

CommandResult run_command(const std::string& path, const std::vector<std::string>& args, const RunOptions& opts) {
  Pipe in, out, err;
  pid_t pid = spawn(path, args, opts.env, in.r.get(), out.w.get(), err.w.get(), opts.pass_fd);
  in.r.reset();
  out.w.reset();
  err.w.reset();
  // A blocking write of a large input to a child that does not read would block past
  // the deadline: only ever write what the pipe takes.
  ::fcntl(in.w.get(), F_SETFL, ::fcntl(in.w.get(), F_GETFL) | O_NONBLOCK);

  CommandResult res;
  bool finished = false;
  // SIGPIPE from a child that does not read its stdin must not kill us.
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  try {
    finished = pump(std::move(in.w), opts.input, out.r.get(), {res.out, opts.max_output, res.truncated},
                    err.r.get(), {res.err, opts.max_output, res.truncated}, Clock::now() + opts.timeout);
  } catch (...) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw;
  }
  timespec zero{};
  while (sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (!finished) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);  // in case the child left its group (setsid)
  }
  while (::waitpid(pid, &res.status, 0) < 0 && errno == EINTR) {
  }
  reap_group_orphans(pid, finished ? Clock::now() + opts.timeout : Clock::now());
  res.timed_out = !finished;
  return res;
}

std::vector<std::string> path_dirs() {
  const char* path = ::getenv("PATH");
  return split(path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ':');
}

std::string find_executable(const std::string& name, const std::vector<std::string>& dirs) {
  auto executable = [](const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (name.find('/') != std::string::npos) {
    if (executable(name)) return name;
    fail("{}: not an executable file", name);
  }
  for (const auto& d : dirs) {
    std::string p = path_join(d, name);
    if (executable(p)) return p;
  }
  fail("failed to find \"{}\" in [{}]", name, fmt::join(dirs, " "));
}

std::string executable_dir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

} // namespace berth
