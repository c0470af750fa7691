// Pod volumes on the node: emptyDir under <rootDir>/pods/<uid>/volumes (a tmpfs of
// sizeLimit for medium Memory), hostPath checked or created as its type asks, and
// the volumeMounts turned into CRI bind mounts (subPath resolved inside the volume).
#pragma once

#include <string>
#include <vector>

#include "agent/lib/config.hpp"
#include "agent/lib/cri_client.hpp"
#include "agent/lib/pod.hpp"

namespace berth::agent {

// Idempotent: creates what is missing. Throws berth::Error naming the volume.
void setup_volumes(const Config& cfg, const Pod& pod);
std::vector<cri::Mount> container_mounts(const Config& cfg, const Pod& pod, const Container& c);
// Unmounts the pod's tmpfs volumes and removes <rootDir>/pods/<uid>. Never follows into
// hostPath volumes (they are bind-mounted by the runtime, not here).
void teardown_volumes(const Config& cfg, const std::string& uid);

// Removes the (empty) pod<uid> cgroup directories under <cgroupRoot>/kubepods in every
// mounted hierarchy; the runtime removes the containers' own cgroups.
void remove_pod_cgroups(const Config& cfg, const std::string& uid);

std::string empty_dir_path(const Config& cfg, const std::string& uid, const std::string& volume);

} // namespace berth::agent
