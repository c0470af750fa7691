// berthlet's metrics, served as GET /metrics on the read-only status endpoint
// (docs/metrics.md): CRI calls by method (latency and errors), probe results, container
// restarts and pod workers are counted where they happen; running pods, containers by
// state and manifest errors are derived from the status store at scrape time.
#pragma once

#include <chrono>

#include "common/metrics.hpp"

namespace berth::agent {

class StatusStore;

struct AgentMetrics {
  metrics::Registry registry;
  metrics::Family<metrics::Histogram>& runtime_seconds;  // operation_type: the CRI method
  metrics::Family<metrics::Counter>& runtime_errors;
  metrics::Family<metrics::Counter>& probes;             // probe_type, result (as the kubelet's prober)
  metrics::Counter& container_restarts;
  metrics::Gauge& pod_workers;
  // Status sinks (sink = its configured name): deliveries by kind and result (delivered,
  // retried, rejected), undelivered items, events dropped from a full queue, and the delay
  // from a state change to its delivery.
  metrics::Family<metrics::Counter>& sink_deliveries;
  metrics::Family<metrics::Gauge>& sink_queue_depth;
  metrics::Family<metrics::Counter>& sink_events_dropped;
  metrics::Family<metrics::Histogram>& sink_delivery_lag;

  AgentMetrics();
};

// The process's one set.
AgentMetrics& agent_metrics();

// Running pods, containers by state, manifests in error: from the store at each scrape.
void add_status_collector(AgentMetrics& m, const StatusStore& store);

// Times one CRI call (operation = the CRI method name, a literal).
class RuntimeOperationTimer {
public:
  explicit RuntimeOperationTimer(const char* operation)
      : operation_(operation), start_(std::chrono::steady_clock::now()) {}
  void done(bool ok) {
    auto& m = agent_metrics();
    m.runtime_seconds.with({operation_})
        .observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    if (!ok) m.runtime_errors.with({operation_}).inc();
  }

private:
  const char* operation_;
  std::chrono::steady_clock::time_point start_;
};

} // namespace berth::agent
