// One epoll set for everything the shim waits on. Each watched fd has a Watch that
// names its owner and what the fd is to it.
#pragma once

#include <sys/epoll.h>

#include <cstdint>

#include "common/fd.hpp"

namespace berth::shim {

class EventHandler {
public:
  virtual void on_event(int tag, uint32_t events) = 0;

protected:
  ~EventHandler() = default;
};

struct Watch {
  EventHandler* owner = nullptr;
  int tag = 0;
};

class EventLoop {
public:
  EventLoop();
  void add(int fd, uint32_t events, Watch* watch);
  void modify(int fd, uint32_t events, Watch* watch);
  void remove(int fd);
  // Waits up to timeout_ms (-1: no limit) and dispatches what is ready. Handlers may
  // close fds and retire objects; owners free them only after run_once returns.
  void run_once(int timeout_ms);

private:
  UniqueFd epoll_;
};

} // namespace berth::shim
