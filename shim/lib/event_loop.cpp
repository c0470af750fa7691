#include "shim/lib/event_loop.hpp"

#include "common/error.hpp"

namespace berth::shim {

EventLoop::EventLoop() : epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (!epoll_) fail_errno("epoll_create1");
}

void EventLoop::add(int fd, uint32_t events, Watch* watch) {
  struct epoll_event ev {};
  ev.events = events;
  ev.data.ptr = watch;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) fail_errno("epoll add fd {}", fd);
}

void EventLoop::modify(int fd, uint32_t events, Watch* watch) {
  struct epoll_event ev {};
  ev.events = events;
  ev.data.ptr = watch;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) < 0) fail_errno("epoll modify fd {}", fd);
}

void EventLoop::remove(int fd) { ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr); }

void EventLoop::run_once(int timeout_ms) {
  struct epoll_event events[16];
  int n = ::epoll_wait(epoll_.get(), events, 16, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return;
    fail_errno("epoll_wait");
  }
  for (int i = 0; i < n; i++) {
    auto* w = static_cast<Watch*>(events[i].data.ptr);
    if (w->owner) w->owner->on_event(w->tag, events[i].events);
  }
}

} // namespace berth::shim
