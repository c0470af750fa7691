// The read-only status endpoint (the kubelet's read-only port, 10255): GET /healthz (the
// runtime's reachability and readiness and the relist's age; 503 naming each failed
// check, "?verbose" lists them all), /pods (a v1 PodList), /pods/<namespace>/<name>,
// /manifests (what each file became), /metrics (Prometheus text, agent/lib/metrics.hpp).
// libmicrohttpd with its own polling thread; it sleeps in epoll between requests.
#pragma once

#include <string>

#include "agent/lib/status.hpp"

struct MHD_Daemon;

namespace berth::agent {

class StatusServer {
public:
  // Limits of the endpoint (every connection is one of berthlet's file descriptors).
  static constexpr unsigned kMaxConnections = 64;
  static constexpr unsigned kMaxConnectionsPerIp = 32;
  static constexpr unsigned kConnectionTimeoutSeconds = 10;

  // Binds address:port (port 0 picks a free one). Throws berth::Error.
  StatusServer(const StatusStore& store, const std::string& address, int port);
  ~StatusServer();
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;
  int port() const { return port_; }

private:
  const StatusStore& store_;
  MHD_Daemon* daemon_ = nullptr;
  int port_ = 0;
};

} // namespace berth::agent
