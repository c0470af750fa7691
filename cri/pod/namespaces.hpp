// A pod's network, IPC and UTS namespaces, pinned by bind mounts of their nsfs files
// (as CRI-O's pinns does), so a pod needs no process to keep them: containers join
// them by path. A short-lived thread of berthd unshares them (allowed in a
// multi-threaded process for these three types), sets the hostname, brings up lo,
// writes the pod's sysctls from inside, bind-mounts /proc/thread-self/ns/<type> onto
// the pin files and ends.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace berth::cri {

struct PinRequest {
  std::string dir;       // created (0711) if missing; pins are dir/net, dir/ipc, dir/uts
  bool net = false, ipc = false, uts = false;  // which namespaces are new (false: the node's)
  std::string hostname;  // set in the new UTS namespace (ignored without uts)
  // Sysctls written inside the new namespaces: names with '.' or '/' separators
  // ("net.ipv4.ip_unprivileged_port_start", "kernel.shm_rmid_forced"). Only namespaced
  // ones are accepted, and only for namespaces that are new (a net.* sysctl for a pod on
  // the node's network is an error naming it, as the kubelet would refuse it).
  std::vector<std::pair<std::string, std::string>> sysctls;
};

struct PinnedNamespaces {
  std::string net, ipc, uts;  // pin paths; empty where the node's namespace is used
};

// All or nothing: on failure every pin made is removed again. Errors: EINVAL for a bad
// sysctl name or value (naming it), else the failing step and path.
PinnedNamespaces pin_namespaces(const PinRequest& req);

// Unmounts (MNT_DETACH) and removes the pins under dir (net, ipc, uts) and dir itself
// when empty. Idempotent: missing pins are fine.
void unpin_namespaces(const std::string& dir);

// True when path is a pin made by pin_namespaces (an nsfs mount point).
bool is_pinned_namespace(const std::string& path);

// Validates a sysctl name and maps it to its /proc/sys path relative part
// ("net.ipv4.conf.all.forwarding" -> "net/ipv4/conf/all/forwarding"; '/' separators
// keep dots inside components, as the kubelet accepts). Returns the namespace type it
// belongs to: "net", "ipc" or "uts"; throws EINVAL for anything not namespaced.
std::pair<std::string, std::string> sysctl_path_and_namespace(const std::string& name);

} // namespace berth::cri
