// The files a pod's containers share: /etc/hostname, /etc/hosts, /etc/resolv.conf
// (from the CRI DNSConfig, or the host's for host-network pods without one, as
// containerd does) and a private /dev/shm (a tmpfs, unless the pod uses the node's IPC).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace berth::cri {

struct SandboxFilesRequest {
  std::string dir;                // the pod's directory (exists); files are created in it
  std::string hostname;           // the pod's hostname (host's when host network and empty)
  bool host_network = false;      // copy the host's /etc/hosts; resolv.conf too without DNS
  bool private_shm = true;        // mount a tmpfs at dir/shm
  uint64_t shm_size = 64 << 20;   // tmpfs size
  std::vector<std::string> dns_servers, dns_searches, dns_options;
  std::string host_resolv_conf = "/etc/resolv.conf";  // overridable for tests
  std::string host_hosts = "/etc/hosts";
};

struct SandboxFiles {
  std::string hostname, hosts, resolv_conf, shm;  // absolute paths; shm empty if not private
};

// Writes hostname, hosts, resolv.conf (atomically) and mounts the shm tmpfs (mode 1777,
// nosuid,nodev,noexec). DNS values are validated (no newlines or NULs, searches at most 32
// entries and 2048 bytes, servers parse as IP addresses): EINVAL naming the field.
// All or nothing.
SandboxFiles prepare_sandbox_files(const SandboxFilesRequest& req);

// Unmounts the shm tmpfs (if mounted). Idempotent. The files themselves go with the
// pod's directory.
void release_sandbox_shm(const std::string& dir);

} // namespace berth::cri
