// berthlet's configuration: a KubeletConfiguration (kubelet.config.k8s.io/v1beta1) file.
// The fields berthlet implements are read under their kubelet names and defaults; the
// kubelet's other fields are reported as ignored; a few berthlet-only fields (the
// kubelet's flags: nodeName, rootDir, ...) extend it. Command-line flags override it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "agent/lib/sinks/sink_config.hpp"

namespace berth::agent {

// How pod and container cgroups are named and made (the kubelet's cgroupDriver): plain
// directories, or systemd slices and scopes. Must match the CRI runtime's driver.
enum class CgroupDriver { cgroupfs, systemd };

inline constexpr char kKubeletConfigApiVersion[] = "kubelet.config.k8s.io/v1beta1";
inline constexpr char kKubeletConfigKind[] = "KubeletConfiguration";
constexpr size_t kMaxConfigBytes = 256 << 10; // a kubeadm-written file is ~1.5 KiB

struct Config {
  std::vector<std::string> static_pod_paths{"/etc/kubernetes/manifests"};
  std::chrono::milliseconds file_check_frequency{20000};
  std::string runtime_endpoint = "unix:///run/containerd/containerd.sock";
  std::chrono::milliseconds runtime_request_timeout{120000};
  std::string node_name; // default: the host name
  std::string address = "127.0.0.1";
  int read_only_port = 10255; // 0: no status endpoint
  std::string pod_logs_dir = "/var/log/pods";
  std::string cgroup_root = "/"; // pods live under <cgroupRoot>/kubepods
  CgroupDriver cgroup_driver = CgroupDriver::cgroupfs;
  std::string resolv_conf = "/etc/resolv.conf";
  std::vector<std::string> cluster_dns;
  std::string cluster_domain;
  std::string root_dir = "/var/lib/berthlet"; // emptyDir volumes live here
  std::chrono::milliseconds relist_period{1000};
  // logging (component-base's LoggingConfiguration): the line format, and the klog
  // verbosity; 4 and above is berthlet's debug log. Flags override both.
  std::string logging_format = "text"; // text | json
  int logging_verbosity = 0;
  // Container log rotation (the kubelet's container log manager).
  std::string container_log_max_size = "10Mi"; // as written; container_log_max_bytes parsed
  int64_t container_log_max_bytes = 10 << 20;
  int container_log_max_files = 5;
  // The kubelet checks every 10 s; berthlet every second by default: one fstatat per
  // running container, and a container writing 50 MB/s overshoots a 10Mi limit by at most
  // ~50 MB instead of ~500 MB.
  std::chrono::milliseconds container_log_monitor_interval{1000};
  // Image garbage collection (the kubelet's image GC manager).
  int image_gc_high_threshold_percent = 85;
  int image_gc_low_threshold_percent = 80;
  std::chrono::milliseconds image_minimum_gc_age{120000};
  std::chrono::milliseconds image_gc_period{300000}; // berthlet-only: the kubelet's is fixed at 5 min
  // How often the node's status is computed and reported to the status sinks (the kubelet's
  // field and default); berthlet-only statusSinks: where to (docs/agent.md "Status sinks").
  std::chrono::milliseconds node_status_update_frequency{10000};
  std::vector<SinkConfig> status_sinks;
};

// What loading a file found besides the fields berthlet uses: the kubelet's fields it
// does not implement, and keys that are no field at all (typos), with their lines.
struct ConfigReport {
  std::vector<std::string> ignored;
  std::vector<std::pair<std::string, int>> unknown; // key, line
  // The log lines for the above ("" entries never): one per kind, naming every key.
  std::vector<std::string> lines(const std::string& origin) const;
};

// Go-style duration: "20s", "1m30s", "500ms", "2h". Throws berth::Error.
std::chrono::milliseconds parse_duration(std::string_view text);
std::string format_duration(std::chrono::milliseconds d); // "1m30s", "500ms", "0s"

CgroupDriver parse_cgroup_driver(std::string_view text); // throws naming the value

// Reads a config file over the defaults. Throws berth::Error "<origin>:<line>: <key>: ...".
Config load_config(const std::string& path, ConfigReport* report = nullptr);
Config config_from_yaml(const std::string& text, const std::string& origin, ConfigReport* report = nullptr);

// Fills the defaults that depend on the host (node name) and checks the result.
void finalize_config(Config& c);

// The effective configuration as a KubeletConfiguration YAML document (--print-config);
// config_from_yaml reads it back to the same Config.
std::string config_to_yaml(const Config& c);

} // namespace berth::agent
