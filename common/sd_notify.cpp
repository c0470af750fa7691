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

// systemd's variables, read once: claim_systemd_notify_environment() then removes them
// from the environment, and the functions below keep working from this copy.
struct NotifyEnvironment {
  std::optional<std::string> socket, watchdog_usec, watchdog_pid;
};

const NotifyEnvironment& notify_environment() {
  static const NotifyEnvironment env = [] {
    auto get = [](const char* name) {
      const char* v = std::getenv(name);
      return v ? std::optional<std::string>(v) : std::nullopt;
    };
    return NotifyEnvironment{get("NOTIFY_SOCKET"), get("WATCHDOG_USEC"), get("WATCHDOG_PID")};
  }();
  return env;
}

} // namespace

void claim_systemd_notify_environment() {
  notify_environment();
  for (const char* name : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}) ::unsetenv(name);
}

bool notify_systemd(std::string_view state) {
  const auto& socket = notify_environment().socket;
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
  const auto& env = notify_environment();
  const auto& usec = env.watchdog_usec;
  if (!usec) return std::nullopt;
  if (env.watchdog_pid && parse_int(*env.watchdog_pid) != ::getpid()) return std::nullopt;
  auto v = parse_uint(*usec);
  if (!v || *v == 0) return std::nullopt;
  return std::chrono::milliseconds(std::max<uint64_t>(1, *v / 2000));
}

} // namespace berth
