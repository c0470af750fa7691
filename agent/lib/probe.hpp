// Probes as the kubelet applies them: a result counts only after successThreshold
// equal results in a row (failureThreshold for failures); nothing runs before
// initialDelaySeconds; liveness and readiness wait for the startup probe.
// The network probes (httpGet, tcpSocket, grpc) run here; exec goes through the CRI.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "agent/lib/pod.hpp"

namespace berth::agent {

enum class ProbeKind { startup, liveness, readiness };
enum class ProbeResult { unknown, success, failure };

struct ProbeOutcome {
  ProbeResult result = ProbeResult::failure;
  std::string message; // why it failed, for events and status
};

// One probe of one container instance (a restarted container gets a new tracker).
class ProbeTracker {
public:
  using Clock = std::chrono::steady_clock;
  ProbeTracker(ProbeKind kind, const Probe& probe, Clock::time_point container_started);

  // Whether a probe is due at now, and when the next one is due.
  bool due(Clock::time_point now) const { return now >= next_run_; }
  Clock::time_point next_run() const { return next_run_; }
  // Feeds one raw outcome; returns true when the reported result changed.
  bool record(ProbeResult raw, Clock::time_point now);
  ProbeResult result() const { return result_; }
  ProbeKind kind() const { return kind_; }
  const Probe& probe() const { return probe_; }
  // After a liveness/startup failure the container restarts; the kubelet resets the run.
  void reset_after_restart_decision() { run_ = 0; }

private:
  ProbeKind kind_;
  Probe probe_;
  ProbeResult result_;
  ProbeResult last_raw_ = ProbeResult::unknown;
  int run_ = 0;
  Clock::time_point next_run_;
};

// Network probe runners. host is the pod IP (or the probe's host); timeout from the probe.
ProbeOutcome run_http_get(const HttpGetAction& a, const std::string& host, std::chrono::milliseconds timeout);
ProbeOutcome run_tcp_socket(const std::string& host, int port, std::chrono::milliseconds timeout);
ProbeOutcome run_grpc(const std::string& host, int port, const std::string& service, std::chrono::milliseconds timeout);

const char* probe_kind_name(ProbeKind k);

} // namespace berth::agent
