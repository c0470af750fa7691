// exec and attach. exec -s is the ExecSync RPC; otherwise the Exec/Attach RPC hands out a
// URL of the runtime's stream server, spoken to over WebSocket with v5.channel.k8s.io (or
// v4): channel 0 stdin, 1 stdout, 2 stderr, 3 the final status, 4 terminal resizes.
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ctl/lib/verbs.hpp"
#include "ctl/lib/ws_client.hpp"

namespace berth::ctl {
namespace {

volatile sig_atomic_t g_resized = 0;
void on_winch(int) { g_resized = 1; }

// The terminal in raw mode for the session's lifetime (-t with a terminal on stdin).
class RawTerminal {
public:
  RawTerminal() {
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    cfmakeraw(&raw);
    active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }

private:
  termios saved_{};
  bool active_ = false;
};

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // our reader went away: nothing to report to
    s.remove_prefix(static_cast<size_t>(n));
  }
}

void send_frame(int fd, ws::Opcode op, std::string_view payload) {
  std::string out;
  ws::encode(out, op, payload);
  std::string_view s = out;
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(fmt::format("stream: send: {}", std::strerror(errno)));
    s.remove_prefix(static_cast<size_t>(n));
  }
}

void send_channel(int fd, uint8_t channel, std::string_view data) {
  std::string msg(1, static_cast<char>(channel));
  msg.append(data);
  send_frame(fd, ws::Opcode::binary, msg);
}

void send_size(int fd) {
  winsize ws{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0) return;
  send_channel(fd, 4, fmt::format(R"({{"Width":{},"Height":{}}})", ws.ws_col, ws.ws_row));
}

// The status on channel 3: a metav1.Status for v4/v5 ("Success", or "Failure" with the
// exit code in details.causes), plain text for older protocols. Returns the exit code.
int exit_code_of(const std::string& status) {
  auto j = nlohmann::json::parse(status, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    if (!status.empty()) std::cerr << "error: " << status << '\n';
    return status.empty() ? 0 : 1;
  }
  if (j.value("status", "") == "Success") return 0;
  if (j.contains("details") && j["details"].contains("causes"))
    for (const auto& cause : j["details"]["causes"])
      if (cause.value("reason", "") == "ExitCode") return std::atoi(cause.value("message", "1").c_str());
  std::cerr << "error: " << j.value("message", status) << '\n';
  return 1;
}

int stream(const std::string& url, bool stdin_, bool tty, int timeout_ms) {
  ws::Connection conn;
  ws::connect(conn, url, {"v5.channel.k8s.io", "v4.channel.k8s.io"}, timeout_ms);
  bool v5 = conn.protocol == "v5.channel.k8s.io";
  std::optional<RawTerminal> raw;
  if (tty) {
    if (stdin_) raw.emplace();
    struct sigaction sa {};
    sa.sa_handler = on_winch;
    sigaction(SIGWINCH, &sa, nullptr);
    send_size(conn.fd);
  }
  ws::Reader reader;
  std::vector<ws::Message> msgs;
  reader.feed(conn.leftover, msgs);
  bool stdin_open = stdin_;
  int code = 0;
  for (;;) {
    for (auto& m : msgs) {
      switch (m.opcode) {
      case ws::Opcode::ping: send_frame(conn.fd, ws::Opcode::pong, m.payload); break;
      case ws::Opcode::close: {
        std::string body;
        body.push_back(static_cast<char>(0x03));
        body.push_back(static_cast<char>(0xe8));  // 1000
        send_frame(conn.fd, ws::Opcode::close, body);
        return code;
      }
      case ws::Opcode::binary:
      case ws::Opcode::text:
        if (m.payload.empty()) break;
        switch (static_cast<uint8_t>(m.payload[0])) {
        case 1: write_all(STDOUT_FILENO, std::string_view(m.payload).substr(1)); break;
        case 2: write_all(STDERR_FILENO, std::string_view(m.payload).substr(1)); break;
        case 3: code = exit_code_of(m.payload.substr(1)); break;
        default: break;  // the server's close signal and unknown channels
        }
        break;
      default: break;
      }
    }
    msgs.clear();
    if (g_resized) {  // also when the signal came outside poll()
      g_resized = 0;
      send_size(conn.fd);
    }
    pollfd fds[2] = {{conn.fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    int n = ::poll(fds, stdin_open ? 2 : 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(fmt::format("stream: poll: {}", std::strerror(errno)));
    if (stdin_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buf[32768];
      ssize_t r = ::read(STDIN_FILENO, buf, sizeof buf);
      if (r > 0) {
        send_channel(conn.fd, 0, std::string_view(buf, static_cast<size_t>(r)));
      } else if (r == 0 || errno != EINTR) {
        stdin_open = false;
        // v5 tells the process its stdin ended; v4 has no way to.
        if (v5) send_channel(conn.fd, 255, std::string_view("\0", 1));
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[65536];
      ssize_t r = ::recv(conn.fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return code;  // closed without a close frame: the status, if any, came
      reader.feed(std::string_view(buf, static_cast<size_t>(r)), msgs);
    }
  }
}

} // namespace

int cmd_exec(Client& c, const ExecOptions& o) {
  std::string id = c.resolve_container(o.container);
  if (o.sync) {
    cri::ExecSyncRequest req;
    req.set_container_id(id);
    for (const auto& a : o.cmd) req.add_cmd(a);
    req.set_timeout(o.timeout);
    cri::ExecSyncResponse resp;
    // The runtime enforces --timeout; the RPC deadline leaves it room to say so.
    auto ctx = c.context(o.timeout > 0 ? std::chrono::seconds(o.timeout + 10) : std::chrono::milliseconds(-1));
    check(c.runtime().ExecSync(ctx.get(), req, &resp), "ExecSync");
    write_all(STDOUT_FILENO, resp.stdout());
    write_all(STDERR_FILENO, resp.stderr());
    return resp.exit_code();
  }
  cri::ExecRequest req;
  req.set_container_id(id);
  for (const auto& a : o.cmd) req.add_cmd(a);
  req.set_tty(o.tty);
  req.set_stdin(o.stdin_);
  req.set_stdout(true);
  req.set_stderr(!o.tty);
  cri::ExecResponse resp;
  BERTHCTL_CALL(c, runtime, Exec, req, resp);
  return stream(resp.url(), o.stdin_, o.tty, static_cast<int>(c.timeout().count()));
}

int cmd_attach(Client& c, const std::string& container, bool stdin_, bool tty) {
  cri::AttachRequest req;
  req.set_container_id(c.resolve_container(container));
  req.set_stdin(stdin_);
  req.set_tty(tty);
  req.set_stdout(true);
  req.set_stderr(!tty);
  cri::AttachResponse resp;
  BERTHCTL_CALL(c, runtime, Attach, req, resp);
  return stream(resp.url(), stdin_, tty, static_cast<int>(c.timeout().count()));
}

} // namespace berth::ctl
