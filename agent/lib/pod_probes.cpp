// Probes of a pod worker: which are due, running them, and acting on their verdicts.
#include "agent/lib/pod_worker.hpp"

#include "agent/lib/log.hpp"
#include "agent/lib/metrics.hpp"

namespace berth::agent {
namespace {

// prober_probe_total's probe_type, as the kubelet writes it.
const char* probe_type_label(ProbeKind k) {
  switch (k) {
    case ProbeKind::startup: return "Startup";
    case ProbeKind::liveness: return "Liveness";
    case ProbeKind::readiness: return "Readiness";
  }
  return "Unknown";
}

} // namespace

void PodWorker::run_probes() {
  const auto& pod = manifest_->pod;
  std::map<std::string, Trackers> keep;
  auto now = Clock::now();
  std::string host = view_.pod_ip.empty() ? std::string("127.0.0.1") : view_.pod_ip;
  for (auto& c : pod.spec.containers) {
    auto it = view_.instances.find(c.name);
    if (it == view_.instances.end() || it->second.empty()) continue;
    auto& cur = it->second[0];
    if (cur.status.state() != cri::CONTAINER_RUNNING) continue;
    if (!c.startup_probe && !c.liveness_probe && !c.readiness_probe) continue;
    auto found = probes_.find(cur.id);
    Trackers tr;
    if (found != probes_.end()) tr = std::move(found->second);
    else {
      auto started = steady_from_wall(cur.status.started_at());
      if (c.startup_probe) tr.startup.emplace(ProbeKind::startup, *c.startup_probe, started);
      if (c.liveness_probe) tr.liveness.emplace(ProbeKind::liveness, *c.liveness_probe, started);
      if (c.readiness_probe) tr.readiness.emplace(ProbeKind::readiness, *c.readiness_probe, started);
    }
    auto run_one = [&](ProbeTracker& t) {
      if (!t.due(now)) return;
      auto& h = t.probe().handler;
      auto timeout = std::chrono::seconds(t.probe().timeout_seconds);
      ProbeOutcome out;
      try {
        switch (h.kind) {
        case Handler::Kind::exec: {
          auto r = ctx_.cri.exec_sync(cur.id, h.exec.command, timeout);
          out = {r.exit_code == 0 ? ProbeResult::success : ProbeResult::failure,
                 fmt::format("command exited with {}: {}{}", r.exit_code, r.stdout_, r.stderr_)};
          break;
        }
        case Handler::Kind::http_get: out = run_http_get(h.http_get, host, timeout); break;
        case Handler::Kind::tcp_socket:
          out = run_tcp_socket(h.tcp_socket.host.empty() ? host : h.tcp_socket.host, h.tcp_socket.port, timeout);
          break;
        case Handler::Kind::grpc: out = run_grpc(host, h.grpc.port, h.grpc.service, timeout); break;
        default: return;
        }
      } catch (const std::exception& e) {
        out = {ProbeResult::failure, e.what()};
      }
      agent_metrics().probes.with({probe_type_label(t.kind()), out.result == ProbeResult::success ? "successful" : "failed"})
          .inc();
      if (out.result == ProbeResult::failure) {
        log_info("pod {}: {} probe of {} failed: {}", full_name_, probe_kind_name(t.kind()), c.name, out.message);
        record_event("Warning", "Unhealthy",
                     fmt::format("{} probe failed: {}", probe_kind_name(t.kind()), out.message));
      }
      if (t.record(out.result, Clock::now()))
        log_info("pod {}: container {} {} probe: {}", full_name_, c.name, probe_kind_name(t.kind()),
                 t.result() == ProbeResult::success ? "success" : "failure");
    };
    bool started = true;
    if (tr.startup) {
      if (tr.startup->result() != ProbeResult::success) run_one(*tr.startup);
      started = tr.startup->result() == ProbeResult::success;
    }
    view_.started[c.name] = started;
    if (started && tr.liveness) run_one(*tr.liveness);
    if (started && tr.readiness) run_one(*tr.readiness);
    view_.ready[c.name] = !tr.readiness || tr.readiness->result() == ProbeResult::success;
    bool kill = (tr.liveness && tr.liveness->result() == ProbeResult::failure) ||
                (tr.startup && tr.startup->result() == ProbeResult::failure);
    if (kill) {
      log_info("pod {}: container {} failed {} probe, will be restarted", full_name_, c.name,
               tr.startup && tr.startup->result() == ProbeResult::failure ? "startup" : "liveness");
      stop_container(&c, cur.id, pod.spec.termination_grace_period_seconds);
      notify();
      continue;
    }
    keep[cur.id] = std::move(tr);
  }
  probes_ = std::move(keep);
}

} // namespace berth::agent
