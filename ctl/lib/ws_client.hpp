// A WebSocket (RFC 6455) client for the Kubernetes channel protocols that a CRI stream
// server speaks for exec and attach (cri/stream/websocket.hpp describes them; its codec is
// the server side: it reads masked frames and writes unmasked ones, the other way round).
// Plain HTTP only: stream URLs are on the node's loopback.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace berth::ctl::ws {

enum class Opcode : uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

struct Message {
  Opcode opcode;
  std::string payload;
};

// Appends one client frame (FIN set, masked with a random key).
void encode(std::string& out, Opcode op, std::string_view payload);

// Parses the server's frames into messages, fragments joined. Throws std::runtime_error on
// a masked or malformed frame or a message over `max_message` bytes.
class Reader {
public:
  explicit Reader(size_t max_message = size_t{16} << 20) : max_(max_message) {}
  void feed(std::string_view bytes, std::vector<Message>& out);

private:
  size_t max_;
  std::string buf_;
  std::string message_;
  Opcode message_op_ = Opcode::binary;
  bool in_message_ = false;
};

// A connected, upgraded connection.
struct Connection {
  int fd = -1;
  std::string protocol;  // the negotiated subprotocol
  std::string leftover;  // frame bytes that came with the handshake response
  ~Connection();
  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
};

// Connects to `url` (http://host:port/path) and upgrades, offering `protocols` (best
// first). Throws std::runtime_error naming the URL and what failed.
void connect(Connection& c, const std::string& url, const std::vector<std::string>& protocols, int timeout_ms);

} // namespace berth::ctl::ws
