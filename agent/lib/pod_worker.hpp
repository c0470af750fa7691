// One worker per pod, like the kubelet's pod workers: a thread that serialises its
// pod's syncs. It sleeps until told something changed (a manifest, a runtime event
// from the relist, shutdown) or until its next deadline (a probe, a back-off expiring,
// the periodic resync), then makes the runtime match the pod spec.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "agent/lib/backoff.hpp"
#include "agent/lib/config.hpp"
#include "agent/lib/cri_client.hpp"
#include "agent/lib/manifest.hpp"
#include "agent/lib/pod_status.hpp"
#include "agent/lib/probe.hpp"
#include "agent/lib/status.hpp"

namespace berth::agent {

struct WorkerContext {
  WorkerContext(const Config& c, CriClient& r, StatusStore& s, std::string ip)
      : config(c), cri(r), store(s), host_ip(std::move(ip)) {}
  const Config& config;
  CriClient& cri;
  StatusStore& store;
  std::string host_ip;

  // containerID prefix ("containerd"), learnt from the runtime when it (re)connects.
  std::string runtime_name() const {
    std::lock_guard lock(runtime_mu_);
    return runtime_name_;
  }
  void set_runtime_name(std::string name) {
    std::lock_guard lock(runtime_mu_);
    runtime_name_ = std::move(name);
  }

private:
  mutable std::mutex runtime_mu_;
  std::string runtime_name_ = "cri";
};

class PodWorker {
public:
  using Clock = std::chrono::steady_clock;
  // A wall-clock instant from the runtime (ns since the epoch) on the steady clock.
  static Clock::time_point steady_from_wall(int64_t wall_ns);
  // A worker for a manifest's pod.
  PodWorker(WorkerContext& ctx, Manifest manifest);
  // A worker that only tears down what the runtime still runs for uid (an orphan).
  PodWorker(WorkerContext& ctx, std::string uid, std::string full_name);
  ~PodWorker();

  void notify();
  // Stop and remove the pod (manifest removed or replaced), then finish.
  void terminate();
  // Finish without touching the pod (berthlet shuts down; pods keep running).
  void shutdown();
  bool finished() const { return finished_; }
  const std::string& uid() const { return uid_; }

private:
  void run();
  void sync();
  void kill_pod();
  Clock::time_point next_deadline() const;

  // sync steps
  // True when it made a new sandbox (which has no containers yet).
  bool ensure_sandbox(std::vector<cri::PodSandbox>& sandboxes);
  void load_instances(const std::vector<cri::Container>& containers);
  bool sync_init_containers();
  void sync_containers();
  void run_probes();
  void restart_or_wait(const Container& c, const ContainerInstance& last);
  void start_container(const Container& c, uint32_t attempt);
  bool ensure_image(const Container& c);
  void stop_container(const Container* spec, const std::string& id, int64_t grace_seconds);
  bool run_hook(const Handler& h, const std::string& container_id, const std::string& what, std::string& error);
  void publish();
  std::string pod_ref() const;
  void record_event(const char* type, const char* reason, std::string message); // to the status sinks

  WorkerContext& ctx_;
  std::optional<Manifest> manifest_;
  std::string uid_, full_name_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool dirty_ = true;
  enum class Stop { none, shutdown, terminate } stop_ = Stop::none;
  bool abandon_ = false; // shutdown while terminating: stop retrying
  std::atomic<bool> finished_{false};

  // sync state (worker thread only)
  std::string sandbox_id_;
  cri::PodSandboxConfig sandbox_config_;
  PodView view_;
  std::map<std::string, cri::ContainerStatus> status_cache_; // exited containers never change
  Backoff backoff_;
  struct Trackers {
    std::optional<ProbeTracker> startup, liveness, readiness;
  };
  std::map<std::string, Trackers> probes_; // by container id
  std::optional<PodStatus> last_status_;
  Clock::time_point backoff_wake_ = Clock::time_point::max();
  Clock::time_point error_wake_ = Clock::time_point::max();
  std::chrono::milliseconds error_delay_{0};
  bool terminal_ = false;
  std::thread thread_;
};

} // namespace berth::agent
