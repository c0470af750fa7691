// One upgraded client connection of the stream server, run on a thread of its own: a
// small poll loop over the client's socket, the session's other fds (the shim's
// attach.sock, port-forward's TCP connections) and the server's stop eventfd, with the
// output to the client buffered and bounded (backpressure: a session stops reading its
// sources while the client has not taken what it was sent).
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "cri/stream/server.hpp"

namespace berth::stream {

using Clock = std::chrono::steady_clock;

enum class Wire { spdy, websocket };

// Everything a session needs, handed over by the server's upgrade handler.
struct SessionStart {
  int fd = -1;            // the upgraded socket (owned by libmicrohttpd: never closed here)
  int stop_fd = -1;       // readable once the server shuts down
  int cancel_fd = -1;     // readable once the session's container or pod goes away
  std::string extra_in;   // bytes the client sent after its request, before the upgrade
  Wire wire = Wire::spdy;
  std::string protocol;   // the negotiated subprotocol ("v4.channel.k8s.io", "portforward.k8s.io", ...)
  std::variant<ProcessTarget, PortForwardTarget> target;
  bool attach = false;          // ProcessTarget: attach rather than exec
  std::chrono::seconds idle_timeout{}, creation_timeout{};
};

// Runs the session to its end; never throws (errors end the session, logged).
void run_session(SessionStart start);
// The two kinds (remote_command.cpp, port_forward.cpp); they throw on fatal errors.
void run_remote_command(SessionStart& start);
void run_port_forward(SessionStart& start);

// The poll loop of one session thread.
class Loop {
public:
  using Handler = std::function<void(short revents)>;
  // Watches fd for events (0: registered but not polled now); a later call replaces it.
  void watch(int fd, short events, Handler handler);
  void set_events(int fd, short events);
  void unwatch(int fd);
  // One poll round: waits at most until `deadline`, then calls the handlers of the
  // ready fds. False when the deadline passed with nothing ready.
  bool run_once(Clock::time_point deadline);

private:
  struct Entry {
    int fd;
    short events;
    Handler handler;
  };
  std::vector<Entry> entries_;
};

// The client's socket: everything for it is appended to out() and written as the socket
// takes it; reads go to the wire codec.
class ClientSocket {
public:
  static constexpr size_t kHighWater = 1 << 20;  // sources pause above this much unsent output

  // on_input: the socket has bytes (or end of file) to read().
  ClientSocket(int fd, Loop& loop, std::function<void()> on_input);
  std::string& out() { return out_; }
  // Writes what the socket takes now; polls for POLLOUT while something is left.
  void flush();
  bool congested() const { return out_.size() - sent_ > kHighWater; }
  bool drained() const { return sent_ == out_.size(); }
  // Reads what is there (at most 64 KiB); false at end of file or on an error (then no
  // more input is read; output still goes until a write fails: closed()).
  bool read(std::string& into);
  void want_input(bool on);
  bool closed() const { return closed_; }
  void shutdown_write();  // after the last bytes: the client sees end of file
  // The session's end: writes what is left, half-closes, reads until the client closes
  // (at most `max`). The socket itself is libmicrohttpd's to close.
  void linger(Clock::duration max);
  Clock::time_point last_activity() const { return last_activity_; }

private:
  void update();
  int fd_;
  Loop& loop_;
  std::function<void()> on_input_;
  std::string out_;
  size_t sent_ = 0;
  bool input_ = true, closed_ = false, eof_ = false;
  Clock::time_point last_activity_ = Clock::now();
};

// Decodes what the client sent (first the bytes that came with its upgrade request) with
// `codec` (spdy::Codec or ws::Codec, whose items are Item), handing each item to
// `handle`; false at the client's end of input. A protocol violation is rethrown once
// the items before it were handled.
template <typename Item, typename Codec, typename Handle>
bool decode_client_input(ClientSocket& client, std::string& extra_in, Codec& codec, Handle&& handle) {
  std::string in;
  in.swap(extra_in);
  bool open = client.read(in);
  std::vector<Item> items;
  try {
    codec.feed(in, items);
  } catch (...) {
    for (auto& item : items) handle(item);
    throw;
  }
  for (auto& item : items) handle(item);
  return open;
}

} // namespace berth::stream
