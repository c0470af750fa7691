#include "shim/lib/unix_socket.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "common/error.hpp"

namespace berth::shim {

namespace {
struct sockaddr_un make_address(const std::string& path) {
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    fail_code(ENAMETOOLONG, "socket path {} is longer than {} bytes", path, sizeof addr.sun_path - 1);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}
} // namespace

UniqueFd listen_unix(const std::string& path, int type) {
  auto addr = make_address(path);
  UniqueFd sock(::socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!sock) fail_errno("socket");
  ::unlink(path.c_str());
  // Only root (the owner) may connect; the state dir is 0700 as well.
  mode_t old = ::umask(0177);
  int rc = ::bind(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::umask(old);
  if (rc < 0) fail_code(err, "bind {}", path);
  if (::listen(sock.get(), 64) < 0) fail_errno("listen on {}", path);
  return sock;
}

UniqueFd accept_connection(int listener) {
  for (;;) {
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return UniqueFd(fd);
    if (errno == EINTR || errno == ECONNABORTED) continue;
    return UniqueFd();
  }
}

bool send_frame(int sock, char type, std::string_view payload, bool blocking) {
  struct iovec iov[2] = {{&type, 1}, {const_cast<char*>(payload.data()), payload.size()}};
  struct msghdr msg {};
  msg.msg_iov = iov;
  msg.msg_iovlen = payload.empty() ? 1 : 2;
  int flags = MSG_NOSIGNAL | (blocking ? 0 : MSG_DONTWAIT);
  for (;;) {
    if (::sendmsg(sock, &msg, flags) >= 0) return true;
    if (errno != EINTR) return false;
  }
}

} // namespace berth::shim
