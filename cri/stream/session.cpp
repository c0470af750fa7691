#include "cri/stream/session.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "common/daemon_log.hpp"
#include "common/error.hpp"

namespace berth::stream {

void Loop::watch(int fd, short events, Handler handler) {
  for (auto& e : entries_)
    if (e.fd == fd) {
      e.events = events;
      e.handler = std::move(handler);
      return;
    }
  entries_.push_back({fd, events, std::move(handler)});
}

void Loop::set_events(int fd, short events) {
  for (auto& e : entries_)
    if (e.fd == fd) e.events = events;
}

void Loop::unwatch(int fd) {
  std::erase_if(entries_, [&](const Entry& e) { return e.fd == fd; });
}

bool Loop::run_once(Clock::time_point deadline) {
  std::vector<pollfd> fds;
  fds.reserve(entries_.size());
  // An entry with no events is not polled at all: poll would still report its hang-up,
  // and a paused source that hung up would spin the loop.
  for (const auto& e : entries_) fds.push_back({e.events ? e.fd : -1, e.events, 0});
  auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::clamp<int64_t>(wait, 0, 60000)));
  if (n < 0 && errno != EINTR) fail_errno("poll");
  if (n <= 0) return Clock::now() < deadline;
  // Handlers may watch and unwatch: look each ready fd up again before calling it.
  for (const auto& p : fds) {
    if (!p.revents) continue;
    auto it = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.fd == p.fd; });
    if (it == entries_.end()) continue;
    Handler h = it->handler;  // a copy: the handler may replace its own entry
    h(p.revents);
  }
  return true;
}

ClientSocket::ClientSocket(int fd, Loop& loop, std::function<void()> on_input)
    : fd_(fd), loop_(loop), on_input_(std::move(on_input)) {
  // A client whose machine vanished sends no FIN: keepalive finds it in minutes rather
  // than the idle timeout's hours (fails harmlessly on TLS's socketpair).
  int on = 1, idle = 60, interval = 10, count = 6;
  ::setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd_, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd_, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd_, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  // Frames go out as they are made: with Nagle, a small frame after another (a stream's
  // end after its last data) waits for the client's delayed ACK, ~40 ms per forwarded
  // connection.
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  loop_.watch(fd_, POLLIN, [this](short revents) {
    if (revents & POLLOUT) flush();
    if ((revents & (POLLIN | POLLHUP | POLLERR)) && input_) on_input_();
    else if ((revents & (POLLHUP | POLLERR)) && !input_) closed_ = true;
  });
}

void ClientSocket::update() {
  if (closed_) {
    loop_.unwatch(fd_);
    return;
  }
  loop_.set_events(fd_, static_cast<short>((input_ ? POLLIN : 0) | (drained() ? 0 : POLLOUT)));
}

void ClientSocket::flush() {
  while (!closed_ && sent_ < out_.size()) {
    ssize_t n = ::send(fd_, out_.data() + sent_, out_.size() - sent_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      closed_ = true;  // the client is gone: what it was sent no longer matters
      break;
    }
    sent_ += static_cast<size_t>(n);
    last_activity_ = Clock::now();
  }
  if (sent_ == out_.size()) {
    out_.clear();
    sent_ = 0;
  } else if (sent_ > (1 << 16)) {
    out_.erase(0, sent_);
    sent_ = 0;
  }
  update();
}

bool ClientSocket::read(std::string& into) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) {
      // End of input: the client may still read (a half-close), so writing goes on
      // until a write fails.
      eof_ = true;
      input_ = false;
      update();
      return false;
    }
    into.append(buf, static_cast<size_t>(n));
    last_activity_ = Clock::now();
    return true;
  }
}

void ClientSocket::want_input(bool on) {
  on = on && !eof_;
  if (input_ == on) return;
  input_ = on;
  update();
}

void ClientSocket::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

void ClientSocket::linger(Clock::duration max) {
  // Closing a socket with unread input makes the kernel send a reset, which can destroy
  // the tail the client has not read yet: half-close, then read until the client closes
  // (or for at most `max`).
  flush();
  auto end = Clock::now() + max;
  while (!closed_ && !drained() && Clock::now() < end) {
    pollfd p{fd_, POLLOUT, 0};
    ::poll(&p, 1, 100);
    flush();
  }
  shutdown_write();
  char buf[4096];
  while (!closed_ && !eof_ && Clock::now() < end) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
  }
}

void run_session(SessionStart start) {
  const char* what = std::holds_alternative<PortForwardTarget>(start.target) ? "port-forward"
                     : start.attach                                         ? "attach"
                                                                            : "exec";
  std::string subject = std::holds_alternative<PortForwardTarget>(start.target)
                            ? std::get<PortForwardTarget>(start.target).sandbox_id
                            : std::get<ProcessTarget>(start.target).container_id;
  dlog::debug("stream session started", {{"kind", what}, {"id", subject}, {"protocol", start.protocol}});
  try {
    if (std::holds_alternative<PortForwardTarget>(start.target)) run_port_forward(start);
    else run_remote_command(start);
    dlog::debug("stream session ended", {{"kind", what}, {"id", subject}});
  } catch (const std::exception& e) {
    dlog::warn("stream session failed", {{"kind", what}, {"id", subject}, {"error", e.what()}});
  }
}

} // namespace berth::stream
