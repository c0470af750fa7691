// The systemd cgroup driver's pure parts: runc's slice:prefix:name rules and the unit
// properties for linux.resources. The D-Bus work happens in the berth-systemd helper
// (runtime/systemd/), because berth is static and libsystemd has no static library.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/json.hpp"

namespace berth::cgroupv2 {

struct SystemdScope {
  std::string slice;  // "system.slice"
  std::string unit;   // "libpod-<id>.scope"
  std::string cgroup; // "/machine.slice/libpod-<id>.scope", relative to the hierarchy root
};

// "machine.slice:libpod:abc" → slice machine.slice, unit libpod-abc.scope; "" → the
// default system.slice and berth-<id>.scope (runc's rules, its prefix being "runc").
SystemdScope systemd_scope_for(const std::string& cgroups_path, const std::string& id);
// "a-b-c.slice" → "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" → "/".
std::string systemd_expand_slice(const std::string& slice);
// "0-3,8" → the little-endian byte mask systemd takes for AllowedCPUs, as hex: "0f01".
std::string cpu_list_to_mask_hex(const std::string& list);

// The unit properties systemd knows, as berth-systemd's NAME=SIGNATURE:VALUE arguments
// ("MemoryMax=t:1073741824", "AllowedCPUs=ay:03", "TasksMax=t:infinity").
std::vector<std::string> systemd_resource_properties(const json& resources);
// berth-systemd start-scope's arguments (after the program name), with either --pid or --hold.
std::vector<std::string> systemd_start_arguments(const SystemdScope& scope, const std::string& id, pid_t pid,
                                                 const json& resources);

} // namespace berth::cgroupv2
