#include "runtime/lib/notify.hpp"

#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "runtime/lib/rootfs.hpp"

namespace berth::notify {

namespace {

constexpr const char* kDirName = "notify";
constexpr const char* kSocketName = "notify.sock";
constexpr int kBarrierTimeoutMs = 30000; // runc's

// The address of a path ("/run/systemd/notify") or abstract ("@name") socket.
socklen_t make_address(const std::string& name, sockaddr_un& addr) {
  addr = {};
  addr.sun_family = AF_UNIX;
  if (name.size() >= sizeof addr.sun_path) fail_code(ENAMETOOLONG, "notify socket {}", name);
  std::memcpy(addr.sun_path, name.data(), name.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (name[0] == '@' ? 0 : 1));
}

// The container's notify dir through /proc/self/fd: state dirs can be deep.
std::string socket_name_via(int notify_dir_fd) {
  return fmt::format("/proc/self/fd/{}/{}", notify_dir_fd, kSocketName);
}

void send_all(int sock, std::string_view data, const std::string& host) {
  if (::send(sock, data.data(), data.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(data.size()))
    fail_errno("notify socket {}: send \"{}\"", host, trim(data));
}

// sd_notify_barrier: the receiver closes the pipe's write end (sent along with
// BARRIER=1) once it has processed everything before it.
void barrier(int sock, const std::string& host) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) < 0) fail_errno("pipe");
  UniqueFd read_end(p[0]), write_end(p[1]);
  static const char kMsg[] = "BARRIER=1";
  struct iovec iov {const_cast<char*>(kMsg), sizeof kMsg - 1};
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
  int fd = write_end.get();
  std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
  if (::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) fail_errno("notify socket {}: send BARRIER=1", host);
  write_end.reset();
  struct pollfd pfd = {read_end.get(), POLLIN, 0};
  int n;
  do {
    n = ::poll(&pfd, 1, kBarrierTimeoutMs);
  } while (n < 0 && errno == EINTR);
  if (n == 0) log::warn("notify socket {}: no answer to BARRIER=1 after 30s (ignored)", host);
}

void notify_host(const std::string& host, std::string_view ready, pid_t main_pid) {
  UniqueFd sock(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) fail_errno("socket");
  sockaddr_un addr;
  socklen_t len = make_address(host, addr);
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0) fail_errno("connect to notify socket {}", host);
  send_all(sock.get(), fmt::format("{}\n", ready), host);
  send_all(sock.get(), fmt::format("MAINPID={}\n", main_pid), host);
  barrier(sock.get(), host);
}

// The READY= line of a datagram (the container may send several variables at once).
std::optional<std::string> ready_line(std::string_view datagram) {
  for (auto& line : split(datagram, '\n'))
    if (starts_with(line, "READY=")) return std::string(line);
  return std::nullopt;
}

} // namespace

std::string host_socket() {
  const char* v = std::getenv("NOTIFY_SOCKET");
  if (!v || (v[0] != '/' && v[0] != '@')) return "";
  return v;
}

void setup_container(Spec& spec, int state_dir_fd, const std::string& state_dir) {
  if (::mkdirat(state_dir_fd, kDirName, 0755) < 0) fail_errno("create {}/{}", state_dir, kDirName);
  json mount = {{"destination", kContainerDir},
                {"source", path_join(state_dir, kDirName)},
                {"type", "bind"},
                {"options", {"bind", "nosuid", "noexec", "nodev", "ro"}}};
  json list = json::array({mount});
  auto parsed = parse_mounts(JsonView(list, "NOTIFY_SOCKET mount"), spec.bundle);
  spec.mounts.push_back(std::move(parsed.at(0)));
  spec.process.env.push_back(fmt::format("NOTIFY_SOCKET={}", kContainerSocket));
}

UniqueFd bind_container_socket(int state_dir_fd) {
  UniqueFd dir(::openat(state_dir_fd, kDirName, O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    if (errno == ENOENT) return {};
    fail_errno("open the container's notify directory");
  }
  std::string name = socket_name_via(dir.get());
  UniqueFd sock(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) fail_errno("socket");
  ::unlinkat(dir.get(), kSocketName, 0); // from an earlier start that failed
  sockaddr_un addr;
  socklen_t len = make_address(name, addr);
  if (::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0) fail_errno("bind the container's notify socket");
  if (::fchmodat(dir.get(), kSocketName, 0777, 0) < 0) fail_errno("chmod the container's notify socket");
  return sock;
}

void relay_ready(int sock, const std::string& host, int pidfd, pid_t main_pid) {
  char buf[4096];
  for (;;) {
    struct pollfd pfd[2] = {{sock, POLLIN, 0}, {pidfd, POLLIN, 0}};
    int n = ::poll(pfd, pidfd >= 0 ? 2 : 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("wait for the container's notification");
    if (pfd[0].revents & POLLIN) {
      ssize_t r = ::recv(sock, buf, sizeof buf, MSG_DONTWAIT);
      if (r > 0)
        if (auto ready = ready_line(std::string_view(buf, static_cast<size_t>(r)))) {
          notify_host(host, *ready, main_pid);
          return;
        }
      continue;
    }
    if (pfd[1].revents) return; // the container's process ended before it was ready
  }
}

} // namespace berth::notify
