// The files a pod's containers share: /etc/hostname, /etc/hosts, /etc/resolv.conf
// (from the CRI DNSConfig, or the host's when it has none, as containerd does) and a
// private /dev/shm (a tmpfs, unless the pod uses the node's IPC).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace berth::cri {

struct SandboxFilesRequest {
  std::string dir;                // the pod's directory (exists); files are created in it
  std::string hostname;           // the pod's hostname (the node's when empty, as containerd)
  // hosts: a copy of the host's /etc/hosts with host network; else localhost lines only
  // (127.0.0.1/::1 localhost, ip6-* names), the node's names do not belong in the pod.
  bool host_network = false;
  bool private_shm = true;        // mount a tmpfs at dir/shm
  uint64_t shm_size = 64 << 20;   // tmpfs size (0 is refused: a tmpfs without a limit)
  // resolv.conf as containerd's parseDNSOptions writes it ("search ...", "nameserver ..."
  // lines, "options ..."); all empty: a copy of the host's resolv.conf, any pod.
  std::vector<std::string> dns_servers, dns_searches, dns_options;
  std::string host_resolv_conf = "/etc/resolv.conf";  // overridable for tests
  std::string host_hosts = "/etc/hosts";
};

struct SandboxFiles {
  std::string hostname, hosts, resolv_conf, shm;  // absolute paths; shm empty if not private
};

// Writes hostname, hosts, resolv.conf (atomically) and mounts the shm tmpfs (mode 1777,
// nosuid,nodev,noexec). DNS values are validated (no newlines or NULs, searches at most 32
// entries and 2048 bytes, servers parse as IP addresses): EINVAL naming the field
// ("dns_config.servers[2]: ...", "dns_config.searches: 33 entries, at most 32").
// Servers: IPv4 or IPv6 (with an optional %zone), at most 32; searches: domain names of
// [A-Za-z0-9._-]; options: at most 64 of [A-Za-z0-9._:-]. The hostname as
// validate_pod_hostname (namespaces.hpp). All or nothing: on failure the files written
// are removed and nothing stays mounted.
SandboxFiles prepare_sandbox_files(const SandboxFilesRequest& req);

// Unmounts the shm tmpfs (if mounted). Idempotent. The files themselves go with the
// pod's directory.
void release_sandbox_shm(const std::string& dir);

} // namespace berth::cri
