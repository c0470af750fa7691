// IP masquerade for a pod's addresses, as the reference plugins set it up, so
// either plugin can tear down what the other made:
//  iptables: nat chain CNI-<sha512(network+containerID)[:24]> with "-d <subnet>
//            ACCEPT" and "! -d <multicast> MASQUERADE", jumped to from POSTROUTING
//            by "-s <ip>", each rule commented `name: "<net>" id: "<cid>"`;
//  nftables: table inet cni_plugins_masquerade, chain masq_checks, one rule per
//            address commented "<hash(net)>-<hash(if:cid)>, net: .., if: .., id: ..".
// Both run the iptables/nft binaries, as the reference's go-iptables/knftables do.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "cni/bridge/ipaddr.hpp"

namespace berth::cni {

struct MasqTarget {
  std::string network, ifname, container_id;
};

// backend: "iptables", "nftables" or "" (iptables when present, else nftables).
void setup_ipmasq(const std::string& backend, const std::vector<IpNet>& ips, const MasqTarget& t);
// Removes what either backend set up for this attachment (absent rules are fine).
void teardown_ipmasq(const std::vector<IpNet>& ips, const MasqTarget& t);
// nftables rules of this network whose attachment is not in valid.
void gc_ipmasq(const std::string& network, const std::vector<std::pair<std::string, std::string>>& valid);

std::string sha512_hex(std::string_view data);
std::string masq_chain_name(const std::string& network, const std::string& container_id);

} // namespace berth::cni
