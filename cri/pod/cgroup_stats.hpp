// Resource usage of containers and pods for ContainerStats, PodSandboxStats and the
// CRI metrics calls: read from the cgroup v2 hierarchy (where berth places containers:
// /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host) and from the pod's
// network namespace.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cri/pod/oci_spec.hpp"

namespace berth::cri {

// The directory of an OCI cgroupsPath on the host's cgroup v2 hierarchy, as berth's
// drivers (and runc's) place it, as an absolute path under cgroup2_mount():
// cgroupfs: an absolute path is cleaned ("." dropped, ".." never climbs above the root);
// a relative one goes under the parent of the runtime's own cgroup, which it inherits
// from berthd (this process's "0::" line of /proc/self/cgroup), as runc does.
// systemd: "slice:prefix:name" expands the slice ("a-b-c.slice" ->
// "/a.slice/a-b.slice/a-b-c.slice", "-.slice" the root, "" system.slice) and appends
// "prefix-name.scope" ("name.scope" without prefix; a name ending in ".slice" is the unit
// itself, as runc). EINVAL for a malformed path; "" when the host has no cgroup v2
// hierarchy.
std::string cgroup_dir(CgroupDriver driver, const std::string& cgroups_path);
// A pod's cgroup parent (cgroupfs path or systemd slice name) as a directory, by the same
// rules; "" for an empty parent (the pod has no cgroup of its own) or no hierarchy.
std::string cgroup_parent_dir(CgroupDriver driver, const std::string& parent);
// The mount point of the cgroup v2 hierarchy ("/sys/fs/cgroup" or
// "/sys/fs/cgroup/unified"); empty when there is none.
const std::string& cgroup2_mount();

struct CgroupUsage {
  int64_t timestamp_ns = 0;
  std::optional<uint64_t> cpu_usage_ns;       // cpu.stat usage_usec * 1000
  std::optional<uint64_t> cpu_user_ns, cpu_system_ns;
  std::optional<uint64_t> memory_usage_bytes; // memory.current
  std::optional<uint64_t> memory_working_set_bytes;  // current - inactive_file (>= 0)
  std::optional<uint64_t> memory_rss_bytes;   // memory.stat anon
  std::optional<uint64_t> memory_available_bytes;    // memory.max - working set, when limited
  std::optional<uint64_t> page_faults, major_page_faults;  // memory.stat pgfault, pgmajfault
  std::optional<uint64_t> swap_usage_bytes, swap_available_bytes;
  std::optional<uint64_t> process_count;      // pids.current, else cgroup.procs lines
  std::optional<uint64_t> oom_events;         // memory.events oom_kill
};

// Reads what the cgroup offers (files a host lacks stay nullopt; a hybrid host's v2
// tree has cpu.stat but no memory files). Sums over the subtree as the kernel does
// (process_count from cgroup.procs counts the whole subtree too). A file that vanishes
// while it is read (the cgroup is being removed) stays nullopt. nullopt when the
// directory does not exist.
std::optional<CgroupUsage> read_cgroup_usage(const std::string& dir);

struct InterfaceUsage {
  std::string name;
  uint64_t rx_bytes = 0, rx_errors = 0, tx_bytes = 0, tx_errors = 0;
};
// Counters of every interface but lo in the network namespace pinned at netns_path,
// read from a short-lived thread that joins it (/proc/thread-self/net/dev); the calling
// thread never changes namespace. Empty when the pin is gone (no file, or no longer an
// nsfs mount).
std::vector<InterfaceUsage> read_netns_usage(const std::string& netns_path);

} // namespace berth::cri
