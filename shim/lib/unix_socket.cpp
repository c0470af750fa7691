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

UniqueFd connect_unix_socket(const std::string& path, int type) {
  auto addr = make_address(path);
  UniqueFd sock(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!sock) fail_errno("socket");
  if (::connect(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) < 0)
    fail_errno("connect to {}", path);
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

UniqueFd receive_fd(int sock) {
  char name[4096]; // go-runc and conmon read the pty name into a buffer this size
  struct iovec iov {name, sizeof name};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  while ((n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
  if (n < 0) fail_errno("receive the pty master");
  UniqueFd received;
  for (auto* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (!received) received.reset(fd);
      else ::close(fd); // one fd is the contract; never leak extras
    }
  }
  if (!received) fail("receive the pty master: the runtime sent no fd");
  return received;
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
