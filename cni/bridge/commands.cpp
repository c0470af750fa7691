#include "cni/bridge/commands.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include "cni/bridge/ipmasq.hpp"
#include "cni/bridge/netlink.hpp"
#include "cni/lib/config.hpp"
#include "common/fd.hpp"
#include "common/fs.hpp"

namespace berth::cni {

namespace {

// Undo steps, run in reverse by bridge_add's catch when ADD fails half-way; each
// step owns copies of what it needs (the frame that added it is gone by then).
class Rollback {
public:
  void add(std::function<void()> f) { steps_.push_back(std::move(f)); }
  void run() noexcept {
    for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
      try {
        (*it)();
      } catch (...) {
        // Best effort: the original error is what the caller must see.
      }
    }
    steps_.clear();
  }

private:
  std::vector<std::function<void()>> steps_;
};

// Enters a network namespace for this scope and returns to the original one.
class NetnsScope {
public:
  explicit NetnsScope(int target) : self_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    if (!self_) fail_errno("open current network namespace");
    if (::setns(target, CLONE_NEWNET) < 0) fail_errno("enter the container network namespace");
  }
  ~NetnsScope() {
    if (::setns(self_.get(), CLONE_NEWNET) < 0) std::abort(); // cannot continue in the wrong namespace
  }

private:
  UniqueFd self_;
};

void write_sysctl(const std::string& key, const std::string& value, bool only_if_different = false) {
  std::string p = "/proc/sys/" + key;
  if (only_if_different) {
    if (auto cur = try_read_file(p); cur && trim(*cur) == value) return;
  }
  write_file(p, value, false);
}

UniqueFd open_netns(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) fail_errno("failed to open netns \"{}\"", path);
  return fd;
}

std::string host_veth_name() {
  uint8_t b[4];
  if (getrandom(b, sizeof b, 0) != sizeof b) fail_errno("getrandom");
  return fmt::format("veth{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3]);
}

struct IpConfig {
  IpNet address;
  std::optional<IpAddr> gateway;
};
struct RouteConfig {
  IpNet dst;
  std::optional<IpAddr> gw;
};

std::vector<IpConfig> result_ips(const json& r) {
  std::vector<IpConfig> out;
  for (const auto& ip : r.value("ips", json::array())) {
    IpConfig c{must_parse_cidr(ip.value("address", ""), "ips[].address"), std::nullopt};
    if (ip.contains("gateway") && ip["gateway"].is_string())
      c.gateway = must_parse_ip(ip["gateway"].get<std::string>(), "ips[].gateway");
    out.push_back(c);
  }
  return out;
}

std::vector<RouteConfig> result_routes(const json& r) {
  std::vector<RouteConfig> out;
  for (const auto& rt : r.value("routes", json::array())) {
    RouteConfig c{must_parse_cidr(rt.value("dst", ""), "routes[].dst").network(), std::nullopt};
    if (rt.contains("gw") && rt["gw"].is_string() && !rt["gw"].get<std::string>().empty())
      c.gw = must_parse_ip(rt["gw"].get<std::string>(), "routes[].gw");
    out.push_back(c);
  }
  return out;
}

// The reference's ensureAddr: the gateway address on the bridge, refusing to
// replace a different one unless forceAddress.
void ensure_bridge_addr(Netlink& nl, const LinkInfo& br, const IpNet& gw, bool force) {
  for (const auto& a : nl.addresses(br.ifindex, gw.addr.family(), false)) {
    if (a == gw) return;
    if (gw.addr.v6 && !a.contains(gw.addr) && !gw.contains(a.addr)) continue;
    if (!force) fail("\"{}\" already has an IP address different from {}", br.name, gw.str());
    nl.delete_address(br.ifindex, a);
  }
  try {
    nl.add_address(br.ifindex, gw, true);
  } catch (const Error&) {
    // A concurrent ADD on the same network added it first (the reference ignores EEXIST).
    auto now = nl.addresses(br.ifindex, gw.addr.family(), false);
    if (std::find(now.begin(), now.end(), gw) == now.end()) throw;
  }
}

bool has_dns(const json& d) {
  if (!d.is_object()) return false;
  for (const char* k : {"nameservers", "search", "options"})
    if (d.contains(k) && d[k].is_array() && !d[k].empty()) return true;
  return d.contains("domain") && d["domain"].is_string() && !d["domain"].get<std::string>().empty();
}

std::vector<IpNet> ipnets_of(const std::vector<IpConfig>& ips) {
  std::vector<IpNet> out;
  for (const auto& i : ips) out.push_back(i.address);
  return out;
}

// Deletes a veth pair without making the caller sit out the kernel's final
// teardown. RTM_DELLINK unlists both ends, removes the bridge port and notifies
// RTM_DELLINK at once, but then blocks in netdev_run_todo()'s rcu_barrier()
// (about 15 ms here: most of the reference DEL's wall time) only to free memory.
// A forked child without our stdio sends the request; we return once the host
// end's RTM_DELLINK notification says both ends are gone, and the child finishes
// the kernel's wait alone. Falls back to a plain delete whenever unsure.
void remove_veth_pair(Netlink& cont, Netlink& host, const LinkInfo& link, const std::string& expect_host_name) {
  std::optional<LinkInfo> peer;
  if (link.kind == "veth" && link.peer_ifindex > 0) peer = host.link(link.peer_ifindex);
  bool sure = peer && peer->kind == "veth" && peer->peer_ifindex == link.ifindex &&
              (expect_host_name.empty() || peer->name == expect_host_name);
  LinkEvents events; // subscribed before the request, so the notification cannot be missed
  if (!sure || !events.ok()) {
    cont.delete_link(link.ifindex);
    return;
  }
  pid_t child = ::fork();
  if (child < 0) {
    cont.delete_link(link.ifindex);
    return;
  }
  if (child == 0) {
    // The runtime reads our stdout to EOF: the child keeps nothing but its socket.
    int keep = cont.fd();
    if (keep > 0) ::close_range(0, static_cast<unsigned>(keep - 1), 0);
    ::close_range(static_cast<unsigned>(keep + 1), ~0U, 0);
    try {
      cont.delete_link(link.ifindex);
    } catch (...) {
      ::_exit(1);
    }
    ::_exit(0);
  }
  if (!events.wait_deleted(peer->ifindex, child)) {
    // The child failed (or no notification came): see to it ourselves.
    ::waitpid(child, nullptr, 0); // ECHILD when wait_deleted reaped it already
    if (auto still = cont.link(link.ifindex)) cont.delete_link(still->ifindex);
  }
}

std::string host_veth_in(const json& prev, const std::string& bridge) {
  if (!prev.is_object()) return "";
  for (const auto& i : prev.value("interfaces", json::array()))
    if (i.is_object() && !i.contains("sandbox") && i.value("name", "") != bridge) return i.value("name", "");
  return "";
}

} // namespace

const std::vector<std::string>& bridge_versions() {
  static const std::vector<std::string> v = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
  return v;
}

namespace {

json add_with(const BridgeConf& c, const Invocation& inv, Rollback& undo) {
  validate_interface_name(inv.ifname);
  UniqueFd netns = open_netns(inv.netns);
  Netlink host;
  LinkInfo br = host.ensure_bridge(c.bridge, c.mtu, c.promisc);
  try {
    write_sysctl(fmt::format("net/ipv6/conf/{}/accept_ra", c.bridge), "0", true);
  } catch (const Error&) {
    // IPv6 disabled: nothing to turn off (the reference ignores this too).
  }

  json result = {{"cniVersion", "1.0.0"}};
  std::vector<IpConfig> ips;
  std::vector<RouteConfig> routes;
  if (!c.ipam_type.empty()) {
    json r = ipam_add(c, inv);
    undo.add([&c, &inv] { ipam_del(c, inv); });
    r = with_context("IPAM result", [&] { return convert_result(r, "1.0.0"); });
    ips = result_ips(r);
    if (ips.empty()) fail("IPAM plugin returned missing IP config");
    routes = result_routes(r);
    if (r.contains("dns")) result["dns"] = r["dns"];
    bool default_v4 = false, default_v6 = false;
    for (const auto& rt : routes)
      if (rt.dst.prefix == 0 && rt.gw) (rt.dst.addr.v6 ? default_v6 : default_v4) = true;
    for (auto& ip : ips) {
      if (!ip.gateway && c.is_gateway) ip.gateway = ip.address.network().addr.next();
      bool& have_default = ip.address.addr.v6 ? default_v6 : default_v4;
      if (c.is_default_gateway && !have_default) {
        IpAddr zero;
        zero.v6 = ip.address.addr.v6;
        routes.push_back({IpNet{zero, 0}, ip.gateway});
        have_default = true;
      }
    }
  }

  std::string host_name = host_veth_name();
  std::string cont_mac = c.mac.empty() ? random_mac() : c.mac;
  host.create_veth(host_name, inv.ifname, cont_mac, c.mtu, netns.get(), br.ifindex);
  undo.add([host_name] {
    Netlink nl;
    if (auto l = nl.link(host_name)) nl.delete_link(l->ifindex);
  });
  auto host_link = host.link(host_name);
  if (!host_link) fail("host veth {} vanished after creation", host_name);
  if (c.hairpin) host.set_hairpin(host_link->ifindex, true);

  if (c.is_gateway) {
    bool v4 = false, v6 = false;
    for (const auto& ip : ips) {
      if (!ip.gateway) continue;
      with_context("failed to set bridge addr", [&] {
        ensure_bridge_addr(host, br, IpNet{*ip.gateway, ip.address.prefix}, c.force_address);
      });
      (ip.address.addr.v6 ? v6 : v4) = true;
    }
    with_context("failed to enable forwarding", [&] {
      if (v4) write_sysctl("net/ipv4/ip_forward", "1", true);
      if (v6) write_sysctl("net/ipv6/conf/all/forwarding", "1", true);
    });
  }
  MasqTarget masq{c.name, inv.ifname, inv.container_id};
  if (c.ip_masq && !ips.empty()) {
    // Registered first: a setup failing at the second address leaves the first's rules.
    undo.add([nets = ipnets_of(ips), masq] { teardown_ipmasq(nets, masq); });
    setup_ipmasq(c.ipmasq_backend, ipnets_of(ips), masq);
  }

  {
    NetnsScope in(netns.get());
    Netlink cont;
    auto link = cont.link(inv.ifname);
    if (!link) fail("container interface {} not found in {} after creation", inv.ifname, inv.netns);
    if (!(link->flags & IFF_UP)) cont.set_up(link->ifindex);
    if (!ips.empty()) {
      try {
        write_sysctl(fmt::format("net/ipv4/conf/{}/arp_notify", inv.ifname), "1");
      } catch (const Error&) {
      }
      std::optional<IpAddr> gw4, gw6;
      for (const auto& ip : ips) {
        cont.add_address(link->ifindex, ip.address, !c.enable_dad);
        if (ip.gateway) (ip.address.addr.v6 ? gw6 : gw4) = (ip.address.addr.v6 ? gw6 : gw4).value_or(*ip.gateway);
      }
      for (const auto& rt : routes) {
        auto gw = rt.gw ? rt.gw : (rt.dst.addr.v6 ? gw6 : gw4);
        cont.add_route(link->ifindex, rt.dst, gw);
      }
    }
  }

  auto br_now = host.link(c.bridge);
  json ifaces = json::array();
  ifaces.push_back({{"name", c.bridge}, {"mac", br_now ? br_now->mac : br.mac}});
  ifaces.push_back({{"name", host_name}, {"mac", host_link->mac}});
  ifaces.push_back({{"name", inv.ifname}, {"mac", cont_mac}, {"sandbox", inv.netns}});
  result["interfaces"] = std::move(ifaces);
  if (!ips.empty()) {
    json jips = json::array();
    for (const auto& ip : ips) {
      json j = {{"interface", 2}, {"address", ip.address.str()}};
      if (ip.gateway) j["gateway"] = ip.gateway->str();
      jips.push_back(std::move(j));
    }
    result["ips"] = std::move(jips);
  }
  if (!routes.empty()) {
    json jr = json::array();
    for (const auto& rt : routes) {
      json j = {{"dst", rt.dst.str()}};
      if (rt.gw) j["gw"] = rt.gw->str();
      jr.push_back(std::move(j));
    }
    result["routes"] = std::move(jr);
  }
  if (has_dns(c.dns)) result["dns"] = c.dns;
  if (!result.contains("dns")) result["dns"] = json::object();
  return convert_result(result, c.cni_version);
}

} // namespace

json bridge_add(const BridgeConf& c, const Invocation& inv) {
  Rollback undo;
  try {
    return add_with(c, inv, undo);
  } catch (...) {
    undo.run();
    throw;
  }
}

void bridge_del(const BridgeConf& c, const Invocation& inv) {
  auto ipam_release = [&] {
    if (!c.ipam_type.empty()) ipam_del(c, inv);
  };
  std::vector<IpNet> ips;
  if (!c.prev_result.is_null()) {
    try {
      ips = ipnets_of(result_ips(convert_result(c.prev_result, "1.0.0")));
    } catch (const Error&) {
      // An unusable prevResult only costs the fallback below.
    }
  }
  if (!inv.netns.empty()) {
    UniqueFd netns(::open(inv.netns.c_str(), O_RDONLY | O_CLOEXEC));
    if (netns) {
      Netlink cont = Netlink::in_netns(netns.get());
      if (auto link = cont.link(inv.ifname)) {
        if (c.ip_masq) ips = cont.addresses(link->ifindex, 0, true);
        Netlink host;
        remove_veth_pair(cont, host, *link, host_veth_in(c.prev_result, c.bridge));
      }
    } else if (errno != ENOENT) {
      fail_errno("failed to open netns \"{}\"", inv.netns);
    }
  }
  ipam_release();
  if (c.ip_masq && !c.ipam_type.empty()) teardown_ipmasq(ips, {c.name, inv.ifname, inv.container_id});
}

void bridge_check(const BridgeConf& c, const Invocation& inv) {
  if (c.prev_result.is_null()) fail("required prevResult missing");
  json prev = with_context("prevResult", [&] { return convert_result(c.prev_result, "1.0.0"); });
  if (!c.ipam_type.empty()) ipam_check(c, inv);

  Netlink host;
  auto br = host.link(c.bridge);
  if (!br) fail("bridge {} not found", c.bridge);
  if (br->kind != "bridge") fail("{} is not a bridge (kind \"{}\")", c.bridge, br->kind);
  if (bool p = br->flags & IFF_PROMISC; p != c.promisc)
    fail("bridge {}: promiscuous mode is {}, configured {}", c.bridge, p ? "on" : "off", c.promisc ? "on" : "off");

  std::string cont_mac, host_name;
  for (const auto& i : prev.value("interfaces", json::array())) {
    std::string name = i.value("name", "");
    if (i.contains("sandbox") && name == inv.ifname) cont_mac = i.value("mac", "");
    else if (!i.contains("sandbox") && name != c.bridge) host_name = name;
  }
  if (host_name.empty()) fail("prevResult has no host veth interface");

  UniqueFd netns = open_netns(inv.netns);
  Netlink cont = Netlink::in_netns(netns.get());
  auto link = cont.link(inv.ifname);
  if (!link) fail("container interface {} not found in {}", inv.ifname, inv.netns);
  if (link->kind != "veth") fail("container interface {} is a \"{}\", not a veth", inv.ifname, link->kind);
  if (!cont_mac.empty() && link->mac != cont_mac)
    fail("container interface {}: MAC {} does not match the result's {}", inv.ifname, link->mac, cont_mac);
  if (!(link->flags & IFF_UP)) fail("container interface {} is down", inv.ifname);

  auto hv = host.link(host_name);
  if (!hv) fail("host veth {} not found", host_name);
  if (hv->master != br->ifindex) fail("host veth {} is not attached to bridge {}", host_name, c.bridge);
  if (hv->peer_ifindex != link->ifindex)
    fail("host veth {} is not the peer of container interface {}", host_name, inv.ifname);

  auto have = cont.addresses(link->ifindex, 0, false);
  for (const auto& ip : result_ips(prev)) {
    bool found = std::find(have.begin(), have.end(), ip.address) != have.end();
    if (!found) fail("container interface {} lacks address {}", inv.ifname, ip.address.str());
  }
  auto v4 = cont.routes(AF_INET), v6 = cont.routes(AF_INET6);
  for (const auto& rt : result_routes(prev)) {
    const auto& table = rt.dst.addr.v6 ? v6 : v4;
    bool found = std::any_of(table.begin(), table.end(), [&](const RouteInfo& r) {
      return r.dst.prefix == rt.dst.prefix && r.dst.addr == rt.dst.addr && r.oif == link->ifindex &&
             (!rt.gw || (r.gw && *r.gw == *rt.gw));
    });
    if (!found) fail("container route {} {} not found", rt.dst.str(), rt.gw ? "via " + rt.gw->str() : "");
  }
}

void bridge_gc(const BridgeConf& c, const Invocation& inv) {
  if (!c.ipam_type.empty()) ipam_gc(c, inv);
  gc_ipmasq(c.name, c.valid_attachments);
}

void bridge_status(const BridgeConf& c, const Invocation& inv) {
  if (!c.ipam_type.empty()) ipam_status(c, inv);
}

} // namespace berth::cni
