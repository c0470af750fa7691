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
