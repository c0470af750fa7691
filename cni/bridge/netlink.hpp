// The few rtnetlink operations berth-bridge needs, over libnl-route-3, each
// failing with a message naming the object.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cni/bridge/ipaddr.hpp"

struct nl_sock;

namespace berth::cni {

struct LinkInfo {
  int ifindex = 0;
  std::string name;
  std::string kind; // "bridge", "veth", "" for none
  int master = 0;
  int peer_ifindex = 0; // IFLA_LINK: a veth's peer
  unsigned flags = 0;
  unsigned mtu = 0;
  std::string mac;
};

struct RouteInfo {
  IpNet dst;
  std::optional<IpAddr> gw;
  int oif = 0;
};

// A NETLINK_ROUTE socket bound to the network namespace that was current when it
// was opened (a socket keeps its namespace, so one process can hold one per side).
class Netlink {
public:
  Netlink();
  ~Netlink();
  Netlink(const Netlink&) = delete;
  Netlink& operator=(const Netlink&) = delete;
  // Opens a socket inside the namespace of netns_fd, leaving the caller where it was.
  static Netlink in_netns(int netns_fd);
  int fd() const;

  std::optional<LinkInfo> link(const std::string& name);
  std::optional<LinkInfo> link(int ifindex);
  // Creates an up bridge (with MTU when non-zero); EEXIST races are tolerated.
  LinkInfo ensure_bridge(const std::string& name, unsigned mtu, bool promisc);
  // One message: the veth pair with host_name up and enslaved to master, the peer
  // created directly inside peer_netns_fd as peer_name with peer_mac (still down).
  void create_veth(const std::string& host_name, const std::string& peer_name, const std::string& peer_mac,
                   unsigned mtu, int peer_netns_fd, int master);
  void set_hairpin(int ifindex, bool on);
  void set_up(int ifindex);
  void delete_link(int ifindex);
  std::vector<IpNet> addresses(int ifindex, int family, bool global_only);
  void add_address(int ifindex, const IpNet& a, bool nodad);
  void delete_address(int ifindex, const IpNet& a);
  void add_route(int ifindex, const IpNet& dst, const std::optional<IpAddr>& gw);
  std::vector<RouteInfo> routes(int family);

private:
  explicit Netlink(nl_sock* sk) : sk_(sk) {}
  nl_sock* sk_ = nullptr;
};

// RTM_DELLINK notifications of the current network namespace (a raw socket in
// RTNLGRP_LINK), to learn when a link is gone without asking in a loop.
class LinkEvents {
public:
  LinkEvents();
  ~LinkEvents();
  LinkEvents(const LinkEvents&) = delete;
  LinkEvents& operator=(const LinkEvents&) = delete;
  bool ok() const { return fd_ >= 0; }
  // Waits (up to 10 s) for ifindex's RTM_DELLINK; false if child exits with an
  // error first, or on timeout.
  bool wait_deleted(int ifindex, int child_pid);

private:
  int fd_ = -1;
};

std::string format_mac(const uint8_t* b);
// A random locally administered unicast MAC, as the kernel picks for a veth.
std::string random_mac();

} // namespace berth::cni
