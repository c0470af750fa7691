// berth-bridge's view of its invocation: the CNI_* environment and the network
// configuration on stdin (the reference bridge plugin's NetConf), and the IPAM
// step, in process for host-local or delegated to any IPAM plugin binary.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cni/bridge/host_local.hpp"
#include "cni/bridge/ipaddr.hpp"
#include "common/error.hpp"

namespace berth::cni {

// CNI error codes (spec section "Error").
enum CniCode : uint32_t {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kInvalidEnv = 4,
  kIoFailure = 5,
  kDecodeFailure = 6,
  kInvalidConfig = 7,
  kNotAvailable = 50,
  kInternal = 999,
};

// An error with the CNI code to report.
class CniFailure : public Error {
public:
  CniFailure(uint32_t code, std::string msg) : Error(0, std::move(msg)), code_(code) {}
  uint32_t code() const { return code_; }

private:
  uint32_t code_;
};

struct Invocation {
  std::string command, container_id, netns, ifname, cni_args;
  std::vector<std::string> path;
  std::vector<std::pair<std::string, std::string>> args; // CNI_ARGS parsed
};

// Reads CNI_* variables; fails (code 4) when one the command needs is missing.
Invocation read_invocation();

struct BridgeConf {
  std::string name, cni_version;
  std::string bridge = "cni0";
  bool is_gateway = false, is_default_gateway = false, force_address = false;
  bool ip_masq = false, hairpin = false, promisc = false, enable_dad = false;
  std::string ipmasq_backend;
  unsigned mtu = 0;
  std::string mac;        // container MAC from runtimeConfig.mac or CNI_ARGS MAC
  std::string ipam_type;  // empty: layer 2 only
  json ipam = json::object();
  json dns;               // null unless configured
  json prev_result;       // null unless given
  json raw;               // the whole stdin object
  std::string raw_bytes;
  std::vector<IpAddr> requested_ips; // CNI_ARGS IP / runtimeConfig.ips
  std::vector<std::pair<std::string, std::string>> valid_attachments; // GC
};

BridgeConf parse_bridge_conf(const std::string& stdin_data, const Invocation& inv);

// The IPAM step: host-local in process, anything else by running the plugin.
json ipam_add(const BridgeConf& c, const Invocation& inv);
void ipam_del(const BridgeConf& c, const Invocation& inv);
void ipam_check(const BridgeConf& c, const Invocation& inv);
void ipam_gc(const BridgeConf& c, const Invocation& inv);
void ipam_status(const BridgeConf& c, const Invocation& inv);

} // namespace berth::cni
