#include "shim/lib/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"
#include "common/subprocess.hpp"

extern char** environ;

namespace berth::shim {

Child& Child::operator=(Child&& o) noexcept {
  if (this != &o) {
    kill_and_reap();
    pid_ = o.release();
  }
  return *this;
}

void Child::kill_and_reap() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {}
  pid_ = -1;
}

Child spawn_process(const std::vector<std::string>& argv, const Stdio& stdio, const std::string& cwd) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  int targets[3] = {stdio.in, stdio.out, stdio.err};
  for (int target = 0; target < 3; target++) {
    if (targets[target] < 0)
      posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0);
    else
      posix_spawn_file_actions_adddup2(&actions, targets[target], target);
  }
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) fail_code(rc, "run {}", argv[0]);
  return Child(pid);
}

namespace {

int64_t now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Reads what is available; false at EOF or error.
bool read_available(int fd, std::string& into) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      into.append(buf, static_cast<size_t>(n));
      if (into.size() > 65536) into.erase(0, into.size() - 65536);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && errno == EAGAIN;
  }
}

} // namespace

RunResult run_process(const std::vector<std::string>& argv, const Stdio& stdio, const std::string& cwd,
                      int timeout_ms, std::initializer_list<int> capture_fds) {
  Child child = spawn_process(argv, stdio, cwd);
  // An unreaped child's pidfd cannot refer to anyone else.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, child.pid(), 0)));
  if (!pidfd) fail_errno("pidfd_open");

  RunResult result;
  std::vector<struct pollfd> fds{{pidfd.get(), POLLIN, 0}};
  for (int fd : capture_fds) fds.push_back({fd, POLLIN, 0});
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    int left = static_cast<int>(std::max<int64_t>(0, deadline - now_ms()));
    int n = ::poll(fds.data(), fds.size(), left);
    if (n < 0 && errno != EINTR) fail_errno("poll");
    if (n == 0) {
      result.timed_out = true;
      break;
    }
    for (size_t i = 1; i < fds.size(); i++) {
      if (fds[i].fd >= 0 && fds[i].revents && !read_available(fds[i].fd, result.output)) fds[i].fd = -1;
    }
    if (fds[0].revents) break;
  }
  if (result.timed_out) ::kill(child.pid(), SIGKILL);
  int status = 0;
  while (::waitpid(child.pid(), &status, 0) < 0 && errno == EINTR) {}
  child.release();
  result.wait_status = status;
  for (int fd : capture_fds) read_available(fd, result.output);
  return result;
}

std::vector<std::string> runtime_argv(const std::string& binary, const std::vector<std::string>& global_args,
                                      const std::string& log_path, const std::vector<std::string>& args) {
  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), global_args.begin(), global_args.end());
  if (!log_path.empty()) argv.insert(argv.end(), {"--log", log_path, "--log-format", "json"});
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::string last_runtime_error(const std::string& log_path) {
  std::string found;
  try {
    auto text = try_read_file(log_path);
    if (!text) return found;
    for (auto& line : split(*text, '\n')) {
      auto j = json::parse(line, nullptr, false);
      if (j.is_object() && j.value("level", "") == "error" && j.contains("msg") && j["msg"].is_string())
        found = j["msg"].get<std::string>();
    }
  } catch (const std::exception&) {
  }
  return found;
}

std::string describe_wait_status(int wait_status) {
  if (WIFSIGNALED(wait_status)) return fmt::format("killed by signal {}", WTERMSIG(wait_status));
  return fmt::format("exit status {}", WEXITSTATUS(wait_status));
}

std::string describe_runtime_failure(const std::string& what, const RunResult& r, const std::string& log_path) {
  if (r.timed_out) return fmt::format("{} timed out (the runtime was killed)", what);
  std::string msg = last_runtime_error(log_path);
  if (msg.empty()) {
    // The last non-empty line of its output, without runc's logrus decoration.
    for (auto& line : split(r.output, '\n')) {
      auto t = trim(line);
      if (!t.empty()) msg = t;
    }
    auto at = msg.find("msg=\"");
    if (at != std::string::npos && msg.back() == '"') msg = msg.substr(at + 5, msg.size() - at - 6);
  }
  if (msg.empty()) msg = describe_wait_status(r.wait_status);
  return fmt::format("{} failed: {}", what, msg);
}

std::string resolve_executable(const std::string& name) {
  auto usable = [](const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (name.find('/') != std::string::npos) {
    if (!usable(name)) fail_code(ENOENT, "runtime {}: not an executable file", name);
    return name;
  }
  for (auto& dir : path_dirs()) {
    auto p = path_join(dir, name);
    if (usable(p)) return p;
  }
  fail("runtime {}: executable file not found in $PATH", name);
}

} // namespace berth::shim
