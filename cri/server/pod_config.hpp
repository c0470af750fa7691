// What berthd accepts in a CRI pod or container configuration before it makes anything:
// every request is hostile until checked. Errors are EINVAL naming the field
// ("config.metadata.name: must not be empty").
#pragma once

#include <string>
#include <vector>

#include "api.pb.h"
#include "cri/pod/oci_spec.hpp"
#include "cri/pod/pod_network.hpp"

namespace berth::cri {

struct PodNamespaces {
  bool host_network = false, host_ipc = false, host_pid = false;
  bool shared_pid = false;  // pid mode POD: one PID namespace (with a pause process) for the pod
};
PodNamespaces pod_namespaces(const runtime::v1::PodSandboxConfig& config);

void validate_sandbox_config(const runtime::v1::PodSandboxConfig& config, CgroupDriver driver);
void validate_container_config(const runtime::v1::ContainerConfig& config);

// containerd's name formats: "<name>_<namespace>_<uid>_<attempt>" for sandboxes,
// "<container>_<pod>_<namespace>_<uid>_<attempt>" for containers.
std::string sandbox_name(const runtime::v1::PodSandboxMetadata& m);
std::string container_name(const runtime::v1::ContainerMetadata& c, const runtime::v1::PodSandboxMetadata& pod);

std::vector<PortMappingSpec> port_mappings(const runtime::v1::PodSandboxConfig& config);
PodIdentity pod_identity(const runtime::v1::PodSandboxConfig& config);

} // namespace berth::cri
