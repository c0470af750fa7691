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
// etc_hosts: the file from write_etc_hosts, mounted at /etc/hosts unless the container mounts one.
// A subPath is resolved inside its volume without following symlinks (missing directories
// are made) and bind-mounted from its fd onto
// <rootDir>/pods/<uid>/volume-subpaths/<volume>/<container>/<index>, which the runtime gets;
// that bind replaces the one of the container's previous instance. Throws berth::Error
// naming the container, the subPath and the volume.
std::vector<cri::Mount> container_mounts(const Config& cfg, const Pod& pod, const Container& c,
                                        const std::string& etc_hosts = "");
// Unmounts the subPath binds of container c (its creation failed; teardown_volumes
// unmounts them all).
void release_container_mounts(const Config& cfg, const Pod& pod, const Container& c);
// The kubelet-managed /etc/hosts of a pod on its own network: localhost entries and
// "<podIP> <hostname>[.<subdomain>.<namespace>.svc.<clusterDomain>] <hostname>".
// Written to <rootDir>/pods/<uid>/etc-hosts; returns its path ("" for hostNetwork pods,
// which see the node's file as the runtime sets it up).
std::string write_etc_hosts(const Config& cfg, const Pod& pod, const std::string& pod_ip);
std::string etc_hosts_content(const Config& cfg, const Pod& pod, const std::string& pod_ip);
// Unmounts everything mounted below <rootDir>/pods/<uid> (tmpfs emptyDirs, subPath binds),
// then removes that directory: without following symlinks, without recursion, refusing
// to enter a mount that could not be detached (so a hostPath bound there is never
// touched). A UID that is not valid (see valid_pod_uid) removes nothing and throws.
void teardown_volumes(const Config& cfg, const std::string& uid);

std::string pod_dir_path(const Config& cfg, const std::string& uid);
std::string empty_dir_path(const Config& cfg, const std::string& uid, const std::string& volume);

} // namespace berth::agent
