#include "ctl/lib/ws_client.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <strings.h>

#include <fmt/format.h>

#include "common/base64.hpp"

namespace berth::ctl::ws {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

void send_all(int fd, std::string_view s, const std::string& url) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(fmt::format("{}: send: {}", url, std::strerror(errno)));
    s.remove_prefix(static_cast<size_t>(n));
  }
}

} // namespace

void encode(std::string& out, Opcode op, std::string_view payload) {
  out.push_back(static_cast<char>(0x80 | static_cast<uint8_t>(op)));
  size_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(0x80 | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  } else {
    out.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
  uint8_t mask[4];
  if (getrandom(mask, sizeof mask, 0) != sizeof mask) fail("getrandom for a WebSocket mask failed");
  out.append(reinterpret_cast<char*>(mask), 4);
  size_t start = out.size();
  out.append(payload);
  for (size_t i = 0; i < n; ++i) out[start + i] = static_cast<char>(out[start + i] ^ mask[i % 4]);
}

void Reader::feed(std::string_view bytes, std::vector<Message>& out) {
  buf_.append(bytes);
  for (;;) {
    if (buf_.size() < 2) return;
    auto b0 = static_cast<uint8_t>(buf_[0]), b1 = static_cast<uint8_t>(buf_[1]);
    if (b0 & 0x70) fail("WebSocket: the server set reserved bits");
    if (b1 & 0x80) fail("WebSocket: the server masked a frame");
    size_t head = 2;
    uint64_t len = b1 & 0x7f;
    if (len == 126) head = 4;
    else if (len == 127) head = 10;
    if (buf_.size() < head) return;
    if (len >= 126) {
      len = 0;
      for (size_t i = 2; i < head; ++i) len = (len << 8) | static_cast<uint8_t>(buf_[i]);
    }
    if (len > max_) fail(fmt::format("WebSocket: a frame of {} bytes, more than {}", len, max_));
    if (buf_.size() < head + len) return;
    auto op = static_cast<Opcode>(b0 & 0x0f);
    bool fin = b0 & 0x80;
    std::string payload = buf_.substr(head, len);
    buf_.erase(0, head + len);
    if (op == Opcode::close || op == Opcode::ping || op == Opcode::pong) {
      if (!fin || len > 125) fail("WebSocket: a fragmented or oversized control frame");
      out.push_back({op, std::move(payload)});
      continue;
    }
    if (op == Opcode::continuation) {
      if (!in_message_) fail("WebSocket: a continuation frame outside a message");
    } else if (op == Opcode::text || op == Opcode::binary) {
      if (in_message_) fail("WebSocket: a new message inside a fragmented one");
      message_op_ = op;
      in_message_ = true;
    } else {
      fail(fmt::format("WebSocket: unknown opcode {}", static_cast<int>(op)));
    }
    if (message_.size() + payload.size() > max_) fail("WebSocket: message too big");
    message_ += payload;
    if (fin) {
      out.push_back({message_op_, std::move(message_)});
      message_.clear();
      in_message_ = false;
    }
  }
}

Connection::~Connection() {
  if (fd >= 0) ::close(fd);
}

void connect(Connection& c, const std::string& url, const std::vector<std::string>& protocols, int timeout_ms) {
  constexpr std::string_view scheme = "http://";
  if (url.rfind(scheme, 0) != 0)
    fail(fmt::format("stream URL {:?}: only http:// is supported (the runtime's stream server on loopback)", url));
  std::string rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash), path = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string host = hostport, port = "80";
  if (!hostport.empty() && hostport[0] == '[') {
    auto close = hostport.find(']');
    if (close == std::string::npos) fail(fmt::format("stream URL {:?}: bad host", url));
    host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size() && hostport[close + 1] == ':') port = hostport.substr(close + 2);
  } else if (auto colon = hostport.rfind(':'); colon != std::string::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
    fail(fmt::format("{}: resolve {}: {}", url, host, gai_strerror(rc)));
  int err = 0;
  for (auto* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      c.fd = fd;
      break;
    }
    err = errno;
    ::close(fd);
  }
  freeaddrinfo(res);
  if (c.fd < 0) fail(fmt::format("{}: connect: {}", url, std::strerror(err)));

  uint8_t key[16];
  if (getrandom(key, sizeof key, 0) != sizeof key) fail("getrandom for a WebSocket key failed");
  std::string offer;
  for (const auto& p : protocols) offer += (offer.empty() ? "" : ", ") + p;
  std::string req = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {}\r\n\r\n",
      path, hostport, berth::base64_encode(std::string_view(reinterpret_cast<char*>(key), sizeof key)), offer);
  send_all(c.fd, req, url);

  // The response head, bounded; whatever follows it is the first frames.
  std::string resp;
  size_t end;
  while ((end = resp.find("\r\n\r\n")) == std::string::npos) {
    if (resp.size() > 16384) fail(fmt::format("{}: response head over 16 KiB", url));
    pollfd p{c.fd, POLLIN, 0};
    int pr = ::poll(&p, 1, timeout_ms);
    if (pr == 0) fail(fmt::format("{}: no upgrade response within {} ms", url, timeout_ms));
    if (pr < 0 && errno == EINTR) continue;
    char buf[4096];
    ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(fmt::format("{}: connection closed during the upgrade", url));
    resp.append(buf, static_cast<size_t>(n));
  }
  c.leftover = resp.substr(end + 4);
  std::string head = resp.substr(0, end);
  auto eol = head.find("\r\n");
  std::string status = head.substr(0, eol);
  if (status.find(" 101") == std::string::npos) {
    std::string body = c.leftover.substr(0, 512);
    fail(fmt::format("{}: upgrade refused: {}{}{}", url, status, body.empty() ? "" : ": ", body));
  }
  for (size_t pos = eol; pos != std::string::npos && pos < head.size();) {
    size_t next = head.find("\r\n", pos + 2);
    std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
    constexpr std::string_view name = "sec-websocket-protocol:";
    if (line.size() > name.size() && strncasecmp(line.c_str(), name.data(), name.size()) == 0) {
      c.protocol = line.substr(name.size());
      c.protocol.erase(0, c.protocol.find_first_not_of(' '));
      c.protocol.erase(c.protocol.find_last_not_of(" \t") + 1);
    }
    pos = next;
  }
}

} // namespace berth::ctl::ws
