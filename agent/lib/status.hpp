// Pod status as the kubelet reports it (v1.PodStatus), and the store the status
// endpoint reads: pods by UID and manifest errors by file.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::agent {

struct ContainerState {
  enum class Kind { none, waiting, running, terminated } kind = Kind::none;
  std::string reason, message;
  int exit_code = 0;
  std::string started_at, finished_at; // RFC 3339
  std::string container_id;            // terminated only
};

struct ContainerStatus {
  std::string name;
  ContainerState state, last_state;
  bool ready = false;
  std::optional<bool> started; // regular containers only
  int restart_count = 0;
  std::string image, image_id, container_id; // container_id: "<runtime>://<id>"
};

struct PodCondition {
  std::string type;
  bool status = false;
  std::string reason, message, last_transition_time;
};

struct PodStatus {
  std::string phase = "Pending";
  std::string reason, message;
  std::vector<PodCondition> conditions;
  std::string host_ip, pod_ip;
  std::string start_time;
  std::string qos_class;
  std::vector<ContainerStatus> init_container_statuses, container_statuses;
};

nlohmann::json to_json(const ContainerState& s);
nlohmann::json to_json(const ContainerStatus& s);
nlohmann::json to_json(const PodStatus& s);

// RFC 3339 with seconds, as Kubernetes prints metav1.Time; from unix nanoseconds.
std::string k8s_time(int64_t unix_nanos);
std::string k8s_time_now();

// The runtime as the event loop last saw it, for /healthz: the relist (ListPodSandbox +
// ListContainers every relist period) and the CRI Status call's conditions.
struct RuntimeHealth {
  using Clock = std::chrono::steady_clock;
  std::string endpoint;
  bool relist_ok = false;          // the last relist succeeded
  std::string relist_error;        // why it did not
  std::optional<Clock::time_point> last_relist_ok;
  bool status_ok = false;          // the last Status call succeeded
  std::string status_error;        // why it did not ("" before the first call)
  struct Condition {
    std::string type, reason, message;
    bool status = false;
  };
  std::vector<Condition> conditions; // as the runtime reported them
};

// /healthz as the kubelet's: every check passes, or 503 with one line per check.
struct Healthz {
  bool ok = false;
  std::string body; // "ok", or "[+]name ok" / "[-]name failed: why" lines and "healthz check failed"
};
Healthz evaluate_health(const RuntimeHealth& h, RuntimeHealth::Clock::time_point now,
                        std::chrono::milliseconds relist_threshold, bool verbose);

// Something berthlet reports (a v1 Event without the bookkeeping): a manifest error,
// a failed probe, a restart, a failed image pull.
struct EventInfo {
  std::string type = "Normal"; // Normal | Warning
  std::string reason, message;
  nlohmann::json involved_object; // {"kind":"Pod","namespace","name","uid"} or {"kind":"Node","name"}
};

// Told of every change the store sees (the status sinks, agent/lib/sinks/hub.hpp). Called
// with the store's lock held, in the order of the changes: it must only enqueue.
class StatusObserver {
public:
  virtual ~StatusObserver() = default;
  virtual void pod_changed(const std::string& uid, const nlohmann::json& pod) = 0;
  virtual void pod_removed(const std::string& uid, const nlohmann::json& last) = 0;
  virtual void event(const EventInfo& e) = 0;
};

// Thread-safe: pod workers write, the HTTP endpoint reads.
class StatusStore {
public:
  // Set before any pod worker starts; the observer outlives the workers.
  void set_observer(StatusObserver* o) {
    std::lock_guard lock(mu_);
    observer_ = o;
  }
  void record_event(const EventInfo& e);

  void set_runtime_health(RuntimeHealth h);
  RuntimeHealth runtime_health() const;
  void set_relist_threshold(std::chrono::milliseconds t) {
    std::lock_guard lock(mu_);
    relist_threshold_ = t;
  }
  Healthz healthz(bool verbose) const;

  void set_pod(const std::string& uid, nlohmann::json pod);
  void remove_pod(const std::string& uid);
  void set_manifest(const std::string& path, const std::string& uid, const std::string& error);
  void remove_manifest(const std::string& path);

  // {"kind":"PodList","apiVersion":"v1","items":[...]} sorted by namespace/name.
  std::string pods_json() const;
  // {"manifests":[{"path","pod"|"error"}]}: what each file became, or why it did not.
  std::string manifests_json() const;
  std::string pod_json(const std::string& ns, const std::string& name) const; // "" if none

  // For /metrics: pods whose phase is Running, containers by state, manifests and errors.
  struct Counts {
    uint64_t running_pods = 0, containers_running = 0, containers_waiting = 0, containers_terminated = 0;
    uint64_t manifests = 0, manifest_errors = 0;
  };
  Counts counts() const;

private:
  mutable std::mutex mu_;
  RuntimeHealth health_;
  std::chrono::milliseconds relist_threshold_{60000};
  StatusObserver* observer_ = nullptr;
  std::map<std::string, nlohmann::json> pods_;
  std::map<std::string, std::pair<std::string, std::string>> manifests_; // path -> (uid, error)
};

} // namespace berth::agent
