#include "agent/lib/node_status.hpp"

#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/fs.hpp"

namespace berth::agent {
namespace {

std::string first_line(const std::string& path) {
  auto text = try_read_file(path).value_or("");
  auto nl = text.find('\n');
  return nl == std::string::npos ? text : text.substr(0, nl);
}

std::string os_image() {
  auto text = try_read_file("/etc/os-release").value_or("");
  for (auto& line : split(text, '\n')) {
    if (!line.starts_with("PRETTY_NAME=")) continue;
    auto v = line.substr(12);
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'')) v = v.substr(1, v.size() - 2);
    return v;
  }
  return "Linux";
}

// GOARCH names, as nodeInfo.architecture and the kubernetes.io/arch label carry.
std::string go_arch(const std::string& machine) {
  if (machine == "x86_64") return "amd64";
  if (machine == "aarch64") return "arm64";
  if (machine.starts_with("arm")) return "arm";
  return machine;
}

std::string kibibytes(uint64_t bytes) { return fmt::format("{}Ki", bytes / 1024); }

} // namespace

HostStats read_host_stats(const std::string& root_dir) {
  HostStats s;
  s.cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  auto meminfo = try_read_file("/proc/meminfo").value_or("");
  for (auto& line : split(meminfo, '\n')) {
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "MemTotal: %llu kB", &kb) == 1) s.memory_total = kb * 1024;
    else if (std::sscanf(line.c_str(), "MemAvailable: %llu kB", &kb) == 1) s.memory_available = kb * 1024;
  }
  struct statvfs fs;
  if (::statvfs(root_dir.c_str(), &fs) == 0 || ::statvfs("/", &fs) == 0) {
    s.fs_total = static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize;
    s.fs_available = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    s.inodes_total = fs.f_files;
    s.inodes_free = fs.f_favail;
  }
  struct sysinfo si;
  if (::sysinfo(&si) == 0) s.pids_used = si.procs; // threads, as the kubelet counts them
  s.pid_max = std::strtoull(first_line("/proc/sys/kernel/pid_max").c_str(), nullptr, 10);
  return s;
}

Pressure evaluate_pressure(const HostStats& s) {
  Pressure p;
  p.memory = s.memory_total > 0 && s.memory_available < kMemoryEvictionThreshold;
  p.disk = (s.fs_total > 0 && s.fs_available * 10 < s.fs_total) ||
           (s.inodes_total > 0 && s.inodes_free * 20 < s.inodes_total);
  p.pid = s.pid_max > 0 && s.pids_used < s.pid_max && (s.pid_max - s.pids_used) * 10 < s.pid_max;
  p.pid |= s.pid_max > 0 && s.pids_used >= s.pid_max;
  return p;
}

NodeStatusBuilder::NodeStatusBuilder(const Config& config, std::string host_ip)
    : config_(config), host_ip_(std::move(host_ip)), machine_id_(first_line("/etc/machine-id")),
      boot_id_(first_line("/proc/sys/kernel/random/boot_id")), os_image_(os_image()) {
  struct utsname u;
  if (::uname(&u) == 0) {
    kernel_ = u.release;
    arch_ = go_arch(u.machine);
  }
}

nlohmann::json NodeStatusBuilder::condition(const std::string& type, bool status, const std::string& reason,
                                            const std::string& message, const std::string& now) {
  auto& t = transitions_[type];
  if (t.second.empty() || t.first != status) t = {status, now};
  return {{"type", type},           {"status", status ? "True" : "False"}, {"lastHeartbeatTime", now},
          {"lastTransitionTime", t.second}, {"reason", reason},          {"message", message}};
}

nlohmann::json NodeStatusBuilder::build(const HostStats& s, const RuntimeInfo& runtime, const std::string& now) {
  std::lock_guard lock(mu_);
  constexpr int kMaxPods = 110; // the kubelet's maxPods default
  nlohmann::json capacity = {{"cpu", std::to_string(s.cpus)},
                             {"memory", kibibytes(s.memory_total)},
                             {"ephemeral-storage", kibibytes(s.fs_total)},
                             {"pods", std::to_string(kMaxPods)}};
  // As the kubelet with no reservations: capacity less the hard eviction thresholds.
  nlohmann::json allocatable = capacity;
  allocatable["memory"] = kibibytes(s.memory_total > kMemoryEvictionThreshold ? s.memory_total - kMemoryEvictionThreshold : 0);
  allocatable["ephemeral-storage"] = std::to_string(s.fs_total - s.fs_total / 10);
  auto p = evaluate_pressure(s);
  auto conditions = nlohmann::json::array();
  conditions.push_back(condition("MemoryPressure", p.memory,
                                 p.memory ? "KubeletHasInsufficientMemory" : "KubeletHasSufficientMemory",
                                 p.memory ? "kubelet has insufficient memory available" : "kubelet has sufficient memory available", now));
  conditions.push_back(condition("DiskPressure", p.disk, p.disk ? "KubeletHasDiskPressure" : "KubeletHasNoDiskPressure",
                                 p.disk ? "kubelet has disk pressure" : "kubelet has no disk pressure", now));
  conditions.push_back(condition("PIDPressure", p.pid, p.pid ? "KubeletHasInsufficientPID" : "KubeletHasSufficientPID",
                                 p.pid ? "kubelet has insufficient PID available" : "kubelet has sufficient PID available", now));
  conditions.push_back(condition("Ready", runtime.ready, runtime.ready ? "KubeletReady" : "KubeletNotReady",
                                 runtime.ready ? "berthlet is posting ready status" : runtime.not_ready_reason, now));
  nlohmann::json info = {{"machineID", machine_id_},
                         {"bootID", boot_id_},
                         {"kernelVersion", kernel_},
                         {"osImage", os_image_},
                         {"containerRuntimeVersion", runtime.name.empty() ? "" : runtime.name + "://" + runtime.version},
                         {"kubeletVersion", fmt::format("berthlet/v{}", BERTH_VERSION)},
                         {"operatingSystem", "linux"},
                         {"architecture", arch_}};
  nlohmann::json addresses = nlohmann::json::array(
      {{{"type", "InternalIP"}, {"address", host_ip_}}, {{"type", "Hostname"}, {"address", config_.node_name}}});
  nlohmann::json labels = {{"kubernetes.io/hostname", config_.node_name},
                           {"kubernetes.io/os", "linux"},
                           {"kubernetes.io/arch", arch_}};
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", config_.node_name}, {"labels", labels}}},
          {"status",
           {{"capacity", capacity},
            {"allocatable", allocatable},
            {"conditions", conditions},
            {"addresses", addresses},
            {"nodeInfo", info}}}};
}

} // namespace berth::agent
