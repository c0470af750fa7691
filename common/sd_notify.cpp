#include "common/sd_notify.hpp"

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/fd.hpp"
#include "common/fs.hpp"

namespace berth {

namespace {

struct NotifyEnvironment {
  bool claimed = false;
  std::optional<std::string> socket, watchdog_usec, watchdog_pid;
};
NotifyEnvironment g_env;

std::optional<std::string> env_value(const char* name, const std::optional<std::string>& claimed) {
  if (g_env.claimed) return claimed;
  const char* v = std::getenv(name);
  return v ? std::optional<std::string>(v) : std::nullopt;
}

} // namespace

void claim_systemd_notify_environment() {
  if (g_env.claimed) return;
  for (auto [name, slot] : {std::pair{"NOTIFY_SOCKET", &g_env.socket}, std::pair{"WATCHDOG_USEC", &g_env.watchdog_usec},
                            std::pair{"WATCHDOG_PID", &g_env.watchdog_pid}}) {
    if (const char* v = std::getenv(name)) *slot = v;
    ::unsetenv(name);
  }
  g_env.claimed = true;
}

bool notify_systemd(std::string_view state) {
  auto socket = env_value("NOTIFY_SOCKET", g_env.socket);
  if (!socket || socket->empty()) return false;
  const char* path = socket->c_str();
  if (path[0] != '/' && path[0] != '@') return false;
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  size_t len = std::strlen(path);
  if (len >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  ssize_t n = ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
                       static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + len));
  return n == static_cast<ssize_t>(state.size());
}

std::optional<std::chrono::milliseconds> watchdog_ping_interval() {
  auto usec = env_value("WATCHDOG_USEC", g_env.watchdog_usec);
  if (!usec) return std::nullopt;
  if (auto pid = env_value("WATCHDOG_PID", g_env.watchdog_pid); pid && parse_int(*pid) != ::getpid()) return std::nullopt;
  auto v = parse_uint(*usec);
  if (!v || *v == 0) return std::nullopt;
  return std::chrono::milliseconds(std::max<uint64_t>(1, *v / 2000));
}

} // namespace berth
