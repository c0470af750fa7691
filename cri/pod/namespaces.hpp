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
  std::string dir;       // absolute; created (0711) if missing; pins are dir/net, dir/ipc, dir/uts
  bool net = false, ipc = false, uts = false;  // which namespaces are new (false: the node's)
  // Set in the new UTS namespace (ignored without uts; empty: the node's name is kept).
  // Checked by validate_pod_hostname.
  std::string hostname;
  // Sysctls written inside the new namespaces: names with '.' or '/' separators
  // ("net.ipv4.ip_unprivileged_port_start", "kernel.shm_rmid_forced"). Only namespaced
  // ones are accepted, and only for namespaces that are new (a net.* sysctl for a pod on
  // the node's network is an error naming it, as the kubelet would refuse it). Values:
  // 1..4095 bytes, no control characters but tab (no newline, no NUL).
  std::vector<std::pair<std::string, std::string>> sysctls;
};

struct PinnedNamespaces {
  std::string net, ipc, uts;  // pin paths; empty where the node's namespace is used
};

// All or nothing: on failure every pin made is removed again (and dir, if this call made
// it). Errors: EINVAL for a bad hostname, sysctl name or value, naming it — also when the
// kernel refuses a sysctl in the new namespace (missing there, read-only there, or a value
// it rejects); EEXIST when a namespace is already pinned at a pin path (never replaced);
// else the failing step and path. With no namespace requested nothing is made and every
// path is empty.
PinnedNamespaces pin_namespaces(const PinRequest& req);

// Unmounts (MNT_DETACH) and removes the pins under dir (net, ipc, uts) and dir itself
// when empty. Idempotent: missing pins are fine. Only nsfs mounts are unmounted and only
// empty files (what a pin leaves) removed: anything else at a pin path stays (EINVAL).
// dir must be absolute.
void unpin_namespaces(const std::string& dir);

// True when path is a pin made by pin_namespaces (an nsfs mount point).
bool is_pinned_namespace(const std::string& path);

// Validates a sysctl name and maps it to its /proc/sys path relative part
// ("net.ipv4.conf.all.forwarding" -> "net/ipv4/conf/all/forwarding"; '/' separators
// keep dots inside components, as the kubelet accepts). Returns the namespace type it
// belongs to: "net", "ipc" or "uts"; throws EINVAL for anything not namespaced.
// The kubelet's rules: kernel.sem, kernel.shm*, kernel.msg*, fs.mqueue.* are "ipc",
// net.* is "net" (but a few node-only ones such as net.core.rmem_max); kernel.domainname
// is "uts" (kernel.hostname is refused: it is the pod's hostname). Components are
// [A-Za-z0-9_@+-] with inner dots ("eno2.100"): no "..", no empty component, at most 256
// bytes in all.
std::pair<std::string, std::string> sysctl_path_and_namespace(const std::string& name);

// A pod hostname as pin_namespaces and prepare_sandbox_files take it: at most 64 bytes of
// [A-Za-z0-9._-] (empty is fine: the node's name). EINVAL naming the hostname otherwise.
void validate_pod_hostname(const std::string& hostname);

} // namespace berth::cri
