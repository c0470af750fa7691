// The state behind berthd's RuntimeService: every pod sandbox and container berthd
// knows, in memory (for List/Status calls that never touch the disk) and in SQLite
// (before every side effect, for recovery), plus the operations several RPCs share
// (stopping and removing containers, tearing pods down) and the reaction to exits.
//
// Locking: `index_mu_` (shared) guards the id and name maps; each Sandbox/Container has
// `mu` for its record (held briefly, never across I/O) and `op` serialising its
// lifecycle calls (held across the runtime's work). Order: op, then index_mu_ or mu;
// a sandbox's op before its containers' op. Exits are applied under mu only, so a
// StopContainer waiting for an exit never blocks the exit it waits for.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cri/image/image_store.hpp"
#include "cri/pod/exit_watcher.hpp"
#include "cri/pod/oci_runtime.hpp"
#include "cri/pod/oci_spec.hpp"
#include "cri/pod/pod_network.hpp"
#include "cri/pod/record_store.hpp"
#include "cri/pod/records.hpp"
#include "cri/pod/shim_client.hpp"
#include "cri/server/config.hpp"
#include "cri/server/events.hpp"
#include "cri/server/janitor.hpp"

namespace berth::cri {

struct Sandbox {
  explicit Sandbox(SandboxRecord r) : rec(std::move(r)) {}
  const std::string& id() const { return rec.id; }
  // Exclusive for the pod's own lifecycle (stop, remove); shared while a container of it
  // is created or started, so no container appears in a pod being torn down.
  std::shared_mutex op;
  mutable std::mutex mu;
  SandboxRecord rec;          // guarded by mu (id and name never change)
  bool pause_exited = false;  // guarded by mu
  bool removed = false;       // guarded by mu: dropped; its record must never be written again
};

struct Container {
  explicit Container(ContainerRecord r) : rec(std::move(r)) {}
  const std::string& id() const { return rec.id; }
  std::mutex op;
  mutable std::mutex mu;
  std::condition_variable exited;  // notified (under mu) when phase becomes exited
  ContainerRecord rec;             // guarded by mu
  bool removed = false;            // guarded by mu: dropped; its record must never be written again
};

using SandboxPtr = std::shared_ptr<Sandbox>;
using ContainerPtr = std::shared_ptr<Container>;

class Runtime {
public:
  Runtime(const Config& cfg, image::ImageStore& images);
  ~Runtime();

  // Loads the records, finishes or undoes what a crash interrupted, re-attaches to live
  // shims, applies exits that happened while berthd was down, removes orphans; then
  // starts watching exits. Call once, before serving.
  void recover();

  const Config& config() const { return cfg_; }
  image::ImageStore& images() { return images_; }
  PodNetwork& network() { return network_; }
  EventBus& events() { return events_; }
  const ShimSettings& shim() const { return shim_; }
  const SpecOptions& spec_options() const { return spec_opts_; }

  // Handlers by CRI name ("" = the default); ENOENT-free: EINVAL naming the handler.
  const OciRuntime& handler(const std::string& name) const;
  std::vector<std::string> handler_names() const;

  // Lookups by full id or unique prefix; throw ENOENT ("pod sandbox \"x\" not found").
  SandboxPtr sandbox(const std::string& id_or_prefix) const;
  ContainerPtr container(const std::string& id_or_prefix) const;
  SandboxPtr find_sandbox(const std::string& id_or_prefix) const;     // nullptr when absent
  ContainerPtr find_container(const std::string& id_or_prefix) const;
  std::vector<SandboxPtr> sandboxes() const;
  std::vector<ContainerPtr> containers() const;
  std::vector<ContainerPtr> containers_of(const std::string& sandbox_id) const;

  // Adds a new object to the index, reserving its name (EEXIST naming the holder) and
  // writing its record (phase creating).
  void add(const SandboxPtr& s);
  void add(const ContainerPtr& c);
  // Drops the object from the index (freeing its name) and its record.
  void drop(const SandboxPtr& s);
  void drop(const ContainerPtr& c);
  // Writes the current record (takes mu; nothing once the object was dropped).
  void persist(const Sandbox& s);
  void persist(const Container& c);

  // Shared operations (callers hold the object's op lock).
  void stop_container(Container& c, int64_t timeout_s);   // idempotent
  void remove_container(const ContainerPtr& c);           // stops first (force)
  // Idempotent. best_effort: every step is tried and failures are logged (the pod is
  // going away); otherwise the first failure is thrown (a CNI DEL that fails keeps the
  // netns so that the kubelet's retry can DEL again).
  void stop_sandbox(Sandbox& s, bool best_effort = false);
  void remove_sandbox(const SandboxPtr& s);               // stops first

  // Undo helpers also used by recovery.
  void release_sandbox_resources(Sandbox& s, bool best_effort);  // pause, network, pins, shm
  void release_container_resources(const ContainerRecord& rec);  // both below
  void release_runtime_state(const ContainerRecord& rec);    // runtime's state, shim files, exit file
  void release_container_files(const ContainerRecord& rec);  // rootfs mount, snapshot, bundle
  // Waits for queued file cleanup (tests and shutdown).
  void drain_cleanup() { janitor_.drain(); }

  // Events for GetContainerEvents.
  void emit(runtime::v1::ContainerEventType type, const std::string& container_id, const std::string& sandbox_id);

  // Shutdown has begun: long-lived calls (event streams, stream sessions) end.
  void begin_shutdown() {
    stopping_ = true;
    streams_.shutdown();
  }

  // The stream server of Exec, Attach and PortForward (started at the first of them).
  stream::Server& streams() { return streams_; }
  bool stopping() const { return stopping_; }
  // For the service watchdog: the index of pods and containers can be read within
  // `within` (no call holds it forever).
  bool responsive(std::chrono::milliseconds within) const;

  // The exit file of `id` appeared (or "" after lost inotify events: rescan).
  void on_exit(const std::string& id);

  // UpdateRuntimeConfig's pod CIDR (reported in verbose Status).
  void set_pod_cidr(std::string cidr) {
    std::lock_guard lk(misc_mu_);
    pod_cidr_ = std::move(cidr);
  }
  std::string pod_cidr() const {
    std::lock_guard lk(misc_mu_);
    return pod_cidr_;
  }

  // CPU rate from the previous sample of the same cgroup (CRI usage_nano_cores).
  std::optional<uint64_t> nano_cores(const std::string& key, int64_t ts_ns, uint64_t usage_ns);
  void forget_cpu_sample(const std::string& key);

  // What a pod contributes to its containers' specs (paths of its pins and files).
  // The result points into `rec`: keep it alive while the context is used.
  SandboxContext context_of(const SandboxRecord& rec) const;

  // Paths.
  std::string sandbox_dir(const std::string& id) const;
  std::string bundle_dir(const std::string& id) const;
  std::string pause_rootfs() const;

  // CRI views, filled from the in-memory records.
  void fill(const Container& c, runtime::v1::Container* out) const;
  void fill(const Container& c, runtime::v1::ContainerStatus* out) const;
  void fill(const Sandbox& s, runtime::v1::PodSandbox* out) const;
  void fill(const Sandbox& s, runtime::v1::PodSandboxStatus* out) const;

private:
  void apply_exit(Container& c, const ExitRecord& e, const char* reason_if_unknown = nullptr);
  void recover_sandbox(const SandboxPtr& s);
  void recover_container(const ContainerPtr& c);
  void remove_orphans();
  void wait_for_exit(Container& c, std::chrono::milliseconds limit);
  void stop_pause(Sandbox& s);

  Config cfg_;
  image::ImageStore& images_;
  std::unique_ptr<RecordStore> records_;
  PodNetwork network_;
  EventBus events_;
  ShimSettings shim_;
  SpecOptions spec_opts_;
  std::map<std::string, OciRuntime> handlers_;
  std::unique_ptr<ExitWatcher> exits_;
  Janitor janitor_;
  stream::Server streams_;

  std::atomic<bool> stopping_{false};
  mutable std::mutex misc_mu_;
  std::string pod_cidr_;
  std::unordered_map<std::string, std::pair<int64_t, uint64_t>> cpu_samples_;  // guarded by misc_mu_

  mutable std::shared_mutex index_mu_;
  std::unordered_map<std::string, SandboxPtr> sandboxes_;
  std::unordered_map<std::string, ContainerPtr> containers_;
  std::unordered_map<std::string, std::string> names_;  // reserved name -> id (sandboxes and containers)
};

// A helper program (berth-shim, berth-pause, a runtime): an absolute path as configured,
// else next to berthd, in <prefix>/libexec/berth, then in PATH. `what` names the setting.
std::string locate_helper(const std::string& name, const char* what);

// 64 random hex digits (an id in the kubelet's and containerd's format).
std::string new_id();
int64_t now_ns();

} // namespace berth::cri
