#include "shim/lib/client.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json.hpp"
#include "shim/lib/exit_status.hpp"
#include "shim/lib/protocol.hpp"
#include "shim/lib/unix_socket.hpp"

namespace berth::shim {

namespace {

// One request on ctl.sock; nullopt when no shim answers (gone, or never there).
std::optional<std::string> ctl_request(const ContainerPaths& paths, const std::string& line) {
  UniqueFd sock;
  try {
    sock = connect_unix(paths.ctl_socket(), SOCK_STREAM);
  } catch (const Error& e) {
    if (e.code() == ENOENT || e.code() == ECONNREFUSED) return std::nullopt;
    throw;
  }
  write_all(sock.get(), line + "\n");
  std::string reply;
  char buf[4096];
  while (reply.find('\n') == std::string::npos) {
    ssize_t n = ::read(sock.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("read from {}", paths.ctl_socket());
    if (n == 0) return std::nullopt; // the shim ended while we waited
    reply.append(buf, static_cast<size_t>(n));
  }
  return reply.substr(0, reply.find('\n'));
}

// A container whose shim is gone: its exit file is all there is.
std::string exited_from_file(const ClientOptions& opts, const ContainerPaths& paths) {
  auto status = read_exit_file(paths.exit_file);
  if (!status)
    fail("container {}: unknown (no shim at {} and no exit file {})", opts.id, paths.dir, paths.exit_file);
  json j = json::parse(status->to_json());
  j["ok"] = true;
  j["id"] = opts.id;
  j["status"] = "stopped";
  return j.dump();
}

int print_reply(const std::string& reply) {
  json j = json::parse(reply, nullptr, false);
  if (j.is_object() && j.value("ok", false) == false) {
    std::fprintf(stderr, "berth-shim: %s\n", j.value("error", reply).c_str());
    return 1;
  }
  std::printf("%s\n", reply.c_str());
  return 0;
}

// ---- attach / exec relay --------------------------------------------------------

class RawTerminal {
public:
  explicit RawTerminal(int fd) : fd_(fd) {
    if (!::isatty(fd) || ::tcgetattr(fd, &saved_) < 0) return;
    struct termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(fd, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

private:
  int fd_;
  struct termios saved_ {};
  bool active_ = false;
};

void send_window_size(int sock) {
  struct winsize ws {};
  if (::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0)
    send_frame(sock, frame::kResize, fmt::format("{} {}", ws.ws_row, ws.ws_col), true);
}

// Relays stdin to the shim and its output frames to stdout/stderr until the exit
// frame; returns the exit code it carries.
int relay(int sock, bool tty, bool forward_stdin) {
  RawTerminal raw(tty && forward_stdin ? STDIN_FILENO : -1);
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  ::sigprocmask(SIG_BLOCK, &winch, nullptr);
  UniqueFd sigfd(::signalfd(-1, &winch, SFD_CLOEXEC | SFD_NONBLOCK));
  if (tty) send_window_size(sock);

  static char buf[frame::kMaxPayload + 1];
  bool stdin_open = forward_stdin;
  for (;;) {
    struct pollfd fds[3] = {{sock, POLLIN, 0}, {stdin_open ? STDIN_FILENO : -1, POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      fail_errno("poll");
    }
    if (fds[2].revents) {
      struct signalfd_siginfo si;
      while (::read(sigfd.get(), &si, sizeof si) > 0) {}
      if (tty) send_window_size(sock);
    }
    if (fds[1].revents) {
      ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf - 1);
      if (n > 0) {
        send_frame(sock, frame::kStdin, {buf, static_cast<size_t>(n)}, true);
      } else if (n == 0 || errno != EINTR) {
        send_frame(sock, frame::kCloseStdin, {}, true);
        stdin_open = false;
      }
    }
    if (fds[0].revents) {
      ssize_t n = ::recv(sock, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("the shim closed the connection without an exit status");
      std::string_view payload(buf + 1, static_cast<size_t>(n - 1));
      switch (buf[0]) {
      case frame::kStdout:
        write_all(STDOUT_FILENO, payload);
        break;
      case frame::kStderr:
        write_all(STDERR_FILENO, payload);
        break;
      case frame::kFailed:
        fail("{}", payload);
      case frame::kExit: {
        json j = json::parse(payload, nullptr, false);
        if (j.is_object() && j.value("timed_out", false)) std::fprintf(stderr, "berth-shim: exec timed out\n");
        return j.is_object() ? j.value("exit_code", 1) : 1;
      }
      default:
        break; // kStarted and newer frames
      }
    }
  }
}

int attach_or_exec(const ClientOptions& opts, const ContainerPaths& paths) {
  UniqueFd sock = connect_unix(paths.attach_socket(), SOCK_SEQPACKET);
  bool tty = opts.tty;
  if (opts.command == "attach") {
    send_frame(sock.get(), frame::kAttach, {}, true);
    // The container's terminal mode is the shim's to know: ask.
    if (auto reply = ctl_request(paths, "state")) {
      json j = json::parse(*reply, nullptr, false);
      if (j.is_object()) tty = j.value("terminal", false);
    }
    return relay(sock.get(), tty, true);
  }
  json request;
  if (!opts.process_file.empty()) {
    request["process"] = json::parse(read_file(opts.process_file));
    tty = request["process"].value("terminal", false);
  } else {
    request["args"] = opts.args;
    request["tty"] = opts.tty;
  }
  request["stdin"] = opts.stdin_open;
  if (opts.timeout_s > 0) request["timeout"] = opts.timeout_s;
  send_frame(sock.get(), frame::kExec, request.dump(), true);
  return relay(sock.get(), tty, opts.stdin_open || tty);
}

} // namespace

int run_client(const ClientOptions& opts) {
  ContainerPaths paths(opts.state_root, opts.exit_dir, opts.id);
  const auto& cmd = opts.command;
  if (cmd == "state" || cmd == "wait") {
    auto reply = ctl_request(paths, cmd);
    std::string text = reply ? *reply : exited_from_file(opts, paths);
    int rc = print_reply(text);
    if (cmd == "wait" && rc == 0) {
      json j = json::parse(text, nullptr, false);
      return j.is_object() ? j.value("exit_code", 0) : 0;
    }
    return rc;
  }
  if (cmd == "attach" || cmd == "exec") {
    if (!path_exists(paths.attach_socket())) {
      if (path_exists(paths.exit_file)) fail("container {} is not running (it exited)", opts.id);
      fail("container {}: no shim at {}", opts.id, paths.dir);
    }
    return attach_or_exec(opts, paths);
  }
  std::string line = cmd;
  for (auto& a : opts.args) line += " " + a;
  auto reply = ctl_request(paths, line);
  if (!reply) {
    if (path_exists(paths.exit_file)) fail("container {} is not running (it exited)", opts.id);
    fail("container {}: no shim at {}", opts.id, paths.dir);
  }
  return print_reply(*reply);
}

} // namespace berth::shim
