// linux.resources → cgroup v2 files, as a plan computed before anything is written.
//
// Planning is pure: it validates every value (bad values are config errors naming the
// field), converts cgroup v1-style OCI values to their v2 form the way runc and crun do,
// and lists the writes plus warnings for what v2 cannot express. Executing the plan
// (cgroup.cpp) decides, per write, whether the host offers the controller and file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/json.hpp"
#include "runtime/lib/cgroup_devices.hpp"

namespace berth::cgroupv2 {

// One write of `value` to a cgroup file. `files` lists alternatives: the first file
// that exists is used (io.bfq.weight before io.weight), with its own value.
struct FileChoice {
  std::string file;
  std::string value;
};

struct CgroupWrite {
  std::string field;      // "linux.resources.memory.limit": named in warnings and errors
  std::string controller; // "memory"; empty for the core cgroup.* files
  std::vector<FileChoice> files;
  bool quiet_if_missing = false; // a derived write ("max" that changes nothing): no warning
  bool retry_after_others = false; // cpu.max.burst: EINVAL may clear once cpu.max is set
};

struct ResourcePlan {
  std::vector<CgroupWrite> writes;
  std::vector<std::string> warnings;        // fields cgroup v2 cannot express
  std::optional<std::vector<DeviceRule>> devices; // linux.resources.devices, when present
  std::vector<std::string> controllers;     // controllers the writes need
  // checkBeforeUpdate: refuse limits at or below the current usage (update only).
  bool check_before_update = false;
  int64_t checked_memory = 0;               // the limits that check compares
  int64_t checked_memory_swap = 0;
  // The memory and cpu.max values after merging with the live ones (for systemd).
  std::optional<std::pair<int64_t, int64_t>> effective_memory; // limit, memory+swap
  std::optional<std::pair<int64_t, uint64_t>> effective_cpu_max; // quota (-1: max), period
};

// What the cgroup holds now; update merges a partial request with it the way runc's
// update merges with the stored config (memory+swap total, the other half of cpu.max).
struct LiveLimits {
  int64_t memory_max = 0;      // -1 for "max", 0 when unknown
  int64_t swap_max = 0;        // -1 for "max", 0 when unknown or no swap accounting
  std::optional<int64_t> cpu_quota;   // -1 for "max"
  std::optional<uint64_t> cpu_period;
};

// `prefix` names the object in messages: "linux.resources" for config.json, "resources"
// for `update`. `live` is set for a live update.
ResourcePlan plan_resources(const json& resources, const std::string& prefix, const LiveLimits* live = nullptr);

// ---- conversions (runc/crun compatible), exposed for the unit tests -------------------

// cpu.shares (2…262144) → cpu.weight (1…10000): 1 + ((shares-2)*9999)/262142, clamped.
uint64_t shares_to_weight(uint64_t shares);
// blkio weight (10…1000) → io.weight (1…10000): 1 + (w-10)*9999/990.
uint64_t blkio_weight_to_io_weight(uint64_t weight);
// OCI memory.swap is memory+swap; v2's memory.swap.max is swap alone. Returns -1 for
// "max", 0 for "leave unset"; throws runc's errors for impossible combinations.
int64_t swap_to_v2(int64_t memory_swap, int64_t memory);
// "max" for -1, the number otherwise (0 is "unset" and must be filtered by the caller).
std::string limit_text(int64_t v);

struct IoMaxLimits {
  std::optional<uint64_t> rbps, wbps, riops, wiops;
};
// "8:0 rbps=1048576 wiops=max": one io.max line (a rate of 0 means no limit, as in v1).
std::string io_max_line(int64_t major, int64_t minor, const IoMaxLimits& limits);

// Checks a linux.resources.unified key: a file name CONTROLLER.PARAMETER of a known
// controller, not one berth manages itself. Returns the controller ("" for cgroup.*).
std::string unified_key_controller(const std::string& key, const std::string& field);

// docker/go-units RAMInBytes: "64m", "1g", "512k", "1.5GiB", "100" (binary units).
int64_t ram_in_bytes(const std::string& text);

} // namespace berth::cgroupv2
