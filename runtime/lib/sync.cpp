#include "runtime/lib/sync.hpp"

#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "common/error.hpp"

namespace berth::sync {

namespace {
struct Header {
  uint32_t type;
  int32_t err;
};
constexpr size_t kMaxPacket = 64 * 1024;
} // namespace

void send(int fd, Msg type, const std::string& payload, int32_t err) {
  Header h{static_cast<uint32_t>(type), err};
  std::string buf(sizeof h + payload.size(), '\0');
  std::memcpy(buf.data(), &h, sizeof h);
  std::memcpy(buf.data() + sizeof h, payload.data(), payload.size());
  if (buf.size() > kMaxPacket) buf.resize(kMaxPacket);
  for (;;) {
    ssize_t n = ::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL);
    if (n >= 0) return;
    if (errno != EINTR) fail_errno("sync: send message");
  }
}

bool try_recv(int fd, Message& out) {
  std::vector<char> buf(kMaxPacket);
  ssize_t n;
  do {
    n = ::recv(fd, buf.data(), buf.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) fail_errno("sync: receive message");
  if (n == 0) return false;
  if (static_cast<size_t>(n) < sizeof(Header)) fail("sync: short message");
  Header h;
  std::memcpy(&h, buf.data(), sizeof h);
  out.type = static_cast<Msg>(h.type);
  out.err = h.err;
  out.payload.assign(buf.data() + sizeof h, static_cast<size_t>(n) - sizeof h);
  return true;
}

Message recv(int fd, const char* what) {
  Message m;
  if (!try_recv(fd, m)) fail("container init exited before {}", what);
  return m;
}

Message expect(int fd, Msg type, const char* what) {
  Message m = recv(fd, what);
  if (m.type == Msg::error) throw Error(m.err, m.payload);
  if (m.type != type) fail("sync: unexpected message {} while waiting for {}", static_cast<uint32_t>(m.type), what);
  return m;
}

} // namespace berth::sync
