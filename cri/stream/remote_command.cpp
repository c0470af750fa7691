// Exec and attach sessions (the kubelet's "remotecommand"): the client's streams (SPDY
// streams named by their "streamtype" header, or WebSocket channels 0-4) on one side, the
// container's berth-shim (attach.sock, shim/lib/protocol.hpp) on the other.
//
// Protocol versions: v1 channel.k8s.io, v2, v3 (resize), v4 (the exit status as a
// metav1.Status JSON on the error stream); WebSocket v5 adds the stdin close signal.
// The exact behaviour follows the kubelet's server (docs/cri.md, "Streaming"): the
// command starts once the client has opened the streams its CRI request asked for, the
// session ends when the process exits (never waiting for stdin to close), stdout and
// stderr end before the status is written.
#include <sys/socket.h>

#include <array>
#include <deque>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/json.hpp"
#include "common/fd.hpp"
#include "common/unix_socket.hpp"
#include "cri/stream/session.hpp"
#include "cri/stream/spdy.hpp"
#include "cri/stream/websocket.hpp"
#include "shim/lib/protocol.hpp"

namespace berth::stream {
namespace {

namespace frame = shim::frame;

// Stream roles, numbered as the WebSocket channels.
enum Role : uint8_t { kStdin = 0, kStdout = 1, kStderr = 2, kError = 3, kResize = 4, kRoles = 5 };

std::optional<Role> role_from_name(std::string_view s) {
  if (s == "stdin") return kStdin;
  if (s == "stdout") return kStdout;
  if (s == "stderr") return kStderr;
  if (s == "error") return kError;
  if (s == "resize") return kResize;
  return std::nullopt;
}

int protocol_version(std::string_view protocol) {
  if (protocol.starts_with("v5.")) return 5;
  if (protocol.starts_with("v4.")) return 4;
  if (protocol.starts_with("v3.")) return 3;
  if (protocol.starts_with("v2.")) return 2;
  return 1;
}

// How the session ended.
struct Outcome {
  bool ran = false;      // the process ran and exited with exit_code
  int exit_code = 0;
  std::string error;     // otherwise: why it could not run or be followed
};

// Go's %v of a []string, as containerd names the command in its exit error.
std::string go_list(const std::vector<std::string>& v) {
  std::string s = "[";
  for (const auto& x : v) s += (s.size() > 1 ? " " : "") + x;
  return s.substr(0, 1024) + "]";
}

// The error stream's payload: v4 and later a metav1.Status as the kubelet marshals it;
// before, plain text and only on failure.
std::string status_payload(int version, const Outcome& o, const ProcessTarget& t, bool attach) {
  if (o.ran && o.exit_code == 0) return version >= 4 ? R"({"metadata":{},"status":"Success"})" : "";
  nlohmann::ordered_json st;
  st["metadata"] = json::object();
  st["status"] = "Failure";
  if (o.ran) {
    std::string err = fmt::format("command terminated with non-zero exit code: error executing command {}, exit code {}",
                                  go_list(t.command), o.exit_code);
    st["message"] = err;
    st["reason"] = "NonZeroExitCode";
    // Clients parse the code as 0-255 (a byte).
    st["details"] = {{"causes", {{{"reason", "ExitCode"}, {"message", std::to_string(o.exit_code & 0xff)}}}}};
  } else {
    std::string err = fmt::format("{}: {}", attach ? "error attaching to container" : "error executing command in container",
                                  o.error);
    st["message"] = "Internal error occurred: " + err;
    st["reason"] = "InternalError";
    st["details"] = {{"causes", {{{"message", err}}}}};
    st["code"] = 500;
  }
  // Error text from a runtime need not be UTF-8: replaced, never a throw.
  return version >= 4 ? st.dump(-1, ' ', false, json::error_handler_t::replace) : st["message"].get<std::string>();
}

// The connection to the container's shim: framed messages both ways, ours queued while
// the shim is slow to take them.
class ShimLink {
public:
  ShimLink(Loop& loop, std::function<void(char, std::string_view)> on_frame, std::function<void()> on_closed)
      : loop_(loop), on_frame_(std::move(on_frame)), on_closed_(std::move(on_closed)) {}

  // Non-blocking: a shim whose listen queue is full refuses (EAGAIN) instead of
  // holding this session's thread.
  void connect(const std::string& path, char first, std::string_view payload) {
    fd_ = connect_unix(path, SOCK_SEQPACKET | SOCK_NONBLOCK);
    loop_.watch(fd_.get(), POLLIN, [this](short ev) { on_event(ev); });
    send(first, payload);
  }
  bool connected() const { return static_cast<bool>(fd_); }
  void send(char type, std::string_view payload) {
    if (!fd_) return;
    do {
      auto piece = payload.substr(0, frame::kMaxPayload);
      queued_bytes_ += piece.size() + 1;
      queue_.push_back(std::string(1, type) + std::string(piece));
      payload.remove_prefix(piece.size());
    } while (!payload.empty());
    flush();
  }
  // Too much queued for the shim: stop reading the client.
  bool congested() const { return queued_bytes_ > (1 << 20); }
  void pause(bool paused) {
    paused_ = paused;
    update();
  }
  void close() {
    if (!fd_) return;
    loop_.unwatch(fd_.get());
    fd_.reset();
  }

private:
  void update() {
    if (fd_) loop_.set_events(fd_.get(), static_cast<short>((paused_ ? 0 : POLLIN) | (queue_.empty() ? 0 : POLLOUT)));
  }
  void flush() {
    while (fd_ && !queue_.empty()) {
      ssize_t n = ::send(fd_.get(), queue_.front().data(), queue_.front().size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0) {
        gone();
        return;
      }
      queued_bytes_ -= queue_.front().size();
      queue_.pop_front();
    }
    update();
  }
  void on_event(short ev) {
    if (ev & POLLOUT) flush();
    if (!fd_ || !(ev & (POLLIN | POLLHUP | POLLERR)) || paused_) return;
    char buf[frame::kMaxPayload + 1];
    for (int i = 0; i < 16 && fd_ && !paused_; i++) {
      ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) {
        gone();
        return;
      }
      on_frame_(buf[0], std::string_view(buf + 1, static_cast<size_t>(n - 1)));
    }
  }
  void gone() {
    close();
    on_closed_();
  }

  Loop& loop_;
  std::function<void(char, std::string_view)> on_frame_;
  std::function<void()> on_closed_;
  UniqueFd fd_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool paused_ = false;
};

// The session, whatever the wire: subclasses decode the client's bytes into calls of
// client_*() and carry write()/finish() to the client.
class RemoteCommand {
public:
  RemoteCommand(SessionStart& start, Loop& loop, ClientSocket& client)
      : start_(start), target_(std::get<ProcessTarget>(start.target)), version_(protocol_version(start.protocol)),
        client_(client),
        shim_(loop, [this](char t, std::string_view p) { shim_frame(t, p); },
              [this] { end({false, 0, "the container's shim closed the connection (the container is gone)"}); }) {}
  virtual ~RemoteCommand() = default;

  bool done() const { return done_; }
  bool started() const { return shim_.connected() || done_; }
  // Backpressure both ways, checked after each loop round. A client that does not read
  // what it is sent is not read either (its pings would pile up answers).
  void balance() {
    shim_.pause(client_.congested());
    client_.want_input(!done_ && !shim_.congested() && !client_.congested());
  }
  // The session cannot go on (server shutdown, a timeout, the container gone): the
  // client is told so, rather than reading an empty status as success.
  void abort(const std::string& why) { end({false, 0, why}); }
  virtual void client_input() = 0;

protected:
  virtual void write(Role role, std::string_view bytes) = 0;
  virtual void finish(const std::string& status) = 0;  // end stdout/stderr, send the status, close

  // Starts the command (exec) or joins the container's stdio (attach).
  void start_command() {
    try {
      if (start_.attach) {
        // The shim closes a StdinOnce container's stdin when this session ends only if
        // the session had stdin and no tty (containerd's rule).
        json req = {{"stdin", target_.stdin}, {"tty", target_.tty}};
        shim_.connect(target_.attach_socket, frame::kAttach, req.dump());
      } else {
        json req = {{"args", target_.command}, {"tty", target_.tty}, {"stdin", target_.stdin}};
        shim_.connect(target_.attach_socket, frame::kExec, req.dump());
      }
    } catch (const Error& e) {
      end({false, 0, fmt::format("container {} is not running: {}", target_.container_id, e.what())});
    }
  }
  void client_stdin(std::string_view bytes) {
    if (!target_.stdin || stdin_closed_ || (start_.attach && !target_.container_stdin)) return;
    shim_.send(frame::kStdin, bytes);
  }
  void client_stdin_closed() {
    if (stdin_closed_) return;
    stdin_closed_ = true;
    if (!start_.attach) {
      shim_.send(frame::kCloseStdin, "");
    } else if (target_.container_stdin_once && !target_.tty) {
      shim_.send(frame::kCloseStdin, "");  // the container's stdin ends; so does it, usually
    } else {
      end({true, 0, {}});  // detach: the container goes on
    }
  }
  // {"Width":W,"Height":H} messages, one per line (a JSON encoder's output), split
  // anywhere by the transport.
  void client_resize(std::string_view bytes) {
    resize_buf_.append(bytes);
    size_t nl;
    while ((nl = resize_buf_.find('\n')) != std::string::npos) {
      std::string line = resize_buf_.substr(0, nl);
      resize_buf_.erase(0, nl + 1);
      apply_resize(line);
    }
    // A size without a newline, and junk: kept short.
    if (!resize_buf_.empty() && resize_buf_.back() == '}') {
      apply_resize(resize_buf_);
      resize_buf_.clear();
    }
    if (resize_buf_.size() > 1024) resize_buf_.clear();
  }
  void end(const Outcome& o) {
    if (done_) return;
    done_ = true;
    shim_.close();
    finish(status_payload(version_, o, target_, start_.attach));
  }

  SessionStart& start_;
  const ProcessTarget& target_;
  const int version_;
  ClientSocket& client_;

private:
  void apply_resize(std::string_view line) {
    if (line.size() > 1024 || !target_.tty) return;
    json j = json::parse(line, nullptr, false);
    if (!j.is_object()) return;
    unsigned width = 0, height = 0;
    for (auto& [k, v] : j.items()) {  // field names match case-insensitively, as Go's decoder does
      std::string key = k;
      for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!v.is_number_unsigned() || v.get<uint64_t>() > 65535) continue;
      if (key == "width") width = v.get<unsigned>();
      if (key == "height") height = v.get<unsigned>();
    }
    if (width >= 1 && height >= 1) shim_.send(frame::kResize, fmt::format("{} {}", height, width));
  }
  void shim_frame(char type, std::string_view payload) {
    switch (type) {
    case frame::kStdout:
      write(kStdout, payload);
      break;
    case frame::kStderr:
      write(target_.tty ? kStdout : kStderr, payload);
      break;
    case frame::kExit: {
      // An attach ends well when the container's output ends, whatever its exit code
      // (the kubelet's ServeAttach).
      if (start_.attach) {
        end({true, 0, {}});
        break;
      }
      json j = json::parse(payload, nullptr, false);
      if (!j.is_object() || !j.contains("exit_code") || !j["exit_code"].is_number_integer())
        end({false, 0, "the shim reported an unreadable exit status"});
      else end({true, j["exit_code"].get<int>(), {}});
      break;
    }
    case frame::kFailed:
      end({false, 0, std::string(payload.substr(0, 4096))});
      break;
    default:
      break;  // kStarted
    }
  }

  ShimLink shim_;
  bool done_ = false, stdin_closed_ = false;
  std::string resize_buf_;
};

// ---- SPDY -------------------------------------------------------------------------

class SpdyRemoteCommand final : public RemoteCommand {
public:
  using RemoteCommand::RemoteCommand;

  void client_input() override {
    bool open;
    try {
      open = decode_client_input<spdy::Frame>(client_, start_.extra_in, codec_, [&](spdy::Frame& f) { handle(f); });
    } catch (const Error& e) {
      protocol_error(e.what());
      return;
    }
    if (!open && !done()) {
      client_gone_ = true;
      end({false, 0, "the client closed the connection"});
    }
  }

private:
  size_t expected() const {
    // As the kubelet counts: the streams the CRI request asked for, resize only with a
    // tty from v3 on.
    size_t n = 1;  // error
    n += target_.stdin + target_.stdout + (target_.stderr && !target_.tty);
    if (target_.tty && version_ >= 3) n++;
    return n;
  }

  void handle(spdy::Frame& f) {
    using spdy::FrameType;
    switch (f.type) {
    case FrameType::syn_stream: {
      last_client_stream_ = f.stream_id;
      if (started()) return;  // beyond what was asked for: never answered, as the kubelet does
      codec_.syn_reply(client_.out(), f.stream_id, {}, false);
      auto type = spdy::find_header(f.headers, "streamtype");
      if (auto role = type ? role_from_name(*type) : std::nullopt) {
        ids_[*role] = f.stream_id;
        if (f.fin && *role == kStdin) stdin_fin_ = true;
      }
      if (static_cast<size_t>(std::count_if(ids_.begin(), ids_.end(), [](uint32_t id) { return id != 0; })) >=
          expected()) {
        start_command();
        if (stdin_fin_) client_stdin_closed();
      }
      break;
    }
    case FrameType::data:
      if (f.stream_id == ids_[kStdin]) {
        if (!f.data.empty()) client_stdin(f.data);
        if (f.fin) {
          if (started()) client_stdin_closed();
          else stdin_fin_ = true;
        }
      } else if (f.stream_id == ids_[kResize]) {
        client_resize(f.data);
      }
      break;
    case FrameType::rst_stream:
      if (f.stream_id == ids_[kStdin]) {
        if (started()) client_stdin_closed();
        else stdin_fin_ = true;
      }
      for (int r = 0; r < kRoles; r++)
        if (ids_[r] && ids_[r] == f.stream_id) reset_[r] = true;
      break;
    case FrameType::ping:
      spdy::Codec::ping(client_.out(), f.ping_id);
      break;
    case FrameType::goaway:
      client_gone_ = true;
      end({false, 0, "the client went away"});
      break;
    default:
      break;  // SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do (no flow control in the peers)
    }
    client_.flush();
  }

  void write(Role role, std::string_view bytes) override {
    if (!ids_[role] || finished_[role] || reset_[role]) return;
    spdy::Codec::data(client_.out(), ids_[role], bytes, false);
    client_.flush();
  }

  void finish(const std::string& status) override {
    if (client_gone_) return;
    std::string& out = client_.out();
    auto fin = [&](Role r) {
      if (ids_[r] && !finished_[r] && !reset_[r]) spdy::Codec::data(out, ids_[r], "", true);
      finished_[r] = true;
    };
    fin(kStdout);
    fin(kStderr);
    if (ids_[kError] && !status.empty()) spdy::Codec::data(out, ids_[kError], status, false);
    fin(kError);
    // What the client still has open (stdin, resize) is reset, then the connection goes.
    for (Role r : {kStdin, kResize})
      if (ids_[r] && !reset_[r]) spdy::Codec::rst_stream(out, ids_[r], spdy::kRstCancel);
    spdy::Codec::goaway(out, last_client_stream_, spdy::kGoAwayOk);
    client_.flush();
  }

  void protocol_error(const std::string& what) {
    if (done()) return;
    spdy::Codec::goaway(client_.out(), last_client_stream_, spdy::kGoAwayProtocolError);
    client_gone_ = true;  // nothing more goes to a client that breaks the protocol
    client_.flush();
    end({false, 0, "client protocol error: " + what});
  }

  spdy::Codec codec_;
  std::array<uint32_t, kRoles> ids_{};
  std::array<bool, kRoles> finished_{}, reset_{};
  uint32_t last_client_stream_ = 0;
  bool stdin_fin_ = false, client_gone_ = false;
};

// ---- WebSocket --------------------------------------------------------------------

class WsRemoteCommand final : public RemoteCommand {
public:
  WsRemoteCommand(SessionStart& start, Loop& loop, ClientSocket& client)
      : RemoteCommand(start, loop, client), protocol_(*ws::protocol_from_name(start.protocol)) {
    // The kubelet's first message: an empty write on the first channel it will write.
    Role first = target_.stdout ? kStdout : target_.stderr ? kStderr : kError;
    ws::encode_channel(client_.out(), protocol_, first, "");
    client_.flush();
    start_command();  // no streams to wait for: every channel exists
  }

  void client_input() override {
    bool open;
    try {
      open = decode_client_input<ws::Message>(client_, start_.extra_in, codec_, [&](ws::Message& m) { handle(m); });
    } catch (const ws::ProtocolError& e) {
      if (!done()) {
        ws::Codec::close(client_.out(), e.close_code(), "protocol error");
        close_sent_ = true;  // finish() adds nothing after it
        client_.flush();
        end({false, 0, fmt::format("client protocol error: {}", e.what())});
      }
      return;
    }
    if (!open && !done()) end({false, 0, "the client closed the connection"});
  }

private:
  void handle(const ws::Message& m) {
    switch (m.opcode) {
    case ws::Opcode::ping:
      ws::Codec::encode(client_.out(), ws::Opcode::pong, m.payload);
      client_.flush();
      return;
    case ws::Opcode::pong:
      return;
    case ws::Opcode::close:
      // The client is done: stdin ends with its side of the connection; our answer is
      // the close (with the status before it when the session ends now).
      client_stdin_closed();
      if (!done()) end({false, 0, "the client closed the connection"});
      return;
    default:
      break;
    }
    ws::ChannelData d;
    try {
      d = ws::decode_channel(protocol_, m);
    } catch (const ws::ProtocolError&) {
      return;  // dropped, as wsstream drops a message it cannot read
    }
    if (d.close) {
      if (d.channel == kStdin) client_stdin_closed();
      return;
    }
    if (d.channel == kStdin) client_stdin(d.data);
    else if (d.channel == kResize) client_resize(d.data);
  }

  void write(Role role, std::string_view bytes) override {
    if (role == kStdout && !target_.stdout) return;
    if (role == kStderr && !target_.stderr) return;
    while (!bytes.empty()) {  // bounded messages: clients have message size limits too
      auto piece = bytes.substr(0, 32768);
      ws::encode_channel(client_.out(), protocol_, role, piece);
      bytes.remove_prefix(piece.size());
    }
    client_.flush();
  }

  void finish(const std::string& status) override {
    if (close_sent_) return;
    if (!status.empty()) ws::encode_channel(client_.out(), protocol_, kError, status);
    ws::Codec::close(client_.out(), 1000, "");
    close_sent_ = true;
    client_.flush();
  }

  ws::Protocol protocol_;
  ws::Codec codec_;
  bool close_sent_ = false;
};

} // namespace

void run_remote_command(SessionStart& start) {
  Loop loop;
  std::unique_ptr<RemoteCommand> session;
  ClientSocket client(start.fd, loop, [&] { session->client_input(); });
  if (start.wire == Wire::spdy) session = std::make_unique<SpdyRemoteCommand>(start, loop, client);
  else session = std::make_unique<WsRemoteCommand>(start, loop, client);
  const char* stopped = nullptr;
  loop.watch(start.stop_fd, POLLIN, [&](short) { stopped = "berthd is shutting down"; });
  if (start.cancel_fd >= 0)
    loop.watch(start.cancel_fd, POLLIN, [&](short) { stopped = "the container is gone"; });
  try {
    if (!start.extra_in.empty()) session->client_input();
    auto creation_deadline = Clock::now() + start.creation_timeout;
    while (!session->done() && !stopped && !client.closed()) {
      auto idle_deadline = client.last_activity() + start.idle_timeout;
      auto deadline = session->started() ? idle_deadline : std::min(idle_deadline, creation_deadline);
      loop.run_once(deadline);
      if (!session->started() && Clock::now() >= creation_deadline)
        stopped = "timed out waiting for the client to create its streams";
      else if (Clock::now() >= client.last_activity() + start.idle_timeout)
        stopped = "the session was idle past stream.idle_timeout";
      session->balance();
    }
  } catch (const std::exception& e) {
    if (!session->done()) session->abort(e.what());
    client.linger(std::chrono::milliseconds(200));
    throw;
  }
  if (!session->done() && stopped) session->abort(stopped);
  if (session->done()) client.linger(stopped ? std::chrono::milliseconds(200) : std::chrono::seconds(2));
}

} // namespace berth::stream
