#include "cni/lib/exec.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/ranges.h>

#include "common/fd.hpp"
#include "common/fs.hpp"

extern char** environ;

namespace berth::cni {

namespace {

struct Pipe {
  UniqueFd r, w;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) fail_errno("pipe");
    r.reset(fds[0]);
    w.reset(fds[1]);
  }
};

// Our environment minus any CNI_* variables, plus the invocation's (libcni's Args.AsEnv).
std::vector<std::string> plugin_env(const PluginInvocation& inv) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e)
    if (!starts_with(*e, "CNI_")) env.emplace_back(*e);
  std::vector<std::string> kv;
  for (const auto& [k, v] : inv.args) kv.push_back(k + "=" + v);
  env.push_back("CNI_COMMAND=" + inv.command);
  env.push_back("CNI_CONTAINERID=" + inv.container_id);
  env.push_back("CNI_NETNS=" + inv.netns);
  env.push_back("CNI_IFNAME=" + inv.ifname);
  env.push_back(fmt::format("CNI_ARGS={}", fmt::join(kv, ";")));
  env.push_back(fmt::format("CNI_PATH={}", fmt::join(inv.path, ":")));
  return env;
}

// Parent side of a run: feeds stdin, collects stdout/stderr until both close or time runs out.
bool pump(int in_fd, std::string_view in, int out_fd, std::string& out, int err_fd, std::string& err,
          std::chrono::steady_clock::time_point deadline) {
  size_t written = 0;
  bool out_open = true, err_open = true;
  if (in.empty()) ::close(in_fd), in_fd = -1;
  while (out_open || err_open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      if (in_fd >= 0) ::close(in_fd);
      return false;
    }
    pollfd p[3] = {{out_open ? out_fd : -1, POLLIN, 0}, {err_open ? err_fd : -1, POLLIN, 0}, {in_fd, POLLOUT, 0}};
    int n = ::poll(p, 3, static_cast<int>(std::min<int64_t>(left.count(), 60000)) + 1);
    if (n < 0 && errno != EINTR) fail_errno("poll plugin pipes");
    if (n <= 0) continue;
    char buf[16384];
    for (int i = 0; i < 2; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = ::read(p[i].fd, buf, sizeof buf);
      if (r > 0) {
        (i == 0 ? out : err).append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        (i == 0 ? out_open : err_open) = false;
      }
    }
    if (in_fd >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = ::write(in_fd, in.data() + written, in.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 && errno != EINTR && errno != EAGAIN) written = in.size(); // plugin closed stdin
      if (written == in.size()) ::close(in_fd), in_fd = -1;
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  return true;
}

[[noreturn]] void plugin_failed(const std::string& path, const PluginInvocation& inv, int status,
                                const std::string& out, const std::string& err) {
  json j = json::parse(out, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("msg")) {
    uint32_t code = j.value("code", 0u);
    std::string msg = j["msg"].is_string() ? j["msg"].get<std::string>() : j["msg"].dump();
    std::string details = j.contains("details") && j["details"].is_string() ? j["details"].get<std::string>() : "";
    std::string text = details.empty() ? msg : fmt::format("{}; {}", msg, details);
    throw PluginError(code, fmt::format("{} {}: error {}: {}", path, inv.command, code, text), details);
  }
  std::string why = WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status))
                                        : fmt::format("exit status {}", WEXITSTATUS(status));
  std::string text = std::string(trim(err.empty() ? out : err));
  if (text.size() > 2000) text.resize(2000);
  throw PluginError(999, fmt::format("{} {}: {}{}{}", path, inv.command, why, text.empty() ? "" : ": ", text), "");
}

// A plugin may leave a process behind that outlives it (berth-bridge's DEL
// child sits out the kernel's rcu_barrier). Orphans go to init, or to us when
// we are a child subreaper: then reap the ones of the plugin's process group
// (waitpid(-pgid) touches no other child of ours), killing them past the deadline.
void reap_group_orphans(pid_t pgid, std::chrono::steady_clock::time_point deadline) {
  int subreaper = 0;
  if (::prctl(PR_GET_CHILD_SUBREAPER, &subreaper) < 0 || !subreaper) return;
  bool killed = false;
  for (;;) {
    pid_t r = ::waitpid(-pgid, nullptr, WNOHANG);
    if (r > 0) continue;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return; // ECHILD: none of ours left in the group
    if (!killed && std::chrono::steady_clock::now() >= deadline) {
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

} // namespace

std::string find_plugin(const std::string& type, const std::vector<std::string>& dirs) {
  for (const auto& d : dirs) {
    std::string p = path_join(d, type);
    struct stat st;
    if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0) return p;
  }
  fail("failed to find plugin \"{}\" in path [{}]", type, fmt::join(dirs, " "));
}

CommandResult run_command(const std::string& path, const std::vector<std::string>& args,
                          const std::vector<std::string>* env, std::string_view input,
                          std::chrono::milliseconds timeout) {
  Pipe in, out, err;
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
  posix_spawn_file_actions_adddup2(&fa, in.r.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out.w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, err.w.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  // Its own process group, so a timeout kills whatever the plugin started too.
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  pid_t pid;
  int rc = ::posix_spawn(&pid, path.c_str(), &fa, &attr, argv.data(), env ? envp.data() : environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) fail_code(rc, "execute {}", path);
  in.r.reset();
  out.w.reset();
  err.w.reset();
  // A blocking write of a large config to a plugin that does not read would
  // block past the deadline: only ever write what the pipe takes.
  ::fcntl(in.w.get(), F_SETFL, ::fcntl(in.w.get(), F_GETFL) | O_NONBLOCK);

  CommandResult res;
  bool finished = false;
  // SIGPIPE from a child that does not read its stdin must not kill us.
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  try {
    finished = pump(in.w.release(), input, out.r.get(), res.out, err.r.get(), res.err,
                    std::chrono::steady_clock::now() + timeout);
  } catch (...) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw;
  }
  timespec zero{};
  while (sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (!finished) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL); // in case the plugin left its group (setsid)
  }
  while (::waitpid(pid, &res.status, 0) < 0 && errno == EINTR) {
  }
  reap_group_orphans(pid, finished ? std::chrono::steady_clock::now() + timeout : std::chrono::steady_clock::now());
  res.timed_out = !finished;
  return res;
}

std::string run_plugin(const std::string& path, const PluginInvocation& inv, std::string_view stdin_data,
                       std::chrono::milliseconds timeout, bool pass_stderr) {
  std::vector<std::string> env = plugin_env(inv);
  CommandResult r = run_command(path, {}, &env, stdin_data, timeout);
  if (pass_stderr && !r.err.empty()) write_all(2, r.err);
  if (r.timed_out)
    throw PluginError(999, fmt::format("{} {}: timed out after {} ms (killed)", path, inv.command, timeout.count()), "");
  if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) plugin_failed(path, inv, r.status, r.out, r.err);
  return r.out;
}

} // namespace berth::cni
