// What berthd remembers of each pod sandbox and container: the CRI request as it came
// (a protobuf message), the lifecycle phase, and what the runtime made for it. Stored
// in SQLite (record_store.hpp) before each side effect, so a restarted berthd can
// find, finish or undo anything it started.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "api.pb.h"

namespace berth::cri {

enum class SandboxPhase : int {
  creating = 0,  // row written, resources being made: cleaned up at start-up
  ready = 1,
  notready = 2,  // stopped: network torn down, containers stopped
};

enum class ContainerPhase : int {
  creating = 0,  // row written, snapshot/bundle being made: cleaned up at start-up
  created = 1,
  running = 2,   // a shim was started for it (a start that fails becomes exited)
  exited = 3,
};

struct SandboxRecord {
  std::string id;
  std::string name;  // "<name>_<namespace>_<uid>_<attempt>": unique while the record lives
  SandboxPhase phase = SandboxPhase::creating;
  int64_t created_ns = 0;
  runtime::v1::PodSandboxConfig config;
  std::string runtime_handler;  // as requested ("" = default)
  // What was made for it:
  std::string dir;              // <state_dir>/sandboxes/<id>: pod files, shm, pins
  std::string netns, ipcns, utsns;  // pins (empty: the node's)
  std::string cni_network;      // network ADD ran on ("" when none)
  std::string ip;
  std::vector<std::string> additional_ips;
  std::string pause_id;         // the pause container (pid mode POD), else ""
  int64_t pause_pid = 0;
  std::string cgroup_parent;

  std::string data_json() const;       // the mutable fields above as JSON
  void load_data_json(const std::string& text);
};

struct ContainerRecord {
  std::string id;
  std::string sandbox_id;
  std::string name;  // "<name>_<sandbox name>_<namespace>_<uid>_<attempt>"
  ContainerPhase phase = ContainerPhase::creating;
  runtime::v1::ContainerConfig config;  // resources updated by UpdateContainerResources
  int64_t created_ns = 0, started_ns = 0, finished_ns = 0;
  int32_t exit_code = 0;
  std::string reason, message;
  std::string image_id;     // "sha256:<config digest>"
  std::string image_ref;    // what ContainerStatus.image_ref reports (repo digest or id)
  std::string image_name;   // the reference as resolved (for ContainerStatus.image)
  int64_t pid = 0;          // init pid while running
  std::string bundle;       // <state_dir>/containers/<id>: config.json, rootfs
  std::string log_path;     // absolute CRI log path ("" when none)
  std::string cgroups_path; // OCI linux.cgroupsPath
  int stop_signal = 15;
  bool oom_killed = false;

  std::string data_json() const;
  void load_data_json(const std::string& text);
};

const char* phase_name(SandboxPhase p);
const char* phase_name(ContainerPhase p);

} // namespace berth::cri
