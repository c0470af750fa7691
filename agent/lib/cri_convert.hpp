// Pod spec -> CRI configs with the kubelet's conversions: labels and annotations
// (io.kubernetes.*), log paths, cgroup parent by QoS class, cpu shares/quota/period,
// memory limit, OOM score, namespaces, security context, DNS, host ports.
#pragma once

#include <string>

#include "agent/lib/config.hpp"
#include "agent/lib/cri_client.hpp"
#include "agent/lib/pod.hpp"

namespace berth::agent {

// Label and annotation keys the kubelet sets; adoption after a restart relies on them.
inline constexpr const char* kPodNameLabel = "io.kubernetes.pod.name";
inline constexpr const char* kPodNamespaceLabel = "io.kubernetes.pod.namespace";
inline constexpr const char* kPodUidLabel = "io.kubernetes.pod.uid";
inline constexpr const char* kContainerNameLabel = "io.kubernetes.container.name";
inline constexpr const char* kContainerHashAnnotation = "io.kubernetes.container.hash";
inline constexpr const char* kRestartCountAnnotation = "io.kubernetes.container.restartCount";
inline constexpr const char* kGracePeriodAnnotation = "io.kubernetes.pod.terminationGracePeriod";
inline constexpr const char* kConfigSourceAnnotation = "kubernetes.io/config.source";

struct CpuConversion {
  int64_t shares = 0, quota = 0, period = 0;
};
// shares = milliCPU*1024/1000 (min 2; request, or the limit when only that is set),
// quota = milliCPU*period/1000 with period 100000 (min 1000) from the limit.
CpuConversion convert_cpu(const Resources& r);
// The kubelet's OOM score: Guaranteed -997, BestEffort 1000, Burstable by memory request.
int64_t oom_score_adj(const std::string& qos, const Resources& r, int64_t memory_capacity);

// <podLogsDir>/<namespace>_<name>_<uid>
std::string pod_log_dir(const Config& cfg, const Pod& pod);

cri::PodSandboxConfig sandbox_config(const Config& cfg, const Pod& pod, uint32_t attempt);

struct PodRuntimeInfo {
  std::string pod_ip, host_ip, node_name;
};
// mounts: already resolved host paths, one per volumeMount (see volumes.hpp).
cri::ContainerConfig container_config(const Config& cfg, const Pod& pod, const Container& c, uint32_t attempt,
                                      const PodRuntimeInfo& info, const std::vector<cri::Mount>& mounts);

// $(VAR) references in command/args/env values, as the kubelet expands them.
std::string expand_vars(const std::string& in, const std::vector<std::pair<std::string, std::string>>& env);

} // namespace berth::agent
