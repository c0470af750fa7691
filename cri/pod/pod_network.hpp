// Pod networking through the CNI client (cni/lib): the default network of the CNI
// config directory (reloaded when it changes), ADD into the pod's pinned network
// namespace with the kubelet's CNI_ARGS and the portMappings capability, DEL from the
// attachment cache so a pod is torn down with the configuration it was set up with,
// even after a restart or a config change.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "cni/lib/client.hpp"
#include "cni/lib/config.hpp"

namespace berth::cri {

struct NetworkSettings {
  std::string conf_dir = "/etc/cni/net.d";
  std::vector<std::string> bin_dirs = {"/opt/cni/bin", "/usr/lib/cni"};
  std::string cache_dir = "/var/lib/cni";
  std::string ifname = "eth0";
  std::chrono::milliseconds timeout{60000};
};

struct PodIdentity {
  std::string name, namespace_, uid;
};

struct PortMappingSpec {
  std::string protocol;  // "tcp", "udp", "sctp"
  int container_port = 0, host_port = 0;
  std::string host_ip;
};

class PodNetwork {
public:
  explicit PodNetwork(NetworkSettings settings);

  // Ready when the config directory holds a valid network; otherwise false with the
  // reason ("no network config found in /etc/cni/net.d").
  bool ready(std::string* reason);

  struct Attachment {
    std::string network;           // the network's name (for teardown)
    std::vector<std::string> ips;  // pod IPs, addresses without prefix length; first is primary
  };
  // The network pods are attached to now (the first valid config); throws when none.
  std::string default_network();
  // ADD on `network`; a failure leaves nothing (the client DELs after a failed ADD).
  Attachment setup(const std::string& network, const std::string& sandbox_id, const std::string& netns, const PodIdentity& pod,
                   const std::vector<PortMappingSpec>& ports);
  // DEL with the cached attachment (or the named network's current config when the
  // cache has none). Idempotent: nothing cached and no such network is success.
  void teardown(const std::string& sandbox_id, const std::string& netns, const std::string& network,
                const PodIdentity& pod, const std::vector<PortMappingSpec>& ports);

  // Pod IPs from a CNI result of any version (exposed for tests).
  static std::vector<std::string> result_ips(const cni::json& result);

private:
  cni::RuntimeConf runtime_conf(const std::string& sandbox_id, const std::string& netns, const PodIdentity& pod,
                                const std::vector<PortMappingSpec>& ports) const;
  NetworkSettings settings_;
  std::mutex mu_;  // guards dir_
  cni::ConfigDir dir_;
  cni::Client client_;
};

} // namespace berth::cri
