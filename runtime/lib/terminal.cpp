// Pseudo-terminals, the console socket and fd passing, and the `berth run` relay.
#include "runtime/lib/terminal.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth {

// ---- pty --------------------------------------------------------------------

PtyPair open_pty() {
  PtyPair pty;
  pty.master.reset(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!pty.master) fail_errno("open /dev/ptmx");
  if (::unlockpt(pty.master.get()) < 0) fail_errno("unlockpt");
  // TIOCGPTPEER (Linux 4.13) opens the peer without a path lookup, so a /dev/pts that
  // is not the ptmx's own devpts instance cannot hand us someone else's terminal.
  pty.slave.reset(::ioctl(pty.master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (pty.slave) return pty;
  if (errno != EINVAL && errno != ENOTTY) fail_errno("open pty slave (TIOCGPTPEER)");
  char name[64];
  if (::ptsname_r(pty.master.get(), name, sizeof name) != 0) fail_errno("ptsname");
  pty.slave.reset(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!pty.slave) fail_errno("open {}", name);
  return pty;
}

void set_window_size(int fd, unsigned rows, unsigned cols) {
  struct winsize ws {};
  ws.ws_row = static_cast<unsigned short>(rows);
  ws.ws_col = static_cast<unsigned short>(cols);
  if (::ioctl(fd, TIOCSWINSZ, &ws) < 0) fail_errno("set window size to {}x{}", cols, rows);
}

void make_controlling_terminal(int slave) {
  // A process group leader cannot setsid(); a session leader already has its session.
  if (::getsid(0) != ::getpid() && ::setsid() < 0) fail_errno("setsid");
  if (::ioctl(slave, TIOCSCTTY, 0) < 0) fail_errno("make the console the controlling terminal");
  for (int target = 0; target <= 2; target++) {
    if (::dup2(slave, target) < 0) fail_errno("dup2 console onto fd {}", target);
  }
}

// ---- unix sockets -----------------------------------------------------------

UniqueFd connect_unix(const std::string& path) {
  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) fail_errno("create unix socket");
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;

  // sun_path holds 108 bytes including the NUL; reach longer paths through an fd on
  // the parent directory.
  UniqueFd dir;
  std::string target = path;
  if (path.size() >= sizeof addr.sun_path) {
    auto slash = path.rfind('/');
    std::string parent = slash == 0 ? "/" : path.substr(0, slash);
    if (slash == std::string::npos) fail_code(ENAMETOOLONG, "connect to {}", path);
    dir.reset(::open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir) fail_errno("open {}", parent);
    target = fmt::format("/proc/self/fd/{}/{}", dir.get(), path.substr(slash + 1));
    if (target.size() >= sizeof addr.sun_path) fail_code(ENAMETOOLONG, "connect to {}", path);
  }
  std::memcpy(addr.sun_path, target.c_str(), target.size() + 1);
  if (::connect(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) < 0)
    fail_errno("connect to {}", path);
  return sock;
}

void send_fd(int sock, int fd, std::string_view payload) {
  // Stream sockets need at least one data byte to carry the control message.
  static const char kNul = '\0';
  struct iovec iov {};
  iov.iov_base = const_cast<char*>(payload.empty() ? &kNul : payload.data());
  iov.iov_len = payload.empty() ? 1 : payload.size();

  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));

  ssize_t n;
  while ((n = ::sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
  if (n < 0) fail_errno("send fd over socket");
  // The fd went with the first byte; finish any short write as plain data.
  auto rest = std::string_view(static_cast<const char*>(iov.iov_base), iov.iov_len)
                  .substr(static_cast<size_t>(n));
  while (!rest.empty()) {
    while ((n = ::send(sock, rest.data(), rest.size(), MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
    if (n < 0) fail_errno("send fd payload over socket");
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

UniqueFd recv_fd(int sock, std::string* payload) {
  char data[4096]; // runc's limit for the console name
  struct iovec iov {data, sizeof data};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;

  ssize_t n;
  while ((n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
  if (n < 0) fail_errno("receive fd from socket");

  UniqueFd received;
  for (auto* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (!received) received.reset(fd);
      else ::close(fd);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) fail("receive fd from socket: more than one fd was sent");
  if (!received) {
    if (n == 0) fail("receive fd from socket: peer closed the connection");
    fail("receive fd from socket: no fd in the message");
  }
  if (payload) {
    payload->assign(data, static_cast<size_t>(n));
    if (*payload == std::string_view("\0", 1)) payload->clear(); // send_fd's empty payload
  }
  return received;
}

// ---- relay ------------------------------------------------------------------

namespace {

// Puts a tty in raw mode and restores it on scope exit, exceptions included.
class RawMode {
public:
  explicit RawMode(int fd) : fd_(fd) {
    struct termios tio {};
    if (::tcgetattr(fd, &tio) < 0) fail_errno("tcgetattr");
    saved_ = tio;
    ::cfmakeraw(&tio);
    if (::tcsetattr(fd, TCSANOW, &tio) < 0) fail_errno("set the terminal to raw mode");
  }
  ~RawMode() { ::tcsetattr(fd_, TCSANOW, &saved_); }
  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;

private:
  int fd_;
  struct termios saved_ {};
};

// Delivers SIGWINCH through a signalfd; the mask and pending signal are put back after.
class WinchSignal {
public:
  WinchSignal() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGWINCH);
    if (::pthread_sigmask(SIG_BLOCK, &set, &old_) != 0) fail("block SIGWINCH");
    fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd_) {
      int err = errno;
      ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
      fail_code(err, "signalfd");
    }
  }
  ~WinchSignal() {
    drain();
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  WinchSignal(const WinchSignal&) = delete;
  WinchSignal& operator=(const WinchSignal&) = delete;

  int fd() const { return fd_.get(); }
  // Consumes queued signals; true if there was at least one.
  bool drain() {
    struct signalfd_siginfo info;
    bool any = false;
    while (::read(fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) any = true;
    return any;
  }

private:
  sigset_t old_;
  UniqueFd fd_;
};

// Restores a descriptor's file status flags on scope exit.
class FlagsGuard {
public:
  FlagsGuard(int fd, int add) : fd_(fd), saved_(::fcntl(fd, F_GETFL)) {
    if (saved_ < 0 || ::fcntl(fd, F_SETFL, saved_ | add) < 0) fail_errno("fcntl F_SETFL");
  }
  ~FlagsGuard() { ::fcntl(fd_, F_SETFL, saved_); }
  FlagsGuard(const FlagsGuard&) = delete;
  FlagsGuard& operator=(const FlagsGuard&) = delete;

private:
  int fd_, saved_;
};

void copy_window_size(int from, int to) {
  struct winsize ws {};
  if (::ioctl(from, TIOCGWINSZ, &ws) == 0) ::ioctl(to, TIOCSWINSZ, &ws);
}

// Writes everything to fd, waiting when it is non-blocking and full.
void write_fully(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (errno == EAGAIN) {
      struct pollfd p {fd, POLLOUT, 0};
      ::poll(&p, 1, -1);
    } else if (errno != EINTR) {
      fail_errno("write to stdout");
    }
  }
}

} // namespace

void relay_pty(int master) {
  std::optional<RawMode> raw;
  if (::isatty(STDIN_FILENO)) raw.emplace(STDIN_FILENO);
  // The size comes from whichever side of ours is a terminal.
  int size_source = ::isatty(STDIN_FILENO) ? STDIN_FILENO : ::isatty(STDOUT_FILENO) ? STDOUT_FILENO : -1;
  WinchSignal winch;
  if (size_source >= 0) copy_window_size(size_source, master);
  // Non-blocking master: a container that does not read its input must not stop us
  // from draining its output.
  FlagsGuard nonblocking(master, O_NONBLOCK);

  std::string to_master;
  bool stdin_open = true;
  char buf[16384];
  for (;;) {
    struct pollfd fds[3] = {
        {master, static_cast<short>(POLLIN | (to_master.empty() ? 0 : POLLOUT)), 0},
        {winch.fd(), POLLIN, 0},
        // Read stdin only once the previous chunk reached the master (back-pressure).
        {stdin_open && to_master.empty() ? STDIN_FILENO : -1, POLLIN, 0},
    };
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      fail_errno("poll");
    }

    if (fds[1].revents && winch.drain() && size_source >= 0) copy_window_size(size_source, master);

    if (fds[2].revents) {
      ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
      if (n > 0) to_master.assign(buf, static_cast<size_t>(n));
      else if (n == 0 || (errno != EINTR && errno != EAGAIN)) stdin_open = false;
    }

    if (!to_master.empty()) {
      ssize_t n = ::write(master, to_master.data(), to_master.size());
      if (n > 0) to_master.erase(0, static_cast<size_t>(n));
      else if (n < 0 && errno != EAGAIN && errno != EINTR) to_master.clear(); // container side gone
    }

    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      // Drain everything buffered; EIO (or EOF) means every slave fd is closed.
      for (;;) {
        ssize_t n = ::read(master, buf, sizeof buf);
        if (n > 0) {
          write_fully(STDOUT_FILENO, std::string_view(buf, static_cast<size_t>(n)));
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        return;
      }
    }
  }
}

} // namespace berth
