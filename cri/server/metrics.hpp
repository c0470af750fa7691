// berthd's metrics (docs/metrics.md): the families updated where things happen (gRPC
// calls through one server interceptor, pulls, CNI calls), the collectors that derive
// pods, containers, shims and snapshot space from berthd's own state at scrape time, and
// the opt-in HTTP endpoint ([metrics] address) serving GET /metrics.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/support/server_interceptor.h>

#include "common/metrics.hpp"

struct MHD_Daemon;

namespace berth::image {
class ImageStore;
}

namespace berth::cri {

class Runtime;

struct DaemonMetrics {
  metrics::Registry registry;
  metrics::Family<metrics::Counter>& grpc_started;
  metrics::Family<metrics::Counter>& grpc_handled;
  metrics::Family<metrics::Histogram>& grpc_seconds;
  metrics::Family<metrics::Counter>& pulls;          // result: success, failure
  metrics::Counter& pull_bytes;
  metrics::Histogram& pull_seconds;
  metrics::Family<metrics::Histogram>& cni_seconds;  // operation: ADD, DEL
  metrics::Family<metrics::Counter>& cni_errors;

  DaemonMetrics();
};

// The process's one set (gRPC's interceptors and the handlers reach it from anywhere).
DaemonMetrics& daemon_metrics();

// Pods and containers by state, shims, snapshot space: computed at each scrape.
void add_state_collectors(DaemonMetrics& m, const Runtime& runtime, image::ImageStore& store);

// grpc_server_* for every call of every service berthd registers (methods outside the
// registered services are counted as grpc_service="unknown").
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> make_grpc_metrics_interceptor();

// Times fn as one CNI operation ("ADD" or "DEL"), counting a throw as an error.
template <typename Fn>
auto time_cni(const char* operation, Fn&& fn) {
  auto& m = daemon_metrics();
  auto start = std::chrono::steady_clock::now();
  struct Observe {
    metrics::Histogram& h;
    std::chrono::steady_clock::time_point start;
    ~Observe() { h.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()); }
  } observe{m.cni_seconds.with({operation}), start};
  try {
    return fn();
  } catch (...) {
    m.cni_errors.with({operation}).inc();
    throw;
  }
}

// GET /metrics over HTTP on "host:port" (libmicrohttpd, loaded lazily), bounded like the
// stream server: few connections, short timeouts, small requests.
class MetricsServer {
public:
  static constexpr unsigned kMaxConnections = 16;
  static constexpr unsigned kConnectionTimeoutSeconds = 10;
  MetricsServer(const metrics::Registry& registry, const std::string& address);  // throws berth::Error
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  int port() const { return port_; }

private:
  const metrics::Registry& registry_;
  MHD_Daemon* daemon_ = nullptr;
  int port_ = 0;
};

// "host:port" -> host, port; "[::1]:1338" for IPv6. Throws EINVAL naming the value.
std::pair<std::string, uint16_t> split_host_port(const std::string& address);

} // namespace berth::cri
