#include "shim/lib/launch.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <malloc.h>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "shim/lib/monitor.hpp"
#include "shim/lib/process.hpp"
#include "shim/lib/protocol.hpp"
#include "shim/lib/unix_socket.hpp"

namespace berth::shim {

namespace {

std::string absolute(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[4096];
  if (!::getcwd(cwd, sizeof cwd)) fail_errno("getcwd");
  return path_join(cwd, path);
}

// Everything that can be checked before the shim detaches, so that bad input gives
// an error to the caller and leaves nothing behind.
void check_inputs(ShimOptions& opts) {
  opts.bundle = absolute(opts.bundle);
  opts.state_root = absolute(opts.state_root);
  if (!opts.exit_dir.empty()) opts.exit_dir = absolute(opts.exit_dir);
  if (!opts.log_path.empty()) opts.log_path = absolute(opts.log_path);
  struct stat st;
  if (::stat(opts.bundle.c_str(), &st) < 0) fail_errno("bundle {}", opts.bundle);
  if (!S_ISDIR(st.st_mode)) fail("bundle {}: not a directory", opts.bundle);
  auto config = path_join(opts.bundle, "config.json");
  if (::access(config.c_str(), R_OK) < 0) fail_errno("bundle {}: config.json", opts.bundle);
  opts.runtime = resolve_executable(opts.runtime);
  if (!opts.log_path.empty()) {
    auto slash = opts.log_path.rfind('/');
    auto dir = opts.log_path.substr(0, std::max<size_t>(slash, 1));
    if (::stat(dir.c_str(), &st) < 0) fail_errno("log directory {}", dir);
  }
}

// The state dir is the shim's claim on the id: created exclusively.
void claim_state_dir(const ContainerPaths& paths, const std::string& id) {
  mkdir_p(paths.dir.substr(0, paths.dir.rfind('/')), 0700);
  if (::mkdir(paths.dir.c_str(), 0700) == 0) return;
  if (errno != EEXIST) fail_errno("create state dir {}", paths.dir);
  try {
    connect_unix(paths.ctl_socket(), SOCK_STREAM);
  } catch (const Error&) {
    fail("container {}: state dir {} is left from a shim that is gone; remove it first", id, paths.dir);
  }
  fail("container {}: a shim already serves it ({})", id, paths.dir);
}

// report_fd value for --foreground: print the result as `run` does.
constexpr int kReportToStdio = -2;

void write_report(int fd, const std::string& message) {
  if (fd == kReportToStdio) {
    if (starts_with(message, "pid "))
      std::printf("{\"pid\":%s,\"shim_pid\":%d}\n", message.substr(4).c_str(), ::getpid());
    else
      std::fprintf(stderr, "berth-shim: %s\n", message.substr(6).c_str());
    std::fflush(nullptr);
    return;
  }
  if (fd < 0) return;
  try {
    write_all(fd, message);
  } catch (const Error&) {
    // The caller is gone (killed): the shim goes on regardless.
  }
}

// The detached shim: creates the container, reports, serves. Never returns.
[[noreturn]] void shim_main(const ShimOptions& opts, const ContainerPaths& paths, int report_fd) {
  int code = 1;
  try {
    Monitor monitor(opts, paths);
    write_file_atomic(paths.shim_pid(), std::to_string(::getpid()), 0644, false);
    pid_t pid;
    try {
      pid = monitor.create_container();
    } catch (const Error& e) {
      note(fmt::format("create failed: {}", e.what()), dlog::Level::error);
      write_report(report_fd, fmt::format("error {}", e.what()));
      monitor.remove_state();
      ::_exit(1);
    }
    write_report(report_fd, fmt::format("pid {}", pid));
    if (report_fd > 2) ::close(report_fd);
    report_fd = -1;
    // What setup allocated is not needed again: give the pages back.
    ::malloc_trim(0);
    code = monitor.serve();
    monitor.remove_state();
  } catch (const std::exception& e) {
    note(fmt::format("shim failed: {}", e.what()), dlog::Level::error);
    write_report(report_fd, fmt::format("error {}", e.what()));
    if (report_fd != -1) {
      // Failed before the container existed: release the id.
      ::unlink(paths.shim_pid().c_str());
      ::rmdir(paths.dir.c_str());
    }
  }
  ::_exit(code);
}

void redirect_stdio(const ShimOptions& opts) {
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  ::dup2(null_fd, 0);
  ::dup2(null_fd, 1);
  int log_fd = opts.shim_log_fd >= 0 ? opts.shim_log_fd
               : opts.shim_log.empty()
                   ? -1
                   : ::open(opts.shim_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  ::dup2(log_fd >= 0 ? log_fd : null_fd, 2);
  if (log_fd >= 0) ::close(log_fd);
  ::close(null_fd);
}

} // namespace

int run_shim(const ShimOptions& input) {
  // Whatever the caller leaked (a pipe it waits on, a listening socket) must not live
  // as long as the container: keep stdio only (and the log fd berthd passed).
  if (int keep = input.shim_log_fd; keep >= 3) {
    if (keep > 3) ::close_range(3, keep - 1, 0);
    ::close_range(keep + 1, ~0U, 0);
    if (::fcntl(keep, F_SETFD, FD_CLOEXEC) < 0) fail_errno("--shim-log-fd {}", keep);
  } else {
    ::close_range(3, ~0U, 0);
  }
  ShimOptions opts = input;
  check_inputs(opts);
  dlog::configure(dlog::Level::info, opts.log_format);
  set_note_container(opts.id);
  ContainerPaths paths(opts.state_root, opts.exit_dir, opts.id);
  mkdir_p(paths.exit_dir, 0700);
  claim_state_dir(paths, opts.id);
  // A new container with this id: an old exit file would lie about it.
  ::unlink(paths.exit_file.c_str());

  if (opts.foreground) {
    // Serve in this process; the report goes to stdout/stderr as `run` prints it.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    shim_main(opts, paths, kReportToStdio);
  }

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) < 0) fail_errno("pipe");
  UniqueFd report_read(pipefd[0]), report_write(pipefd[1]);
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child < 0) fail_errno("fork");
  if (child == 0) {
    // Detach: own session (no terminal signals from the caller's), our own subreaper.
    report_read.reset();
    ::setsid();
    redirect_stdio(opts);
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    shim_main(opts, paths, report_write.release());
  }
  report_write.reset();
  std::string report;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(report_read.get(), buf, sizeof buf);
    if (n > 0) {
      report.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  if (starts_with(report, "pid ")) {
    std::printf("{\"pid\":%s,\"shim_pid\":%d}\n", report.substr(4).c_str(), child);
    return 0;
  }
  if (starts_with(report, "error ")) fail("{}", report.substr(6));
  // The shim died before it could say anything: reap it and say how.
  int status = 0;
  if (::waitpid(child, &status, WNOHANG) == child)
    fail("the shim died while starting the container ({})", describe_wait_status(status));
  fail("the shim closed its report pipe without a result");
}

} // namespace berth::shim
