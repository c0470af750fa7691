// Computes a pod's v1 status from what the runtime reports (the pod's containers,
// newest first per name) and what the worker decided (waiting reasons, probe results),
// following the kubelet's getPhase and condition rules. Pure: unit-tested directly.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/lib/cri_client.hpp"
#include "agent/lib/pod.hpp"
#include "agent/lib/status.hpp"

namespace berth::agent {

struct ContainerInstance {
  std::string id;
  uint32_t attempt = 0;
  cri::ContainerStatus status; // state, times, exit code, image ref
};

struct Waiting {
  std::string reason, message;
};

struct PodView {
  bool sandbox_ready = false;
  std::string pod_ip, host_ip;
  int64_t sandbox_created_ns = 0;
  std::map<std::string, std::vector<ContainerInstance>> instances; // by name, newest first
  std::map<std::string, Waiting> waiting;        // reasons decided this sync
  std::map<std::string, bool> ready, started;    // probe verdicts of running containers
};

// Whether a container that exited with this code is restarted under the policy.
bool should_restart(const std::string& restart_policy, int exit_code);

PodStatus compute_pod_status(const Pod& pod, const PodView& view, const std::string& runtime_name,
                             const PodStatus* previous);

} // namespace berth::agent
