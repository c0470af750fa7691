// The pod's cgroup, as the kubelet's pod container manager makes it: the parent every
// container of the pod runs under (kubepods/<qos>/pod<uid>, or the systemd slice
// kubepods-<qos>-pod<uid>.slice), made before the sandbox with the pod's summed limits,
// and removed once the pod is gone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/lib/config.hpp"
#include "agent/lib/pod.hpp"

namespace berth::agent {

// The kubelet's ResourceConfigForPod: limits only when every container has one (the
// larger of the containers' sum and the largest init container), shares from requests.
struct PodCgroupResources {
  std::optional<int64_t> memory_max;    // bytes
  std::optional<int64_t> cpu_quota_us;  // per cpu_period_us
  int64_t cpu_period_us = 100000;
  uint64_t cpu_shares = 2;              // cgroup v1 units; cpu.weight is derived
};
PodCgroupResources pod_cgroup_resources(const PodSpec& spec);
uint64_t cpu_weight_from_shares(uint64_t shares);  // runc's conversion (v2 cpu.weight)

// The CRI cgroup_parent: "/kubepods/burstable/pod<uid>" under cgroupRoot, or with the
// systemd driver the slice name "kubepods-burstable-pod<uid with '-' as '_'>.slice".
std::string pod_cgroup_parent(const Config& cfg, const Pod& pod);
// The cgroup path a systemd slice name stands for: "a-b.slice" -> "/a.slice/a-b.slice".
std::string slice_path(const std::string& slice);

// Makes the pod's cgroup with its limits. systemd: a transient slice through
// berth-systemd. cgroupfs: on a pure cgroup v2 host, the directories with the
// controllers enabled and the limits written; elsewhere (v1, hybrid) the runtime makes
// the directories with the first container and the pod has no cgroup-level limit.
// Throws berth::Error naming the step.
void ensure_pod_cgroup(const Config& cfg, const Pod& pod);

// Removes every cgroup berthlet or the runtime left for the pod's UID (any QoS class,
// every mounted hierarchy; the systemd slice is stopped). Errors are logged.
void remove_pod_cgroups(const Config& cfg, const std::string& uid);

} // namespace berth::agent
