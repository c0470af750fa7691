// berthlet's event loop: one thread in epoll_wait on the manifest watcher (inotify),
// two timerfds (the periodic manifest re-list and the runtime relist, PLEG-style)
// and a signalfd. Manifests become pod workers; the relist wakes the worker of any
// pod whose containers or sandboxes changed state in the runtime. Log rotation and
// image GC and the node status run beside it on their own periodic threads; each status
// sink delivers on its own thread (agent/lib/sinks).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "agent/lib/config.hpp"
#include "agent/lib/cri_client.hpp"
#include "agent/lib/image_gc.hpp"
#include "agent/lib/log_rotation.hpp"
#include "agent/lib/node_status.hpp"
#include "agent/lib/periodic.hpp"
#include "agent/lib/pod_worker.hpp"
#include "agent/lib/sinks/hub.hpp"
#include "agent/lib/status.hpp"
#include "agent/lib/watcher.hpp"
#include "common/fd.hpp"

namespace berth::agent {

class Agent {
public:
  explicit Agent(Config config);
  ~Agent();
  // Runs until SIGTERM/SIGINT; pods keep running. on_ready runs once the first
  // scan is done and the runtime has answered (sd_notify READY=1).
  void run(const std::function<void()>& on_ready);
  const StatusStore& store() const { return store_; }

private:
  void scan_manifests();
  void apply_manifest(const std::string& path);
  void drop_manifest(const std::string& path);
  void relist();
  void runtime_down(const std::string& error);
  void check_runtime_status(bool force);
  void collect_orphans();
  void reap_workers();
  void count_workers();  // berthlet_pod_workers
  void start_worker(Manifest m);
  void report_node(); // the node's status to the status sinks (any thread)
  void report_pod_set();

  Config config_;
  CriClient cri_;
  StatusStore store_;
  // Before the workers (they publish through the store into it), stopped after them.
  std::unique_ptr<StatusSinks> sinks_;
  std::unique_ptr<NodeStatusBuilder> node_status_;
  std::mutex runtime_info_mu_;
  RuntimeInfo runtime_info_; // name and version from the CRI Version call
  std::unique_ptr<WorkerContext> ctx_;
  ManifestWatcher watcher_;

  struct Source {
    std::string uid;      // "" when the file is invalid
    std::string full_name;
  };
  std::map<std::string, Source> sources_;                   // manifest path -> pod
  std::map<std::string, std::unique_ptr<PodWorker>> workers_; // uid -> worker
  std::vector<std::unique_ptr<PodWorker>> terminating_;
  std::map<std::string, Manifest> pending_;                 // uid -> waits for its old worker
  std::map<std::string, std::string> fingerprints_;         // uid -> runtime state summary
  bool runtime_up_ = false;
  bool ever_up_ = false;
  bool down_logged_ = false;
  bool ready_reported_ = false; // the node status went out since the runtime came up
  RuntimeHealth health_;
  RuntimeHealth::Clock::time_point last_down_log_{}, last_status_call_{};
  std::string status_problems_; // what the last Status call found wrong ("" when ready)
  bool orphans_collected_ = false;
  bool scanned_ = false;
  uint64_t relists_ = 0;
  // Their own threads, so that a big gzip or a slow RemoveImage never holds up the relist;
  // declared last: stopped before anything they use goes away.
  LogRotator log_rotator_;
  ImageGc image_gc_;
  std::unique_ptr<PeriodicThread> log_rotation_thread_, image_gc_thread_, node_status_thread_;
};

// The node's address for hostIP: the first global IPv4 address of an interface that is up.
std::string detect_host_ip();

} // namespace berth::agent
