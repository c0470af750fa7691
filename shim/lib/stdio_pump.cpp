#include "shim/lib/stdio_pump.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::shim {

namespace {
// One read buffer for the whole shim (single-threaded): 16 KiB, touched only as far
// as reads fill it.
char g_read_buffer[16384];
constexpr size_t kMaxPendingStdin = 1 << 20;

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}
} // namespace

StdioPump::StdioPump(EventLoop& loop, Sink& sink, ProcessStdio stdio)
    : loop_(loop), sink_(sink), stdio_(std::move(stdio)) {
  for (auto* fd : {&stdio_.out, &stdio_.err, &stdio_.in})
    if (*fd) set_nonblocking(fd->get());
  update_watches();
  if (!outputs_open()) closed_reported_ = true;
}

void StdioPump::on_event(int tag, uint32_t events) {
  if (tag == kIn) {
    flush_stdin();
    return;
  }
  UniqueFd& fd = tag == kOut ? stdio_.out : stdio_.err;
  if (!fd || paused_) return; // closed or paused earlier in this round of events
  if (tag == kOut && stdio_.tty && (events & EPOLLOUT)) flush_stdin();
  if (!fd) return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    // A few reads per wake-up keep one busy stream from starving the others.
    if (!read_some(fd, tag == kOut ? Stream::out : Stream::err, 4)) close_output(fd);
  }
}

bool StdioPump::read_some(UniqueFd& fd, Stream stream, int max_reads) {
  // A sink that could not take a chunk pauses the pump while it holds it: reading on
  // would hand it the next chunk over the held one (lost output).
  for (int i = 0; i < max_reads && fd && !paused_; i++) {
    ssize_t n = ::read(fd.get(), g_read_buffer, sizeof g_read_buffer);
    if (n > 0) {
      sink_.on_output(stream, {g_read_buffer, static_cast<size_t>(n)});
      if (static_cast<size_t>(n) < sizeof g_read_buffer) return true;
      continue;
    }
    if (n < 0 && errno == EINTR) {
      i--;
      continue;
    }
    if (n < 0 && errno == EAGAIN) return true;
    return false; // 0: end of file; EIO: the pty's last slave closed
  }
  return true;
}

void StdioPump::drain_now() {
  while (stdio_.out && !paused_) {
    if (!read_some(stdio_.out, Stream::out, 1)) {
      close_output(stdio_.out);
      break;
    }
    int avail = 0;
    if (::ioctl(stdio_.out.get(), FIONREAD, &avail) < 0 || avail <= 0) break;
  }
  while (stdio_.err && !paused_) {
    if (!read_some(stdio_.err, Stream::err, 1)) {
      close_output(stdio_.err);
      break;
    }
    int avail = 0;
    if (::ioctl(stdio_.err.get(), FIONREAD, &avail) < 0 || avail <= 0) break;
  }
}

void StdioPump::close_output(UniqueFd& fd) {
  if (!fd) return;
  bool& registered = &fd == &stdio_.out ? out_registered_ : err_registered_;
  if (registered) loop_.remove(fd.get());
  registered = false;
  if (&fd == &stdio_.out && stdio_.tty) in_watched_ = false;
  fd.reset();
  if (!outputs_open() && !closed_reported_) {
    closed_reported_ = true;
    sink_.on_outputs_closed();
  }
}

bool StdioPump::write_stdin(std::string_view data) {
  int fd = input_fd();
  if (fd < 0 || stdin_closed_) return true; // nowhere to go: dropped, as on a closed stdin
  if (pending_.empty()) {
    while (!data.empty()) {
      ssize_t n = ::write(fd, data.data(), data.size());
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      pending_.clear();
      close_stdin(); // EPIPE: the process closed its stdin
      return true;
    }
    if (data.empty()) return true;
  }
  if (pending_.size() + data.size() > kMaxPendingStdin) {
    data = data.substr(0, kMaxPendingStdin - std::min(kMaxPendingStdin, pending_.size()));
  }
  pending_.append(data);
  update_watches();
  return false;
}

void StdioPump::flush_stdin() {
  int fd = input_fd();
  while (fd >= 0 && !pending_.empty()) {
    ssize_t n = ::write(fd, pending_.data(), pending_.size());
    if (n > 0) {
      pending_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    pending_.clear(); // EPIPE: the process closed its stdin
    close_when_drained_ = true;
    break;
  }
  pending_.clear();
  pending_.shrink_to_fit();
  if (close_when_drained_) {
    close_when_drained_ = false;
    close_stdin();
  }
  update_watches();
  sink_.on_stdin_drained();
}

void StdioPump::close_stdin() {
  if (!pending_.empty()) {
    close_when_drained_ = true; // what was sent before the close still goes in first
    return;
  }
  if (stdio_.tty) {
    stdin_closed_ = true; // the master stays: it is also the output
  } else if (stdio_.in) {
    if (in_watched_) loop_.remove(stdio_.in.get());
    in_watched_ = false;
    stdio_.in.reset();
  }
  update_watches();
}

void StdioPump::update_watches() {
  // A paused output leaves the epoll set: level-triggered EPOLLHUP would spin otherwise.
  auto sync = [&](UniqueFd& fd, bool& registered, uint32_t events, Watch* w) {
    bool want = fd && !paused_;
    if (want && registered) loop_.modify(fd.get(), events, w);
    else if (want) loop_.add(fd.get(), events, w);
    else if (registered && fd) loop_.remove(fd.get());
    registered = want;
  };
  bool want_in = !pending_.empty();
  if (stdio_.tty) {
    sync(stdio_.out, out_registered_, EPOLLIN | (want_in ? EPOLLOUT : 0), &out_watch_);
    in_watched_ = want_in && out_registered_;
    return;
  }
  sync(stdio_.out, out_registered_, EPOLLIN, &out_watch_);
  sync(stdio_.err, err_registered_, EPOLLIN, &err_watch_);
  if (stdio_.in && want_in != in_watched_) {
    if (want_in) loop_.add(stdio_.in.get(), EPOLLOUT, &in_watch_);
    else loop_.remove(stdio_.in.get());
    in_watched_ = want_in;
  }
}

void StdioPump::pause_output(bool paused) {
  if (paused == paused_) return;
  paused_ = paused;
  update_watches();
}

std::pair<unsigned, unsigned> StdioPump::parse_size(std::string_view payload) {
  auto f = split(payload, ' ');
  auto rows = f.size() == 2 ? parse_uint(f[0]) : std::nullopt;
  auto cols = f.size() == 2 ? parse_uint(f[1]) : std::nullopt;
  if (!rows || !cols || *rows > 65535 || *cols > 65535) fail("resize: expected \"ROWS COLS\"");
  return {static_cast<unsigned>(*rows), static_cast<unsigned>(*cols)};
}

void StdioPump::resize(unsigned rows, unsigned cols) {
  if (!stdio_.tty || !stdio_.out) fail("the process has no terminal");
  struct winsize ws {};
  ws.ws_row = static_cast<unsigned short>(rows);
  ws.ws_col = static_cast<unsigned short>(cols);
  if (::ioctl(stdio_.out.get(), TIOCSWINSZ, &ws) < 0) fail_errno("resize the terminal");
}

void StdioPump::close_all() {
  closed_reported_ = true; // the owner asked for it: no callback
  close_when_drained_ = false;
  if (stdio_.in && in_watched_) loop_.remove(stdio_.in.get());
  in_watched_ = false;
  stdio_.in.reset();
  if (stdio_.out && out_registered_) loop_.remove(stdio_.out.get());
  if (stdio_.err && err_registered_) loop_.remove(stdio_.err.get());
  out_registered_ = err_registered_ = false;
  stdio_.out.reset();
  stdio_.err.reset();
  pending_.clear();
}

} // namespace berth::shim
