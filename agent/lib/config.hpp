// berthlet's configuration, a YAML file in the spirit of KubeletConfiguration
// (same field names where the kubelet has one); command-line flags override it.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace berth::agent {

// How pod and container cgroups are named and made (the kubelet's cgroupDriver): plain
// directories, or systemd slices and scopes. Must match the CRI runtime's driver.
enum class CgroupDriver { cgroupfs, systemd };

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
};

// Go-style duration: "20s", "1m30s", "500ms", "2h". Throws berth::Error.
std::chrono::milliseconds parse_duration(std::string_view text);

CgroupDriver parse_cgroup_driver(std::string_view text); // throws naming the value

// Reads a config file over the defaults. Throws berth::Error naming the field.
Config load_config(const std::string& path);
Config config_from_yaml(const std::string& text, const std::string& origin);

// Fills the defaults that depend on the host (node name) and checks the result.
void finalize_config(Config& c);

} // namespace berth::agent
