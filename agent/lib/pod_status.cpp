#include "agent/lib/pod_status.hpp"

#include <fmt/format.h>

namespace berth::agent {
namespace {

ContainerState terminated_state(const ContainerInstance& inst, const std::string& runtime) {
  ContainerState s;
  s.kind = ContainerState::Kind::terminated;
  s.exit_code = inst.status.exit_code();
  s.reason = inst.status.reason().empty() ? (s.exit_code == 0 ? "Completed" : "Error") : inst.status.reason();
  s.message = inst.status.message();
  if (inst.status.started_at()) s.started_at = k8s_time(inst.status.started_at());
  if (inst.status.finished_at()) s.finished_at = k8s_time(inst.status.finished_at());
  s.container_id = runtime + "://" + inst.id;
  return s;
}

bool is_state(const ContainerInstance& i, cri::ContainerState s) { return i.status.state() == s; }

ContainerStatus container_status(const Container& c, const PodView& v, const std::string& runtime, bool init,
                                 const std::string& default_waiting) {
  ContainerStatus cs;
  cs.name = c.name;
  cs.image = c.image;
  auto it = v.instances.find(c.name);
  const std::vector<ContainerInstance> none;
  const auto& list = it == v.instances.end() ? none : it->second;
  auto waiting = v.waiting.find(c.name);
  if (!init) cs.started = false;
  if (list.empty()) {
    cs.state.kind = ContainerState::Kind::waiting;
    cs.state.reason = waiting != v.waiting.end() ? waiting->second.reason : default_waiting;
    if (waiting != v.waiting.end()) cs.state.message = waiting->second.message;
    return cs;
  }
  const auto& cur = list[0];
  cs.restart_count = static_cast<int>(cur.attempt);
  cs.container_id = runtime + "://" + cur.id;
  cs.image_id = cur.status.image_ref();
  if (list.size() > 1) cs.last_state = terminated_state(list[1], runtime);
  if (is_state(cur, cri::CONTAINER_RUNNING)) {
    cs.state.kind = ContainerState::Kind::running;
    cs.state.started_at = k8s_time(cur.status.started_at());
    if (!init) {
      auto st = v.started.find(c.name);
      cs.started = st == v.started.end() || st->second;
      auto rd = v.ready.find(c.name);
      cs.ready = *cs.started && (rd == v.ready.end() || rd->second);
    }
  } else if (is_state(cur, cri::CONTAINER_EXITED)) {
    if (waiting != v.waiting.end()) {
      // Exited and waiting to restart (CrashLoopBackOff): the exit is the last state.
      cs.state.kind = ContainerState::Kind::waiting;
      cs.state.reason = waiting->second.reason;
      cs.state.message = waiting->second.message;
      cs.last_state = terminated_state(cur, runtime);
    } else {
      cs.state = terminated_state(cur, runtime);
    }
    cs.ready = init && cur.status.exit_code() == 0; // a finished init container counts as ready
  } else {
    cs.state.kind = ContainerState::Kind::waiting;
    cs.state.reason = waiting != v.waiting.end() ? waiting->second.reason : "ContainerCreating";
    if (waiting != v.waiting.end()) cs.state.message = waiting->second.message;
  }
  return cs;
}

void set_condition(PodStatus& st, const PodStatus* prev, const std::string& type, bool status,
                   const std::string& reason = "", const std::string& message = "") {
  PodCondition c{type, status, reason, message, k8s_time_now()};
  if (prev)
    for (auto& p : prev->conditions)
      if (p.type == type && p.status == status) c.last_transition_time = p.last_transition_time;
  st.conditions.push_back(c);
}

std::string names_list(const std::vector<std::string>& names) {
  std::string out = "[";
  for (size_t i = 0; i < names.size(); i++) out += (i ? " " : "") + names[i];
  return out + "]";
}

} // namespace

bool should_restart(const std::string& restart_policy, int exit_code) {
  if (restart_policy == "Always") return true;
  if (restart_policy == "OnFailure") return exit_code != 0;
  return false;
}

PodStatus compute_pod_status(const Pod& pod, const PodView& v, const std::string& runtime, const PodStatus* prev) {
  PodStatus st;
  st.qos_class = qos_class(pod.spec);
  st.host_ip = v.host_ip;
  st.pod_ip = v.sandbox_ready ? v.pod_ip : "";
  st.start_time = prev && !prev->start_time.empty() ? prev->start_time
                  : v.sandbox_created_ns ? k8s_time(v.sandbox_created_ns)
                                         : k8s_time_now();
  const auto& policy = pod.spec.restart_policy;

  // Init containers, in order: the first not finished holds the rest.
  bool init_failed = false;
  std::vector<std::string> incomplete;
  for (auto& c : pod.spec.init_containers) {
    auto cs = container_status(c, v, runtime, true, "PodInitializing");
    bool done = cs.state.kind == ContainerState::Kind::terminated && cs.state.exit_code == 0;
    bool failed = (cs.state.kind == ContainerState::Kind::terminated && cs.state.exit_code != 0) ||
                  (cs.state.kind == ContainerState::Kind::waiting && cs.last_state.kind == ContainerState::Kind::terminated &&
                   cs.last_state.exit_code != 0);
    if (failed && policy == "Never") init_failed = true;
    if (!done) incomplete.push_back(c.name);
    st.init_container_statuses.push_back(cs);
  }
  bool initialized = incomplete.empty();

  int running = 0, waiting = 0, stopped = 0, succeeded = 0;
  std::vector<std::string> unready;
  for (auto& c : pod.spec.containers) {
    auto cs = container_status(c, v, runtime, false, initialized ? "ContainerCreating" : "PodInitializing");
    switch (cs.state.kind) {
    case ContainerState::Kind::running: running++; break;
    case ContainerState::Kind::terminated:
      stopped++;
      if (cs.state.exit_code == 0) succeeded++;
      break;
    default:
      if (cs.last_state.kind == ContainerState::Kind::terminated) stopped++;
      else waiting++;
    }
    if (!cs.ready) unready.push_back(c.name);
    st.container_statuses.push_back(cs);
  }

  // The kubelet's getPhase.
  if (init_failed) st.phase = "Failed";
  else if (!initialized) st.phase = "Pending";
  else if (waiting > 0) st.phase = "Pending";
  else if (running > 0) st.phase = "Running";
  else if (stopped > 0) {
    if (policy == "Always") st.phase = "Running";
    else if (stopped == succeeded) st.phase = "Succeeded";
    else if (policy == "Never") st.phase = "Failed";
    else st.phase = "Running";
  } else st.phase = "Pending";

  bool terminal = st.phase == "Succeeded" || st.phase == "Failed";
  set_condition(st, prev, "PodReadyToStartContainers", v.sandbox_ready);
  if (initialized) set_condition(st, prev, "Initialized", true);
  else set_condition(st, prev, "Initialized", false, "ContainersNotInitialized",
                     "containers with incomplete status: " + names_list(incomplete));
  if (terminal) {
    set_condition(st, prev, "Ready", false, "PodCompleted");
    set_condition(st, prev, "ContainersReady", false, "PodCompleted");
  } else if (unready.empty()) {
    set_condition(st, prev, "Ready", true);
    set_condition(st, prev, "ContainersReady", true);
  } else {
    auto msg = "containers with unready status: " + names_list(unready);
    set_condition(st, prev, "Ready", false, "ContainersNotReady", msg);
    set_condition(st, prev, "ContainersReady", false, "ContainersNotReady", msg);
  }
  set_condition(st, prev, "PodScheduled", true);
  return st;
}

} // namespace berth::agent
