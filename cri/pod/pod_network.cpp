#include "cri/pod/pod_network.hpp"

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace berth::cri {
namespace {

cni::ClientOptions client_options(const NetworkSettings& s) {
  cni::ClientOptions o;
  o.bin_dirs = s.bin_dirs;
  o.cache_dir = s.cache_dir;
  o.timeout = s.timeout;
  o.pass_plugin_stderr = false;
  o.del_after_failed_add = true;
  return o;
}

std::string strip_prefix_len(const std::string& cidr) { return cidr.substr(0, cidr.find('/')); }

} // namespace

PodNetwork::PodNetwork(NetworkSettings settings)
    : settings_(std::move(settings)), dir_(settings_.conf_dir), client_(client_options(settings_)) {}

bool PodNetwork::ready(std::string* reason) {
  std::lock_guard lk(mu_);
  dir_.reload();
  if (!dir_.networks().empty()) return true;
  if (reason) {
    *reason = fmt::format("no network config found in {}", settings_.conf_dir);
    if (!dir_.errors().empty()) *reason += fmt::format(" ({})", dir_.errors().front());
  }
  return false;
}

cni::RuntimeConf PodNetwork::runtime_conf(const std::string& sandbox_id, const std::string& netns,
                                          const PodIdentity& pod, const std::vector<PortMappingSpec>& ports) const {
  cni::RuntimeConf rt;
  rt.container_id = sandbox_id;
  rt.netns = netns;
  rt.ifname = settings_.ifname;
  rt.args = {{"IgnoreUnknown", "1"},
             {"K8S_POD_NAMESPACE", pod.namespace_},
             {"K8S_POD_NAME", pod.name},
             {"K8S_POD_INFRA_CONTAINER_ID", sandbox_id},
             {"K8S_POD_UID", pod.uid}};
  cni::json mappings = cni::json::array();
  for (const auto& p : ports) {
    if (p.host_port <= 0) continue;  // only host ports are the plugin's business
    mappings.push_back({{"hostPort", p.host_port}, {"containerPort", p.container_port},
                        {"protocol", p.protocol}, {"hostIP", p.host_ip}});
  }
  rt.capability_args = cni::json::object();
  if (!mappings.empty()) rt.capability_args["portMappings"] = mappings;
  return rt;
}

std::string PodNetwork::default_network() {
  std::lock_guard lk(mu_);
  dir_.reload();
  if (dir_.networks().empty()) fail("cni config uninitialized: no network config found in {}", settings_.conf_dir);
  return dir_.default_network().name;
}

PodNetwork::Attachment PodNetwork::setup(const std::string& network, const std::string& sandbox_id,
                                         const std::string& netns, const PodIdentity& pod,
                                         const std::vector<PortMappingSpec>& ports) {
  cni::NetworkConfigList list;
  {
    std::lock_guard lk(mu_);
    dir_.reload();
    list = dir_.network(network);
  }
  cni::json result = with_context(fmt::format("CNI ADD on network {}", list.name),
                                  [&] { return client_.add(list, runtime_conf(sandbox_id, netns, pod, ports)); });
  return {list.name, result_ips(result)};
}

void PodNetwork::teardown(const std::string& sandbox_id, const std::string& netns, const std::string& network,
                          const PodIdentity& pod, const std::vector<PortMappingSpec>& ports) {
  cni::RuntimeConf rt = runtime_conf(sandbox_id, netns, pod, ports);
  auto cached = client_.cache().get(network, sandbox_id, settings_.ifname);
  cni::NetworkConfigList list;
  if (cached && !cached->config.empty()) {
    // The configuration the pod was set up with, as libcni's cache keeps it.
    cni::json probe = cni::json::parse(cached->config, nullptr, false);
    std::string origin = fmt::format("cache of {}", sandbox_id);
    list = probe.is_object() && probe.contains("plugins") ? cni::parse_conflist(cached->config, origin)
                                                           : cni::parse_conf(cached->config, origin);
  } else {
    std::lock_guard lk(mu_);
    dir_.reload();
    bool known = false;
    for (const auto& n : dir_.networks()) known |= n.name == network;
    if (!known) return;  // nothing cached and the network is gone: nothing to undo
    list = dir_.network(network);
  }
  with_context(fmt::format("CNI DEL on network {}", network), [&] { client_.del(list, rt); });
}

std::vector<std::string> PodNetwork::result_ips(const cni::json& result) {
  std::vector<std::string> ips;
  if (!result.is_object()) return ips;
  if (result.contains("ips") && result["ips"].is_array()) {
    const cni::json& ifaces = result.value("interfaces", cni::json::array());
    for (const auto& ip : result["ips"]) {
      if (!ip.is_object() || !ip.contains("address") || !ip["address"].is_string()) continue;
      // Addresses on host-side interfaces (no "sandbox") are not the pod's.
      if (ip.contains("interface") && ip["interface"].is_number_integer() && ifaces.is_array()) {
        size_t i = ip["interface"].get<size_t>();
        if (i < ifaces.size() && ifaces[i].is_object() && ifaces[i].value("sandbox", "").empty()) continue;
      }
      ips.push_back(strip_prefix_len(ip["address"].get<std::string>()));
    }
  }
  for (const char* key : {"ip4", "ip6"})  // CNI 0.1/0.2 results
    if (result.contains(key) && result[key].is_object() && result[key].contains("ip") && result[key]["ip"].is_string())
      ips.push_back(strip_prefix_len(result[key]["ip"].get<std::string>()));
  return ips;
}

} // namespace berth::cri
