#include "cri/pod/records.hpp"

#include "common/error.hpp"
#include "common/json.hpp"

namespace berth::cri {

const char* phase_name(SandboxPhase p) {
  switch (p) {
    case SandboxPhase::creating: return "creating";
    case SandboxPhase::ready: return "ready";
    case SandboxPhase::notready: return "notready";
  }
  return "?";
}

const char* phase_name(ContainerPhase p) {
  switch (p) {
    case ContainerPhase::creating: return "creating";
    case ContainerPhase::created: return "created";
    case ContainerPhase::running: return "running";
    case ContainerPhase::exited: return "exited";
  }
  return "?";
}

std::string SandboxRecord::data_json() const {
  return json{{"created_ns", created_ns}, {"runtime_handler", runtime_handler}, {"dir", dir},
              {"netns", netns}, {"ipcns", ipcns}, {"utsns", utsns}, {"cni_network", cni_network}, {"ip", ip},
              {"additional_ips", additional_ips}, {"pause_id", pause_id}, {"pause_pid", pause_pid},
              {"cgroup_parent", cgroup_parent}}
      .dump();
}

void SandboxRecord::load_data_json(const std::string& text) {
  json j = json::parse(text);
  created_ns = j.value("created_ns", int64_t{0});
  runtime_handler = j.value("runtime_handler", "");
  dir = j.value("dir", "");
  netns = j.value("netns", "");
  ipcns = j.value("ipcns", "");
  utsns = j.value("utsns", "");
  cni_network = j.value("cni_network", "");
  ip = j.value("ip", "");
  additional_ips = j.value("additional_ips", std::vector<std::string>{});
  pause_id = j.value("pause_id", "");
  pause_pid = j.value("pause_pid", int64_t{0});
  cgroup_parent = j.value("cgroup_parent", "");
}

std::string ContainerRecord::data_json() const {
  return json{{"created_ns", created_ns}, {"started_ns", started_ns}, {"finished_ns", finished_ns},
              {"exit_code", exit_code}, {"reason", reason}, {"message", message}, {"image_id", image_id},
              {"image_ref", image_ref}, {"image_name", image_name}, {"pid", pid}, {"bundle", bundle},
              {"log_path", log_path}, {"cgroups_path", cgroups_path}, {"stop_signal", stop_signal},
              {"oom_killed", oom_killed}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

void ContainerRecord::load_data_json(const std::string& text) {
  json j = json::parse(text);
  created_ns = j.value("created_ns", int64_t{0});
  started_ns = j.value("started_ns", int64_t{0});
  finished_ns = j.value("finished_ns", int64_t{0});
  exit_code = j.value("exit_code", 0);
  reason = j.value("reason", "");
  message = j.value("message", "");
  image_id = j.value("image_id", "");
  image_ref = j.value("image_ref", "");
  image_name = j.value("image_name", "");
  pid = j.value("pid", int64_t{0});
  bundle = j.value("bundle", "");
  log_path = j.value("log_path", "");
  cgroups_path = j.value("cgroups_path", "");
  stop_signal = j.value("stop_signal", 15);
  oom_killed = j.value("oom_killed", false);
}

} // namespace berth::cri
