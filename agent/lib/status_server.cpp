#include "agent/lib/status_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

#include <microhttpd.h>

#include "agent/lib/log.hpp"
#include "agent/lib/metrics.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::agent {
namespace {

MHD_Result reply(MHD_Connection* conn, unsigned code, const std::string& body, const char* type) {
  MHD_Response* r = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(r, "Content-Type", type);
  MHD_Result ret = MHD_queue_response(conn, code, r);
  MHD_destroy_response(r);
  return ret;
}

MHD_Result handle(void* cls, MHD_Connection* conn, const char* url, const char* method, const char*,
                  const char*, size_t*, void**) {
  auto& store = *static_cast<const StatusStore*>(cls);
  if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0)
    return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", "text/plain");
  std::string path = url;
  if (path == "/healthz") {
    // "?verbose" has no value: ask whether the key is there, not for its value.
    const char* value = nullptr;
    size_t len = 0;
    bool verbose = MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, "verbose", 7, &value, &len) == MHD_YES;
    auto h = store.healthz(verbose);
    return reply(conn, h.ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, h.body, "text/plain");
  }
  if (path == "/pods" || path == "/pods/") return reply(conn, MHD_HTTP_OK, store.pods_json(), "application/json");
  if (path == "/manifests") return reply(conn, MHD_HTTP_OK, store.manifests_json(), "application/json");
  if (path == "/metrics") return reply(conn, MHD_HTTP_OK, agent_metrics().registry.render(), metrics::kContentType);
  if (starts_with(path, "/pods/")) {
    auto parts = split(path.substr(6), '/');
    if (parts.size() == 2) {
      auto body = store.pod_json(parts[0], parts[1]);
      if (!body.empty()) return reply(conn, MHD_HTTP_OK, body, "application/json");
    }
  }
  return reply(conn, MHD_HTTP_NOT_FOUND, "404 page not found\n", "text/plain");
}

// libmicrohttpd's messages (a refused connection at the limits, say) in berthlet's log,
// at most one every 10 s with the count of those left out: a flood of connections must
// not become a flood of log lines.
void mhd_log(void*, const char* fmt, va_list ap) {
  static std::mutex mu;
  static std::chrono::steady_clock::time_point last{};
  static uint64_t dropped = 0;
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  std::string_view msg = buf;
  while (!msg.empty() && msg.back() == '\n') msg.remove_suffix(1);
  std::lock_guard lock(mu);
  auto now = std::chrono::steady_clock::now();
  if (last != std::chrono::steady_clock::time_point{} && now - last < std::chrono::seconds(10)) {
    dropped++;
    return;
  }
  if (dropped) log_warn("status endpoint: {} ({} more messages in the last 10 s)", msg, dropped);
  else log_warn("status endpoint: {}", msg);
  last = now;
  dropped = 0;
}

} // namespace

StatusServer::StatusServer(const StatusStore& store, const std::string& address, int port) : store_(store) {
  struct sockaddr_in6 a6 = {};
  struct sockaddr_in a4 = {};
  const struct sockaddr* sa;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
  if (inet_pton(AF_INET, address.c_str(), &a4.sin_addr) == 1) {
    a4.sin_family = AF_INET;
    a4.sin_port = htons(static_cast<uint16_t>(port));
    sa = reinterpret_cast<const sockaddr*>(&a4);
  } else if (inet_pton(AF_INET6, address.c_str(), &a6.sin6_addr) == 1) {
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(static_cast<uint16_t>(port));
    sa = reinterpret_cast<const sockaddr*>(&a6);
    flags |= MHD_USE_IPv6;
  } else {
    fail("status endpoint: address {:?} is not an IP address", address);
  }
  // Bounded: a client cannot hold more than kMaxConnectionsPerIp connections (each one an
  // fd of berthlet's), all clients together no more than kMaxConnections, and a
  // connection that sends nothing for kConnectionTimeoutSeconds is closed. Beyond the total the
  // listening socket is not polled, so waiting clients cost berthlet nothing.
  daemon_ = MHD_start_daemon(flags, static_cast<uint16_t>(port), nullptr, nullptr, &handle,
                             const_cast<StatusStore*>(&store_), MHD_OPTION_EXTERNAL_LOGGER, &mhd_log, nullptr,
                             MHD_OPTION_SOCK_ADDR, sa,
                             MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,
                             MHD_OPTION_PER_IP_CONNECTION_LIMIT, kMaxConnectionsPerIp,
                             MHD_OPTION_CONNECTION_TIMEOUT, kConnectionTimeoutSeconds,
                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(32 * 1024), MHD_OPTION_END);
  if (!daemon_) fail("status endpoint: cannot listen on {}:{} (in use?)", address, port);
  const union MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
  port_ = info ? info->port : port;
}

StatusServer::~StatusServer() {
  if (daemon_) MHD_stop_daemon(daemon_);
}

} // namespace berth::agent
