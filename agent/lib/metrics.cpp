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
                      .with({})),
      sink_deliveries(registry.counter("berthlet_status_sink_deliveries_total",
                                       "Status sink delivery attempts, by sink, kind and result (delivered, retried, "
                                       "rejected).",
                                       {"sink", "kind", "result"})),
      sink_queue_depth(registry.gauge("berthlet_status_sink_queue_depth",
                                      "Items (pod and node states, events) a status sink has not delivered yet.",
                                      {"sink"})),
      sink_events_dropped(registry.counter("berthlet_status_sink_events_dropped_total",
                                           "Events dropped because a status sink's event queue was full.", {"sink"})),
      sink_delivery_lag(registry.histogram("berthlet_status_sink_delivery_lag_seconds",
                                           "Seconds from a status change to its delivery by a status sink.", {"sink"},
                                           metrics::rpc_latency_buckets())) {
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
