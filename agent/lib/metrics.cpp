#include "agent/lib/metrics.hpp"

#include "agent/lib/status.hpp"

namespace berth::agent {

AgentMetrics::AgentMetrics()
    : runtime_seconds(registry.histogram("berthlet_runtime_operations_duration_seconds",
                                         "Duration in seconds of CRI calls to the runtime, by method.",
                                         {"operation_type"}, metrics::rpc_latency_buckets())),
      runtime_errors(registry.counter("berthlet_runtime_operations_errors_total",
                                      "CRI calls to the runtime that failed, by method.", {"operation_type"})),
      probes(registry.counter("prober_probe_total", "Probe runs, by probe type and result.",
                              {"probe_type", "result"})),
      container_restarts(registry.counter("berthlet_container_restarts_total",
                                          "Containers started again after an earlier instance (attempt > 0).")
                             .with({})),
      pod_workers(registry.gauge("berthlet_pod_workers", "Pod workers (one per static pod, and those terminating).")
                      .with({})) {
  metrics::add_process_collector(registry);
}

AgentMetrics& agent_metrics() {
  static AgentMetrics m;
  return m;
}

void add_status_collector(AgentMetrics& m, const StatusStore& store) {
  m.registry.add_collector([&store](metrics::Writer& w) {
    auto c = store.counts();
    w.header("berthlet_running_pods", "Pods whose phase is Running.", "gauge");
    w.sample("berthlet_running_pods", {}, c.running_pods);
    w.header("berthlet_running_containers", "Containers of the pods, by state.", "gauge");
    w.sample("berthlet_running_containers", {{"container_state", "running"}}, c.containers_running);
    w.sample("berthlet_running_containers", {{"container_state", "waiting"}}, c.containers_waiting);
    w.sample("berthlet_running_containers", {{"container_state", "terminated"}}, c.containers_terminated);
    w.header("berthlet_manifests", "Manifest files, by whether they became a pod (ok) or not (error).", "gauge");
    w.sample("berthlet_manifests", {{"state", "ok"}}, c.manifests - c.manifest_errors);
    w.sample("berthlet_manifests", {{"state", "error"}}, c.manifest_errors);
  });
}

} // namespace berth::agent
