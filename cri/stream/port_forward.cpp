// Port-forward sessions: TCP connections to ports of the pod, made from inside its
// network namespace (the session's thread enters it), carried over the client's
// connection.
//
// SPDY (portforward.k8s.io): every local connection of the client is a pair of streams,
// "error" and "data", sharing "port" and "requestid" headers; one SPDY connection carries
// any number of them, for any ports. WebSocket (v4.channel.k8s.io and its base64 form):
// the ports are fixed by the request, port i on channels 2i (data) and 2i+1 (error), each
// opened by the port as two little-endian bytes, one TCP connection each.
//
// As containerd does: localhost over IPv4, then IPv6; a target that closes ends the
// stream pair without an error (clients drop the whole connection on any error text);
// once one direction has ended the other gets a second to finish.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <list>
#include <map>

#include <fmt/format.h>

#include "common/daemon_log.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/fd.hpp"
#include "cri/stream/session.hpp"
#include "cri/stream/spdy.hpp"
#include "cri/stream/websocket.hpp"

namespace berth::stream {
namespace {

constexpr size_t kMaxForwards = 256;  // live TCP connections per session
// Per address family: the session's loop waits meanwhile (loopback answers at once unless
// the pod's listen queue is full), so it is kept short.
constexpr auto kConnectTimeout = std::chrono::seconds(1);
constexpr auto kHalfClosedGrace = std::chrono::seconds(1);

// A non-blocking connect to localhost:port, waited for here (loopback answers at once
// unless the pod's listener is swamped). Throws the reason for both address families.
UniqueFd connect_localhost(uint16_t port) {
  std::string errors;
  for (int family : {AF_INET, AF_INET6}) {
    UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) fail_errno("socket");
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(port);
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(port);
      a->sin6_addr = in6addr_loopback;
      len = sizeof *a;
    }
    int err = 0;
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) < 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd.get(), POLLOUT, 0};
        int n = ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(kConnectTimeout).count()));
        socklen_t el = sizeof err;
        if (n == 1) ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &el);
        else err = ETIMEDOUT;
      }
    }
    if (err == 0) return fd;
    errors += fmt::format("{}{}: {}", errors.empty() ? "" : ", ", family == AF_INET ? "IPv4" : "IPv6",
                          std::strerror(err));
  }
  fail("failed to connect to localhost:{} inside the pod's network namespace: {}", port, errors);
}

// One TCP connection to the pod and what is in flight on it.
struct Forward {
  uint16_t port = 0;
  UniqueFd sock;
  std::string to_target;   // from the client, not yet written
  bool client_done = false, target_done = false, closed = false;
  std::optional<Clock::time_point> first_end;
  // SPDY: the pair's streams; WebSocket: the port's index.
  uint32_t data_id = 0, error_id = 0;
  size_t index = 0;
};

class PortForwarder {
public:
  PortForwarder(SessionStart& start, Loop& loop, ClientSocket& client)
      : start_(start), target_(std::get<PortForwardTarget>(start.target)), loop_(loop), client_(client) {}
  virtual ~PortForwarder() {
    for (auto& f : forwards_)
      if (f.sock) loop_.unwatch(f.sock.get());
  }
  bool done() const { return done_; }
  virtual void client_input() = 0;
  // The session ends from our side (the pod stops, berthd stops, a timeout): the client
  // is told with GOAWAY or a close frame.
  virtual void abort() = 0;

  // Timers and backpressure, after each loop round; returns the next deadline.
  Clock::time_point tick() {
    auto next = Clock::time_point::max();
    for (auto it = forwards_.begin(); it != forwards_.end();) {
      Forward& f = *it;
      if (!f.closed && f.first_end && (Clock::now() >= *f.first_end + kHalfClosedGrace || (f.client_done && f.target_done)))
        close_forward(f);
      if (f.closed) {
        forget(f);  // no index may keep the address of what is erased
        it = forwards_.erase(it);
        continue;
      }
      if (f.first_end) next = std::min(next, *f.first_end + kHalfClosedGrace);
      update(f);
      ++it;
    }
    size_t pending = 0;
    for (auto& f : forwards_) pending += f.to_target.size();
    client_.want_input(!done_ && pending < (1 << 20) && !client_.congested());
    return next;
  }
  // No stream pair opened within the creation timeout: a client that holds a session
  // slot and does nothing.
  bool idle_since_start() const { return !ever_opened_; }

protected:
  virtual void send_data(Forward& f, std::string_view bytes) = 0;
  virtual void send_error(Forward& f, const std::string& text) = 0;
  virtual void end_streams(Forward& f) = 0;  // the target is done: the client's streams end
  virtual void forget(Forward& f) = 0;       // f is about to be destroyed

  // Connects and starts relaying; a failure goes to the pair's error stream.
  Forward* open(Forward f) {
    ever_opened_ = true;
    if (forwards_.size() >= kMaxForwards) {
      forwards_.push_back(std::move(f));
      Forward& x = forwards_.back();
      send_error(x, fmt::format("error forwarding port {} to pod {}, uid : more than {} connections on one session",
                                x.port, target_.sandbox_id, kMaxForwards));
      end_streams(x);
      x.closed = true;
      return nullptr;
    }
    forwards_.push_back(std::move(f));
    Forward& x = forwards_.back();
    try {
      x.sock = connect_localhost(x.port);
    } catch (const Error& e) {
      send_error(x, fmt::format("error forwarding port {} to pod {}, uid : {}", x.port, target_.sandbox_id, e.what()));
      end_streams(x);
      x.closed = true;
      return nullptr;
    }
    loop_.watch(x.sock.get(), POLLIN, [this, &x](short ev) { on_target(x, ev); });
    return &x;
  }
  void to_target(Forward& f, std::string_view bytes) {
    if (f.closed || f.client_done || !f.sock) return;
    f.to_target.append(bytes);
    flush_target(f);
  }
  void client_finished(Forward& f) {
    if (f.closed || f.client_done) return;
    f.client_done = true;
    if (!f.first_end) f.first_end = Clock::now();
    flush_target(f);
  }
  void close_forward(Forward& f) {
    if (f.closed) return;
    if (!f.target_done) {
      f.target_done = true;
      end_streams(f);
    }
    if (f.sock) {
      loop_.unwatch(f.sock.get());
      f.sock.reset();
    }
    f.closed = true;
  }

  SessionStart& start_;
  const PortForwardTarget& target_;
  Loop& loop_;
  ClientSocket& client_;
  std::list<Forward> forwards_;  // stable addresses: the loop's handlers hold them
  bool done_ = false, ever_opened_ = false;

private:
  void update(Forward& f) {
    if (!f.sock) return;
    short ev = 0;
    if (!f.target_done && !client_.congested()) ev |= POLLIN;
    if (!f.to_target.empty()) ev |= POLLOUT;
    loop_.set_events(f.sock.get(), ev);
  }
  void flush_target(Forward& f) {
    while (f.sock && !f.to_target.empty()) {
      ssize_t n = ::send(f.sock.get(), f.to_target.data(), f.to_target.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0) {  // the target reset: nothing more either way
        f.to_target.clear();
        close_forward(f);
        return;
      }
      f.to_target.erase(0, static_cast<size_t>(n));
    }
    if (f.sock && f.client_done && f.to_target.empty()) ::shutdown(f.sock.get(), SHUT_WR);
    update(f);
  }
  void on_target(Forward& f, short ev) {
    if (ev & POLLOUT) flush_target(f);
    if (!f.sock || f.target_done || !(ev & (POLLIN | POLLHUP | POLLERR))) return;
    char buf[32768];
    ssize_t n = ::recv(f.sock.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n > 0) {
      send_data(f, std::string_view(buf, static_cast<size_t>(n)));
      return;
    }
    // End of file or a reset: the target is done, which is no error for the client.
    f.target_done = true;
    end_streams(f);
    if (!f.first_end) f.first_end = Clock::now();
    update(f);
  }
};

// ---- SPDY -------------------------------------------------------------------------

class SpdyPortForwarder final : public PortForwarder {
public:
  using PortForwarder::PortForwarder;

  void client_input() override {
    bool open;
    try {
      open = decode_client_input<spdy::Frame>(client_, start_.extra_in, codec_, [&](spdy::Frame& f) { handle(f); });
    } catch (const Error&) {
      spdy::Codec::goaway(client_.out(), last_client_stream_, spdy::kGoAwayProtocolError);
      client_.flush();
      done_ = true;
      return;
    }
    if (!open) done_ = true;
  }

  void abort() override {
    spdy::Codec::goaway(client_.out(), last_client_stream_, spdy::kGoAwayOk);
    client_.flush();
    done_ = true;
  }

private:
  struct Half {
    uint32_t error_id = 0, data_id = 0;
    uint16_t port = 0;
    Clock::time_point since;
  };

  void handle(spdy::Frame& f) {
    using spdy::FrameType;
    switch (f.type) {
    case FrameType::syn_stream:
      last_client_stream_ = f.stream_id;
      new_stream(f);
      break;
    case FrameType::data:
      if (auto* fw = by_data_id(f.stream_id)) {
        if (!f.data.empty()) to_target(*fw, f.data);
        if (f.fin) client_finished(*fw);
      }
      break;  // the error stream: the client closes it at once, and says nothing on it
    case FrameType::rst_stream:
      if (auto* fw = by_data_id(f.stream_id)) {
        fw->client_done = true;
        fw->target_done = true;  // nothing may go to a reset stream
        data_ids_.erase(f.stream_id);
        close_forward(*fw);
      }
      break;
    case FrameType::ping:
      spdy::Codec::ping(client_.out(), f.ping_id);
      break;
    case FrameType::goaway:
      done_ = true;
      break;
    default:
      break;
    }
    client_.flush();
  }

  void new_stream(const spdy::Frame& f) {
    auto type = spdy::find_header(f.headers, "streamtype");
    auto port_text = spdy::find_header(f.headers, "port");
    int64_t port = port_text ? parse_int(*port_text).value_or(0) : 0;
    // Invalid: reset without a reply, as the kubelet does.
    if (!type || (*type != "error" && *type != "data") || port < 1 || port > 65535 ||
        halves_.size() >= kMaxForwards) {
      spdy::Codec::rst_stream(client_.out(), f.stream_id, spdy::kRstCancel);
      return;
    }
    codec_.syn_reply(client_.out(), f.stream_id, {}, false);
    bool is_error = *type == "error";
    // Without a requestid (old clients), the pair is told by the ids: data = error + 2.
    std::string request = spdy::find_header(f.headers, "requestid")
                              ? std::string(*spdy::find_header(f.headers, "requestid")).substr(0, 32)
                              : std::to_string(is_error ? f.stream_id : f.stream_id - 2);
    Half& h = halves_[request];
    if (h.since == Clock::time_point{}) h.since = Clock::now();
    (is_error ? h.error_id : h.data_id) = f.stream_id;
    h.port = static_cast<uint16_t>(port);
    if (!h.error_id || !h.data_id) return;
    Forward fw;
    fw.port = h.port;
    fw.error_id = h.error_id;
    fw.data_id = h.data_id;
    halves_.erase(request);
    if (Forward* x = open(std::move(fw))) data_ids_[x->data_id] = x;
  }

  Forward* by_data_id(uint32_t id) {
    auto it = data_ids_.find(id);
    if (it == data_ids_.end()) return nullptr;
    if (it->second->closed) {
      data_ids_.erase(it);
      return nullptr;
    }
    return it->second;
  }

  void send_data(Forward& f, std::string_view bytes) override {
    spdy::Codec::data(client_.out(), f.data_id, bytes, false);
    client_.flush();
  }
  void send_error(Forward& f, const std::string& text) override {
    spdy::Codec::data(client_.out(), f.error_id, text, false);
    client_.flush();
  }
  void end_streams(Forward& f) override {
    spdy::Codec::data(client_.out(), f.data_id, "", true);
    spdy::Codec::data(client_.out(), f.error_id, "", true);
    data_ids_.erase(f.data_id);
    client_.flush();
  }
  void forget(Forward& f) override {
    auto it = data_ids_.find(f.data_id);
    if (it != data_ids_.end() && it->second == &f) data_ids_.erase(it);
  }

public:
  // Halves of pairs waiting for their other stream past the creation timeout are dropped.
  void expire_halves(std::chrono::seconds timeout) {
    auto now = Clock::now();
    for (auto it = halves_.begin(); it != halves_.end();) {
      if (now - it->second.since < timeout) {
        ++it;
        continue;
      }
      for (uint32_t id : {it->second.error_id, it->second.data_id})
        if (id) spdy::Codec::rst_stream(client_.out(), id, spdy::kRstCancel);
      it = halves_.erase(it);
    }
    client_.flush();
  }

private:
  spdy::Codec codec_;
  std::map<std::string, Half> halves_;
  std::map<uint32_t, Forward*> data_ids_;
  uint32_t last_client_stream_ = 0;
};

// ---- WebSocket --------------------------------------------------------------------

class WsPortForwarder final : public PortForwarder {
public:
  WsPortForwarder(SessionStart& start, Loop& loop, ClientSocket& client)
      : PortForwarder(start, loop, client), protocol_(*ws::protocol_from_name(start.protocol)) {
    constructing_ = true;  // a port that fails now ends without closing the session yet
    const auto& ports = target_.ports;
    if (ports.size() > 64) fail("{} ports in one request (at most 64)", ports.size());
    for (size_t i = 0; i < ports.size(); i++) {
      char prefix[2] = {static_cast<char>(ports[i] & 0xff), static_cast<char>(ports[i] >> 8)};
      ws::encode_channel(client_.out(), protocol_, static_cast<uint8_t>(2 * i), std::string_view(prefix, 2));
      ws::encode_channel(client_.out(), protocol_, static_cast<uint8_t>(2 * i + 1), std::string_view(prefix, 2));
    }
    client_.flush();
    for (size_t i = 0; i < ports.size(); i++) {
      Forward fw;
      fw.port = ports[i];
      fw.index = i;
      by_index_.push_back(open(std::move(fw)));
    }
    constructing_ = false;
    check_all_ended();
  }

  void client_input() override {
    bool open;
    try {
      open = decode_client_input<ws::Message>(client_, start_.extra_in, codec_, [&](ws::Message& m) { handle(m); });
    } catch (const ws::ProtocolError& e) {
      ws::Codec::close(client_.out(), e.close_code(), "protocol error");
      client_.flush();
      done_ = true;
      return;
    }
    if (!open) done_ = true;
  }

  void abort() override {
    ws::Codec::close(client_.out(), 1001, "going away");
    client_.flush();
    done_ = true;
  }

private:
  void handle(const ws::Message& m) {
    if (m.opcode == ws::Opcode::ping) {
      ws::Codec::encode(client_.out(), ws::Opcode::pong, m.payload);
      client_.flush();
      return;
    }
    if (m.opcode == ws::Opcode::close) {
      ws::Codec::close(client_.out(), 1000, "");
      client_.flush();
      done_ = true;
      return;
    }
    if (m.opcode == ws::Opcode::pong) return;
    ws::ChannelData d;
    try {
      d = ws::decode_channel(protocol_, m);
    } catch (const ws::ProtocolError&) {
      return;
    }
    size_t i = d.channel / 2;
    if (d.close || d.channel % 2 || i >= by_index_.size() || !by_index_[i]) return;
    Forward* f = live(i);
    if (f) to_target(*f, d.data);
  }

  Forward* live(size_t i) {
    Forward* f = by_index_[i];
    return f && !f->closed ? f : nullptr;
  }

  void check_all_ended() {
    if (done_) return;
    for (size_t i = 0; i < by_index_.size(); i++)
      if (live(i) && !by_index_[i]->target_done) return;
    // Every port's connection ended: the kubelet closes the session then.
    ws::Codec::close(client_.out(), 1000, "");
    client_.flush();
    done_ = true;
  }

  void send_data(Forward& f, std::string_view bytes) override {
    while (!bytes.empty()) {
      auto piece = bytes.substr(0, 32768);
      ws::encode_channel(client_.out(), protocol_, static_cast<uint8_t>(2 * f.index), piece);
      bytes.remove_prefix(piece.size());
    }
    client_.flush();
  }
  void send_error(Forward& f, const std::string& text) override {
    ws::encode_channel(client_.out(), protocol_, static_cast<uint8_t>(2 * f.index + 1), text);
    client_.flush();
  }
  void end_streams(Forward& f) override {
    f.target_done = true;
    if (!constructing_) check_all_ended();
  }
  void forget(Forward& f) override {
    if (f.index < by_index_.size() && by_index_[f.index] == &f) by_index_[f.index] = nullptr;
  }

  ws::Protocol protocol_;
  ws::Codec codec_;
  std::vector<Forward*> by_index_;
  bool constructing_ = false;
};

// Enters the pod's network namespace for the rest of this thread's life (the session's
// own thread: nothing else runs on it).
void enter_netns(const std::string& path) {
  if (path.empty()) return;  // the node's network
  UniqueFd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) fail_errno("open the pod's network namespace {}", path);
  if (::setns(ns.get(), CLONE_NEWNET) < 0) fail_errno("enter the pod's network namespace {}", path);
}

} // namespace

void run_port_forward(SessionStart& start) {
  enter_netns(std::get<PortForwardTarget>(start.target).netns_path);
  Loop loop;
  std::unique_ptr<PortForwarder> session;
  ClientSocket client(start.fd, loop, [&] { session->client_input(); });
  if (start.wire == Wire::spdy) session = std::make_unique<SpdyPortForwarder>(start, loop, client);
  else session = std::make_unique<WsPortForwarder>(start, loop, client);
  bool stopping = false;
  loop.watch(start.stop_fd, POLLIN, [&](short) { stopping = true; });
  if (start.cancel_fd >= 0) loop.watch(start.cancel_fd, POLLIN, [&](short) { stopping = true; });
  if (!start.extra_in.empty()) session->client_input();
  auto next = session->tick();
  auto creation_deadline = Clock::now() + start.creation_timeout;
  const char* ended = nullptr;
  while (!session->done() && !ended && !client.closed()) {
    auto deadline = std::min(next, client.last_activity() + start.idle_timeout);
    if (session->idle_since_start()) deadline = std::min(deadline, creation_deadline);
    loop.run_once(deadline);
    if (stopping) ended = "stopped";
    else if (Clock::now() >= client.last_activity() + start.idle_timeout) ended = "idle past stream.idle_timeout";
    else if (session->idle_since_start() && Clock::now() >= creation_deadline) ended = "no stream pair in time";
    if (auto* s = dynamic_cast<SpdyPortForwarder*>(session.get())) s->expire_halves(start.creation_timeout);
    next = session->tick();
  }
  if (ended && !session->done()) {
    dlog::debug("port-forward session ended", {{"reason", ended}});
    session->abort();
  }
  if (session->done()) client.linger(ended ? std::chrono::milliseconds(200) : std::chrono::seconds(2));
}

} // namespace berth::stream
