// The node's status as a v1 Node (what the kubelet registers and updates): node info,
// capacity and allocatable, the Ready/MemoryPressure/DiskPressure/PIDPressure conditions
// computed from the host, addresses and a heartbeat. Reported to the status sinks every
// nodeStatusUpdateFrequency and when the runtime comes or goes.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/lib/config.hpp"

namespace berth::agent {

// What the conditions are computed from.
struct HostStats {
  int64_t cpus = 0;
  uint64_t memory_total = 0, memory_available = 0;               // bytes (/proc/meminfo)
  uint64_t fs_total = 0, fs_available = 0, inodes_total = 0, inodes_free = 0; // statvfs(rootDir)
  uint64_t pids_used = 0, pid_max = 0;                           // sysinfo procs, kernel.pid_max
};
HostStats read_host_stats(const std::string& root_dir); // fields it cannot read stay 0

// The kubelet's default hard eviction thresholds: memory.available < 100Mi,
// nodefs.available < 10 %, nodefs.inodesFree < 5 %. PIDs: the kubelet has no default
// threshold; berthlet reports PIDPressure when fewer than 10 % of pid_max are free.
struct Pressure {
  bool memory = false, disk = false, pid = false;
};
Pressure evaluate_pressure(const HostStats& s);
constexpr uint64_t kMemoryEvictionThreshold = 100ull << 20;

struct RuntimeInfo {
  std::string name, version; // from the CRI Version call; "" until it answered
  bool ready = false;        // /healthz's checks pass
  std::string not_ready_reason;
};

class NodeStatusBuilder {
public:
  NodeStatusBuilder(const Config& config, std::string host_ip);
  // A v1 Node; the conditions keep their lastTransitionTime until their status changes.
  nlohmann::json build(const HostStats& stats, const RuntimeInfo& runtime, const std::string& now);

private:
  nlohmann::json condition(const std::string& type, bool status, const std::string& reason,
                           const std::string& message, const std::string& now);
  const Config& config_;
  std::string host_ip_, machine_id_, boot_id_, kernel_, os_image_, arch_;
  std::mutex mu_;
  std::map<std::string, std::pair<bool, std::string>> transitions_; // type -> (status, since)
};

} // namespace berth::agent
