// IP address management compatible with the reference host-local plugin: the
// same configuration (ranges/range sets, legacy subnet fields, routes, dataDir,
// resolvConf) and the same files, so both can allocate from one network:
//   <dataDir>/<network>/<ip>                "<containerID>\r\n<ifname>"
//   <dataDir>/<network>/last_reserved_ip.<rangeSetIndex>
//   <dataDir>/<network>/lock                flock(2) held around every change
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "cni/bridge/ipaddr.hpp"
#include "cni/lib/version.hpp"
#include "common/fd.hpp"

namespace berth::cni {

inline constexpr std::string_view kHostLocalDataDir = "/var/lib/cni/networks";

struct IpRange {
  IpNet subnet;
  IpAddr start, end, gateway;
  bool contains(const IpAddr& a) const;
};
using RangeSet = std::vector<IpRange>;

struct HostLocalConfig {
  std::string network;
  std::string data_dir = std::string(kHostLocalDataDir);
  std::vector<RangeSet> range_sets;
  json routes = json::array(); // [{"dst": "...", "gw": "..."}] as configured
  std::string resolv_conf;
};

// Parses the "ipam" object (its path in errors is "ipam").
HostLocalConfig parse_host_local(const json& ipam, const std::string& network);

// The on-disk store of one network, locked for the object's lifetime.
class HostLocalStore {
public:
  HostLocalStore(const std::string& data_dir, const std::string& network);
  const std::string& dir() const { return dir_; }
  // false when the address is already taken.
  bool reserve(const std::string& id, const std::string& ifname, const IpAddr& ip, const std::string& range_id);
  std::optional<IpAddr> last_reserved(const std::string& range_id) const;
  std::vector<IpAddr> get_by_id(const std::string& id, const std::string& ifname) const;
  void release_by_id(const std::string& id, const std::string& ifname);
  void release(const IpAddr& ip);
  // Every reservation: address, container id, interface name.
  struct Entry {
    IpAddr ip;
    std::string id, ifname;
  };
  std::vector<Entry> entries() const;

private:
  std::string dir_;
  UniqueFd lock_;
};

struct IpamAllocation {
  std::vector<std::pair<IpNet, IpAddr>> ips; // address with its subnet's prefix, gateway
};

// ADD: one address from each range set (requested ones where given). Returns the
// IPAM result in version `cni_version`.
json host_local_add(const HostLocalConfig& cfg, const std::string& id, const std::string& ifname,
                    const std::vector<IpAddr>& requested, const std::string& cni_version);
void host_local_del(const HostLocalConfig& cfg, const std::string& id, const std::string& ifname);
// CHECK: the container still holds an address in this network.
void host_local_check(const HostLocalConfig& cfg, const std::string& id, const std::string& ifname);
// GC: releases every reservation whose (containerID, ifname) is not in valid.
void host_local_gc(const HostLocalConfig& cfg, const std::vector<std::pair<std::string, std::string>>& valid);

// The DNS settings of a resolv.conf in CNI result form.
json parse_resolv_conf(const std::string& path);

} // namespace berth::cni
