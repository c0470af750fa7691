#include "common/unix_socket.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth {

// ---- unix sockets -----------------------------------------------------------

UniqueFd connect_unix(const std::string& path, int type) {
  UniqueFd sock(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!sock) fail_errno("create unix socket");
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;

  // sun_path holds 108 bytes including the NUL; reach longer paths through an fd on
  // the parent directory.
  UniqueFd dir;
  std::string target = path;
  if (path.size() >= sizeof addr.sun_path) {
    auto slash = path.rfind('/');
    std::string parent = slash == 0 ? "/" : path.substr(0, slash);
    if (slash == std::string::npos) fail_code(ENAMETOOLONG, "connect to {}", path);
    dir.reset(::open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir) fail_errno("open {}", parent);
    target = fmt::format("/proc/self/fd/{}/{}", dir.get(), path.substr(slash + 1));
    if (target.size() >= sizeof addr.sun_path) fail_code(ENAMETOOLONG, "connect to {}", path);
  }
  std::memcpy(addr.sun_path, target.c_str(), target.size() + 1);
  if (::connect(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) < 0)
    fail_errno("connect to {}", path);
  return sock;
}

void send_fd(int sock, int fd, std::string_view payload) {
  // Stream sockets need at least one data byte to carry the control message.
  static const char kNul = '\0';
  struct iovec iov {};
  iov.iov_base = const_cast<char*>(payload.empty() ? &kNul : payload.data());
  iov.iov_len = payload.empty() ? 1 : payload.size();

  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));

  ssize_t n;
  while ((n = ::sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
  if (n < 0) fail_errno("send fd over socket");
  // The fd went with the first byte; finish any short write as plain data.
  auto rest = std::string_view(static_cast<const char*>(iov.iov_base), iov.iov_len)
                  .substr(static_cast<size_t>(n));
  while (!rest.empty()) {
    while ((n = ::send(sock, rest.data(), rest.size(), MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
    if (n < 0) fail_errno("send fd payload over socket");
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

UniqueFd recv_fd(int sock, std::string* payload) {
  char data[4096]; // runc's limit for the console name
  struct iovec iov {data, sizeof data};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;

  ssize_t n;
  while ((n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
  if (n < 0) fail_errno("receive fd from socket");

  UniqueFd received;
  for (auto* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (!received) received.reset(fd);
      else ::close(fd);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) fail("receive fd from socket: more than one fd was sent");
  if (!received) {
    if (n == 0) fail("receive fd from socket: peer closed the connection");
    fail("receive fd from socket: no fd in the message");
  }
  if (payload) {
    payload->assign(data, static_cast<size_t>(n));
    if (*payload == std::string_view("\0", 1)) payload->clear(); // send_fd's empty payload
  }
  return received;
}

} // namespace berth
