#include "agent/lib/status.hpp"

#include <time.h>

#include <fmt/format.h>

namespace berth::agent {

std::string k8s_time(int64_t unix_nanos) {
  time_t secs = static_cast<time_t>(unix_nanos / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string k8s_time_now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return k8s_time(static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec);
}

nlohmann::json to_json(const ContainerState& s) {
  nlohmann::json inner = nlohmann::json::object();
  switch (s.kind) {
  case ContainerState::Kind::none: return nlohmann::json::object();
  case ContainerState::Kind::waiting:
    if (!s.reason.empty()) inner["reason"] = s.reason;
    if (!s.message.empty()) inner["message"] = s.message;
    return {{"waiting", inner}};
  case ContainerState::Kind::running:
    inner["startedAt"] = s.started_at;
    return {{"running", inner}};
  case ContainerState::Kind::terminated:
    inner["exitCode"] = s.exit_code;
    if (!s.reason.empty()) inner["reason"] = s.reason;
    if (!s.message.empty()) inner["message"] = s.message;
    if (!s.started_at.empty()) inner["startedAt"] = s.started_at;
    if (!s.finished_at.empty()) inner["finishedAt"] = s.finished_at;
    if (!s.container_id.empty()) inner["containerID"] = s.container_id;
    return {{"terminated", inner}};
  }
  return nlohmann::json::object();
}

nlohmann::json to_json(const ContainerStatus& s) {
  nlohmann::json j = {{"name", s.name},
                      {"state", to_json(s.state)},
                      {"lastState", to_json(s.last_state)},
                      {"ready", s.ready},
                      {"restartCount", s.restart_count},
                      {"image", s.image},
                      {"imageID", s.image_id}};
  if (!s.container_id.empty()) j["containerID"] = s.container_id;
  if (s.started) j["started"] = *s.started;
  return j;
}

nlohmann::json to_json(const PodStatus& s) {
  nlohmann::json j = {{"phase", s.phase}};
  auto conds = nlohmann::json::array();
  for (auto& c : s.conditions) {
    nlohmann::json cj = {{"type", c.type}, {"status", c.status ? "True" : "False"}, {"lastProbeTime", nullptr},
                         {"lastTransitionTime", c.last_transition_time}};
    if (!c.reason.empty()) cj["reason"] = c.reason;
    if (!c.message.empty()) cj["message"] = c.message;
    conds.push_back(cj);
  }
  j["conditions"] = conds;
  if (!s.reason.empty()) j["reason"] = s.reason;
  if (!s.message.empty()) j["message"] = s.message;
  if (!s.host_ip.empty()) {
    j["hostIP"] = s.host_ip;
    j["hostIPs"] = nlohmann::json::array({{{"ip", s.host_ip}}});
  }
  if (!s.pod_ip.empty()) {
    j["podIP"] = s.pod_ip;
    j["podIPs"] = nlohmann::json::array({{{"ip", s.pod_ip}}});
  }
  if (!s.start_time.empty()) j["startTime"] = s.start_time;
  if (!s.qos_class.empty()) j["qosClass"] = s.qos_class;
  if (!s.init_container_statuses.empty()) {
    auto arr = nlohmann::json::array();
    for (auto& c : s.init_container_statuses) arr.push_back(to_json(c));
    j["initContainerStatuses"] = arr;
  }
  auto arr = nlohmann::json::array();
  for (auto& c : s.container_statuses) arr.push_back(to_json(c));
  j["containerStatuses"] = arr;
  return j;
}

Healthz evaluate_health(const RuntimeHealth& h, RuntimeHealth::Clock::time_point now,
                        std::chrono::milliseconds relist_threshold, bool verbose) {
  std::vector<std::pair<std::string, std::string>> checks; // name, "" or why it failed
  checks.emplace_back("ping", "");
  // runtime: reachable (the last relist worked) and RuntimeReady.
  std::string runtime;
  if (!h.relist_ok)
    runtime = fmt::format("runtime {} unavailable: {}", h.endpoint,
                          h.relist_error.empty() ? "not contacted yet" : h.relist_error);
  else if (!h.status_ok)
    runtime = fmt::format("runtime {} Status: {}", h.endpoint, h.status_error.empty() ? "not answered yet" : h.status_error);
  auto condition = [&](const char* type) -> std::string {
    for (auto& c : h.conditions)
      if (c.type == type) {
        if (c.status) return "";
        return fmt::format("{} is false: {}{}{}", type, c.reason, c.message.empty() ? "" : ": ", c.message);
      }
    return fmt::format("the runtime reports no {} condition", type);
  };
  if (runtime.empty()) runtime = condition("RuntimeReady");
  checks.emplace_back("runtime", runtime);
  checks.emplace_back("network", h.relist_ok && h.status_ok ? condition("NetworkReady") : "runtime status unknown");
  // syncloop: the relist keeps succeeding (as the kubelet's PLEG check).
  std::string relist;
  if (!h.last_relist_ok) relist = "no successful relist of the runtime yet";
  else if (auto age = now - *h.last_relist_ok; age > relist_threshold)
    relist = fmt::format("last successful relist {}s ago (threshold {}s)",
                         std::chrono::duration_cast<std::chrono::seconds>(age).count(),
                         std::chrono::duration_cast<std::chrono::seconds>(relist_threshold).count());
  checks.emplace_back("syncloop", relist);
  Healthz out;
  out.ok = true;
  for (auto& [name, why] : checks) out.ok &= why.empty();
  if (out.ok && !verbose) {
    out.body = "ok";
    return out;
  }
  for (auto& [name, why] : checks)
    out.body += why.empty() ? fmt::format("[+]{} ok\n", name) : fmt::format("[-]{} failed: {}\n", name, why);
  out.body += out.ok ? "healthz check passed\n" : "healthz check failed\n";
  return out;
}

void StatusStore::set_runtime_health(RuntimeHealth h) {
  std::lock_guard lock(mu_);
  health_ = std::move(h);
}

RuntimeHealth StatusStore::runtime_health() const {
  std::lock_guard lock(mu_);
  return health_;
}

Healthz StatusStore::healthz(bool verbose) const {
  std::lock_guard lock(mu_);
  return evaluate_health(health_, RuntimeHealth::Clock::now(), relist_threshold_, verbose);
}

void StatusStore::set_pod(const std::string& uid, nlohmann::json pod) {
  std::lock_guard lock(mu_);
  auto& slot = pods_[uid];
  // Workers publish after every sync; observers hear of real changes only.
  if (slot == pod) return;
  slot = std::move(pod);
  if (observer_) observer_->pod_changed(uid, slot);
}

void StatusStore::remove_pod(const std::string& uid) {
  std::lock_guard lock(mu_);
  auto it = pods_.find(uid);
  if (it == pods_.end()) return;
  if (observer_) observer_->pod_removed(uid, it->second);
  pods_.erase(it);
}

void StatusStore::record_event(const EventInfo& e) {
  std::lock_guard lock(mu_);
  if (observer_) observer_->event(e);
}

void StatusStore::set_manifest(const std::string& path, const std::string& uid, const std::string& error) {
  std::lock_guard lock(mu_);
  manifests_[path] = {uid, error};
}

void StatusStore::remove_manifest(const std::string& path) {
  std::lock_guard lock(mu_);
  manifests_.erase(path);
}

StatusStore::Counts StatusStore::counts() const {
  Counts c;
  std::lock_guard lock(mu_);
  for (const auto& [uid, pod] : pods_) {
    auto status = pod.find("status");
    if (status == pod.end() || !status->is_object()) continue;
    if (status->value("phase", "") == "Running") c.running_pods++;
    for (const char* list : {"initContainerStatuses", "containerStatuses"}) {
      auto cs = status->find(list);
      if (cs == status->end() || !cs->is_array()) continue;
      for (const auto& one : *cs) {
        auto st = one.find("state");
        if (st == one.end() || !st->is_object()) continue;
        if (st->contains("running")) c.containers_running++;
        else if (st->contains("terminated")) c.containers_terminated++;
        else if (st->contains("waiting")) c.containers_waiting++;
      }
    }
  }
  c.manifests = manifests_.size();
  for (const auto& [path, m] : manifests_) c.manifest_errors += !m.second.empty();
  return c;
}

std::string StatusStore::pods_json() const {
  std::vector<const nlohmann::json*> items;
  std::lock_guard lock(mu_);
  for (auto& [uid, pod] : pods_) items.push_back(&pod);
  auto key = [](const nlohmann::json* p) {
    return p->at("metadata").value("namespace", "") + "/" + p->at("metadata").value("name", "");
  };
  std::sort(items.begin(), items.end(), [&](auto* a, auto* b) { return key(a) < key(b); });
  nlohmann::json list = {{"kind", "PodList"}, {"apiVersion", "v1"}, {"metadata", nlohmann::json::object()}};
  auto arr = nlohmann::json::array();
  for (auto* p : items) arr.push_back(*p);
  list["items"] = std::move(arr);
  return list.dump();
}

std::string StatusStore::manifests_json() const {
  std::lock_guard lock(mu_);
  auto arr = nlohmann::json::array();
  for (auto& [path, m] : manifests_) {
    nlohmann::json e = {{"path", path}};
    if (m.second.empty()) e["podUID"] = m.first;
    else e["error"] = m.second;
    arr.push_back(e);
  }
  return nlohmann::json{{"manifests", arr}}.dump();
}

std::string StatusStore::pod_json(const std::string& ns, const std::string& name) const {
  std::lock_guard lock(mu_);
  for (auto& [uid, pod] : pods_) {
    auto& meta = pod.at("metadata");
    if (meta.value("namespace", "") == ns && meta.value("name", "") == name) return pod.dump();
  }
  return "";
}

} // namespace berth::agent
